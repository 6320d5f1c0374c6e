//! Parquet sink throughput beside pyarrow writing the same rows to the same
//! target, same machine, one run:
//!
//! * `sink-local` / `sink-s3`: the sink taking a realistic change stream
//!   (decoded before the clock starts) in batches of 5000: group, encode to
//!   Parquet with zstd, upload; to a local directory and to the local S3
//!   server (moto);
//! * `pyarrow-local` / `pyarrow-s3`: `pyarrow.parquet.write_table` of
//!   exactly the rows the sink wrote (read back from the sink's files
//!   before the clock starts), zstd, same row group size;
//! * `arrow-rs-local`: the same rows, same settings, written by the Rust
//!   `parquet` crate's `ArrowWriter` (the library the sink uses): how much
//!   of the gap to pyarrow is the library, and how much the sink's own work
//!   (grouping, row-to-column conversion, file bookkeeping).
//!
//! Each variant runs in a fresh process, three times; medians. Rows/s counts
//! rows written (every change, duplicates included); MB/s the Parquet bytes.
//! Peak RSS for the sink is measured from after the workload is decoded
//! (`/proc/self/clear_refs`), so it is the sink's buffers plus the decoded
//! batch; for pyarrow it includes the table it writes from. Needs the local
//! services (`scripts/services.sh start`); pyarrow is installed into the
//! services' virtualenv on first use.
//!
//!     cargo bench --bench s3_parquet_e2e [-- --changes 100000]

mod common;

use common::arg;
use sinkfleet_testkit::process::status_kib;

use futures::TryStreamExt;
use sinkfleet_core::debezium::{DecodeOptions, Decoder};
use sinkfleet_core::{FlushMode, Sink};
use sinkfleet_sink_s3_parquet::config::{S3Target, Target};
use sinkfleet_sink_s3_parquet::{ParquetSink, ParquetSinkConfig};
use sinkfleet_testkit::records::sink_records;
use sinkfleet_testkit::services::s3_endpoint;
use sinkfleet_testkit::workload::{self, Options};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

const VARIANTS: [&str; 5] = [
    "sink-local",
    "sink-s3",
    "pyarrow-local",
    "arrow-rs-local",
    "pyarrow-s3",
];
const RUNS: usize = 3;
const BATCH: usize = 5_000;

fn scratch(run: &str) -> PathBuf {
    std::env::temp_dir().join(format!("sinkfleet-parquet-bench-{run}"))
}

fn config(variant: &str, run: &str) -> ParquetSinkConfig {
    let mut cfg = ParquetSinkConfig::local(scratch(run).join("sink").to_string_lossy());
    if variant == "sink-s3" {
        cfg.target = Target::S3(S3Target::compatible(
            "sinkfleet",
            &s3_endpoint(),
            "sinkfleet",
            "sinkfleet",
        ));
        cfg.prefix = format!("bench-{}-{run}", std::process::id());
    }
    cfg
}

/// Runs the sink: (rows, seconds, bytes written, RSS before, peak RSS).
async fn run_sink(variant: &str, changes: usize, run: &str) -> (usize, f64, u64, u64, u64) {
    let w = workload::generate(&Options {
        keys: (changes / 5) as i64,
        changes,
        seed: 42,
        bio_len: 200,
        new_column_at: None,
        ..Options::default()
    });
    // Decoded before the clock starts, as pyarrow's table is in memory
    // before its clock starts: Debezium decoding is measured on its own
    // (`core_hot_paths`).
    let mut decoder = Decoder::new(DecodeOptions::default());
    let records = sink_records(&w.records, 0, &Arc::from("bench"), &mut decoder);
    drop(w);
    if variant == "sink-local" {
        let _ = std::fs::remove_dir_all(scratch(run));
    }
    let mut sink = ParquetSink::new(config(variant, run)).expect("sink");
    // Peak RSS from here on: the sink's buffers, not the generated workload.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = status_kib("self", "VmRSS:");
    let started = Instant::now();
    let rows = records.len();
    for batch in records.chunks(BATCH) {
        sink.write(batch)
            .await
            .expect("write (scripts/services.sh start?)");
    }
    sink.flush(FlushMode::All).await.expect("flush");
    let secs = started.elapsed().as_secs_f64();
    let peak = status_kib("self", "VmHWM:");
    let prefix = config(variant, run).prefix;
    let listing: Vec<_> = sink
        .store()
        .list(
            (!prefix.is_empty())
                .then(|| prefix.as_str().into())
                .as_ref(),
        )
        .try_collect()
        .await
        .expect("listing the output");
    let bytes = listing.iter().map(|m| m.size).sum();
    (rows, secs, bytes, before, peak)
}

/// The rows the sink wrote (read back from its local files, as pyarrow
/// reads them), written again by the `parquet` crate's `ArrowWriter` with
/// pyarrow's settings: zstd at its default level, 131072-row groups.
async fn run_arrow_rs(run: &str) -> (usize, f64, u64, u64, u64) {
    use parquet::arrow::ArrowWriter;
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::file::properties::WriterProperties;
    let dir = scratch(run);
    let store = object_store::local::LocalFileSystem::new_with_prefix(dir.join("sink"))
        .expect("the sink-local output");
    let batches: Vec<_> = sinkfleet_sink_s3_parquet::read::objects(&store, "")
        .await
        .expect("reading the sink's files")
        .into_iter()
        .flat_map(|(_, batches)| batches)
        .collect();
    let Some(schema) = batches.first().map(|b| b.schema()) else {
        panic!("sink-local wrote nothing to {}", dir.display());
    };
    let rows = batches.iter().map(|b| b.num_rows()).sum();
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(131_072))
        .build();
    let path = dir.join("arrow-rs.parquet");
    let before = status_kib("self", "VmRSS:");
    let started = Instant::now();
    let file = std::fs::File::create(&path).expect("output file");
    let mut writer = ArrowWriter::try_new(file, schema, Some(props)).expect("writer");
    for batch in &batches {
        writer.write(batch).expect("write");
    }
    writer.close().expect("close");
    let secs = started.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    (rows, secs, bytes, before, status_kib("self", "VmHWM:"))
}

/// One run of one variant: (rows/s, MB/s, seconds, RSS before MiB, peak RSS MiB).
type Sample = (f64, f64, f64, f64, f64);

const PYARROW: &str = r#"
import glob, resource, sys, time
import pyarrow.parquet as pq, pyarrow.fs as pafs
src, target, endpoint, prefix = sys.argv[1:5]
files = sorted(glob.glob(src + "/**/*.parquet", recursive=True))
table = pq.read_table(files[0]) if len(files) == 1 else __import__("pyarrow").concat_tables([pq.read_table(f) for f in files])
if target == "s3":
    fs = pafs.S3FileSystem(access_key="sinkfleet", secret_key="sinkfleet", region="us-east-1",
                           endpoint_override=endpoint.split("://")[1], scheme="http")
    path = f"sinkfleet/{prefix}/out.parquet"
else:
    fs, path = None, src + "/../pyarrow.parquet"
started = time.perf_counter()
pq.write_table(table, path, filesystem=fs, compression="zstd", row_group_size=131072)
secs = time.perf_counter() - started
print("RESULT", table.num_rows, secs, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"#;

fn main() {
    let changes: usize = arg("--changes")
        .and_then(|c| c.parse().ok())
        .unwrap_or(100_000);
    if let Some(variant) = arg("--variant") {
        let run = arg("--run").unwrap_or_default();
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let (rows, secs, bytes, before, peak) = if variant == "arrow-rs-local" {
            rt.block_on(run_arrow_rs(&run))
        } else {
            rt.block_on(run_sink(&variant, changes, &run))
        };
        println!("RESULT {rows} {secs} {bytes} {before} {peak}");
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    let services = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/services.sh");
    let out = Command::new("bash")
        .args([services, "python"])
        .output()
        .expect("scripts/services.sh python");
    let python = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success(),
        "no Python with pyarrow: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut results: Vec<(&str, Vec<Sample>)> = VARIANTS.iter().map(|v| (*v, Vec::new())).collect();
    for run in 0..RUNS {
        let run_id = format!("{}-{run}", std::process::id());
        let mut sink_bytes = 0.0;
        for (variant, samples) in results.iter_mut() {
            let ours = variant.starts_with("sink") || *variant == "arrow-rs-local";
            let out = if ours {
                Command::new(&exe)
                    .args([
                        "--variant",
                        variant,
                        "--changes",
                        &changes.to_string(),
                        "--run",
                        &run_id,
                    ])
                    .output()
            } else {
                let target = if variant.ends_with("s3") {
                    "s3"
                } else {
                    "local"
                };
                Command::new(&python)
                    .args(["-c", PYARROW])
                    .arg(scratch(&run_id).join("sink"))
                    .args([target, &s3_endpoint(), &format!("bench-py-{run_id}")])
                    .output()
            }
            .expect("running a variant");
            let text = String::from_utf8_lossy(&out.stdout);
            let Some(line) = text.lines().find(|l| l.starts_with("RESULT ")) else {
                panic!("{variant} failed: {}", String::from_utf8_lossy(&out.stderr));
            };
            let f: Vec<f64> = line[7..]
                .split(' ')
                .filter_map(|x| x.parse().ok())
                .collect();
            let (rows, secs) = (f[0], f[1]);
            if ours {
                if variant.starts_with("sink") {
                    sink_bytes = f[2];
                }
                samples.push((
                    rows / secs,
                    f[2] / secs / 1e6,
                    secs,
                    f[3] / 1024.0,
                    f[4] / 1024.0,
                ));
            } else {
                let bytes = if variant.ends_with("local") {
                    std::fs::metadata(scratch(&run_id).join("pyarrow.parquet"))
                        .map(|m| m.len() as f64)
                        .unwrap_or(sink_bytes)
                } else {
                    sink_bytes
                };
                samples.push((rows / secs, bytes / secs / 1e6, secs, 0.0, f[2] / 1024.0));
            }
        }
        let _ = std::fs::remove_dir_all(scratch(&run_id));
    }
    println!(
        "parquet benchmark: {changes} changes, batches of {BATCH}, zstd, {RUNS} runs each (medians)\n"
    );
    println!(
        "{:<14} {:>10} {:>8} {:>8} {:>10} {:>14} {:>14}",
        "variant", "rows/s", "MB/s", "seconds", "vs pyarrow", "RSS before MiB", "peak RSS MiB"
    );
    let median = |v: &mut Vec<Sample>| {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v[v.len() / 2]
    };
    let medians: Vec<(&str, Sample)> = results.iter_mut().map(|(n, s)| (*n, median(s))).collect();
    for (variant, m) in &medians {
        let baseline = if variant.ends_with("s3") {
            "pyarrow-s3"
        } else {
            "pyarrow-local"
        };
        let base = medians
            .iter()
            .find(|(n, _)| n == &baseline)
            .map_or(1.0, |(_, b)| b.0);
        println!(
            "{variant:<14} {:>10.0} {:>8.1} {:>8.2} {:>9.2}x {:>14.1} {:>14.1}",
            m.0,
            m.1,
            m.2,
            m.0 / base,
            m.3,
            m.4
        );
    }
}
