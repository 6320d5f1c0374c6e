//! A realistic change stream for a `customers` table, and the final state a
//! correct sink must reach.
//!
//! The stream contains creates, updates, partial updates (an unchanged
//! TOASTed `bio` replaced by Debezium's placeholder), deletes followed by
//! Kafka tombstones, re-creates, a column added mid-stream (`tier`),
//! duplicates, a replayed range, and swapped (out-of-order) updates.
//! `bio` is only set on create, so a partial update is always consistent
//! with what the sink stored, whatever the arrival order.

use crate::debezium::{Column, Table, UNAVAILABLE, decimal_bytes};
use crate::kafka::Record;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Knobs of the generated stream.
#[derive(Debug, Clone)]
pub struct Options {
    /// Distinct primary keys.
    pub keys: i64,
    /// Changes before duplicates and replays are added.
    pub changes: usize,
    /// RNG seed (the stream is deterministic for a seed).
    pub seed: u64,
    /// JsonConverter `schemas.enable`.
    pub with_schema: bool,
    /// Fraction of the stream after which the `tier` column exists (None: never).
    pub new_column_at: Option<f64>,
    /// Add duplicates, a replayed range and swapped updates.
    pub disorder: bool,
    /// Length of `bio` in bytes (large values are TOASTed in Postgres).
    pub bio_len: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            keys: 200,
            changes: 2_000,
            seed: 7,
            with_schema: true,
            new_column_at: Some(0.5),
            disorder: true,
            bio_len: 64,
        }
    }
}

/// The expected final state of one row (all as text, as Postgres renders it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExpectedRow {
    /// `id`.
    pub id: i64,
    /// `name`.
    pub name: String,
    /// `email`.
    pub email: String,
    /// `balance` (numeric(12,2)) as text.
    pub balance: String,
    /// `updated_at` as epoch microseconds.
    pub updated_at_micros: i64,
    /// `bio`.
    pub bio: Option<String>,
    /// `tier` (NULL for rows last written before the column existed).
    pub tier: Option<String>,
}

/// A generated stream and its outcome.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The source table.
    pub table: Table,
    /// Records to produce, in order.
    pub records: Vec<Record>,
    /// Final rows (deleted keys absent).
    pub expected: BTreeMap<i64, ExpectedRow>,
    /// Keys whose final state is deleted.
    pub deleted: Vec<i64>,
}

/// The generated table: `public.customers`.
pub fn customers_table() -> Table {
    let col = |name, connect_type, logical, parameters, optional| Column {
        name,
        connect_type,
        logical,
        parameters,
        optional,
    };
    Table {
        schema: "public",
        table: "customers",
        key: vec!["id"],
        columns: vec![
            col("id", "int64", None, None, false),
            col("name", "string", None, None, false),
            col("email", "string", None, None, true),
            col(
                "balance",
                "bytes",
                Some("org.apache.kafka.connect.data.Decimal"),
                Some(json!({"scale": "2", "connect.decimal.precision": "12"})),
                false,
            ),
            col(
                "updated_at",
                "int64",
                Some("io.debezium.time.MicroTimestamp"),
                None,
                false,
            ),
            col("bio", "string", None, None, true),
            col("tier", "string", None, None, true),
        ],
    }
}

struct Emitted {
    key: i64,
    op: char,
    record: Record,
}

/// Generates a workload.
pub fn generate(opts: &Options) -> Workload {
    let table = customers_table();
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut state: BTreeMap<i64, ExpectedRow> = BTreeMap::new();
    let mut out: Vec<Emitted> = Vec::new();
    let mut lsn: u64 = 0x1_0000_0000;
    let tier_from = opts
        .new_column_at
        .map(|f| (opts.changes as f64 * f) as usize);

    for i in 0..opts.changes {
        let key = rng.random_range(1..=opts.keys);
        let has_tier = tier_from.is_some_and(|t| i >= t);
        let columns = if has_tier {
            table.columns.len()
        } else {
            table.columns.len() - 1
        };
        lsn += 100;
        let commit = lsn;
        let change = lsn + 8;
        let micros = 1_700_000_000_000_000i64 + i as i64 * 1_000_003;
        let existing = state.get(&key).cloned();
        let roll: f64 = rng.random();
        let (op, row, partial) = match existing {
            None => {
                let row = ExpectedRow {
                    id: key,
                    name: format!("customer-{key}-{i}"),
                    email: format!("c{key}.{i}@example.com"),
                    balance: cents(rng.random_range(0..10_000_000)),
                    updated_at_micros: micros,
                    bio: Some(bio(key, i, opts.bio_len)),
                    tier: has_tier.then(|| tier(i)),
                };
                ('c', Some(row), false)
            }
            Some(_) if roll < 0.15 => ('d', None, false),
            Some(prev) => {
                let partial = roll < 0.35;
                let row = ExpectedRow {
                    name: format!("customer-{key}-{i}"),
                    balance: cents(rng.random_range(0..10_000_000)),
                    updated_at_micros: micros,
                    tier: if has_tier {
                        Some(tier(i))
                    } else {
                        prev.tier.clone()
                    },
                    ..prev
                };
                ('u', Some(row), partial)
            }
        };
        let value = match (&row, op) {
            (Some(r), _) => {
                let after = encode_row(r, has_tier, partial);
                table.value(
                    &op.to_string(),
                    None,
                    Some(&after),
                    commit,
                    change,
                    columns,
                    opts.with_schema,
                )
            }
            (None, _) => {
                // Default replica identity: before holds the key; Debezium
                // fills the other columns with null, or with their type's
                // zero where the column is NOT NULL (the schema says so).
                let mut before = Map::new();
                for c in table.columns.iter().take(columns) {
                    let value = match (c.name, c.optional, c.connect_type) {
                        ("id", ..) => json!(key),
                        (_, true, _) => Value::Null,
                        (_, false, "string") => json!(""),
                        // Connect's Decimal zero: one byte, 0.
                        (_, false, "bytes") => json!("AA=="),
                        (_, false, _) => json!(0),
                    };
                    before.insert(c.name.into(), value);
                }
                table.value(
                    "d",
                    Some(&before),
                    None,
                    commit,
                    change,
                    columns,
                    opts.with_schema,
                )
            }
        };
        let mut key_row = Map::new();
        key_row.insert("id".into(), json!(key));
        let key_bytes = table.key(&key_row, opts.with_schema);
        out.push(Emitted {
            key,
            op,
            record: Record {
                key: Some(key_bytes.clone()),
                value: Some(value),
            },
        });
        match row {
            Some(r) => {
                state.insert(key, r);
            }
            None => {
                state.remove(&key);
                // Debezium follows a delete with a tombstone for compaction.
                out.push(Emitted {
                    key,
                    op: 't',
                    record: Record {
                        key: Some(key_bytes),
                        value: None,
                    },
                });
            }
        }
    }

    let mut records: Vec<Emitted> = out;
    if opts.disorder && !records.is_empty() {
        // Swap some consecutive updates of one key: a newer update arrives
        // before an older one.
        let mut last_update: BTreeMap<i64, usize> = BTreeMap::new();
        let mut swaps = Vec::new();
        for (idx, e) in records.iter().enumerate() {
            if e.op == 'u' {
                if let Some(&prev) = last_update.get(&e.key)
                    && rng.random_bool(0.1)
                {
                    swaps.push((prev, idx));
                }
                last_update.insert(e.key, idx);
            } else {
                last_update.remove(&e.key);
            }
        }
        for (a, b) in swaps {
            if records[a].key == records[b].key {
                records.swap(a, b);
            }
        }
        // Duplicates of random earlier records, appended later.
        let n = records.len();
        for _ in 0..n / 20 {
            let i = rng.random_range(0..n);
            let dup = Emitted {
                key: records[i].key,
                op: records[i].op,
                record: records[i].record.clone(),
            };
            records.push(dup);
        }
        // A replayed range (a producer retry storm, or a connector restart).
        let (from, to) = (n / 4, n / 2);
        for i in from..to {
            let again = Emitted {
                key: records[i].key,
                op: records[i].op,
                record: records[i].record.clone(),
            };
            records.push(again);
        }
    }

    let all_keys: Vec<i64> = (1..=opts.keys).collect();
    let deleted = all_keys
        .into_iter()
        .filter(|k| !state.contains_key(k))
        .collect();
    Workload {
        table,
        records: records.into_iter().map(|e| e.record).collect(),
        expected: state,
        deleted,
    }
}

fn cents(c: i64) -> String {
    format!("{}.{:02}", c / 100, c % 100)
}

fn tier(i: usize) -> String {
    ["bronze", "silver", "gold"][i % 3].to_owned()
}

fn bio(key: i64, i: usize, len: usize) -> String {
    let seed = format!("bio of {key} written at change {i}; ");
    seed.repeat(len / seed.len() + 1)[..len].to_owned()
}

fn encode_row(r: &ExpectedRow, has_tier: bool, partial: bool) -> Map<String, Value> {
    let unscaled: i64 = r.balance.replace('.', "").parse().unwrap_or(0);
    let mut m = Map::new();
    m.insert("id".into(), json!(r.id));
    m.insert("name".into(), json!(r.name));
    m.insert("email".into(), json!(r.email));
    m.insert("balance".into(), json!(decimal_bytes(unscaled)));
    m.insert("updated_at".into(), json!(r.updated_at_micros));
    m.insert(
        "bio".into(),
        if partial {
            json!(UNAVAILABLE)
        } else {
            json!(r.bio)
        },
    );
    if has_tier {
        m.insert("tier".into(), json!(r.tier));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_covers_every_kind_of_change() {
        let a = generate(&Options::default());
        let b = generate(&Options::default());
        assert_eq!(a.records.len(), b.records.len());
        assert_eq!(a.expected, b.expected);
        let text: Vec<String> = a
            .records
            .iter()
            .filter_map(|r| {
                r.value
                    .as_ref()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            })
            .collect();
        assert!(text.iter().any(|t| t.contains(UNAVAILABLE)));
        assert!(text.iter().any(|t| t.contains("\"tier\"")));
        assert!(a.records.iter().any(|r| r.value.is_none()), "tombstones");
        assert!(!a.deleted.is_empty() && !a.expected.is_empty());
    }

    #[test]
    fn decimals_encode_shortest_twos_complement() {
        assert_eq!(decimal_bytes(299), "ASs=");
        assert_eq!(decimal_bytes(0), "AA==");
    }
}
