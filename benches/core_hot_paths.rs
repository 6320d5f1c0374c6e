//! Criterion benches of the per-record hot paths: decoding a Debezium
//! event and collapsing a batch.

#![allow(missing_docs)] // criterion_group! generates an undocumented fn

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sinkfleet_core::batch::collapse;
use sinkfleet_core::debezium::{DecodeOptions, Decoder, decode};
use sinkfleet_testkit::workload::{self, Options};
use std::hint::black_box;

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
