//! `sinkfleet`: the sink worker binary. Thin by design: it parses the CLI,
//! loads the config, and wires a sink into the Kafka runtime.

mod config;
mod dlq;
mod dlq_apply;
mod dlq_discard;
mod dlq_release;
mod dlq_resolved;
mod observability;
mod offsets;
mod publisher_config;
mod sinks;
mod status;
mod timestamps;

use anyhow::Context;
use clap::{Parser, Subcommand};
use config::{Config, SinkConfig};
use sinkfleet_kafka::{Health, TransactionsConfig};
use sinkfleet_sink_postgres::{ApplyMode, Ownership};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// jemalloc, not glibc's malloc: a record becomes many small allocations
/// made on one thread (the coordinator decodes) and freed on another (a
/// writer), where glibc's allocator spent about a fifth of the worker's
/// CPU (docs/performance.md has the profiles before and after).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "sinkfleet", version, about = "Idempotent CDC sink workers")]
struct Cli {
    /// Operator commands (dlq, status, offsets): show librdkafka's own log
    /// lines too.
    #[arg(long, global = true)]
    verbose: bool,
    /// Operator commands: how long to try the brokers before failing.
    #[arg(long, global = true, default_value_t = 10)]
    broker_timeout_secs: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a config file and exit (non-zero with the offending keys).
    Validate {
        /// YAML config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run a sink worker until SIGTERM/SIGINT.
    Run {
        /// YAML config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Look at the dead-letter topic: `dlq list` counts its records by error
    /// class, table and origin; `dlq show` prints them with their headers;
    /// `dlq replay` puts them back into their topic (or applies them with the
    /// sink); `dlq discard` drops them for good.
    ///
    /// Examples: `sinkfleet dlq list -c worker.yaml`,
    /// `sinkfleet dlq show -c worker.yaml --class apply --table public.orders --json`,
    /// `sinkfleet dlq replay -c worker.yaml --table public.orders --dry-run`,
    /// `sinkfleet dlq replay -c worker.yaml --key '{"id":42}'`,
    /// `sinkfleet dlq replay -c worker.yaml --class apply --through-sink`,
    /// `sinkfleet dlq discard -c worker.yaml --class decode --key '{"id":3}'`
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
    /// The group at a glance: members (from their status reports, and the
    /// broker's list where it can describe groups); per topic, dead letters
    /// (open, new since the last replay) and parked keys; per partition,
    /// committed vs end offset, lag and how long its oldest record waited
    /// (from the broker), owner and paused (from its report, with the
    /// report's age); table freshness.
    ///
    /// Example: `sinkfleet status -c worker.yaml` (or `--json`)
    Status {
        /// The worker's YAML config file.
        #[arg(long, short)]
        config: PathBuf,
        /// One JSON document instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Offsets of the group: `offsets reset` moves them (group stopped).
    ///
    /// Examples: `sinkfleet offsets reset -c worker.yaml --to earliest --dry-run`,
    /// `sinkfleet offsets reset -c worker.yaml --to 2026-11-30T06:00:00Z`,
    /// `sinkfleet offsets reset -c worker.yaml --to app.public.orders:0:1200`
    Offsets {
        #[command(subcommand)]
        action: OffsetsAction,
    },
    /// Run the WAL publisher (Postgres -> Kafka) until SIGTERM/SIGINT.
    Publish {
        /// YAML file: a Debezium connector config plus a `publisher` section.
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum DlqAction {
    /// Dead letters per error class, source table and origin partition,
    /// open and resolved (copies of one original record counted once);
    /// with `on_error: park_key`, the keys parked now and why.
    List {
        /// The worker's YAML config file (its `kafka` and `dead_letter`).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// The records, with their headers, filtered.
    Show {
        /// The worker's YAML config file (its `kafka` and `dead_letter`).
        #[arg(long, short)]
        config: PathBuf,
        #[command(flatten)]
        filter: dlq::Filter,
        /// One JSON object per record.
        #[arg(long)]
        json: bool,
    },
    /// Puts the records (filtered as for `show`) back into the partitions
    /// they came from, in their original order, or with `--through-sink`
    /// applies them with the configured sink directly; the sink is
    /// idempotent, so a replay is harmless. Replaying the record that
    /// parked a key (`on_error: park_key`) into its topic releases the key.
    /// Each dead letter replayed is recorded as resolved, and skipped by
    /// the next replay unless `--again`.
    Replay {
        /// The worker's YAML config file.
        #[arg(long, short)]
        config: PathBuf,
        #[command(flatten)]
        filter: dlq::Filter,
        /// Only print what would be replayed.
        #[arg(long)]
        dry_run: bool,
        /// Apply them with the configured sink instead of producing them
        /// back into Kafka (does not release parked keys).
        #[arg(long, conflicts_with = "dry_run")]
        through_sink: bool,
        /// Replay dead letters resolved already too (by an earlier replay).
        #[arg(long)]
        again: bool,
        /// With `on_error: park_key`: how long to wait for the workers to
        /// pass a released key's replayed records (records of the key
        /// parked meanwhile are then replayed too).
        #[arg(long, default_value_t = 120)]
        release_wait_secs: u64,
    },
    /// Drops the open dead letters a filter selects, for good: recorded as
    /// resolved, never applied. Where one parked its key (`on_error:
    /// park_key`), a discard marker goes into its partition and releases
    /// the key there, in stream order (for a record that fails again
    /// however often it is replayed, such as an undecodable one).
    Discard {
        /// The worker's YAML config file.
        #[arg(long, short)]
        config: PathBuf,
        #[command(flatten)]
        filter: dlq::Filter,
        /// Only print what would be discarded.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum OffsetsAction {
    /// Sets the group's committed offsets (and the target's, with
    /// `offset_storage: target`); refused while the group has members.
    /// Prints each partition's offset before and after.
    Reset {
        /// The worker's YAML config file.
        #[arg(long, short)]
        config: PathBuf,
        /// `earliest`, `latest`, an RFC 3339 time (the first record at or
        /// after it), or `topic:partition:offset` (repeatable).
        #[arg(long, required = true, num_args = 1..)]
        to: Vec<String>,
        /// Only print what would change.
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // An operator command's output is its answer: librdkafka's retries and
    // transport errors are noise there (an unreachable broker is reported
    // once, see `operator_config`).
    let operator = matches!(
        cli.command,
        Command::Dlq { .. } | Command::Status { .. } | Command::Offsets { .. }
    );
    observability::init_logging(operator && !cli.verbose);
    // Two rustls crypto providers are linked (ring through sqlx, aws-lc-rs
    // through object_store), so rustls cannot choose one on its own and a
    // TLS connection that relies on the default would panic. Pick one for
    // the whole process before any connection is made.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match execute(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The chain of causes, without a backtrace: these are operator
            // errors (config, connectivity), not bugs.
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Loads an operator command's config and checks that its brokers answer
/// (within `broker_timeout`), before the command reads or writes anything.
fn operator_config(path: &std::path::Path, broker_timeout: Duration) -> anyhow::Result<Config> {
    let config = Config::load(path)?;
    sinkfleet_kafka::reach::reach(
        &sinkfleet_kafka::client_config(&config.kafka),
        broker_timeout,
        &mut |progress| eprintln!("{progress}"),
    )
    .map_err(anyhow::Error::msg)?;
    Ok(config)
}

fn execute(cli: Cli) -> anyhow::Result<()> {
    let broker_timeout = Duration::from_secs(cli.broker_timeout_secs);
    let load = |path: &std::path::Path| operator_config(path, broker_timeout);
    match cli.command {
        Command::Validate { config } => {
            if publisher_config::is_publisher_file(&config) {
                publisher_config::load(&config)?;
                println!("{}: ok", config.display());
            } else {
                let loaded = Config::load(&config)?;
                println!("{}: ok", config.display());
                println!("{}", loaded.identifiers());
            }
            Ok(())
        }
        Command::Run { config } => {
            let config = Config::load(&config)?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?
                .block_on(run(config))
        }
        Command::Dlq { action } => {
            let text = match action {
                DlqAction::List { config } => {
                    let config = load(&config)?;
                    dlq::list(&dlq::letters(&config)?) + &dlq::parked_keys(&config)?
                }
                DlqAction::Discard {
                    config,
                    filter,
                    dry_run,
                } => {
                    let config = load(&config)?;
                    let dead = dlq::letters(&config)?;
                    let filter = filter.with_targets(&config, &dead);
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .context("starting the async runtime")?
                        .block_on(dlq_discard::discard(&config, &dead, &filter, dry_run))?
                }
                DlqAction::Show {
                    config,
                    filter,
                    json,
                } => {
                    let config = load(&config)?;
                    let dead = dlq::letters(&config)?;
                    dlq::show(&dead, &filter.with_targets(&config, &dead), json)
                }
                DlqAction::Replay {
                    config,
                    filter,
                    dry_run,
                    through_sink,
                    again,
                    release_wait_secs,
                } => {
                    let mode = match (dry_run, through_sink) {
                        (true, _) => dlq::ReplayMode::DryRun,
                        (false, true) => dlq::ReplayMode::ThroughSink,
                        (false, false) => dlq::ReplayMode::IntoTopic,
                    };
                    let config = load(&config)?;
                    let dead = dlq::letters(&config)?;
                    let filter = filter.with_targets(&config, &dead);
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .context("starting the async runtime")?
                        .block_on(dlq::replay(
                            &config,
                            &dead,
                            &filter,
                            mode,
                            again,
                            std::time::Duration::from_secs(release_wait_secs),
                        ))?
                }
            };
            print!("{text}");
            Ok(())
        }
        Command::Status { config, json } => {
            let status = status::gather(&load(&config)?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", status::render(&status));
            }
            Ok(())
        }
        Command::Offsets {
            action:
                OffsetsAction::Reset {
                    config,
                    to,
                    dry_run,
                },
        } => {
            let config = load(&config)?;
            let to = offsets::ResetTo::parse(&to)?;
            let text = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?
                .block_on(offsets::reset(&config, &to, dry_run))?;
            print!("{text}");
            Ok(())
        }
        Command::Publish { config } => {
            let (connector, settings) = publisher_config::load(&config)?;
            // One thread: the publisher is one stream task plus its acker,
            // so a multi-thread runtime only adds wake-ups between threads
            // for every event and acknowledgement (~35% less CPU per event
            // in `publisher_e2e`, see docs/performance.md).
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?
                .block_on(publish(connector, settings))
        }
    }
}

async fn publish(
    connector: sinkfleet_pg_publisher::config::ConnectorConfig,
    settings: sinkfleet_pg_publisher::config::PublisherSettings,
) -> anyhow::Result<()> {
    let health = Arc::new(Health::default());
    observability::serve(&settings.metrics_listen, Arc::clone(&health)).await?;
    health
        .live
        .store(true, std::sync::atomic::Ordering::Release);
    health
        .ready
        .store(true, std::sync::atomic::Ordering::Release);
    sinkfleet_pg_publisher::run(connector, settings, shutdown_signal()).await?;
    Ok(())
}

async fn run(config: Config) -> anyhow::Result<()> {
    let health = Arc::new(Health::default());
    observability::serve(&config.metrics.listen, Arc::clone(&health)).await?;
    let mut runtime = config.runtime()?;
    // Transactional apply runs one active worker per group: wait for the
    // turn before joining it.
    let mut owner = None;
    if let SinkConfig::Postgres(pg) = &config.sink
        && pg.apply == ApplyMode::Transactional
    {
        // A standby is alive (its liveness probe must pass) but not
        // ready: it consumes nothing.
        health
            .live
            .store(true, std::sync::atomic::Ordering::Release);
        let group = runtime.kafka.group_id.clone();
        tokio::select! {
            taken = Ownership::acquire(pg, &group) => owner = Some(taken?),
            _ = shutdown_signal() => return Ok(()),
        }
        runtime.transactions = Some(TransactionsConfig {
            topic: pg.transaction_topic.clone().unwrap_or_default(),
            max_wait_ms: pg.transaction_max_wait_ms,
        });
        runtime.worker.writers = 1;
    }
    let purpose = sinks::Purpose::Worker {
        writers: runtime.worker.writers,
    };
    let group = runtime.kafka.group_id.clone();
    let worker = Worker {
        runtime,
        health,
        owner,
    };
    sinks::with_sink(config.sink, purpose, &group, worker).await
}

/// A worker: the consumer runtime over the built sink, stopped when it
/// loses its transactional ownership.
struct Worker {
    runtime: sinkfleet_kafka::RuntimeConfig,
    health: Arc<Health>,
    owner: Option<Ownership>,
}

impl sinks::UseSink for Worker {
    type Output = ();

    async fn use_sink<S: sinkfleet_core::Sink + 'static>(
        self,
        new_sink: impl FnMut() -> Result<S, sinkfleet_core::ConfigError> + Send + 'static,
        offsets: Option<Arc<dyn sinkfleet_core::OffsetStore>>,
    ) -> anyhow::Result<()> {
        let run = sinkfleet_kafka::run(
            new_sink,
            offsets,
            self.runtime,
            self.health,
            shutdown_signal(),
        );
        match self.owner {
            Some(mut owner) => tokio::select! {
                done = run => done?,
                lost = owner.lost() => return Err(lost).context("stopping: another worker may take over"),
            },
            None => run.await?,
        }
        Ok(())
    }
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM"),
                _ = int.recv() => tracing::info!("SIGINT"),
            }
        }
        _ => {
            tracing::warn!("cannot install signal handlers; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
