//! Checks a batch's values against a table shape before its DDL runs.
//!
//! ClickHouse DDL is not transactional: a column added (or widened) for a
//! batch stays even when the batch's insert then fails. If the record that
//! asked for it is the bad one, it would end in the dead-letter topic yet
//! leave its column behind. So before a batch changes a table, its rows are
//! inserted into a temporary table of the *planned* shape, in a session of
//! their own: the server parses every value with the planned types, and a
//! refusal there fails the batch before anything changed (the runtime then
//! splits it and dead-letters the bad record alone). Only batches that need
//! DDL pay for this, which is rare.

use crate::client::{Client, ServerFeatures};
use crate::config::ClickHouseSinkConfig;
use crate::ident::quote;
use crate::rows;
use sinkfleet_core::{Change, Op, SinkError};

/// The temporary table's name (session-scoped, so workers never collide).
const PROBE_TABLE: &str = "__sinkfleet_probe";

/// Inserts `changes` (truncates excluded) into a temporary table with
/// `columns`; an error means the batch must not change the real table.
pub(crate) async fn check(
    client: &Client,
    columns: &[(String, String)],
    changes: &[&Change],
    cfg: &ClickHouseSinkConfig,
    features: &ServerFeatures,
) -> Result<(), SinkError> {
    let rows: Vec<&Change> = changes
        .iter()
        .copied()
        .filter(|c| c.op != Op::Truncate)
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let session = [(
        "session_id",
        format!("sinkfleet-probe-{:016x}", rand::random::<u64>()),
    )];
    let defs: Vec<String> = columns
        .iter()
        .map(|(n, t)| format!("{} {t}", quote(n)))
        .collect();
    client
        .execute(
            &format!(
                "CREATE TEMPORARY TABLE {PROBE_TABLE} ({}) ENGINE = Memory",
                defs.join(", ")
            ),
            None,
            &session,
        )
        .await?;
    let (names, body) = rows::insert_body(columns, &rows, cfg, features)?;
    let mut settings = vec![("input_format_skip_unknown_fields", "0".to_owned())];
    settings.extend(session.iter().cloned());
    let inserted = client
        .execute(
            &format!(
                "INSERT INTO {PROBE_TABLE} ({}) FORMAT JSONEachRow",
                names.join(", ")
            ),
            Some(body.into_bytes()),
            &settings,
        )
        .await;
    // The session's table would go with the session anyway; free it now.
    let _ = client
        .execute(
            &format!("DROP TEMPORARY TABLE IF EXISTS {PROBE_TABLE}"),
            None,
            &session,
        )
        .await;
    inserted.map(|_| ())
}
