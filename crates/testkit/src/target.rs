//! Reading a Postgres target back in the workload's terms.

use crate::workload::ExpectedRow;
use sqlx::PgPool;
use std::collections::BTreeMap;

/// `(id, name, email, balance, updated_at micros, bio, tier)` as selected below.
type CustomerRow = (
    i64,
    String,
    String,
    String,
    i64,
    Option<String>,
    Option<String>,
);

/// Live rows of `<schema>.customers`, rendered like [`ExpectedRow`].
pub async fn customers(
    pool: &PgPool,
    schema: &str,
) -> Result<BTreeMap<i64, ExpectedRow>, sqlx::Error> {
    let sql = format!(
        "SELECT id, name, email, balance::text, (extract(epoch FROM updated_at) * 1000000)::bigint, bio, tier
           FROM \"{}\".customers WHERE NOT __sinkfleet_deleted",
        schema.replace('"', "\"\"")
    );
    let rows: Vec<CustomerRow> = sqlx::query_as(&sql).fetch_all(pool).await?;
    Ok(rows
        .into_iter()
        .map(|(id, name, email, balance, updated_at_micros, bio, tier)| {
            (
                id,
                ExpectedRow {
                    id,
                    name,
                    email,
                    balance,
                    updated_at_micros,
                    bio,
                    tier,
                },
            )
        })
        .collect())
}
