//! The dashboard and the alert rules against a real Prometheus.
//!
//! Real processes run under one Prometheus (Debian's package, installed by
//! `scripts/services.sh`) that scrapes and evaluates every second:
//!
//! * A publisher, a Postgres worker and a Parquet worker run a real
//!   pipeline. Every PromQL expression of `deploy/grafana` must return
//!   data, and every alert expression must evaluate and name only series
//!   that exist: no panel or alert may watch a metric nobody exports.
//! * Every alert of `deploy/prometheus/alerts.yaml` must reach `firing`,
//!   each on one real event on real processes (a dead letter, a parked key,
//!   a fenced write, a failing target, refused commits, a killed worker, a
//!   publisher whose broker answers late...), after the series it reads
//!   was scraped at its start value. Prometheus evaluates a copy of the
//!   rules whose `for:` are shortened and, where one event cannot reach
//!   the production magnitude in test time, whose thresholds or windows
//!   are smaller: `prometheus::SHORTENED` says what and why. The expressions keep
//!   their shape (metric names, labels, functions).
//!
//! `promtool test rules` proves each alert fires on its situation, on the
//! series the exporter really produces, and stays quiet otherwise.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

mod common;
#[path = "monitoring/prometheus.rs"]
mod prometheus;
#[path = "monitoring/scenarios.rs"]
mod scenarios;

use common::free_port;
use common::source::CONVERGE;
use prometheus::{Prometheus, alert_expressions, deploy, tool};
use scenarios::{PipelineRun, Ports, Refused, Stuck, Zombie};
use sinkfleet_testkit::process::http_get;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

/// `promtool check rules` and `promtool test rules` on the shipped rules.
#[test]
fn alert_rules_pass_their_promtool_unit_tests() {
    let promtool = tool("promtool");
    for args in [
        ["check", "rules", "alerts.yaml"],
        ["test", "rules", "alerts.test.yaml"],
    ] {
        let out = Command::new(&promtool)
            .args(args)
            .current_dir(deploy("prometheus"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every scenario at once under one Prometheus (see the module comment);
/// each scenario reports what its events fired and how fast.
#[tokio::test(flavor = "multi_thread")]
async fn every_panel_has_data_and_every_alert_fires_on_its_first_event() {
    let started = Instant::now();
    let ports = Ports {
        publisher: free_port(),
        worker: free_port(),
        parquet: free_port(),
        slow_publisher: free_port(),
        stuck: free_port(),
        refused: free_port(),
        zombie: free_port(),
        owner: free_port(),
    };
    let (pipeline, stuck, refused, zombie) = tokio::join!(
        PipelineRun::start(&ports),
        Stuck::start(ports.stuck),
        Refused::start(ports.refused),
        Zombie::start(ports.zombie, ports.owner),
    );
    // Prometheus starts once every process serves its metrics, so that no
    // `up == 0` comes from a process that was still starting (but the
    // zombie's successor starts later).
    let serving = [
        ports.publisher,
        ports.worker,
        ports.parquet,
        ports.slow_publisher,
        ports.stuck,
        ports.refused,
        ports.zombie,
    ];
    common::wait_until("every process serves /metrics", CONVERGE, || {
        serving.iter().all(|p| http_get(*p, "/metrics").is_some())
    })
    .await;
    let prometheus = Arc::new(Prometheus::start(
        &pipeline.src.prefix,
        &[
            (
                "sinkfleet",
                &[
                    ports.worker,
                    ports.parquet,
                    ports.stuck,
                    ports.refused,
                    ports.zombie,
                    ports.owner,
                ],
            ),
            (
                "sinkfleet-publisher",
                &[ports.publisher, ports.slow_publisher],
            ),
        ],
    ));
    // Every series is scraped at its start value before any event.
    prometheus
        .wait_has("the first scrapes", "count(up == 1) >= 7")
        .await
        .unwrap();
    let setup = started.elapsed();

    let scenarios = [
        tokio::spawn(pipeline.run(Arc::clone(&prometheus), ports)),
        tokio::spawn(stuck.run(Arc::clone(&prometheus))),
        tokio::spawn(refused.run(Arc::clone(&prometheus))),
        tokio::spawn(zombie.run(Arc::clone(&prometheus))),
    ];
    let mut outcomes = Vec::new();
    for scenario in scenarios {
        outcomes.extend(scenario.await.unwrap());
    }

    let mut failures = Vec::new();
    eprintln!(
        "setup {:.0} s, run {:.0} s",
        setup.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    for o in &outcomes {
        match &o.result {
            Ok(seconds) => eprintln!("ok     {:32} {seconds:5.1} s after: {}", o.check, o.event),
            Err(e) => {
                eprintln!("FAILED {:32} on: {}: {e}", o.check, o.event);
                failures.push(format!("{} ({}): {e}", o.check, o.event));
            }
        }
    }
    for (alert, _) in alert_expressions() {
        if !outcomes
            .iter()
            .any(|o| o.check == alert && o.result.is_ok())
        {
            failures.push(format!("{alert}: no scenario made it fire"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
