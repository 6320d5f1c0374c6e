//! Decode cost per record of the same Debezium events in JSON (with the
//! schema envelope), Avro and Protobuf, as Confluent's serializers write
//! them (`scripts/testdata/connect_{avro,protobuf}.py`): needs the test
//! registry and the serializers' Python (`scripts/services.sh env`).

#![allow(missing_docs)] // criterion_group! generates an undocumented fn
#![allow(clippy::unwrap_used)] // a bench that cannot set up fails

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sinkfleet_core::debezium::{DecodeOptions, Decoder, Format, Formats, TopicFormats};
use sinkfleet_schema_registry::{RegistryClient, RegistryConfig};
use sinkfleet_testkit::kafka::Record;
use sinkfleet_testkit::protobuf::Nullables;
use sinkfleet_testkit::workload::{self, Options};
use std::hint::black_box;
use std::path::Path;

const TOPIC: &str = "bench.registry.formats";

/// A decoder of `TOPIC` in `format` holding the schemas `records` name.
fn decoder(format: Format, records: &[Record]) -> Decoder {
    let mut d = Decoder::new(DecodeOptions {
        formats: TopicFormats::new([(
            TOPIC.to_owned(),
            Formats {
                key: format,
                value: format,
            },
        )])
        .unwrap(),
        // `updated_at` is a MicroTimestamp, a name Protobuf drops.
        columns: sinkfleet_core::debezium::DeclaredColumns::parse(
            &[(
                "public.customers".to_owned(),
                [(
                    "updated_at".to_owned(),
                    "io.debezium.time.MicroTimestamp".to_owned(),
                )]
                .into(),
            )]
            .into(),
        )
        .unwrap(),
        ..DecodeOptions::default()
    });
    let client = RegistryClient::new(&RegistryConfig {
        url: sinkfleet_testkit::avro::registry_url(),
        username: None,
        password: None,
        ca_file: None,
        timeout_ms: 5_000,
        attempts: 3,
    })
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for r in records {
        for id in d.missing_schemas(TOPIC, r.key.as_deref(), r.value.as_deref()) {
            d.add_schema(id, rt.block_on(client.schema(id)).unwrap());
        }
    }
    d
}

fn bench(c: &mut Criterion) {
    let w = workload::generate(&Options {
        keys: 1_000,
        changes: 5_000,
        disorder: false,
        ..Options::default()
    });
    let json: Vec<Record> = w
        .records
        .iter()
        .filter(|r| r.value.is_some())
        .cloned()
        .collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let avro = sinkfleet_testkit::avro::to_avro(root, TOPIC, &json);
    let protobuf =
        sinkfleet_testkit::protobuf::to_protobuf(root, TOPIC, &json, Nullables::Optional);
    let mut group = c.benchmark_group("registry_formats");
    group.throughput(Throughput::Elements(json.len() as u64));
    for (name, format, records) in [
        ("json_5000", Format::Json, &json),
        ("avro_5000", Format::Avro, &avro),
        ("protobuf_5000", Format::Protobuf, &protobuf),
    ] {
        let mut d = decoder(format, records);
        // Every record decodes: a bench of refusals would measure nothing.
        for r in records {
            d.decode_record(TOPIC, r.key.as_deref(), r.value.as_deref(), 0)
                .unwrap();
        }
        group.bench_function(name, |b| {
            b.iter(|| {
                for r in records {
                    black_box(
                        d.decode_record(TOPIC, r.key.as_deref(), r.value.as_deref(), 0)
                            .ok(),
                    );
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
