//! `sinkfleet-mock-cluster`: hosts librdkafka's in-process mock Kafka
//! cluster so *other* processes can use it, for crash tests that need a
//! broker which evicts SIGKILLed group members (tansu does not).
//!
//! Prints `bootstrap=<host:port>` once the topics exist, then serves until
//! its standard input closes. Test-only: the mock keeps ~5 MiB per
//! partition in memory and forgets everything on exit.
//!
//! Lines on standard input inject broker errors, the way a real cluster
//! refuses requests during a rebalance or a coordinator move:
//!
//! ```text
//! fail OffsetCommit 5 REBALANCE_IN_PROGRESS
//! ```
//!
//! makes the next 5 `OffsetCommit` requests (from any client) fail with
//! that error; `clear OffsetCommit` drops the failures not used yet.
//! `rtt 200` delays every broker's responses by 200 ms (`rtt 0` ends
//! it), as a distant or loaded cluster would. Each command is answered
//! with `ok` or `error: …` on standard output.

use anyhow::{Context, bail};
use clap::Parser;
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use std::io::{BufRead, Write};

#[derive(Parser)]
struct Cli {
    /// Brokers in the mock cluster.
    #[arg(long, default_value_t = 1)]
    brokers: i32,
    /// Topics to create, as `name:partitions`.
    #[arg(long = "topic")]
    topics: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let cluster = MockCluster::new(cli.brokers).context("starting the mock cluster")?;
    for spec in &cli.topics {
        let (name, partitions) = spec
            .rsplit_once(':')
            .context("topic must be name:partitions")?;
        let partitions: i32 = partitions.parse().context("partitions must be a number")?;
        cluster
            .create_topic(name, partitions, 1)
            .with_context(|| format!("creating {name}"))?;
    }
    let mut out = std::io::stdout();
    writeln!(out, "bootstrap={}", cluster.bootstrap_servers())?;
    out.flush()?;
    // Serve until the parent closes our stdin (or dies).
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        match command(&cluster, &line) {
            Ok(()) => writeln!(out, "ok")?,
            Err(e) => writeln!(out, "error: {e:#}")?,
        }
        out.flush()?;
    }
    Ok(())
}

/// Applies one command line: `fail <api> <count> <error>`, `clear <api>`
/// or `rtt <ms>`.
fn command<C: rdkafka::ClientContext>(
    cluster: &MockCluster<'_, C>,
    line: &str,
) -> anyhow::Result<()> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let (api, count, error) = match words.as_slice() {
        ["fail", api, count, error] => (api_key(api)?, count, error),
        ["clear", api] => {
            cluster.clear_request_errors(api_key(api)?);
            return Ok(());
        }
        ["rtt", ms] => {
            let ms: u64 = ms.parse().context("rtt must be milliseconds")?;
            // -1: every broker of the cluster.
            cluster
                .broker_round_trip_time(-1, std::time::Duration::from_millis(ms))
                .context("setting the round-trip time")?;
            return Ok(());
        }
        _ => bail!(
            "expected `fail <api> <count> <error>`, `clear <api>` or `rtt <ms>`, got {line:?}"
        ),
    };
    let error = match *error {
        "REBALANCE_IN_PROGRESS" => RDKafkaRespErr::RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
        "ILLEGAL_GENERATION" => RDKafkaRespErr::RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION,
        "COORDINATOR_NOT_AVAILABLE" => RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
        "NOT_COORDINATOR" => RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
        "UNKNOWN_SERVER_ERROR" => RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN,
        other => bail!("unsupported error {other}"),
    };
    let count: usize = count.parse().context("count must be a number")?;
    cluster.request_errors(api, &vec![error; count]);
    Ok(())
}

fn api_key(name: &str) -> anyhow::Result<RDKafkaApiKey> {
    Ok(match name {
        "OffsetCommit" => RDKafkaApiKey::OffsetCommit,
        "Heartbeat" => RDKafkaApiKey::Heartbeat,
        "JoinGroup" => RDKafkaApiKey::JoinGroup,
        "Fetch" => RDKafkaApiKey::Fetch,
        other => bail!("unsupported api {other}"),
    })
}
