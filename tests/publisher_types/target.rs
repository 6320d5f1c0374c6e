//! Publisher → worker → Postgres target, every type family.

use super::*;

/// Publisher → worker → Postgres: every type family, snapshot and stream,
/// arrives as the source had it (`interval.handling.mode: string`, the
/// representation that carries intervals exactly).
#[tokio::test(flavor = "multi_thread")]
async fn every_type_reaches_a_postgres_target_as_the_source_had_it() {
    let src = Source::new("typese2e").await;
    let tables: Vec<Table> = cases::tables()
        .into_iter()
        .filter(|t| t.columns.iter().all(|c| !c.schema.is_null()))
        .collect();
    create_tables(&src, &tables).await;
    insert_rows(&src, &tables, 1).await;
    let names: Vec<&str> = tables.iter().map(|t| t.name).collect();
    let (pp, wp) = (free_port(), free_port());
    let config = with_properties(
        src.publisher_config(&names, &brokers(), "", pp),
        "  interval.handling.mode: string\n",
    );
    let publisher = Worker::start(&src.prefix, "publish", &config, pp);
    wait_until("snapshot complete", CONVERGE, || {
        block(src.confirmed_lsn()) > 0
    })
    .await;
    let worker = src.sink_worker(&names, wp);
    insert_rows(&src, &tables, 1001).await;
    for table in &tables {
        let checks: Vec<String> = table
            .columns
            .iter()
            .map(|c| {
                let (s, d) = (format!("s.{}", c.name), format!("d.{}", c.name));
                let compare = c
                    .compare
                    .unwrap_or("{s}::text = {d}::text")
                    .replace("{s}", &s)
                    .replace("{d}", &d);
                format!("(({s} IS NULL AND {d} IS NULL) OR coalesce({compare}, false))")
            })
            .collect();
        let sql = format!(
            "SELECT count(*) FROM {src}.{t} s FULL JOIN \"{dst}\".{t} d USING (id)
              WHERE d.__sinkfleet_deleted IS DISTINCT FROM false OR NOT ({checks})",
            src = src.schema,
            dst = src.target,
            t = table.name,
            checks = checks.join(" AND ")
        );
        let deadline = std::time::Instant::now() + CONVERGE;
        loop {
            let differ = sqlx::query_scalar::<_, i64>(&sql)
                .fetch_one(&src.pool)
                .await;
            if matches!(differ, Ok(0)) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{}: not identical in the target: {differ:?}\n{sql}",
                table.name
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    src.finish(publisher, worker).await;
}
