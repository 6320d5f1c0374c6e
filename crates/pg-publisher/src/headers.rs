//! Record headers of change events, as Debezium writes them: the key
//! change headers of a primary-key update, and the `__debezium.context.*`
//! headers on every change record (`extended.headers.enabled`).

use crate::config::ConnectorConfig;
use rdkafka::message::{Header, OwnedHeaders};

/// On the delete of the old key (and its tombstone): the new key.
pub const NEW_KEY: &str = "__debezium.newkey";
/// On the create of the new key: the old key.
pub const OLD_KEY: &str = "__debezium.oldkey";

/// The context headers of this publisher run (empty when disabled).
#[derive(Debug, Clone, Default)]
pub struct ContextHeaders {
    entries: Vec<(&'static str, String)>,
}

impl ContextHeaders {
    /// The headers of `cfg`'s connector, with a fresh run id.
    pub fn new(cfg: &ConnectorConfig) -> ContextHeaders {
        if !cfg.extended_headers {
            return ContextHeaders::default();
        }
        ContextHeaders {
            entries: vec![
                (
                    "__debezium.context.connectorLogicalName",
                    cfg.topic_prefix.clone(),
                ),
                ("__debezium.context.taskId", "0".into()),
                ("__debezium.context.connectorName", "postgresql".into()),
                ("__debezium.context.runId", run_id()),
            ],
        }
    }

    /// The headers of one record: `first` (a key change header) then the
    /// context headers; `None` when there are none.
    pub fn with(&self, first: Option<(&str, &[u8])>) -> Option<OwnedHeaders> {
        if first.is_none() && self.entries.is_empty() {
            return None;
        }
        let mut headers = OwnedHeaders::new_with_capacity(self.entries.len() + 1);
        if let Some((key, value)) = first {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        for (key, value) in &self.entries {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            });
        }
        Some(headers)
    }
}

/// A random (version 4) UUID, as Debezium's `runId`.
fn run_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0F) | 0x40;
    b[8] = (b[8] & 0x3F) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
