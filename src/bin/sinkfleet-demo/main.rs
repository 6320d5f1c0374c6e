//! `sinkfleet-demo`: workloads for the quickstart and benchmarks.
//!
//! * `produce` / `verify`: a Debezium change stream straight into Kafka
//!   (duplicates, replays, out-of-order) and its expected final state.
//! * `source-setup` / `source-load` / `source-verify`: a demo schema in a
//!   source Postgres, a workload against it, and the proof that a target
//!   fed through publisher and sink is identical to it.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use sinkfleet_testkit::workload::{self, Options};
use sinkfleet_testkit::{kafka, target};
use sqlx::PgPool;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "sinkfleet-demo",
    about = "Produce a Debezium workload and verify the target"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Kafka bootstrap servers.
    #[arg(
        long,
        env = "SINKFLEET_KAFKA_BROKERS",
        default_value = "127.0.0.1:59092",
        global = true
    )]
    brokers: String,
    /// Topic of the workload.
    #[arg(long, default_value = "app.public.customers", global = true)]
    topic: String,
    /// Distinct keys.
    #[arg(long, default_value_t = 2_000, global = true)]
    keys: i64,
    /// Changes (before duplicates and replays).
    #[arg(long, default_value_t = 50_000, global = true)]
    changes: usize,
    /// Workload seed.
    #[arg(long, default_value_t = 7, global = true)]
    seed: u64,
}

#[derive(Subcommand)]
enum Command {
    /// Create the topic and produce the workload.
    Produce {
        /// Partitions of the topic.
        #[arg(long, default_value_t = 4)]
        partitions: i32,
    },
    /// Create the demo source schema (`orders`, `products`) with initial rows.
    SourceSetup {
        /// Source database.
        #[arg(
            long,
            env = "SINKFLEET_PG_URL",
            default_value = "postgres://postgres@127.0.0.1:55432/postgres"
        )]
        pg_url: String,
        /// Schema to create.
        #[arg(long)]
        schema: String,
    },
    /// Run the workload against the demo source schema, showing progress.
    SourceLoad {
        /// Source database.
        #[arg(
            long,
            env = "SINKFLEET_PG_URL",
            default_value = "postgres://postgres@127.0.0.1:55432/postgres"
        )]
        pg_url: String,
        /// Schema created by `source-setup`.
        #[arg(long)]
        schema: String,
        /// Transactions to run.
        #[arg(long, default_value_t = 2_000)]
        transactions: u32,
    },
    /// Wait until every table of the target schema equals the source's.
    SourceVerify {
        /// Database holding both schemas.
        #[arg(
            long,
            env = "SINKFLEET_PG_URL",
            default_value = "postgres://postgres@127.0.0.1:55432/postgres"
        )]
        pg_url: String,
        /// Source schema.
        #[arg(long)]
        schema: String,
        /// Target schema.
        #[arg(long)]
        target: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout_secs: u64,
    },
    /// Wait until the Postgres target equals the workload's expected state.
    Verify {
        /// Target database.
        #[arg(
            long,
            env = "SINKFLEET_PG_URL",
            default_value = "postgres://postgres@127.0.0.1:55432/postgres"
        )]
        pg_url: String,
        /// Target schema holding `customers`.
        #[arg(long, default_value = "public")]
        schema: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout_secs: u64,
    },
}

fn options(cli: &Cli) -> Options {
    Options {
        keys: cli.keys,
        changes: cli.changes,
        seed: cli.seed,
        ..Options::default()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Command::SourceSetup { pg_url, schema } => return source::setup(pg_url, schema).await,
        Command::SourceLoad {
            pg_url,
            schema,
            transactions,
        } => return source::load(pg_url, schema, *transactions).await,
        Command::SourceVerify {
            pg_url,
            schema,
            target,
            timeout_secs,
        } => return source::verify(pg_url, schema, target, *timeout_secs).await,
        _ => {}
    }
    let w = workload::generate(&options(&cli));
    match &cli.command {
        Command::Produce { partitions } => {
            kafka::create_topic(&cli.brokers, &cli.topic, *partitions)
                .await
                .map_err(anyhow::Error::msg)?;
            let started = Instant::now();
            kafka::produce(&cli.brokers, &cli.topic, &w.records)
                .await
                .map_err(anyhow::Error::msg)?;
            println!(
                "produced {} records ({} live rows expected, {} keys deleted) to {} in {:.1}s",
                w.records.len(),
                w.expected.len(),
                w.deleted.len(),
                cli.topic,
                started.elapsed().as_secs_f64()
            );
        }
        Command::Verify {
            pg_url,
            schema,
            timeout_secs,
        } => {
            let pool = PgPool::connect(pg_url)
                .await
                .context("connecting to the target")?;
            let deadline = Instant::now() + Duration::from_secs(*timeout_secs);
            loop {
                let got = target::customers(&pool, schema).await.unwrap_or_default();
                let matching = w
                    .expected
                    .iter()
                    .filter(|(k, v)| got.get(k) == Some(v))
                    .count();
                let extra = got.keys().filter(|k| !w.expected.contains_key(k)).count();
                println!(
                    "  target: {matching}/{} rows match, {extra} unexpected",
                    w.expected.len()
                );
                if matching == w.expected.len() && extra == 0 {
                    println!(
                        "OK: {schema}.customers equals the expected final state ({} rows)",
                        got.len()
                    );
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    for (k, want) in w
                        .expected
                        .iter()
                        .filter(|(k, v)| got.get(k) != Some(v))
                        .take(5)
                    {
                        println!(
                            "  id {k}:\n    expected {want:?}\n    found    {:?}",
                            got.get(k)
                        );
                    }
                    bail!("target did not converge within {timeout_secs}s");
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
        Command::SourceSetup { .. } | Command::SourceLoad { .. } | Command::SourceVerify { .. } => {
        }
    }
    Ok(())
}

mod source;
