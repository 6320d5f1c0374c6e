//! Column masks, hashes and truncation (`column.mask.with.N.chars`,
//! `column.mask.hash.ALG.with.salt.SALT`, `column.truncate.to.N.chars`)
//! through the real publisher, broker and sink.

use super::Worker;
use super::{CONVERGE, SOURCE_LOAD, Source, brokers, free_port, futures_lite_block, wait_until};
use serde_json::json;

/// The clear values are in no record of the snapshot, the stream or a
/// `before` image (REPLICA IDENTITY FULL); the key stays clear; the value
/// schema marks the columns; the target holds the mapped values. The hash
/// is Debezium's `PostgresConnectorIT` vector (SHA-256, V1, this salt, cut
/// to `varchar(20)`).
#[tokio::test(flavor = "multi_thread")]
async fn masked_columns_reach_kafka_and_the_target_masked() {
    let _shared = SOURCE_LOAD.read().await;
    let src = Source::new("colmask").await;
    let s = &src.schema;
    src.sql(&format!(
        "CREATE TABLE {s}.people (id int PRIMARY KEY, email varchar(20), ssn text, note text, age int);
         ALTER TABLE {s}.people REPLICA IDENTITY FULL;
         INSERT INTO {s}.people VALUES (1, 'test', 'ssn-111', 'hello world', 30), (2, NULL, NULL, NULL, 40)"
    ))
    .await;
    let (pp, wp) = (free_port(), free_port());
    let properties = format!(
        "  column.mask.hash.SHA-256.with.salt.CzQMA0cB5K: {s}.people.email\n  \
         column.mask.with.5.chars: {s}.people.ssn\n  \
         column.truncate.to.3.chars: {s}.people.note\n"
    );
    let config = src.publisher_config_with(&["people"], &brokers(), &properties, "", pp);
    let publisher = Worker::start(&src.prefix, "publish", &config, pp);
    wait_until("slot created", CONVERGE, || {
        futures_lite_block(src.confirmed_lsn()) > 0
    })
    .await;
    let worker = src.sink_worker(&["people"], wp);
    src.sql(&format!(
        "UPDATE {s}.people SET ssn = 'ssn-333', note = 'goodbye' WHERE id = 1;
         INSERT INTO {s}.people VALUES (3, 'test', 'ssn-444', 'hi', 50);
         DELETE FROM {s}.people WHERE id = 2"
    ))
    .await;

    let stored = |id: i32| {
        let pool = src.target_pool.clone();
        let sql = format!(
            "SELECT email, ssn, note, age FROM {}.people WHERE id = {id} AND NOT __sinkfleet_deleted",
            src.target
        );
        futures_lite_block(async move {
            sqlx::query_as::<_, (Option<String>, Option<String>, Option<String>, Option<i32>)>(&sql)
                .fetch_optional(&pool)
                .await
                .ok()
                .flatten()
        })
    };
    let hashed = Some("8e68c68edbbac316dfe2".to_owned());
    let want_1 = (
        hashed.clone(),
        Some("*****".into()),
        Some("goo".into()),
        Some(30),
    );
    let want_3 = (
        hashed.clone(),
        Some("*****".into()),
        Some("hi".into()),
        Some(50),
    );
    wait_until("the target holds the mapped rows", CONVERGE, || {
        stored(1) == Some(want_1.clone())
            && stored(3) == Some(want_3.clone())
            && stored(2).is_none()
    })
    .await;

    let topic = format!("{}.{}.people", src.prefix, src.schema);
    let records = sinkfleet_testkit::kafka::read_to_end(&brokers(), &topic, CONVERGE).unwrap();
    let mut seen = Vec::new();
    for r in &records {
        let key: serde_json::Value = serde_json::from_slice(r.key.as_deref().unwrap()).unwrap();
        assert!(key["payload"]["id"].is_i64(), "{key}");
        let Some(v) = r.value.as_deref() else {
            continue; // a tombstone
        };
        let text = String::from_utf8_lossy(v);
        for clear in ["ssn-", "hello", "goodbye", r#""test""#] {
            assert!(!text.contains(clear), "{clear} in {text}");
        }
        let v: serde_json::Value = serde_json::from_slice(v).unwrap();
        let after = v["schema"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == "after")
            .unwrap()
            .clone();
        let param = |column: &str| {
            after["fields"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["field"] == column)
                .map(|f| f["parameters"].clone())
        };
        assert_eq!(param("email"), Some(json!({"masked": "true"})));
        assert_eq!(param("ssn"), Some(json!({"masked": "true"})));
        assert_eq!(param("note"), Some(json!({"truncateLength": "3"})));
        let p = &v["payload"];
        seen.push((
            p["op"].as_str().unwrap().to_owned(),
            p["before"]["ssn"].clone(),
            p["before"]["note"].clone(),
            p["after"]["ssn"].clone(),
        ));
    }
    // Snapshot (a NULL is masked too), the update's `before`, the delete's.
    for want in [
        ("r", json!(null), json!(null), json!("*****")),
        ("u", json!("*****"), json!("hel"), json!("*****")),
        ("d", json!("*****"), json!(null), json!(null)),
    ] {
        let want = (want.0.to_owned(), want.1, want.2, want.3);
        assert!(seen.contains(&want), "{want:?} not in {seen:?}");
    }
    src.finish(publisher, worker).await;
}
