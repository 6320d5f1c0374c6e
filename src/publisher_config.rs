//! The publisher's configuration file: a Debezium connector config
//! (`name`, `config`) plus a `publisher` section. `SINKFLEET__PUBLISHER__*`
//! environment variables override the publisher section, and
//! `SINKFLEET_SOURCE_PASSWORD` the database password (keep it out of files).

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Yaml};
use sinkfleet_pg_publisher::config::{ConnectorConfig, PublisherFile, PublisherSettings};
use std::collections::BTreeMap;
use std::path::Path;

/// True if the file looks like a publisher config (has `publisher:`).
pub fn is_publisher_file(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .map(|t| t.lines().any(|l| l.starts_with("publisher:")))
        .unwrap_or(false)
}

/// Loads and validates the file.
pub fn load(path: &Path) -> anyhow::Result<(ConnectorConfig, PublisherSettings)> {
    if !path.is_file() {
        bail!("config file {} not found", path.display());
    }
    let file: PublisherFile = Figment::new()
        .merge(Yaml::file_exact(path))
        .merge(
            Env::prefixed("SINKFLEET__")
                .split("__")
                .only(&["publisher"]),
        )
        .extract()
        .map_err(|e| {
            let all: Vec<String> = e
                .into_iter()
                .map(|e| e.to_string().replace("for key \"default.", "for key \""))
                .collect();
            anyhow::anyhow!("invalid configuration:\n  {}", all.join("\n  "))
        })
        .with_context(|| format!("loading {}", path.display()))?;
    let mut props: BTreeMap<String, String> =
        file.config.into_iter().map(|(k, v)| (k, v.0)).collect();
    if let Ok(password) = std::env::var("SINKFLEET_SOURCE_PASSWORD") {
        props.insert("database.password".into(), password);
    }
    let connector = ConnectorConfig::from_properties(&props).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!(
            "invalid configuration in {}:\n  {}",
            path.display(),
            lines.join("\n  ")
        )
    })?;
    if let Err(e) = file
        .publisher
        .metrics_listen
        .parse::<std::net::SocketAddr>()
    {
        bail!("publisher.metrics_listen: {e}");
    }
    if file.publisher.topic_partitions < 1 {
        bail!("publisher.topic_partitions: at least 1");
    }
    Ok((connector, file.publisher))
}
