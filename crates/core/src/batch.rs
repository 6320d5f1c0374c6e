//! Collapsing a batch to the newest version per key.
//!
//! A sink writes each `(table, key)` at most once per batch: fewer rows to
//! send, and no statement ever touches one row twice (which Postgres' `ON
//! CONFLICT` refuses). Collapsing keeps the newest version; on a tie the
//! later record wins (equal versions are replays of the same change).

use crate::change::{Change, Op};
use std::collections::HashMap;

/// Reduces `changes` to one change per `(table, key)`: the newest version.
///
/// Partial rows: when the newest change is an upsert that lacks columns
/// (unchanged TOAST values), those columns are completed from the next
/// older upsert of the same key in the batch, so that dropping the older
/// change does not lose values it carried. Truncates are kept in place;
/// a truncate splits the batch (see [`split_at_truncates`]) before collapse.
///
/// The output keeps the order of first appearance, which is deterministic
/// for a given input (sinks sort further where lock order matters).
pub fn collapse(changes: impl IntoIterator<Item = Change>) -> Vec<Change> {
    let mut slots: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<Change> = Vec::new();
    for change in changes {
        if change.op == Op::Truncate {
            out.push(change);
            continue;
        }
        let identity = change.identity();
        match slots.get(&identity) {
            None => {
                slots.insert(identity, out.len());
                out.push(change);
            }
            Some(&i) => {
                let existing = &mut out[i];
                let (mut newer, older) = if change.version >= existing.version {
                    (change, std::mem::replace(existing, placeholder()))
                } else {
                    (std::mem::replace(existing, placeholder()), change)
                };
                complete_partial(&mut newer, &older);
                out[i] = newer;
            }
        }
    }
    out
}

fn placeholder() -> Change {
    Change {
        table: crate::TableId::new("", ""),
        op: Op::Truncate,
        key: Default::default(),
        row: None,
        version: crate::Version::ZERO,
        schema: None,
    }
}

/// Fills columns missing from `newer`'s row with `older`'s values when both
/// are upserts.
fn complete_partial(newer: &mut Change, older: &Change) {
    let (Some(row), Some(old_row)) = (newer.row.as_mut(), older.row.as_ref()) else {
        return;
    };
    for (name, value) in &old_row.columns {
        if !row.contains(name) {
            row.columns.push((name.clone(), value.clone()));
        }
    }
}

/// Splits changes into runs separated by truncates: `[run, truncate, run,
/// ...]` in stream order. Collapsing across a truncate would reorder a row
/// change and the truncate that must follow or precede it.
pub fn split_at_truncates(changes: Vec<Change>) -> Vec<Vec<Change>> {
    let mut runs = vec![Vec::new()];
    for change in changes {
        if change.op == Op::Truncate {
            runs.push(vec![change]);
            runs.push(Vec::new());
        } else if let Some(last) = runs.last_mut() {
            last.push(change);
        }
    }
    runs.retain(|r| !r.is_empty());
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Row, TableId, Value, Version};

    fn change(id: i64, version: u64, op: Op, cols: &[(&str, Value)]) -> Change {
        let mut key = Row::default();
        key.set("id", Value::Int(id));
        Change {
            table: TableId::new("s", "t"),
            op,
            key,
            row: op.is_upsert().then(|| Row {
                columns: cols
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.clone()))
                    .collect(),
            }),
            version: Version::new(version, 0),
            schema: None,
        }
    }

    #[test]
    fn newest_version_wins_regardless_of_arrival_order() {
        let out = collapse(vec![
            change(1, 5, Op::Update, &[("a", Value::Int(5))]),
            change(2, 1, Op::Create, &[("a", Value::Int(1))]),
            change(1, 3, Op::Update, &[("a", Value::Int(3))]),
            change(1, 7, Op::Delete, &[]),
            change(1, 6, Op::Update, &[("a", Value::Int(6))]),
        ]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].version, Version::new(7, 0));
        assert_eq!(out[0].op, Op::Delete);
        assert_eq!(out[1].key.get("id"), Some(&Value::Int(2)));
    }

    #[test]
    fn partial_newest_row_is_completed_from_older_upsert() {
        let out = collapse(vec![
            change(
                1,
                1,
                Op::Update,
                &[
                    ("id", Value::Int(1)),
                    ("body", Value::Text("new".into())),
                    ("n", Value::Int(1)),
                ],
            ),
            // body unchanged (TOAST placeholder) in the newer update
            change(
                1,
                2,
                Op::Update,
                &[("id", Value::Int(1)), ("n", Value::Int(2))],
            ),
        ]);
        let row = out[0].row.as_ref().unwrap();
        assert_eq!(row.get("n"), Some(&Value::Int(2)));
        assert_eq!(row.get("body"), Some(&Value::Text("new".into())));
    }

    #[test]
    fn truncates_split_runs() {
        let t = Change {
            op: Op::Truncate,
            key: Row::default(),
            row: None,
            ..change(0, 4, Op::Delete, &[])
        };
        let runs = split_at_truncates(vec![
            change(1, 1, Op::Create, &[]),
            t,
            change(1, 9, Op::Create, &[]),
        ]);
        assert_eq!(runs.len(), 3);
        assert_eq!(runs[1][0].op, Op::Truncate);
    }
}
