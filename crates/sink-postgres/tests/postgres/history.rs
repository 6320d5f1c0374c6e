//! History tables: every change a row, unique on (key, version).

use super::*;
use sinkfleet_sink_postgres::HistoryConfig;

/// History rows as `(id, version, op, name, unchanged)`, in version order.
async fn history(
    pool: &PgPool,
    schema: &str,
) -> Vec<(i64, String, String, Option<String>, Option<String>)> {
    let sql = format!(
        "SELECT id, __sinkfleet_version::text, __sinkfleet_op, name, __sinkfleet_unchanged::text
           FROM \"{schema}\".items__history ORDER BY id, __sinkfleet_version"
    );
    sqlx::query(&sql)
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect()
}

fn version(major: u64, minor: u64) -> String {
    sinkfleet_core::Version::new(major, minor)
        .as_u128()
        .to_string()
}

async fn history_sink(keep_current: bool) -> (PostgresSink, PgPool, String) {
    let (sink, pool, schema) = setup(DeleteMode::Soft, WritePath::Unnest).await;
    drop(sink);
    let mut cfg = PostgresSinkConfig::with_url(pg_url());
    cfg.target_schema = Some(schema.clone());
    cfg.meta_schema = format!("{schema}_meta");
    cfg.history = HistoryConfig {
        tables: vec!["public.items".into()],
        keep_current,
        ..HistoryConfig::default()
    };
    (PostgresSink::new(cfg).unwrap(), pool, schema)
}

#[tokio::test]
async fn history_keeps_every_change_once_in_version_order() {
    let (mut sink, pool, schema) = history_sink(true).await;
    let changes = [
        record(&event("c", 1, (10, 11), Some(item(1, "v10", "a"))), 1, 0),
        record(&event("u", 1, (30, 31), Some(item(1, "v30", "c"))), 1, 1),
        // Late: older than what the current table holds, still history.
        record(&event("u", 1, (20, 21), Some(item(1, "v20", "b"))), 1, 2),
        record(&event("d", 1, (40, 41), None), 1, 3),
        record(&event("c", 2, (50, 51), Some(item(2, "two", "x"))), 2, 4),
    ];
    write(&mut sink, &changes).await;
    // A replay of everything, in another batch, adds nothing.
    write(&mut sink, &changes).await;
    let rows = history(&pool, &schema).await;
    let expected = vec![
        (1, version(10, 11), "c".into(), Some("v10".into()), None),
        (1, version(20, 21), "u".into(), Some("v20".into()), None),
        (1, version(30, 31), "u".into(), Some("v30".into()), None),
        (1, version(40, 41), "d".into(), None, None),
        (2, version(50, 51), "c".into(), Some("two".into()), None),
    ];
    assert_eq!(rows, expected);
    // The current table is kept beside it: key 1 deleted, key 2 live.
    assert_eq!(
        super::rows(&pool, &schema).await,
        vec![(2, Some("two".into()), Some("x".into()))]
    );
}

#[tokio::test]
async fn history_only_names_unchanged_columns_and_creates_no_current_table() {
    let (mut sink, pool, schema) = history_sink(false).await;
    let partial = json!({"id": 1, "name": "renamed", "note": "__debezium_unavailable_value"});
    write(
        &mut sink,
        &[
            record(&event("c", 1, (10, 11), Some(item(1, "v10", "a"))), 1, 0),
            record(&event("u", 1, (20, 21), Some(partial)), 1, 1),
        ],
    )
    .await;
    let rows = history(&pool, &schema).await;
    assert_eq!(
        rows,
        vec![
            (1, version(10, 11), "c".into(), Some("v10".into()), None),
            (
                1,
                version(20, 21),
                "u".into(),
                Some("renamed".into()),
                Some("{note}".into())
            ),
        ]
    );
    let note: Option<String> = sqlx::query_scalar(&format!(
        "SELECT note FROM \"{schema}\".items__history WHERE __sinkfleet_op = 'u'"
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        note, None,
        "an unchanged column is NULL and named, never the placeholder"
    );
    let current: Option<String> =
        sqlx::query_scalar(&format!("SELECT to_regclass('\"{schema}\".items')::text"))
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(current, None);
}
