//! The whole worker, end to end through Kafka, beside a count-only
//! consumer on the same topic, in one run (issue 11's first measure):
//!
//! * `count-only`: a Rust rdkafka consumer that reads every record and
//!   counts it (the floor: fetch and nothing else);
//! * `sinkfleet-postgres`, `sinkfleet-clickhouse`, `sinkfleet-parquet`: the
//!   release `sinkfleet run` into each sink, until the group's committed
//!   offsets reach the end offsets (everything applied and committed).
//!
//! The topics hold the same Debezium workload (duplicates, replays,
//! deletes with tombstones, TOAST-partial updates): with the schema
//! envelope, without it, and in Avro and in JSON Schema as Confluent's
//! AvroSerializer and JSONSerializer write the envelope's records (`avro`,
//! `jsonschema`: need the test Schema Registry and the serializers of
//! `scripts/services.sh`). The broker is librdkafka's mock cluster
//! (`sinkfleet-mock-cluster`): it answers at memory speed, so the consumer
//! is what is measured, and it keeps ~5 MiB per partition, so the workload
//! is spread over enough partitions to stay whole. Each variant is its own
//! process (CPU = its user+sys, peak RSS = its VmHWM); three runs, medians.
//! Records/s includes each process's start-up and its last commit; steady
//! records/s counts from the first committed offset on (no start-up, no
//! group join), and the ratio column compares that with the count-only
//! consumer. CPU per record is the number least moved by the machine. Needs the local
//! services (`scripts/services.sh start`).
//!
//!     cargo bench --bench worker_e2e [-- --changes 20000]
//!         [--runs 3] [--topics envelope,bare,avro,jsonschema] [--variants sinkfleet-postgres,...]
//!         [--writers 1,2,4]
//!
//! Workers run with their default settings except `commit_interval_ms`,
//! which is 100 (not 1000) so that the committed offsets that time a run
//! follow the writes closely.
//!
//! (`count-only` always runs: it is the base of the ratio column.)
//! `--writers` runs each sink variant once per `worker.writers` value
//! (writes in flight in one process); without it, the default.

mod common;

use common::{Worker, arg, median, mock_cluster, produce_workload};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use sinkfleet_testkit::kafka;
use sinkfleet_testkit::process::{cpu_secs, status_kib};
use sinkfleet_testkit::workload::Options;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 3;
const PARTITIONS: i32 = 32;
const VARIANTS: [&str; 4] = [
    "count-only",
    "sinkfleet-postgres",
    "sinkfleet-clickhouse",
    "sinkfleet-parquet",
];

/// One measured run of one variant.
struct Sample {
    records: u64,
    secs: f64,
    /// Records/s from the first committed offset to the last: without
    /// start-up and the group join (the count-only consumer has neither).
    steady_per_s: f64,
    cpu_secs: f64,
    peak_kib: u64,
}

fn main() {
    if let (Some(brokers), Some(topic)) = (arg("--count-only"), arg("--topic")) {
        count_only(&brokers, &topic);
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let changes: usize = arg("--changes")
        .and_then(|c| c.parse().ok())
        .unwrap_or(20_000);
    let runs: usize = arg("--runs").and_then(|r| r.parse().ok()).unwrap_or(RUNS);
    // A subset named on the command line, in the bench's order; `keep`
    // always stays (the count-only consumer is the ratio's base).
    let listed = |name: &str, all: &[&'static str], keep: Option<&str>| -> Vec<&'static str> {
        match arg(name) {
            Some(list) => all
                .iter()
                .copied()
                .filter(|v| Some(*v) == keep || list.split(',').any(|l| l == *v))
                .collect(),
            None => all.to_vec(),
        }
    };
    let variants = listed("--variants", &VARIANTS, Some(VARIANTS[0]));
    let topics = listed(
        "--topics",
        &["envelope", "bare", "avro", "jsonschema"],
        None,
    );
    let writers: Vec<Option<usize>> = match arg("--writers") {
        Some(list) => list.split(',').map(|w| w.parse().ok()).collect(),
        None => vec![None],
    };
    // (label, variant, writers)
    let mut rows: Vec<(String, &str, Option<usize>)> = Vec::new();
    for variant in &variants {
        if *variant == VARIANTS[0] {
            rows.push(((*variant).to_owned(), variant, None));
            continue;
        }
        for w in &writers {
            let label = match w {
                Some(w) => format!("{variant} ×{w}"),
                None => (*variant).to_owned(),
            };
            rows.push((label, variant, *w));
        }
    }
    let mock = mock_cluster(&[
        format!("envelope:{PARTITIONS}"),
        format!("bare:{PARTITIONS}"),
        format!("avro:{PARTITIONS}"),
        format!("jsonschema:{PARTITIONS}"),
        "dlq:1".to_owned(),
    ]);
    let brokers = mock.bootstrap.clone();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut sizes = Vec::new();
    for (topic, with_schema) in [
        ("envelope", true),
        ("bare", false),
        ("avro", true),
        ("jsonschema", true),
    ] {
        if !topics.contains(&topic) {
            continue;
        }
        let (records, avg) = produce_workload(
            &rt,
            &brokers,
            topic,
            &Options {
                keys: 5_000,
                changes,
                seed: 11,
                with_schema,
                ..Options::default()
            },
        );
        sizes.push((topic, records, avg));
    }
    println!("broker: librdkafka mock cluster ({brokers}), {PARTITIONS} partitions per topic");
    for (topic, records, avg) in &sizes {
        println!("topic {topic}: {records} records, {avg} bytes per value on average");
    }
    for (topic, _, _) in &sizes {
        let mut results: Vec<(String, Vec<Sample>)> =
            rows.iter().map(|r| (r.0.clone(), Vec::new())).collect();
        for run in 0..runs {
            for (i, (_, variant, writers)) in rows.iter().enumerate() {
                // A group (and target) of its own per row and run.
                let id = format!(
                    "bench_{}_{topic}_{}_{i}_{run}",
                    std::process::id(),
                    variant.replace('-', "_")
                );
                results[i]
                    .1
                    .push(measure(variant, *writers, &brokers, topic, &id));
            }
        }
        print_table(topic, runs, &results);
    }
    drop(mock); // ends the host
}

/// Runs one variant to completion and measures it.
fn measure(variant: &str, writers: Option<usize>, brokers: &str, topic: &str, id: &str) -> Sample {
    let end: i64 = kafka::end_offsets(brokers, topic, PARTITIONS)
        .expect("end offsets")
        .values()
        .sum();
    let started = Instant::now();
    if variant == "count-only" {
        let exe = std::env::current_exe().expect("own path");
        let child = Command::new(exe)
            .args(["--count-only", brokers, "--topic", topic])
            .stdout(Stdio::piped())
            .spawn()
            .expect("count-only consumer");
        let pid = child.id().to_string();
        let out = child.wait_with_output().expect("count-only consumer");
        let text = String::from_utf8_lossy(&out.stdout);
        // `RESULT records cpu_secs peak_kib`, measured by the child itself.
        let mut parts = text
            .lines()
            .find_map(|l| l.strip_prefix("RESULT "))
            .unwrap_or_else(|| panic!("count-only {pid} printed no result"))
            .split_whitespace()
            .map(|v| v.parse::<f64>().expect("number"));
        let records = parts.next().unwrap_or(0.0) as u64;
        let secs = started.elapsed().as_secs_f64();
        return Sample {
            records,
            secs,
            steady_per_s: records as f64 / secs,
            cpu_secs: parts.next().unwrap_or(0.0),
            peak_kib: parts.next().unwrap_or(0.0) as u64,
        };
    }
    let writers = writers.map(|w| w.to_string());
    // Commits every 100 ms instead of every second: the run is timed by
    // its committed offsets, and a whole run here lasts a few seconds, so
    // the default interval would put up to a second of waiting into the
    // steady rate (or hide the whole run inside its first interval).
    let mut env: Vec<(&str, &str)> = vec![("SINKFLEET__WORKER__COMMIT_INTERVAL_MS", "100")];
    env.extend(
        writers
            .iter()
            .map(|w| ("SINKFLEET__WORKER__WRITERS", w.as_str())),
    );
    let mut worker = Worker::start_with(variant, brokers, topic, id, &env);
    let pid = worker.pid();
    let deadline = Instant::now() + Duration::from_secs(600);
    // When some offset was first committed, and how many then.
    let mut first_commit: Option<(Instant, i64)> = None;
    let (cpu_secs, peak_kib) = loop {
        // Sampled before the check, so the numbers cover the whole drain.
        let (cpu, peak) = (cpu_secs(&pid), status_kib(&pid, "VmHWM:"));
        let committed: i64 = kafka::committed_offsets(brokers, id, topic, PARTITIONS)
            .map(|c| c.values().map(|o| (*o).max(0)).sum())
            .unwrap_or(0);
        if committed > 0 && first_commit.is_none() {
            first_commit = Some((Instant::now(), committed));
        }
        if committed >= end {
            break (cpu, peak);
        }
        if let Some(status) = worker.process.exited() {
            panic!("{variant} exited early ({status})");
        }
        assert!(Instant::now() < deadline, "{variant} did not finish");
        std::thread::sleep(Duration::from_millis(100));
    };
    let secs = started.elapsed().as_secs_f64();
    let steady_per_s = match first_commit {
        Some((at, done)) if end > done => (end - done) as f64 / at.elapsed().as_secs_f64(),
        _ => end as f64 / secs,
    };
    worker.stop();
    Sample {
        records: end as u64,
        secs,
        steady_per_s,
        cpu_secs,
        peak_kib,
    }
}

/// The child mode: read `topic` from the beginning to its end offsets,
/// counting records, and print `RESULT records cpu_secs peak_kib`.
fn count_only(brokers: &str, topic: &str) {
    let end = kafka::end_offsets(brokers, topic, PARTITIONS).expect("end offsets");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("count-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let mut next: std::collections::HashMap<i32, i64> = (0..PARTITIONS).map(|p| (p, 0)).collect();
    let mut records = 0u64;
    let done = |next: &std::collections::HashMap<i32, i64>| {
        next.iter()
            .all(|(p, o)| *o >= end.get(p).copied().unwrap_or(0))
    };
    while !done(&next) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            records += 1;
            std::hint::black_box(m.payload().map(<[u8]>::len));
            next.insert(m.partition(), m.offset() + 1);
        }
    }
    println!(
        "RESULT {records} {} {}",
        cpu_secs("self"),
        status_kib("self", "VmHWM:")
    );
}

fn print_table(topic: &str, runs: usize, results: &[(String, Vec<Sample>)]) {
    println!();
    println!("topic `{topic}` (medians of {runs} runs)");
    println!(
        "{:<25} {:>9} {:>11} {:>14} {:>22} {:>13} {:>10}",
        "variant",
        "records",
        "records/s",
        "steady rec/s",
        "CPU s per 1M records",
        "÷ count-only",
        "peak RSS"
    );
    let rate = |s: &Sample| s.records as f64 / s.secs;
    let base = median(results[0].1.iter().map(|s| s.steady_per_s).collect());
    for (variant, samples) in results {
        let per_s = median(samples.iter().map(rate).collect());
        let steady = median(samples.iter().map(|s| s.steady_per_s).collect());
        let cpu = median(
            samples
                .iter()
                .map(|s| s.cpu_secs / s.records.max(1) as f64 * 1e6)
                .collect(),
        );
        let rss = median(samples.iter().map(|s| s.peak_kib as f64).collect());
        println!(
            "{:<25} {:>9} {:>11.0} {:>14.0} {:>22.2} {:>13.2} {:>7.0} MiB",
            variant,
            samples[0].records,
            per_s,
            steady,
            cpu,
            steady / base,
            rss / 1024.0
        );
    }
}
