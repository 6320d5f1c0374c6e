//! The dashboard and the alert rules against a real Prometheus.
//!
//! A publisher, a Postgres worker and a Parquet worker run a real pipeline
//! (with a record for the dead-letter topic) while Prometheus (Debian's
//! package, installed by `scripts/services.sh`) scrapes them. Every PromQL
//! expression of `deploy/grafana` must then return data, and every alert
//! expression must evaluate and name only series that exist: no panel or
//! alert may watch a metric nobody exports. `promtool test rules` proves
//! each alert fires on its situation.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

mod common;

use common::source::{CONVERGE, Source};
use common::{Worker, brokers, free_port, http_get, wait_until};
use serde_json::Value;
use sinkfleet_testkit::kafka::{self, Record};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

fn tool(name: &str) -> String {
    let found = Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{name} not found: run scripts/services.sh start (or scripts/test.sh)"
    );
    name.to_owned()
}

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

/// A Prometheus of the test's own, on loopback; stopped on drop.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Prometheus {
    fn start(name: &str, jobs: &[(&str, &[u16])]) -> Prometheus {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("prometheus-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut scrape = String::new();
        for (job, ports) in jobs {
            let targets: Vec<String> = ports.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
            scrape.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ));
        }
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n{scrape}",
            deploy("prometheus/alerts.yaml").display()
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(tool("prometheus"))
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Prometheus { child, port }
    }

    /// GET `path` → (status, body).
    fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.port, path)
    }

    /// Evaluates `expr` now: `Ok(result vector)` or `Err(error)`.
    fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let encoded: String = expr
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let (_, body) = self
            .get(&format!("/api/v1/query?query={encoded}"))
            .ok_or("Prometheus not answering")?;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        if v["status"] != "success" {
            return Err(body);
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every `expr` of the dashboard, with its panel title.
fn dashboard_expressions() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(deploy("grafana/sinkfleet.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            out.push((
                panel["title"].as_str().unwrap().to_owned(),
                target["expr"].as_str().unwrap().to_owned(),
            ));
        }
    }
    out
}

/// `(alert, expr)` of every rule.
fn alert_expressions() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(deploy("prometheus/alerts.yaml")).unwrap();
    let rules: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let out: Vec<(String, String)> = rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|group| group["rules"].as_sequence().unwrap())
        .map(|rule| {
            (
                rule["alert"].as_str().unwrap().to_owned(),
                rule["expr"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(out.len() >= 10, "{out:?}");
    out
}

/// The metric names an expression reads.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names: Vec<String> = expr
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("sinkfleet_") || *w == "up")
        .map(str::to_owned)
        .collect();
    names.dedup();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn every_dashboard_and_alert_expression_reads_real_series() {
    let src = Source::new("prom").await;
    let s = &src.schema;
    src.sql(&format!(
        "CREATE TABLE {s}.acct (id int PRIMARY KEY, balance numeric(12,2), note text);
         INSERT INTO {s}.acct SELECT g, g * 1.5, 'n' || g FROM generate_series(1, 200) g"
    ))
    .await;
    let (pp, wp, qp) = (free_port(), free_port(), free_port());
    let publisher = Worker::start(
        &src.prefix,
        "publish",
        &src.publisher_config(&["acct"], &brokers(), "", pp),
        pp,
    );
    wait_until("snapshot read", CONVERGE, || {
        publisher.metric("sinkfleet_publisher_snapshot_rows_done") >= 200.0
    })
    .await;
    let topic = format!("{}.{s}.acct", src.prefix);
    // One record for the dead-letter topic.
    kafka::produce(
        &brokers(),
        &topic,
        &[Record {
            key: Some(br#"{"id": 0}"#.to_vec()),
            value: Some(b"{not json".to_vec()),
        }],
    )
    .await
    .unwrap();
    // With park_key, the dead-lettered record parks its key: the parked
    // keys gauge has a series.
    let worker = Worker::spawn(
        &format!("{}-sink", src.prefix),
        &src.worker_config(&["acct"], wp).replace(
            &format!("  topic: {}.dlq\n", src.prefix),
            &format!("  topic: {}.dlq\n  on_error: park_key\n", src.prefix),
        ),
        wp,
    );
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(&src.prefix);
    let parquet_config = src.worker_config(&["acct"], qp).replace(
        &format!(
            "  postgres:\n    url: {}\n    target_schema: {}\n    meta_schema: {}_meta\n",
            common::pg_url(),
            src.target,
            src.target
        ),
        &format!(
            "  s3_parquet:\n    target:\n      local:\n        path: {}\n    rotation: {{ max_age_ms: 500 }}\n",
            dir.display()
        ),
    ).replace("-sink\n", "-parquet\n");
    assert!(parquet_config.contains("s3_parquet"), "{parquet_config}");
    let parquet = Worker::spawn(&format!("{}-parquet", src.prefix), &parquet_config, qp);
    let prometheus = Prometheus::start(
        &src.prefix,
        &[("sinkfleet", &[wp, qp]), ("sinkfleet-publisher", &[pp])],
    );

    // Changes while scraped, so rates and histograms have samples.
    for i in 0..20 {
        src.sql(&format!(
            "UPDATE {s}.acct SET balance = balance + 1 WHERE id % 20 = {i}"
        ))
        .await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    src.wait_identical("acct", "id, balance, note").await;
    wait_until("parquet objects written", CONVERGE, || {
        parquet.metric("sinkfleet_objects_written_total") >= 1.0
            && worker.metric("sinkfleet_records_dead_lettered_total") >= 1.0
            && worker.metric("sinkfleet_parked_keys") >= 1.0
    })
    .await;

    // Every panel returns data; polled, since a rate needs two scrapes.
    let deadline = Instant::now() + Duration::from_secs(120);
    for (title, expr) in dashboard_expressions() {
        loop {
            match prometheus.query(&expr) {
                Ok(result) if !result.is_empty() => break,
                outcome => assert!(
                    Instant::now() < deadline,
                    "panel {title:?}: {expr} returned {outcome:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    // Every alert evaluates, and reads only series that exist.
    for (alert, expr) in alert_expressions() {
        if let Err(e) = prometheus.query(&expr) {
            panic!("alert {alert}: {expr}: {e}");
        }
        for name in metric_names(&expr) {
            let series = prometheus.query(&name).unwrap();
            assert!(
                !series.is_empty(),
                "alert {alert} reads {name}, which no process exports"
            );
        }
    }
    // And Prometheus loaded the rules themselves without error.
    let (_, rules) = prometheus.get("/api/v1/rules").unwrap();
    let rules: Value = serde_json::from_str(&rules).unwrap();
    let loaded: Vec<&Value> = rules["data"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(loaded.len(), alert_expressions().len());
    for rule in loaded {
        assert_eq!(rule["health"], "ok", "{rule}");
    }

    let mut parquet = parquet;
    assert!(parquet.terminate(Duration::from_secs(30)).success());
    src.finish(publisher, worker).await;
}
