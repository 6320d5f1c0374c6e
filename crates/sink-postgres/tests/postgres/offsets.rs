//! Offsets kept in the target: written with the rows, fenced per partition.

use super::*;
use sinkfleet_core::OffsetStore;
use sinkfleet_sink_postgres::OffsetStorage;

async fn offset_sink(schema: &str) -> PostgresSink {
    let mut cfg = PostgresSinkConfig::with_url(pg_url());
    cfg.target_schema = Some(schema.to_owned());
    cfg.meta_schema = format!("{schema}_meta");
    cfg.offset_storage = OffsetStorage::Target;
    PostgresSink::new(cfg).unwrap()
}

#[tokio::test]
async fn offsets_commit_with_the_rows_and_a_newer_claim_fences_the_old_owner() {
    let (sink, pool, schema) = setup(DeleteMode::Soft, WritePath::Unnest).await;
    drop(sink);
    let partition = [(Arc::from("items"), 0)];

    let mut old = offset_sink(&schema).await;
    let old_store = old.offset_store("g").unwrap().unwrap();
    assert_eq!(old_store.claim(&partition).await.unwrap(), vec![None]);
    write(
        &mut old,
        &[
            record(&event("c", 1, (10, 11), Some(item(1, "a", "x"))), 1, 0),
            record(&event("c", 2, (12, 13), Some(item(2, "b", "x"))), 2, 1),
        ],
    )
    .await;

    // Another process takes the partition over: it resumes after the rows.
    let mut new = offset_sink(&schema).await;
    let new_store = new.offset_store("g").unwrap().unwrap();
    assert_eq!(new_store.claim(&partition).await.unwrap(), vec![Some(2)]);
    // Another group keeps its own offsets.
    let other = offset_sink(&schema)
        .await
        .offset_store("other")
        .unwrap()
        .unwrap();
    assert_eq!(other.claim(&partition).await.unwrap(), vec![None]);

    // The old owner's next batch commits nothing.
    let late = [record(
        &event("c", 3, (14, 15), Some(item(3, "c", "x"))),
        3,
        2,
    )];
    match old.write(&late).await {
        Err(SinkError::Retryable(m)) => assert!(m.contains("fenced"), "{m}"),
        other => panic!("a fenced write must fail retryably, got {other:?}"),
    }
    assert_eq!(super::rows(&pool, &schema).await.len(), 2);

    // The new owner writes it, and the offset moves on.
    write(&mut new, &late).await;
    assert_eq!(super::rows(&pool, &schema).await.len(), 3);
    let stored: (i64, i64) = sqlx::query_as(&format!(
        "SELECT next_offset, epoch FROM \"{schema}_meta\".offsets WHERE group_id = 'g'"
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stored, (3, 2));
}
