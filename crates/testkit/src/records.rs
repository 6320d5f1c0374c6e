//! Generated Kafka records as the runtime hands them to a sink.

use crate::kafka::Record;
use sinkfleet_core::debezium::Decoder;
use sinkfleet_core::{Position, SinkRecord};
use std::sync::Arc;

/// Decodes `raw` as partition 0 of `topic`, the first record at offset
/// `first_offset`; Kafka tombstones (nothing to apply) are left out, as the
/// runtime leaves them out. Panics on an undecodable record: generated
/// streams have none.
pub fn sink_records(
    raw: &[Record],
    first_offset: i64,
    topic: &Arc<str>,
    decoder: &mut Decoder,
) -> Vec<SinkRecord> {
    raw.iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let offset = first_offset + i as i64;
            let change = decoder
                .decode(r.key.as_deref(), r.value.as_deref(), offset)
                .unwrap_or_else(|e| panic!("generated record at offset {offset}: {e}"))?;
            Some(SinkRecord {
                position: Position {
                    topic: Arc::clone(topic),
                    partition: 0,
                    offset,
                },
                change,
            })
        })
        .collect()
}
