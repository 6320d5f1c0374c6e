//! ClickHouse crashing (SIGKILL) and restarting under load: the worker
//! pauses and retries, and nothing is lost. A test binary of its own,
//! because it kills the server other ClickHouse tests use (cargo runs test
//! binaries one after another).
//!
//! SIGKILL, not SIGTERM: on SIGTERM ClickHouse keeps serving for seconds
//! while it shuts down, long enough for a small workload to finish.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

mod common;

use common::{Pipeline, free_port, wait_names, wait_until};
use sinkfleet_sink_clickhouse::ClickHouseSinkConfig;
use sinkfleet_sink_clickhouse::client::Client;
use sinkfleet_testkit::workload::{self, Options};
use std::process::Command;
use std::time::Duration;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/services.sh");

fn services(command: &str) {
    let status = Command::new("bash")
        .args([SCRIPT, command])
        .status()
        .unwrap();
    assert!(status.success(), "services.sh {command}");
}

/// Starts ClickHouse again however the test ends: a failure here must not
/// leave the server down for every test after it.
struct StartOnDrop;

impl Drop for StartOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .args([SCRIPT, "start-clickhouse"])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn clickhouse_crash_and_restart_under_load_loses_nothing() {
    let url = sinkfleet_testkit::services::clickhouse_url();
    let p = Pipeline::new("chcrash", 2).await;
    let w = workload::generate(&Options {
        keys: 200,
        changes: 3_000,
        seed: 47,
        ..Options::default()
    });
    p.produce(&w.records).await;
    let db = p.schema.clone();
    let port = free_port();
    let sink = format!("  clickhouse:\n    url: {url}\n    database: {db}\n    timeout_ms: 5000");
    let config = p
        .config_with_sink(
            "  batch_max_records: 500\n  rate_limit: { rows_per_second: 600 }",
            &sink,
            port,
        )
        .replace("  batch_max_records: 1000\n", "");
    let mut worker = p.spawn("w", &config, port);
    wait_until(
        "progress before the crash",
        Duration::from_secs(120),
        || worker.metric("sinkfleet_committed_offset") > 300.0,
    )
    .await;
    let _restart_on_failure = StartOnDrop;
    services("kill-clickhouse");
    wait_until(
        "writes fail and are retried",
        Duration::from_secs(30),
        || {
            worker.metric("sinkfleet_write_retries_total") > 0.0
                && worker.metric("sinkfleet_partitions_paused") == 2.0
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    services("start-clickhouse");
    p.wait_committed_to_end(&p.group, Duration::from_secs(120))
        .await;

    let client = Client::new(&ClickHouseSinkConfig::with_url(url)).unwrap();
    let want: Vec<(i64, String)> = w
        .expected
        .values()
        .map(|r| (r.id, r.name.clone()))
        .collect();
    let got = wait_names(&client, &db, &want).await;
    assert_eq!(got, want);
    assert!(worker.terminate(Duration::from_secs(30)).success());
    client
        .execute(&format!("DROP DATABASE `{db}`"), None, &[])
        .await
        .unwrap();
}
