//! The pgoutput decoder against what a real Postgres 15 sends: changes are
//! made, then read back with `pg_logical_slot_peek_binary_changes` (the same
//! bytes the walsender streams) and decoded.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

use sinkfleet_pg_publisher::pgoutput::{Message, ReplicaIdentity, TupleValue, decode};
use sinkfleet_testkit::services::pg_url;
use sqlx::{Executor, PgPool};

fn text(v: &TupleValue) -> &str {
    match v {
        TupleValue::Text(b) => std::str::from_utf8(b).unwrap(),
        other => panic!("expected text, got {other:?}"),
    }
}

#[tokio::test]
async fn decodes_a_real_servers_stream() {
    let pool = PgPool::connect(&pg_url())
        .await
        .expect("Postgres (scripts/services.sh start)");
    let id = std::process::id();
    let (table, publication, slot) = (
        format!("pgout_{id}"),
        format!("pgout_pub_{id}"),
        format!("pgout_slot_{id}"),
    );
    // Publication before slot: a publication created after the slot fails decoding.
    pool.execute(
        format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, note text, amount numeric(10,2));
         ALTER TABLE {table} ALTER COLUMN note SET STORAGE EXTERNAL;
         CREATE PUBLICATION {publication} FOR TABLE {table};"
        )
        .as_str(),
    )
    .await
    .unwrap();
    sqlx::query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')")
        .bind(&slot)
        .execute(&pool)
        .await
        .unwrap();
    let big = "x".repeat(10_000); // stored out of line (EXTERNAL): TOASTed
    for sql in [
        format!("INSERT INTO {table} VALUES (1, 'small', 1.50), (2, '{big}', NULL)"),
        format!("UPDATE {table} SET amount = 9.99 WHERE id = 2"),
        format!("DELETE FROM {table} WHERE id = 1"),
        format!("TRUNCATE {table}"),
        format!("ALTER TABLE {table} ADD COLUMN tier text"),
        format!("INSERT INTO {table} VALUES (3, 'n', 3, 'gold')"),
    ] {
        pool.execute(sql.as_str()).await.unwrap();
    }
    let rows: Vec<(Vec<u8>,)> = sqlx::query_as(
        "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL,
            'proto_version', '1', 'publication_names', $2)",
    )
    .bind(&slot)
    .bind(&publication)
    .fetch_all(&pool)
    .await
    .unwrap();
    sqlx::query("SELECT pg_drop_replication_slot($1)")
        .bind(&slot)
        .execute(&pool)
        .await
        .unwrap();
    pool.execute(format!("DROP PUBLICATION {publication}; DROP TABLE {table}").as_str())
        .await
        .unwrap();

    let messages: Vec<Message> = rows.iter().map(|(b,)| decode(b).unwrap()).collect();
    let kinds: Vec<&str> = messages
        .iter()
        .map(|m| match m {
            Message::Begin { .. } => "B",
            Message::Commit { .. } => "C",
            Message::Relation(_) => "R",
            Message::Insert { .. } => "I",
            Message::Update { .. } => "U",
            Message::Delete { .. } => "D",
            Message::Truncate { .. } => "T",
            _ => "?",
        })
        .collect();
    // A Relation precedes the truncate too. The ALTER TABLE emits nothing;
    // the next change brings a new Relation.
    assert_eq!(
        kinds,
        [
            "B", "R", "I", "I", "C", "B", "U", "C", "B", "D", "C", "B", "R", "T", "C", "B", "R",
            "I", "C"
        ]
    );

    let Message::Relation(rel) = &messages[1] else {
        unreachable!()
    };
    assert_eq!(
        (rel.name.as_str(), rel.replica_identity),
        (table.as_str(), ReplicaIdentity::Default)
    );
    let names: Vec<&str> = rel.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "note", "amount"]);
    assert!(rel.columns[0].key && !rel.columns[1].key);
    assert_eq!(rel.columns[0].type_oid, 20); // int8
    assert_eq!(rel.columns[2].type_modifier, (10 << 16 | 2) + 4); // numeric(10,2)

    let Message::Insert { new, .. } = &messages[2] else {
        unreachable!()
    };
    assert_eq!(
        (text(&new[0]), text(&new[1]), text(&new[2])),
        ("1", "small", "1.50")
    );
    let Message::Insert { new, .. } = &messages[3] else {
        unreachable!()
    };
    assert_eq!(new[2], TupleValue::Null);

    // The TOASTed note did not change: it is not sent.
    let Message::Update { old, new, .. } = &messages[6] else {
        unreachable!()
    };
    assert_eq!(*old, None, "default identity, key unchanged: no old tuple");
    assert_eq!(
        (text(&new[0]), &new[1], text(&new[2])),
        ("2", &TupleValue::UnchangedToast, "9.99")
    );

    // Default identity: a delete carries the key, nulls elsewhere.
    let Message::Delete { old, .. } = &messages[9] else {
        unreachable!()
    };
    assert_eq!((text(&old[0]), &old[1]), ("1", &TupleValue::Null));

    let Message::Truncate {
        relations, cascade, ..
    } = &messages[13]
    else {
        unreachable!()
    };
    assert_eq!((relations.as_slice(), *cascade), (&[rel.oid][..], false));

    let Message::Relation(after_alter) = &messages[16] else {
        unreachable!()
    };
    assert_eq!(
        after_alter.columns.last().map(|c| c.name.as_str()),
        Some("tier")
    );
    let Message::Insert { new, .. } = &messages[17] else {
        unreachable!()
    };
    assert_eq!(text(&new[3]), "gold");

    let (
        Message::Begin { final_lsn, .. },
        Message::Commit {
            commit_lsn,
            end_lsn,
            ..
        },
    ) = (&messages[0], &messages[4])
    else {
        unreachable!()
    };
    assert_eq!(final_lsn, commit_lsn);
    assert!(end_lsn > commit_lsn);
}
