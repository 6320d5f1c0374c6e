//! Committed offsets and lag tell the truth: an offset counts as committed
//! only once the broker acknowledged it, and a refused commit is retried
//! until it lands, also for a partition that receives nothing more.
//!
//! Runs on librdkafka's mock cluster, which can refuse requests on demand
//! the way a real group coordinator does during a rebalance.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

use crate::common;

use common::{Pipeline, Worker, free_port, wait_until};
use sinkfleet_testkit::workload::{self, Options};
use std::time::Duration;

const CONVERGE: Duration = Duration::from_secs(120);

/// Sum of a metric over all its series (0 when absent).
fn total(worker: &Worker, name: &str) -> f64 {
    worker.metric(&format!("{name}{{")) + worker.metric(&format!("{name} "))
}

/// The stalled-commit scenario: every record is applied while the group
/// coordinator refuses commits (as it does while a rebalance is in
/// progress), then the partitions go idle. The refused commits must be
/// retried until the broker has the end offsets; the committed-offset gauge
/// must move only with the broker's acknowledgement, and lag must read 0.
#[tokio::test(flavor = "multi_thread")]
async fn refused_commits_are_retried_until_the_broker_has_them() {
    let (p, mut mock) = Pipeline::on_mock("refused", 4);
    let w = workload::generate(&Options {
        keys: 200,
        changes: 2_000,
        seed: 5,
        ..Options::default()
    });
    p.produce(&w.records).await;
    let end: i64 = p.end_offsets().values().sum();
    // Enough refusals to outlast the first commits after everything is
    // applied: nothing new arrives after them.
    mock.fail("OffsetCommit", 8, "REBALANCE_IN_PROGRESS");

    let port = free_port();
    let worker = p.spawn("w", &p.config("", "", port), port);
    let pool = p.pool().await;
    p.wait_converged(&pool, &w, CONVERGE).await;
    p.wait_committed_to_end(&p.group, CONVERGE).await;

    assert!(
        total(&worker, "sinkfleet_offset_commit_failures_total") >= 1.0,
        "the refusals reached the worker: {}",
        worker.log_text()
    );
    wait_until("the gauges show the broker's numbers", CONVERGE, || {
        total(&worker, "sinkfleet_committed_offset") == end as f64
            && total(&worker, "sinkfleet_consumer_lag_records") == 0.0
            && total(&worker, "sinkfleet_uncommitted_durable_records") == 0.0
    })
    .await;
}

/// The commit at shutdown is retried within the drain timeout: with no
/// periodic commits (an hour apart) the last one is the only one, and the
/// coordinator refuses it three times. The worker still leaves the group
/// with every offset committed.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_commit_at_shutdown_is_retried() {
    let (p, mut mock) = Pipeline::on_mock("refusedstop", 2);
    let w = workload::generate(&Options {
        keys: 100,
        changes: 500,
        seed: 6,
        ..Options::default()
    });
    p.produce(&w.records).await;
    let port = free_port();
    let config = p.config("  commit_interval_ms: 3600000", "", port);
    let mut worker = p.spawn("w", &config, port);
    let pool = p.pool().await;
    p.wait_converged(&pool, &w, CONVERGE).await;
    assert!(p.committed(&p.group).values().all(|o| *o < 0));

    mock.fail("OffsetCommit", 3, "REBALANCE_IN_PROGRESS");
    assert!(worker.terminate(Duration::from_secs(60)).success());
    assert_eq!(
        p.committed(&p.group),
        p.end_offsets(),
        "{}",
        worker.log_text()
    );
}
