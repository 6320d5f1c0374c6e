//! ClickHouse sink throughput beside `clickhouse-client` inserting the same
//! rows in the same format (JSONEachRow), same server, same run.
//!
//! Per run: the sink applies a realistic change stream (decode, collapse,
//! one JSONEachRow insert per batch of 5000, gzip). Then every row the sink
//! wrote (all versions, before merges) is exported as JSONEachRow and
//! `clickhouse-client` inserts that file into a copy of the table: the
//! baseline moves the same rows without any of the sink's work. Rows/s
//! counts input changes for the sink, rows for the client; the sink's
//! "writing only" line leaves out its decoding of each batch. Then the same
//! rows are exported in each candidate insert format (JSONEachRow,
//! RowBinary) and POSTed over HTTP in one request, with and without gzip:
//! the measurement behind the sink's format choice. Needs the local
//! services (`scripts/services.sh start`) and `clickhouse-client`.
//!
//!     cargo bench --bench clickhouse_e2e [-- --changes 60000] [--version-cache-keys 0]
//!
//! (`--version-cache-keys 0` turns the sink's stored-version cache off, as
//! it was before it existed: every batch reads its keys back on 18.16.)

mod common;

use common::{arg, median};

use sinkfleet_core::Sink;
use sinkfleet_core::debezium::{DecodeOptions, Decoder};
use sinkfleet_sink_clickhouse::client::Client;
use sinkfleet_sink_clickhouse::{ClickHouseSink, ClickHouseSinkConfig};
use sinkfleet_testkit::records::sink_records;
use sinkfleet_testkit::workload::{self, Options};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

const RUNS: usize = 3;
const BATCH: usize = 5_000;
/// Insert formats compared over HTTP: (format, gzip).
const FORMATS: [(&str, bool); 4] = [
    ("JSONEachRow", true),
    ("JSONEachRow", false),
    ("RowBinary", true),
    ("RowBinary", false),
];

/// The table's rows in `format`, as produced by the server itself (so the
/// RowBinary bytes are exactly what the server expects).
fn export_format(tcp_port: &str, db: &str, format: &str) -> Vec<u8> {
    let out = Command::new("clickhouse-client")
        .args(["--host", "127.0.0.1", "--port", tcp_port, "--query"])
        .arg(format!("SELECT * FROM `{db}`.customers FORMAT {format}"))
        .output()
        .expect("clickhouse-client");
    assert!(out.status.success(), "export as {format} failed");
    out.stdout
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let changes: usize = arg("--changes")
        .and_then(|c| c.parse().ok())
        .unwrap_or(60_000);
    let url = sinkfleet_testkit::services::clickhouse_url();
    let tcp_port = sinkfleet_testkit::services::clickhouse_tcp_port();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let w = workload::generate(&Options {
        keys: (changes / 5) as i64,
        changes,
        seed: 42,
        bio_len: 200,
        ..Options::default()
    });
    let (mut sink_rates, mut write_rates, mut client_rates) = (Vec::new(), Vec::new(), Vec::new());
    let mut format_rates: BTreeMap<(&str, bool), Vec<f64>> = BTreeMap::new();
    for run in 0..RUNS {
        let db = format!("bench_ch_{}_{run}", std::process::id());
        let mut cfg = ClickHouseSinkConfig::with_url(&url);
        cfg.database = Some(db.clone());
        if let Some(keys) = arg("--version-cache-keys").and_then(|k| k.parse().ok()) {
            cfg.version_cache_keys = keys;
        }
        let client = Client::new(&cfg).expect("client");
        let mut sink = ClickHouseSink::new(cfg).expect("sink");
        let topic: Arc<str> = Arc::from("bench");
        let mut decoder = Decoder::new(DecodeOptions::default());
        let started = Instant::now();
        let mut writing = 0.0;
        rt.block_on(async {
            for (n, raw) in w.records.chunks(BATCH).enumerate() {
                // Decoding is part of the sink's work: inside the timing.
                let batch = sink_records(raw, (n * BATCH) as i64, &topic, &mut decoder);
                let write = Instant::now();
                sink.write(&batch)
                    .await
                    .expect("sink write (scripts/services.sh start?)");
                writing += write.elapsed().as_secs_f64();
            }
        });
        sink_rates.push(w.records.len() as f64 / started.elapsed().as_secs_f64());
        write_rates.push(w.records.len() as f64 / writing);

        // The baseline: the same rows, same format, through clickhouse-client.
        let export = rt
            .block_on(client.execute(
                &format!("SELECT * FROM `{db}`.customers FORMAT JSONEachRow"),
                None,
                &[],
            ))
            .expect("export");
        let rows = export.lines().count();
        rt.block_on(client.execute(
            &format!("CREATE TABLE `{db}`.raw AS `{db}`.customers"),
            None,
            &[],
        ))
        .expect("copy table");
        let file = std::env::temp_dir().join(format!("{db}.jsonl"));
        std::fs::write(&file, &export).expect("export file");
        let started = Instant::now();
        let status = Command::new("clickhouse-client")
            .args(["--host", "127.0.0.1", "--port", &tcp_port, "--query"])
            .arg(format!("INSERT INTO `{db}`.raw FORMAT JSONEachRow"))
            .stdin(std::fs::File::open(&file).expect("file"))
            .stdout(Stdio::null())
            .status()
            .expect("clickhouse-client (apt-get install clickhouse-client)");
        assert!(status.success(), "clickhouse-client failed");
        client_rates.push(rows as f64 / started.elapsed().as_secs_f64());
        let _ = std::fs::remove_file(&file);

        // The insert format, by measurement: the same rows exported in each
        // format, then POSTed over HTTP exactly as the sink sends a batch
        // (with and without gzip), into an empty copy of the table.
        for (format, compress) in FORMATS {
            let data = export_format(&tcp_port, &db, format);
            let mut cfg = ClickHouseSinkConfig::with_url(&url);
            cfg.compress = compress;
            let http = Client::new(&cfg).expect("client");
            rt.block_on(http.execute(&format!("TRUNCATE TABLE `{db}`.raw"), None, &[]))
                .expect("truncate");
            let started = Instant::now();
            rt.block_on(http.execute(
                &format!("INSERT INTO `{db}`.raw FORMAT {format}"),
                Some(data),
                &[],
            ))
            .expect("format insert");
            format_rates
                .entry((format, compress))
                .or_default()
                .push(rows as f64 / started.elapsed().as_secs_f64());
        }
        let _ = rt.block_on(client.execute(&format!("DROP DATABASE `{db}`"), None, &[]));
    }
    let (s, c) = (median(sink_rates), median(client_rates));
    println!(
        "clickhouse benchmark: {changes} changes (~{} records), batches of {BATCH}, {RUNS} runs, medians\n",
        w.records.len()
    );
    println!("{:<40} {:>12} {:>10}", "variant", "rows/s", "vs client");
    println!(
        "{:<40} {:>12.0} {:>9.2}x",
        "clickhouse-client INSERT JSONEachRow", c, 1.0
    );
    println!(
        "{:<40} {:>12.0} {:>9.2}x",
        "sinkfleet ClickHouse sink",
        s,
        s / c
    );
    let written = median(write_rates);
    println!(
        "{:<40} {:>12.0} {:>9.2}x",
        "  the same, writing only (no decoding)",
        written,
        written / c
    );
    println!("\nHTTP insert of the same rows, one request (what the sink sends per batch):");
    for ((format, compress), rates) in format_rates {
        let r = median(rates);
        let label = format!("{format}{}", if compress { " + gzip" } else { "" });
        println!("{label:<40} {r:>12.0} {:>9.2}x", r / c);
    }
}
