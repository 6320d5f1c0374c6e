//! Logical decoding messages (`pg_logical_emit_message`) as Debezium's
//! message events, through the real publisher and broker.

use super::Worker;
use super::{CONVERGE, SOURCE_LOAD, Source, brokers, free_port, futures_lite_block, wait_until};
use base64::Engine;
use serde_json::Value;

/// Transactional and non-transactional outbox messages arrive on
/// `<topic.prefix>.message` in the order the server decodes them: a
/// transactional one at its commit, between its transaction's other
/// events (`total_order`), a non-transactional one at once, even from a
/// transaction that rolls back, whose transactional messages never
/// arrive. An excluded prefix is not published. Once all of it is
/// acknowledged, the slot confirms past the last message.
#[tokio::test(flavor = "multi_thread")]
async fn outbox_messages_arrive_in_commit_order() {
    let _shared = SOURCE_LOAD.read().await;
    let src = Source::new("outbox").await;
    let s = &src.schema;
    src.sql(&format!("CREATE TABLE {s}.orders (id int PRIMARY KEY)"))
        .await;
    let pp = free_port();
    let properties =
        "  provide.transaction.metadata: true\n  message.prefix.exclude.list: SKIP.*\n";
    let config = src.publisher_config_with(&["orders"], &brokers(), properties, "", pp);
    let publisher = Worker::start(&src.prefix, "publish", &config, pp);
    wait_until("slot created", CONVERGE, || {
        futures_lite_block(src.confirmed_lsn()) > 0
    })
    .await;
    let emit = |transactional: bool, prefix: &str, content: &str| {
        format!("SELECT pg_logical_emit_message({transactional}, '{prefix}', '{content}');")
    };
    src.sql(&emit(false, "outbox", "n1")).await;
    src.sql(&format!(
        "BEGIN; INSERT INTO {s}.orders VALUES (1); {} INSERT INTO {s}.orders VALUES (2); COMMIT;",
        emit(true, "outbox", "t1")
    ))
    .await;
    src.sql(&format!(
        "BEGIN; {} ROLLBACK;",
        emit(true, "outbox", "rolled back")
    ))
    .await;
    src.sql(&format!(
        "BEGIN; {} {} COMMIT;",
        emit(true, "outbox", "t2"),
        emit(false, "outbox", "n2")
    ))
    .await;
    src.sql(&emit(false, "skipped", "excluded")).await;
    src.sql(&format!("BEGIN; {} ROLLBACK;", emit(false, "outbox", "n3")))
        .await;
    let last = src.lsn("SELECT pg_current_wal_lsn()::text").await;

    let topic = format!("{}.message", src.prefix);
    // The topic exists once the first message is published.
    let read =
        || sinkfleet_testkit::kafka::read_to_end(&brokers(), &topic, CONVERGE).unwrap_or_default();
    wait_until("five messages on the message topic", CONVERGE, || {
        read().len() >= 5
    })
    .await;
    let mut records = read();
    records.sort_by_key(|r| (r.partition, r.offset));
    let events: Vec<Value> = records
        .iter()
        .map(|r| serde_json::from_slice(r.value.as_deref().unwrap()).unwrap())
        .collect();
    let content = |e: &Value| {
        let b64 = e["payload"]["message"]["content"].as_str().unwrap();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap()
    };
    let contents: Vec<String> = events.iter().map(content).collect();
    assert_eq!(contents, ["n1", "t1", "n2", "t2", "n3"]);
    for (r, e) in records.iter().zip(&events) {
        let key: Value = serde_json::from_slice(r.key.as_deref().unwrap()).unwrap();
        assert_eq!(key["payload"], serde_json::json!({"prefix": "outbox"}));
        assert_eq!(
            key["schema"]["name"],
            "io.debezium.connector.postgresql.MessageKey"
        );
        assert_eq!(
            e["schema"]["name"],
            "io.debezium.connector.postgresql.MessageValue"
        );
        let p = &e["payload"];
        assert_eq!(p["op"], "m");
        assert_eq!(
            (
                p["source"]["schema"].as_str(),
                p["source"]["table"].as_str()
            ),
            (Some(""), Some(""))
        );
        let transactional = content(e).starts_with('t');
        assert_eq!(p["source"]["txId"].is_null(), !transactional, "{p}");
        assert_eq!(p["transaction"].is_null(), !transactional, "{p}");
    }
    // t1 sits between its transaction's two inserts, as in the WAL.
    assert_eq!(events[1]["payload"]["transaction"]["total_order"], 2);
    let orders = sinkfleet_testkit::kafka::read_to_end(
        &brokers(),
        &format!("{}.{s}.orders", src.prefix),
        CONVERGE,
    )
    .unwrap();
    let order_events: Vec<Value> = orders
        .iter()
        .filter_map(|r| r.value.as_deref())
        .map(|v| serde_json::from_slice(v).unwrap())
        .collect();
    assert_eq!(order_events.len(), 2);
    for o in &order_events {
        assert_eq!(
            o["payload"]["source"]["txId"],
            events[1]["payload"]["source"]["txId"]
        );
        assert_eq!(
            o["payload"]["source"]["sequence"]
                .as_str()
                .unwrap()
                .split(',')
                .next(),
            events[1]["payload"]["source"]["sequence"]
                .as_str()
                .unwrap()
                .split(',')
                .next()
        );
    }
    let orders_of = |total| {
        order_events
            .iter()
            .any(|o| o["payload"]["transaction"]["total_order"] == total)
    };
    assert!(orders_of(1) && orders_of(3), "{order_events:?}");
    // A non-transactional message's LSN is its own, twice in `sequence`.
    let n1 = &events[0]["payload"]["source"];
    assert_eq!(
        n1["sequence"].as_str().unwrap(),
        format!("[\"{0}\",\"{0}\"]", n1["lsn"])
    );
    wait_until("the slot confirms past the last message", CONVERGE, || {
        futures_lite_block(src.confirmed_lsn()) >= last
    })
    .await;
    src.stop(publisher).await;
}
