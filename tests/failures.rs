//! Failure handling end to end: the target going away under load, and a
//! worker process killed with SIGKILL.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

use crate::common;

use common::{Pipeline, Proxy, Worker, free_port, wait_until};
use sinkfleet_testkit::kafka::Record;
use sinkfleet_testkit::workload::{self, Options};
use std::time::Duration;

const CONVERGE: Duration = Duration::from_secs(120);

/// With the target unreachable, the worker retries with backoff, pauses its
/// partitions and reports not ready, but keeps polling: no rebalance
/// happens even past the session timeout. When the target is back it
/// catches up and nothing is lost.
#[tokio::test(flavor = "multi_thread")]
async fn target_outage_pauses_partitions_without_a_rebalance() {
    let p = Pipeline::new("outage", 2).await;
    let w = workload::generate(&Options {
        keys: 300,
        changes: 5_000,
        seed: 21,
        ..Options::default()
    });
    p.produce(&w.records).await;
    let upstream = p
        .pg_url
        .split('@')
        .nth(1)
        .and_then(|h| h.split('/').next())
        .unwrap()
        .to_owned();
    let proxy = Proxy::start(&upstream).await;
    let via_proxy = format!("postgres://postgres@127.0.0.1:{}/postgres", proxy.port);
    let port = free_port();
    let config = p
        .config(
            "  rate_limit: { rows_per_second: 2000 }",
            "    connect_timeout_ms: 1000",
            port,
        )
        .replace(&p.pg_url, &via_proxy);
    let mut worker = p.spawn("w", &config, port);
    wait_until("progress before the outage", CONVERGE, || {
        worker.metric("sinkfleet_committed_offset") > 300.0
    })
    .await;

    proxy.down();
    wait_until(
        "partitions paused while the target is down",
        CONVERGE,
        || {
            worker.metric("sinkfleet_partitions_paused") == 2.0
                && worker.metric("sinkfleet_write_retries_total") > 0.0
        },
    )
    .await;
    assert_eq!(worker.http_get("/readyz").map(|r| r.0), Some(503));
    assert_eq!(worker.http_get("/healthz").map(|r| r.0), Some(200));
    // What was durable before the outage is still committed during it
    // (the broker's acknowledgement may come after the target went away):
    // wait for that, then nothing more may be committed.
    wait_until("durable records committed", CONVERGE, || {
        worker.http_get("/metrics").is_some_and(|(_, body)| {
            body.contains("sinkfleet_uncommitted_durable_records{")
                && !body.lines().any(|l| {
                    l.starts_with("sinkfleet_uncommitted_durable_records{") && !l.ends_with(" 0")
                })
        })
    })
    .await;
    let committed_during = worker.metric("sinkfleet_committed_offset");
    // Longer than session.timeout.ms (6 s): a consumer that stopped polling
    // would be evicted and trigger a rebalance.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        worker.metric("sinkfleet_committed_offset"),
        committed_during,
        "nothing commits while down"
    );
    assert_eq!(
        worker.metric("sinkfleet_rebalances_total{kind=\"assign\"}"),
        1.0,
        "no rebalance"
    );
    assert_eq!(
        worker.metric("sinkfleet_rebalances_total{kind=\"revoke\"}"),
        0.0,
        "no rebalance"
    );

    proxy.up().await;
    let pool = p.pool().await;
    p.wait_converged(&pool, &w, CONVERGE).await;
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    wait_until("ready again", CONVERGE, || {
        worker.http_get("/readyz").map(|r| r.0) == Some(200)
    })
    .await;
    assert_eq!(worker.metric("sinkfleet_partitions_paused"), 0.0);
    assert!(worker.terminate(Duration::from_secs(30)).success());
    proxy.down();
}

/// Two workers on a mock cluster (which, unlike tansu, evicts a member
/// that stops heartbeating); one is SIGKILLed mid-stream: the survivor
/// takes its partitions after the session timeout and the target still
/// converges, with replays absorbed.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_failover_between_two_workers() {
    let (p, mock) = Pipeline::on_mock("failover", 4);
    let w = workload::generate(&Options {
        keys: 400,
        changes: 6_000,
        seed: 13,
        ..Options::default()
    });
    p.produce(&w.records).await;
    // Slow enough that A still owns unapplied records when it dies: 6,000
    // records at 2 x 500/s take ~6 s, longer than the wait for both to consume.
    let slow = "  rate_limit: { rows_per_second: 500 }";
    let (port_a, port_b) = (free_port(), free_port());
    let mut a: Worker = p.spawn("a", &p.config(slow, "", port_a), port_a);
    let mut b: Worker = p.spawn("b", &p.config(slow, "", port_b), port_b);
    wait_until("both workers consume", CONVERGE, || {
        a.metric("sinkfleet_records_in_total") > 0.0 && b.metric("sinkfleet_records_in_total") > 0.0
    })
    .await;
    a.kill9();
    // Only B can move the group's offsets from here: if they were already at
    // the end, the test would prove nothing about the failover.
    let end: i64 = p.end_offsets().values().sum();
    let committed_at_kill: i64 = p.committed(&p.group).values().sum();
    assert!(
        committed_at_kill < end,
        "A died with nothing left to take over ({committed_at_kill} of {end} committed)"
    );
    wait_until("b takes over a's partitions", CONVERGE, || {
        b.metric("sinkfleet_rebalances_total{kind=\"assign\"}") >= 2.0
    })
    .await;
    let pool = p.pool().await;
    p.wait_converged(&pool, &w, CONVERGE).await;
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    assert!(b.terminate(Duration::from_secs(30)).success());
    drop(mock);
}

/// A partition paused by a target outage, revoked, and assigned back to
/// the same process flows again (offsets in Kafka). Worker A's target goes
/// away, so every partition pauses; B joins (through the same broken
/// path) and takes two of them. While nothing moves, more records arrive:
/// the lag gauges must show them. Then the target comes back, B stops
/// cleanly and A gets its partitions back: it must apply everything, and
/// the group's committed offsets must reach the end.
#[tokio::test(flavor = "multi_thread")]
async fn a_partition_paused_by_an_outage_and_handed_back_flows_again() {
    let (p, _mock) = Pipeline::on_mock("outageback", 4);
    let w = workload::generate(&Options {
        keys: 400,
        changes: 4_000,
        seed: 29,
        ..Options::default()
    });
    let chunks: Vec<&[Record]> = w.records.chunks(w.records.len().div_ceil(4)).collect();
    let upstream = p
        .pg_url
        .split('@')
        .nth(1)
        .and_then(|h| h.split('/').next())
        .unwrap()
        .to_owned();
    let proxy = Proxy::start(&upstream).await;
    let via_proxy = format!("postgres://postgres@127.0.0.1:{}/postgres", proxy.port);
    let config = |port: u16| {
        // A revoke's drain gives up on a failing write after three seconds.
        p.config(
            "  drain_timeout_ms: 3000",
            "    connect_timeout_ms: 1000",
            port,
        )
        .replace(&p.pg_url, &via_proxy)
    };
    let port_a = free_port();
    let a = p.spawn("a", &config(port_a), port_a);
    p.produce(chunks[0]).await;
    p.wait_committed_to_end(&p.group, CONVERGE).await;

    proxy.down();
    p.produce(chunks[1]).await;
    wait_until("A pauses its partitions", CONVERGE, || {
        a.metric("sinkfleet_partitions_paused") == 4.0
    })
    .await;
    let port_b = free_port();
    let mut b = p.spawn("b", &config(port_b), port_b);
    wait_until("B takes partitions and pauses them too", CONVERGE, || {
        a.metric("sinkfleet_rebalances_total{kind=\"revoke\"}") >= 1.0
            && b.metric("sinkfleet_records_in_total") > 0.0
            && b.metric("sinkfleet_partitions_paused") >= 1.0
    })
    .await;
    p.produce(chunks[2]).await;
    let lag_while_stuck = common::wait_true_lag(&p, &[&a, &b], Duration::from_secs(60)).await;
    eprintln!("lag gauges while nothing moved: {lag_while_stuck:?}");

    proxy.up().await;
    assert!(b.terminate(Duration::from_secs(60)).success());
    p.produce(chunks[3]).await;
    let pool = p.pool().await;
    p.wait_converged(&pool, &w, CONVERGE).await;
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    if let Err(shown) = lag_while_stuck {
        panic!("while nothing moved, the lag gauges did not show the lag: {shown}");
    }
    proxy.down();
}
