//! Logging, and the `/metrics`, `/healthz`, `/readyz` endpoint.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use sinkfleet_kafka::Health;
use sinkfleet_kafka::metrics::BATCH_RECORDS;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Logs to stderr; `RUST_LOG` filters (default `info`, librdkafka's lines
/// at `warn`, or none with `quiet_librdkafka`), `SINKFLEET_LOG=json`
/// switches to JSON lines.
pub fn init_logging(quiet_librdkafka: bool) {
    let default = if quiet_librdkafka {
        "info,librdkafka=off,rdkafka=off"
    } else {
        "info,librdkafka=warn,rdkafka=warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only for a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if std::env::var("SINKFLEET_LOG").is_ok_and(|v| v == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The Prometheus exporter, with the buckets of sinkfleet's histograms.
fn exporter() -> anyhow::Result<PrometheusBuilder> {
    // Up to 5 minutes: a quantile never exceeds the highest finite bucket,
    // so an alert on "over 30 s" needs buckets above 30 s to ever fire.
    let seconds = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        120.0, 300.0,
    ];
    let records = [
        1.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 50000.0,
    ];
    Ok(PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)?
        .set_buckets_for_metric(Matcher::Full(BATCH_RECORDS.into()), &records)?)
}

/// Describes every crate's metrics (the `# HELP` lines) to the installed
/// recorder.
fn describe() {
    sinkfleet_core::metrics::describe();
    sinkfleet_kafka::metrics::describe();
    sinkfleet_sink_postgres::metrics::describe();
    sinkfleet_sink_s3_parquet::metrics::describe();
    sinkfleet_pg_publisher::metrics::describe();
}

/// Installs the Prometheus recorder and serves the endpoints on `listen`.
pub async fn serve(listen: &str, health: Arc<Health>) -> anyhow::Result<()> {
    let handle = exporter()?.install_recorder()?;
    // Descriptions reach only an installed recorder.
    describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    let live = Arc::clone(&health);
    let app = Router::new()
        .route("/metrics", get(move || std::future::ready(handle.render())))
        .route(
            "/healthz",
            get(move || std::future::ready(status(live.live.load(Ordering::Acquire)))),
        )
        .route(
            "/readyz",
            get(move || std::future::ready(status(health.ready.load(Ordering::Acquire)))),
        );
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, "serving /metrics, /healthz, /readyz");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    Ok(())
}

fn status(ok: bool) -> (StatusCode, &'static str) {
    if ok {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sinkfleet_kafka::metrics::at_zero;

    /// The exporter shows registered series before their first event: a
    /// counter at 0, a histogram with every bucket at 0 (what `rate()` of
    /// `_bucket` needs to see a first observation), with their HELP lines.
    #[test]
    fn registered_series_are_exported_at_zero() {
        let recorder = exporter().unwrap().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe();
            at_zero::worker();
            at_zero::topic("orders", true);
            at_zero::sink("postgres");
            sinkfleet_pg_publisher::metrics::at_zero::publisher();
        });
        let text = handle.render();
        for line in [
            r#"sinkfleet_records_dead_lettered_total{topic="orders",class="decode"} 0"#,
            r#"sinkfleet_records_dead_lettered_total{topic="orders",class="apply"} 0"#,
            r#"sinkfleet_records_dead_lettered_total{topic="orders",class="schema"} 0"#,
            r#"sinkfleet_records_dead_lettered_total{topic="orders",class="parked"} 0"#,
            r#"sinkfleet_records_parked_total{topic="orders"} 0"#,
            r#"sinkfleet_records_in_total{topic="orders"} 0"#,
            r#"sinkfleet_rebalances_total{kind="assign"} 0"#,
            r#"sinkfleet_rebalances_total{kind="revoke"} 0"#,
            r#"sinkfleet_write_retries_total{sink="postgres"} 0"#,
            r#"sinkfleet_write_duration_seconds_bucket{sink="postgres",le="30"} 0"#,
            r#"sinkfleet_batch_records_bucket{sink="postgres",le="+Inf"} 0"#,
            r#"sinkfleet_publisher_delivery_seconds_bucket{le="30"} 0"#,
            r#"sinkfleet_publisher_delivery_seconds_bucket{le="+Inf"} 0"#,
            "sinkfleet_publisher_delivery_seconds_count 0",
            "# HELP sinkfleet_records_dead_lettered_total Records sent to the dead-letter topic",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(line)),
                "{line:?} not in:\n{text}"
            );
        }
    }
}
