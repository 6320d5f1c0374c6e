//! Criterion benches of the per-record hot paths: decoding a Debezium
//! event (JSON; and Avro and JSON Schema written by Confluent's serializers
//! when the test Schema Registry answers) and collapsing a batch.

#![allow(missing_docs)] // criterion_group! generates an undocumented fn

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sinkfleet_core::batch::collapse;
use sinkfleet_core::debezium::{DecodeOptions, Decoder, Format, Formats, TopicFormats, decode};
use sinkfleet_schema_registry::{RegistryClient, RegistryConfig};
use sinkfleet_testkit::kafka::Record;
use sinkfleet_testkit::workload::{self, Options};
use std::hint::black_box;
use std::path::Path;

/// `records` in a registry format, and a decoder holding their schemas;
/// `None` when the test registry does not answer.
fn registry_records(format: Format, records: &[Record]) -> Option<(String, Vec<Record>, Decoder)> {
    let client = RegistryClient::new(&RegistryConfig {
        url: sinkfleet_testkit::avro::registry_url(),
        username: None,
        password: None,
        ca_file: None,
        timeout_ms: 2_000,
        attempts: 1,
    })
    .ok()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    // Up, or skip the bench (before spawning the serializer).
    if let Err(e) = runtime.block_on(client.schema(1)) {
        eprintln!(
            "no schema registry ({e}): {} decode not benched",
            format.name()
        );
        return None;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let topic = format!(
        "bench-{}-{}",
        format.name().replace('_', "-"),
        std::process::id()
    );
    let framed = match format {
        Format::Avro => sinkfleet_testkit::avro::to_avro(root, &topic, records),
        _ => sinkfleet_testkit::json_schema::to_json_schema(root, &topic, records),
    };
    let mut decoder = Decoder::new(DecodeOptions {
        formats: TopicFormats::new([(
            topic.clone(),
            Formats {
                key: format,
                value: format,
            },
        )])
        .ok()?,
        ..DecodeOptions::default()
    });
    for r in &framed {
        for id in decoder.missing_schemas(&topic, r.key.as_deref(), r.value.as_deref()) {
            decoder.add_schema(id, runtime.block_on(client.schema(id)).ok()?);
        }
    }
    Some((topic, framed, decoder))
}

fn bench(c: &mut Criterion) {
    let w = workload::generate(&Options {
        keys: 1_000,
        changes: 5_000,
        disorder: false,
        ..Options::default()
    });
    let opts = DecodeOptions::default();
    let records: Vec<_> = w.records.iter().filter(|r| r.value.is_some()).collect();
    let mut group = c.benchmark_group("core");
    group.throughput(Throughput::Elements(records.len() as u64));
    // Without the schema cache: what every record cost before it existed.
    group.bench_function("decode_with_schema_uncached_5000", |b| {
        b.iter(|| {
            for r in &records {
                black_box(decode(r.key.as_deref(), r.value.as_deref(), 0, &opts).ok());
            }
        })
    });
    let mut decoder = Decoder::new(opts.clone());
    group.bench_function("decode_with_schema_5000", |b| {
        b.iter(|| {
            for r in &records {
                black_box(decoder.decode(r.key.as_deref(), r.value.as_deref(), 0).ok());
            }
        })
    });
    let bare = workload::generate(&Options {
        keys: 1_000,
        changes: 5_000,
        disorder: false,
        with_schema: false,
        ..Options::default()
    });
    let bare: Vec<_> = bare.records.iter().filter(|r| r.value.is_some()).collect();
    let mut bare_decoder = Decoder::new(opts.clone());
    group.bench_function("decode_without_schema_5000", |b| {
        b.iter(|| {
            for r in &bare {
                black_box(
                    bare_decoder
                        .decode(r.key.as_deref(), r.value.as_deref(), 0)
                        .ok(),
                );
            }
        })
    });
    let owned: Vec<Record> = records.iter().map(|r| (*r).clone()).collect();
    for format in [Format::Avro, Format::JsonSchema] {
        let Some((topic, framed, mut decoder)) = registry_records(format, &owned) else {
            continue;
        };
        group.bench_function(format!("decode_{}_5000", format.name()), |b| {
            b.iter(|| {
                for r in &framed {
                    black_box(
                        decoder
                            .decode_record(&topic, r.key.as_deref(), r.value.as_deref(), 0)
                            .ok(),
                    );
                }
            })
        });
    }
    let changes: Vec<_> = records
        .iter()
        .filter_map(|r| decode(r.key.as_deref(), r.value.as_deref(), 0, &opts).ok()?)
        .collect();
    group.bench_function("collapse_5000", |b| {
        b.iter(|| black_box(collapse(&changes)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
