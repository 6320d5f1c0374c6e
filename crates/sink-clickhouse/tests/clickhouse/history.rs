//! History tables: every change a row, one per (key, version).

use super::*;
use sinkfleet_sink_clickhouse::config::HistoryConfig;

/// A JSONEachRow field as text (64-bit integers arrive quoted or not).
fn text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[tokio::test]
async fn history_keeps_every_change_once_in_version_order() {
    let (db, client, _) = sink_in("history");
    let mut cfg = ClickHouseSinkConfig::with_url(clickhouse_url());
    cfg.database = Some(db.clone());
    cfg.history = HistoryConfig {
        tables: vec!["public.items".into()],
        ..HistoryConfig::default()
    };
    let mut sink = ClickHouseSink::new(cfg).unwrap();
    let changes = [
        event("c", 1, 10, Some("v10")),
        event("u", 1, 30, Some("v30")),
        // Late: older than what the current table holds, still history.
        event("u", 1, 20, Some("v20")),
        event("d", 1, 40, None),
        event("c", 2, 50, Some("two")),
    ];
    sink.write(&changes).await.unwrap();
    // A replay of everything, in another batch, adds nothing.
    sink.write(&changes).await.unwrap();

    let sql = format!(
        "SELECT id, toString(__sinkfleet_version) AS v, __sinkfleet_op AS op, name
           FROM `{db}`.items__history FINAL ORDER BY id, __sinkfleet_version FORMAT JSONEachRow"
    );
    let body = client.execute(&sql, None, &[]).await.unwrap();
    let rows: Vec<Vec<Option<String>>> = body
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            ["id", "v", "op", "name"]
                .iter()
                .map(|f| text(&v[*f]))
                .collect()
        })
        .collect();
    let features = sink_features(&client).await;
    let version = |commit: u64| {
        // The pair where the server has UInt128, its major part elsewhere.
        sinkfleet_sink_clickhouse::encode_version(
            sinkfleet_core::Version::new(commit, commit),
            &features,
        )
    };
    let row = |id: &str, commit: u64, op: &str, name: Option<&str>| {
        vec![
            Some(id.to_owned()),
            Some(version(commit)),
            Some(op.to_owned()),
            name.map(str::to_owned),
        ]
    };
    assert_eq!(
        rows,
        vec![
            row("1", 10, "c", Some("v10")),
            row("1", 20, "u", Some("v20")),
            row("1", 30, "u", Some("v30")),
            row("1", 40, "d", None),
            row("2", 50, "c", Some("two")),
        ]
    );
    // The current table is kept beside it: key 1 deleted, key 2 live.
    assert_eq!(live_items(&client, &db).await, r#"{"id":2,"name":"two"}"#);
    drop_database(&client, &db).await;
}

#[tokio::test]
async fn history_only_names_unchanged_columns_and_creates_no_current_table() {
    let (db, client, _) = sink_in("historyonly");
    let mut cfg = ClickHouseSinkConfig::with_url(clickhouse_url());
    cfg.database = Some(db.clone());
    cfg.history = HistoryConfig {
        tables: vec!["*".into()],
        keep_current: false,
        ..HistoryConfig::default()
    };
    let mut sink = ClickHouseSink::new(cfg).unwrap();
    let partial = serde_json::json!({
        "op": "u",
        "source": {"schema": "public", "table": "items", "lsn": 20, "sequence": "[\"20\",\"20\"]", "ts_ms": 1_700_000_000_123_i64},
        "after": {"id": 1, "name": "__debezium_unavailable_value"},
    });
    sink.write(&[
        event("c", 1, 10, Some("v10")),
        decoded(&serde_json::json!({"id": 1}), &partial, 20),
    ])
    .await
    .unwrap();
    let sql = format!(
        "SELECT __sinkfleet_op AS op, name, __sinkfleet_source_ts AS ts, __sinkfleet_unchanged AS unchanged
           FROM `{db}`.items__history FINAL ORDER BY __sinkfleet_version FORMAT JSONEachRow"
    );
    let body = client.execute(&sql, None, &[]).await.unwrap();
    let rows: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{body}");
    assert_eq!(rows[1]["op"], "u");
    assert_eq!(
        rows[1]["name"],
        serde_json::Value::Null,
        "never the placeholder"
    );
    assert_eq!(rows[1]["unchanged"], serde_json::json!(["name"]));
    assert_eq!(text(&rows[1]["ts"]).as_deref(), Some("1700000000123"));
    let exists = client
        .execute(&format!("EXISTS TABLE `{db}`.items"), None, &[])
        .await
        .unwrap();
    assert_eq!(exists.trim(), "0", "no current table");
    drop_database(&client, &db).await;
}
