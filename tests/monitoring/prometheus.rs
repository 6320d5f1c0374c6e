//! The test's own Prometheus, and the copy of the rules it evaluates.

use crate::common::free_port;
use crate::common::source::CONVERGE;
use serde_json::Value;
use sinkfleet_testkit::process::http_get;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A file of `deploy/`.
pub fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

/// `name`, checked to be installed.
pub fn tool(name: &str) -> String {
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

/// How the test copy of one alert differs from `alerts.yaml`.
struct Shortened {
    alert: &'static str,
    /// The copy's `for:` (`None`: the rule has none).
    for_: Option<&'static str>,
    /// Exact replacements in `expr`, each found exactly once.
    replace: &'static [(&'static str, &'static str)],
}

/// The test copy of the rules. Every `for:` becomes `1s`: two evaluations
/// a second apart, so `pending` is still seen before `firing`. Beyond
/// that, only what one event cannot reach in test time changes:
///
/// * `SinkfleetLagStuck`, `SinkfleetCommitsStalled`: `changes(...[10m])`
///   and `[5m]` become `[15s]`: "no commit for 10 minutes" becomes "none
///   for 15 seconds" (the stuck partition's last commit must leave the
///   window).
/// * `SinkfleetTargetFailing`: `rate(...[5m])` becomes `[20s]`. A failing
///   target retries every ~2 s here (1 s statement timeout, up to 1 s
///   backoff), 0.5/s, over the unchanged 0.2/s; averaged over five
///   minutes of a test that lasts less, it would not be.
/// * `SinkfleetRebalanceStorm`: `> 20` becomes `> 0`: one rebalance (the
///   one that moves the zombie's partition), not twenty.
/// * `SinkfleetPublisherSlotLag`: `> 1e9` becomes `> 1e7`: the source
///   writes ~20 MB of WAL while the publisher's broker answers late, not
///   a gigabyte.
/// * `SinkfleetPublisherDeliverySlow`: `> 30` becomes `> 5`: the broker
///   answers each request 6 s late, not 30.
/// * `SinkfleetParquetBufferFull`: the bound `268435456` (256 MiB, the
///   default `max_buffer_bytes`) becomes `1024`: the test's open files
///   hold ~2 KiB of rows.
///
/// Unchanged: `SinkfleetConsumerLagHigh`'s 300 s (the records are an hour
/// old), `SinkfleetTableStale`'s 900 s (so is the applied change), the
/// dead letters', fenced writes' and rebalances' `[15m]` windows (an
/// `increase` from a series at 0 counts its first event at once).
const SHORTENED: &[Shortened] = &[
    Shortened {
        alert: "SinkfleetConsumerLagHigh",
        for_: Some("1s"),
        replace: &[],
    },
    Shortened {
        alert: "SinkfleetLagStuck",
        for_: Some("1s"),
        replace: &[("[10m]", "[15s]")],
    },
    Shortened {
        alert: "SinkfleetCommitsStalled",
        for_: Some("1s"),
        replace: &[("[5m]", "[15s]")],
    },
    Shortened {
        alert: "SinkfleetPartitionsPausedLong",
        for_: Some("1s"),
        replace: &[],
    },
    Shortened {
        alert: "SinkfleetTargetFailing",
        for_: Some("1s"),
        replace: &[("[5m]", "[20s]")],
    },
    Shortened {
        alert: "SinkfleetDeadLetters",
        for_: None,
        replace: &[],
    },
    Shortened {
        alert: "SinkfleetSchemaRegistryUnreachable",
        for_: Some("1s"),
        replace: &[],
    },
    Shortened {
        alert: "SinkfleetKeysParked",
        for_: Some("1s"),
        replace: &[],
    },
    Shortened {
        alert: "SinkfleetRebalanceStorm",
        for_: None,
        replace: &[("> 20", "> 0")],
    },
    Shortened {
        alert: "SinkfleetWritesFenced",
        for_: None,
        replace: &[],
    },
    Shortened {
        alert: "SinkfleetAssignmentLost",
        for_: None,
        replace: &[],
    },
    Shortened {
        alert: "SinkfleetTableStale",
        for_: Some("1s"),
        replace: &[],
    },
    Shortened {
        alert: "SinkfleetPublisherSlotLag",
        for_: Some("1s"),
        replace: &[("> 1e9", "> 1e7")],
    },
    Shortened {
        alert: "SinkfleetPublisherDeliverySlow",
        for_: Some("1s"),
        replace: &[("> 30", "> 5")],
    },
    Shortened {
        alert: "SinkfleetParquetBufferFull",
        for_: Some("1s"),
        replace: &[("268435456", "1024")],
    },
    Shortened {
        alert: "SinkfleetWorkerDown",
        for_: Some("1s"),
        replace: &[],
    },
];

/// The shipped rules, parsed.
fn shipped_rules() -> serde_yaml::Value {
    let text = std::fs::read_to_string(deploy("prometheus/alerts.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

/// Every rule of `rules`, mutable.
fn rules_mut(rules: &mut serde_yaml::Value) -> Vec<&mut serde_yaml::Value> {
    rules["groups"]
        .as_sequence_mut()
        .unwrap()
        .iter_mut()
        .flat_map(|group| group["rules"].as_sequence_mut().unwrap().iter_mut())
        .collect()
}

/// Writes the test copy of the rules (see [`SHORTENED`]) into `dir`.
fn write_test_rules(dir: &Path) -> PathBuf {
    let mut rules = shipped_rules();
    let mut seen = Vec::new();
    for rule in rules_mut(&mut rules) {
        let alert = rule["alert"].as_str().unwrap().to_owned();
        let change = SHORTENED
            .iter()
            .find(|s| s.alert == alert)
            .unwrap_or_else(|| {
                panic!("{alert}: no test copy in SHORTENED, so no scenario fires it")
            });
        match (rule.get("for").is_some(), change.for_) {
            (true, Some(f)) => rule["for"] = f.into(),
            (false, None) => {}
            (has, want) => panic!("{alert}: has `for:` {has}, the test copy sets {want:?}"),
        }
        let mut expr = rule["expr"].as_str().unwrap().to_owned();
        let names = metric_names(&expr);
        for (from, to) in change.replace {
            assert_eq!(expr.matches(from).count(), 1, "{alert}: {from:?} in {expr}");
            expr = expr.replace(from, to);
        }
        assert_eq!(
            metric_names(&expr),
            names,
            "{alert}: the copy reads other series"
        );
        rule["expr"] = expr.into();
        seen.push(alert);
    }
    assert_eq!(
        seen.len(),
        SHORTENED.len(),
        "SHORTENED names alerts that do not exist"
    );
    let path = dir.join("alerts.test-copy.yaml");
    std::fs::write(&path, serde_yaml::to_string(&rules).unwrap()).unwrap();
    path
}

/// A Prometheus of the test's own, on loopback; stopped on drop.
pub struct Prometheus {
    child: Child,
    port: u16,
}

impl Prometheus {
    pub fn start(name: &str, jobs: &[(&str, &[u16])]) -> Prometheus {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("prometheus-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let rules = write_test_rules(&dir);
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
            rules.display()
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
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.port, path)
    }

    /// Evaluates `expr` now: `Ok(result vector)` or `Err(error)`.
    pub fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
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

    /// Whether `expr` has a series now.
    pub fn has(&self, expr: &str) -> bool {
        self.query(expr).is_ok_and(|r| !r.is_empty())
    }

    /// Whether `alert` with label `matchers` (`topic="t",...`, or empty)
    /// was `firing` at some evaluation since `since`.
    fn fired_since(&self, alert: &str, matchers: &str, since: Instant) -> bool {
        let seconds = since.elapsed().as_secs() + 1;
        let sep = if matchers.is_empty() { "" } else { "," };
        self.has(&format!(
            "max_over_time(ALERTS{{alertname=\"{alert}\",alertstate=\"firing\"{sep}{matchers}}}[{seconds}s])"
        ))
    }

    /// Waits until `alert{matchers}` fired after `since` (the event that
    /// should fire it): the seconds it took, or an error naming it.
    pub async fn wait_fired(
        &self,
        alert: &str,
        matchers: &str,
        since: Instant,
    ) -> Result<f64, String> {
        let deadline = Instant::now() + FIRE;
        loop {
            if self.fired_since(alert, matchers, since) {
                return Ok(since.elapsed().as_secs_f64());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{alert}{{{matchers}}} never fired within {FIRE:?} of its event"
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Waits until `expr` has a series.
    pub async fn wait_has(&self, what: &str, expr: &str) -> Result<(), String> {
        wait_for(what, CONVERGE, || self.has(expr)).await
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long an alert may take to fire after its event (generous: rates
/// need two scrapes, `for:` two evaluations, and the machine is shared).
const FIRE: Duration = Duration::from_secs(90);

/// Polls `check` until it holds; `Err` naming `what` after `timeout`.
pub async fn wait_for(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    while !check() {
        if Instant::now() >= deadline {
            return Err(format!("timed out waiting for: {what}"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

/// Every `expr` of the dashboard, with its panel title.
pub fn dashboard_expressions() -> Vec<(String, String)> {
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

/// `(alert, expr)` of every shipped rule.
pub fn alert_expressions() -> Vec<(String, String)> {
    let rules = shipped_rules();
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
pub fn metric_names(expr: &str) -> Vec<String> {
    let mut names: Vec<String> = expr
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("sinkfleet_") || *w == "up")
        .map(str::to_owned)
        .collect();
    names.dedup();
    names
}
