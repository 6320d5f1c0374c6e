//! The Parquet sink end to end: the real worker binary, tansu, and moto (S3)
//! or a local directory. What is asserted is what a reader of the bucket
//! sees: every Kafka record in exactly one object, and the newest version of
//! every key equal to the source's final state.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

use crate::common;

use common::parquet::{assert_stored_once, read_back, stored_records};
use common::{Pipeline, Proxy, free_port, wait_until};
use sinkfleet_sink_s3_parquet::ParquetSinkConfig;
use sinkfleet_sink_s3_parquet::config::{S3Target, Target};
use sinkfleet_testkit::services::s3_endpoint;
use sinkfleet_testkit::workload::{self, Options};
use std::collections::BTreeSet;
use std::time::Duration;

fn s3_sink(prefix: &str, extra: &str) -> String {
    s3_sink_at(&s3_endpoint(), prefix, extra)
}

fn s3_sink_at(endpoint: &str, prefix: &str, extra: &str) -> String {
    format!(
        "  s3_parquet:
    target:
      s3:
        bucket: sinkfleet
        endpoint: {endpoint}
        region: us-east-1
        path_style: true
        allow_http: true
        access_key_id: sinkfleet
        secret_access_key: sinkfleet
    prefix: {prefix}
{extra}"
    )
}

/// The same bucket and prefix as [`s3_sink`], for reading back.
fn s3_config(prefix: &str) -> ParquetSinkConfig {
    let mut cfg = ParquetSinkConfig::local("unused");
    cfg.target = Target::S3(S3Target::compatible(
        "sinkfleet",
        &s3_endpoint(),
        "sinkfleet",
        "sinkfleet",
    ));
    cfg.prefix = prefix.into();
    cfg
}

/// A worker uploads files (rotation by rows) but never gets to commit
/// (commit interval of an hour) and is SIGKILLed. The next worker starts
/// from the beginning, skips what the bucket holds, writes the rest:
/// nothing is stored twice, nothing is missing.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_between_upload_and_commit_duplicates_nothing() {
    let p = Pipeline::new("s3kill", 2).await;
    let w = workload::generate(&Options {
        keys: 200,
        changes: 3_000,
        seed: 61,
        ..Options::default()
    });
    p.produce(&w.records).await;
    let prefix = p.schema.clone();
    let sink = s3_sink(&prefix, "    rotation: { max_rows: 300, max_age_ms: 500 }");

    let port = free_port();
    let config = p.config_with_sink("  commit_interval_ms: 3600000", &sink, port);
    let mut first = p.spawn("first", &config, port);
    wait_until("objects uploaded", Duration::from_secs(120), || {
        first.metric("sinkfleet_objects_written_total") >= 4.0
    })
    .await;
    first.kill9();
    assert!(
        p.committed(&p.group).values().all(|o| *o < 0),
        "nothing committed before the kill: {:?}",
        p.committed(&p.group)
    );
    let before = read_back(s3_config(&prefix)).await;
    assert!(!before.is_empty());

    let port = free_port();
    let config = p.config_with_sink("", &sink, port);
    let mut second = p.spawn("second", &config, port);
    p.wait_committed_to_end(&p.group, Duration::from_secs(120))
        .await;
    assert!(second.metric("sinkfleet_records_already_written_total") > 0.0);
    assert!(second.terminate(Duration::from_secs(30)).success());

    let after = assert_stored_once(s3_config(&prefix), &w).await;
    // The objects written before the kill are still there, unchanged in name.
    let names_after: BTreeSet<&String> = after.iter().map(|(n, _)| n).collect();
    assert!(before.iter().all(|(n, _)| names_after.contains(n)));
}

/// SIGTERM with files still open (an age limit of an hour): the worker
/// uploads them before its final commit, so a clean stop commits
/// everything and a restart replays nothing. Local directory target.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_uploads_open_files_then_commits_everything() {
    let p = Pipeline::new("s3term", 2).await;
    let w = workload::generate(&Options {
        keys: 100,
        changes: 1_000,
        seed: 62,
        new_column_at: None, // no schema change: nothing rotates before the stop
        ..Options::default()
    });
    p.produce(&w.records).await;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(&p.schema);
    let sink = format!(
        "  s3_parquet:\n    target:\n      local:\n        path: {}\n    rotation: {{ max_age_ms: 3600000 }}",
        dir.display()
    );
    let port = free_port();
    let config = p.config_with_sink("", &sink, port);
    let mut worker = p.spawn("w", &config, port);
    // Handed to the sink, not just consumed: a stop drops what is still
    // waiting for a batch (it is replayed), which this test is not about.
    wait_until("every record in the sink", Duration::from_secs(120), || {
        worker.metric("sinkfleet_batch_records_sum") >= stored_records(&w) as f64
    })
    .await;
    assert_eq!(worker.metric("sinkfleet_objects_written_total"), 0.0);
    // One open file per partition; the two partitions are with the two
    // writers (each its own sink instance), and the gauge counts both.
    assert_eq!(worker.metric("sinkfleet_open_files"), 2.0);
    assert!(worker.terminate(Duration::from_secs(30)).success());
    assert_eq!(p.committed(&p.group), p.end_offsets());

    assert_stored_once(ParquetSinkConfig::local(dir.to_str().unwrap()), &w).await;
}

/// A second worker joins mid-stream and takes partitions over: the first
/// drops what it buffered for them (never uploaded), the second reconciles
/// and writes them. Files rotate often (small row limit, short age), so
/// objects exist for the moving partitions when they move. Nothing is
/// stored twice, nothing is missing.
#[tokio::test(flavor = "multi_thread")]
async fn a_rebalance_mid_stream_stores_every_record_once() {
    let p = Pipeline::new("s3scale", 4).await;
    let w = workload::generate(&Options {
        keys: 400,
        changes: 6_000,
        seed: 63,
        ..Options::default()
    });
    p.produce(&w.records).await;
    let prefix = p.schema.clone();
    let sink = s3_sink(&prefix, "    rotation: { max_rows: 200, max_age_ms: 700 }");
    let slow = "  rate_limit: { rows_per_second: 1500 }";
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = p.spawn("a", &p.config_with_sink(slow, &sink, port_a), port_a);
    wait_until("worker a writes objects", Duration::from_secs(120), || {
        a.metric("sinkfleet_objects_written_total") >= 2.0
    })
    .await;
    let mut b = p.spawn("b", &p.config_with_sink(slow, &sink, port_b), port_b);
    wait_until(
        "worker b takes partitions and writes",
        Duration::from_secs(120),
        || b.metric("sinkfleet_objects_written_total") >= 1.0,
    )
    .await;
    assert!(a.metric("sinkfleet_rebalances_total{kind=\"revoke\"}") >= 1.0);
    p.wait_committed_to_end(&p.group, Duration::from_secs(180))
        .await;
    assert!(a.terminate(Duration::from_secs(30)).success());
    assert!(b.terminate(Duration::from_secs(30)).success());

    assert_stored_once(s3_config(&prefix), &w).await;
}

/// A worker whose store is unreachable holds files it cannot upload when a
/// second worker joins: its revoke drain times out and a partition moves.
/// The second worker writes that partition from offset 0, into an object
/// with the same name as the first worker's stale file (which holds fewer
/// records). When the store comes back, the first worker must not upload
/// that file: it would replace the newer object and lose records whose
/// offsets are already committed.
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_that_lost_a_partition_uploads_nothing_for_it() {
    let p = Pipeline::new("s3zombie", 2).await;
    let w = workload::generate(&Options {
        keys: 200,
        changes: 2_000,
        seed: 64,
        new_column_at: None,
        ..Options::default()
    });
    let first_phase = 300;
    p.produce(&w.records[..first_phase]).await;
    let first_changes = w.records[..first_phase]
        .iter()
        .filter(|r| r.value.is_some())
        .count();
    let proxy = Proxy::start(s3_endpoint().trim_start_matches("http://")).await;
    let prefix = p.schema.clone();
    let rotation = "    rotation: { max_age_ms: 3000 }";
    let drain = "  drain_timeout_ms: 2000";
    let sink_a = s3_sink_at(
        &format!("http://127.0.0.1:{}", proxy.port),
        &prefix,
        rotation,
    );
    let port_a = free_port();
    let mut a = p.spawn("a", &p.config_with_sink(drain, &sink_a, port_a), port_a);
    // The store is reachable while `a` reconciles and buffers, and gone
    // before its files are old enough to upload.
    wait_until(
        "worker a buffers the first records",
        Duration::from_secs(120),
        || a.metric("sinkfleet_batch_records_sum") >= first_changes as f64,
    )
    .await;
    proxy.down();
    wait_until("worker a fails to upload", Duration::from_secs(120), || {
        a.metric("sinkfleet_partitions_paused") >= 2.0
    })
    .await;

    p.produce(&w.records[first_phase..]).await;
    let port_b = free_port();
    let sink_b = s3_sink(&prefix, rotation);
    let mut b = p.spawn("b", &p.config_with_sink(drain, &sink_b, port_b), port_b);
    wait_until(
        "worker b takes a partition over and writes it to the end",
        Duration::from_secs(120),
        || {
            let end = p.end_offsets();
            b.metric("sinkfleet_objects_written_total") >= 1.0
                && p.committed(&p.group)
                    .iter()
                    .any(|(k, o)| end.get(k) == Some(o))
        },
    )
    .await;
    assert!(a.metric("sinkfleet_rebalances_total{kind=\"revoke\"}") >= 1.0);

    proxy.up().await;
    p.wait_committed_to_end(&p.group, Duration::from_secs(120))
        .await;
    assert!(a.terminate(Duration::from_secs(30)).success());
    assert!(b.terminate(Duration::from_secs(30)).success());

    assert_stored_once(s3_config(&prefix), &w).await;
}
