//! What a worker costs while there is nothing to consume, beside a
//! count-only consumer idling on the same topic, in one run: both join,
//! then each process' CPU (user+sys) is taken over the same number of
//! seconds. A consumer group of N workers is N such processes, most of
//! them idle most of the time, so this is a cost every deployment pays.
//!
//! The broker is librdkafka's mock cluster (`sinkfleet-mock-cluster`); the
//! worker writes Parquet to a local directory, so no other server is
//! needed. The worker's cost is also shown per thread (by name).
//!
//!     cargo bench --bench worker_idle [-- --seconds 30]

mod common;

use common::{arg, mock_cluster, worker_config};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use sinkfleet_testkit::process::{self, cpu_secs};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOPIC: &str = "idle";

fn main() {
    let seconds: u64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(30);
    if let Some(brokers) = arg("--count-only") {
        count_only(&brokers, seconds);
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let cluster = mock_cluster(&[format!("{TOPIC}:4"), "dlq:1".into()]);
    let id = format!("idle-{}", std::process::id());
    let dir = std::env::temp_dir().join(&id);
    // A known metrics port, to see the worker's assignment.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let config = worker_config("sinkfleet-parquet", &cluster.bootstrap, TOPIC, &id, &dir)
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let worker = process::Worker::start_with(&id, "run", &config, port, &[("RUST_LOG", "warn")]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while worker.metric("sinkfleet_rebalances_total{kind=\"assign\"") < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the worker was assigned no partition of `{TOPIC}` within 120 s: {}",
            worker.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let pid = worker.pid();
    println!("an idle worker and an idle count-only consumer, {seconds} s each");
    let before = thread_cpu(&pid);
    let worker_before = cpu_secs(&pid);
    std::thread::sleep(Duration::from_secs(seconds));
    let worker_cpu = cpu_secs(&pid) - worker_before;
    let after = thread_cpu(&pid);
    worker.stop();
    let _ = std::fs::remove_dir_all(&dir);

    let exe = std::env::current_exe().expect("own path");
    let out = Command::new(exe)
        .args(["--count-only", &cluster.bootstrap, "--seconds"])
        .arg(seconds.to_string())
        .stdout(Stdio::piped())
        .output()
        .expect("count-only consumer");
    let text = String::from_utf8_lossy(&out.stdout);
    let baseline: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the count-only consumer's result");

    let per_minute = |cpu: f64| cpu * 60.0 / seconds as f64 * 1000.0;
    println!();
    println!(
        "{:<22} {:>22} {:>14}",
        "variant", "CPU ms per minute", "÷ count-only"
    );
    println!(
        "{:<22} {:>22.0} {:>14.2}",
        "count-only",
        per_minute(baseline),
        1.0
    );
    let ratio = if baseline > 0.0 {
        format!("{:.2}", worker_cpu / baseline)
    } else {
        "-".into()
    };
    println!(
        "{:<22} {:>22.0} {:>14}",
        "sinkfleet run (idle)",
        per_minute(worker_cpu),
        ratio
    );
    println!();
    println!("the worker's threads, CPU ms per minute:");
    for (name, cpu) in &after {
        let spent = cpu - before.get(name).copied().unwrap_or(0.0);
        if spent > 0.0 {
            println!("  {name:<20} {:>8.0}", per_minute(spent));
        }
    }
}

/// CPU seconds (user+sys) per thread name of process `pid`, read as
/// [`cpu_secs`] reads a process.
fn thread_cpu(pid: &str) -> BTreeMap<String, f64> {
    let mut spent = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return spent;
    };
    for task in tasks.flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let tid = task.file_name().to_string_lossy().into_owned();
        *spent.entry(name.trim().to_owned()).or_insert(0.0) +=
            cpu_secs(&format!("{pid}/task/{tid}"));
    }
    spent
}

/// The child mode: join `TOPIC` in a group, poll for `seconds` with
/// nothing to read, print `RESULT cpu_secs` of the idle part.
fn count_only(brokers: &str, seconds: u64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("count-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[TOPIC]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(120);
    while consumer.assignment().map_or(0, |a| a.count()) == 0 {
        assert!(Instant::now() < deadline, "no partition assigned in 120 s");
        let _ = consumer.poll(Duration::from_millis(100));
    }
    let start = cpu_secs("self");
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until {
        let _ = consumer.poll(Duration::from_millis(100));
    }
    println!("RESULT {}", cpu_secs("self") - start);
}
