//! One active worker per consumer group, for transactional apply.
//!
//! Whole transactions span partitions, so one process must own every
//! partition of the group: the others wait as standbys, outside the group,
//! each polling a session advisory lock in the target. The owner holds it
//! on a connection of its own for as long as it runs; when it dies, its
//! session ends, the lock goes, and a standby takes over within a poll.
//! If the owner loses that connection it must stop: another worker may
//! take over at once (the fencing epochs of the offsets table keep a late
//! write of the old owner out either way).

use crate::config::PostgresSinkConfig;
use crate::error::classify;
use sinkfleet_core::{ConfigError, SinkError};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgConnection};
use std::str::FromStr;
use std::time::Duration;

/// How often a standby asks for the lock, and the owner checks it still
/// has its connection.
const POLL: Duration = Duration::from_millis(500);

/// The lock, held.
pub struct Ownership {
    conn: PgConnection,
}

impl Ownership {
    /// Waits until this process is the active worker of `group`. An
    /// unreachable target is waited for; only a URL that does not parse
    /// is an error (of the configuration, not of any record).
    pub async fn acquire(cfg: &PostgresSinkConfig, group: &str) -> Result<Self, ConfigError> {
        let options = PgConnectOptions::from_str(&cfg.url)
            .map_err(|e| ConfigError::new("sink.postgres.url", e))?
            .application_name("sinkfleet owner");
        let mut announced = false;
        let mut conn: Option<PgConnection> = None;
        loop {
            match try_acquire(&mut conn, &options, group).await {
                Ok(true) => {
                    tracing::info!(group, "this worker is the group's active worker");
                    if let Some(conn) = conn {
                        return Ok(Ownership { conn });
                    }
                }
                Ok(false) if !announced => {
                    tracing::info!(group, "standby: another worker of the group is active");
                    announced = true;
                }
                Ok(false) => {}
                Err(e) => {
                    conn = None;
                    tracing::warn!(error = %e, "cannot reach the target to take ownership; retrying");
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Completes when the lock's connection is gone: the caller must stop.
    pub async fn lost(&mut self) -> SinkError {
        loop {
            tokio::time::sleep(POLL).await;
            if let Err(e) = sqlx::query("SELECT 1").execute(&mut self.conn).await {
                return SinkError::Retryable(format!(
                    "lost the connection that holds ownership: {e}"
                ));
            }
        }
    }
}

/// Tries the lock once, on `conn` (connected first if it is not).
async fn try_acquire(
    conn: &mut Option<PgConnection>,
    options: &PgConnectOptions,
    group: &str,
) -> Result<bool, SinkError> {
    if conn.is_none() {
        *conn = Some(options.connect().await.map_err(classify)?);
    }
    let Some(c) = conn.as_mut() else {
        return Ok(false);
    };
    sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('sinkfleet owner'), hashtext($1))")
        .bind(group)
        .fetch_one(c)
        .await
        .map_err(classify)
}
