//! `sinkfleet-mock-cluster`: hosts librdkafka's in-process mock Kafka
//! cluster so *other* processes can use it, for crash tests that need a
//! broker which evicts SIGKILLed group members (tansu does not).
//!
//! Prints `bootstrap=<host:port>` once the topics exist, then serves until
//! its standard input closes. Test-only: the mock keeps ~5 MiB per
//! partition in memory and forgets everything on exit.

use anyhow::Context;
use clap::Parser;
use rdkafka::mocking::MockCluster;
use std::io::{Read, Write};

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
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    Ok(())
}
