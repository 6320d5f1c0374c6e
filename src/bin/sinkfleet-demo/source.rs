//! The demo source: two tables in a source Postgres, a workload against
//! them, and the check that a target schema ends identical.

use anyhow::{Context, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::{Executor, PgPool};
use std::time::{Duration, Instant};

/// Columns compared per table (the target has sinkfleet's bookkeeping columns besides).
const TABLES: [(&str, &str); 2] = [
    (
        "orders",
        "id, customer_id, amount, placed_at, status, channel",
    ),
    ("products", "id, name, price, updated_at, md5(description)"),
];

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Creates the schema, with rows that the initial snapshot will carry.
pub async fn setup(url: &str, schema: &str) -> anyhow::Result<()> {
    let pool = PgPool::connect(url)
        .await
        .context("connecting to the source")?;
    let s = quote(schema);
    pool.execute(format!(
        "CREATE SCHEMA {s};
         CREATE TABLE {s}.orders (id bigint PRIMARY KEY, customer_id int NOT NULL, amount numeric(12,2) NOT NULL,
                                  placed_at timestamptz NOT NULL, status text NOT NULL);
         CREATE TABLE {s}.products (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2),
                                    updated_at timestamp NOT NULL, description text);
         -- Large descriptions live out of line (TOAST): an update that does
         -- not touch them leaves them out of the change stream.
         ALTER TABLE {s}.products ALTER COLUMN description SET STORAGE EXTERNAL;
         INSERT INTO {s}.orders SELECT g, g % 997, (g % 10000) / 7.0, now() - g * interval '1 minute', 'new'
           FROM generate_series(1, 20000) g;
         INSERT INTO {s}.products SELECT g, 'product ' || g, g * 1.5, now(), repeat(md5(g::text), 200)
           FROM generate_series(1, 1000) g;"
    ).as_str())
    .await
    .context("creating the demo schema")?;
    println!(
        "created {schema}.orders (20000 rows) and {schema}.products (1000 rows, 6.4 kB descriptions)"
    );
    Ok(())
}

/// Inserts, updates, deletes, TOAST-unchanged updates, an `ADD COLUMN`
/// halfway, in multi-statement transactions.
pub async fn load(url: &str, schema: &str, transactions: u32) -> anyhow::Result<()> {
    let pool = PgPool::connect(url)
        .await
        .context("connecting to the source")?;
    let s = quote(schema);
    let mut rng = StdRng::seed_from_u64(17);
    let mut next_id: i64 = 20_001;
    let started = Instant::now();
    for t in 0..transactions {
        if t == transactions / 2 {
            pool.execute(format!("ALTER TABLE {s}.orders ADD COLUMN channel text").as_str())
                .await?;
            println!("  [{t}/{transactions}] ALTER TABLE orders ADD COLUMN channel");
        }
        let channel = if t >= transactions / 2 {
            "'web'"
        } else {
            "DEFAULT"
        };
        let mut sql = String::from("BEGIN;");
        for _ in 0..rng.random_range(1..6) {
            let roll: f64 = rng.random();
            let id = rng.random_range(1..next_id);
            let product = rng.random_range(1..=1000);
            sql.push_str(&match roll {
                r if r < 0.35 => {
                    next_id += 1;
                    let cols = if t >= transactions / 2 { ", channel" } else { "" };
                    let vals = if t >= transactions / 2 { format!(", {channel}") } else { String::new() };
                    format!(
                        "INSERT INTO {s}.orders (id, customer_id, amount, placed_at, status{cols})
                         VALUES ({next_id}, {}, {}.{:02}, now(), 'new'{vals});",
                        rng.random_range(1..997),
                        rng.random_range(1..900),
                        rng.random_range(0..100)
                    )
                }
                r if r < 0.65 => format!("UPDATE {s}.orders SET status = 'shipped', amount = amount + 1 WHERE id = {id};"),
                r if r < 0.75 => format!("DELETE FROM {s}.orders WHERE id = {id};"),
                // Price changes leave the TOASTed description unchanged.
                r if r < 0.95 => format!("UPDATE {s}.products SET price = price + 0.25, updated_at = now() WHERE id = {product};"),
                _ => format!(
                    "UPDATE {s}.products SET description = repeat(md5(random()::text), 200) WHERE id = {product};"
                ),
            });
        }
        sql.push_str("COMMIT;");
        pool.execute(sql.as_str())
            .await
            .context("workload transaction")?;
        if (t + 1) % 500 == 0 {
            println!("  [{}/{transactions}] transactions committed", t + 1);
        }
    }
    println!(
        "workload done: {transactions} transactions in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn checksum(
    pool: &PgPool,
    schema: &str,
    table: &str,
    columns: &str,
    target: bool,
) -> (i64, String) {
    let filter = if target {
        "WHERE NOT __sinkfleet_deleted"
    } else {
        ""
    };
    let sql = format!(
        "SELECT count(*), coalesce(md5(string_agg(concat_ws('|', {columns}), ';' ORDER BY id)), '-')
           FROM {}.{} {filter}",
        quote(schema),
        quote(table)
    );
    sqlx::query_as(&sql)
        .fetch_one(pool)
        .await
        .unwrap_or((-1, "missing".into()))
}

/// Waits until every table's target equals its source (rows and checksum).
pub async fn verify(
    url: &str,
    schema: &str,
    target: &str,
    timeout_secs: u64,
) -> anyhow::Result<()> {
    let pool = PgPool::connect(url).await.context("connecting")?;
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    loop {
        let mut all_equal = true;
        let mut report = Vec::new();
        for (table, columns) in TABLES {
            let source = checksum(&pool, schema, table, columns, false).await;
            let target_sum = checksum(&pool, target, table, columns, true).await;
            all_equal &= source == target_sum;
            report.push(format!(
                "{table}: source {} rows [{}], target {} rows [{}]",
                source.0,
                &source.1[..8.min(source.1.len())],
                target_sum.0,
                &target_sum.1[..8.min(target_sum.1.len())]
            ));
        }
        println!("  {}", report.join("; "));
        if all_equal {
            println!(
                "OK: {target} is identical to {schema} (row counts and checksums of every table)"
            );
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("target {target} did not become identical to {schema} within {timeout_secs}s");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
