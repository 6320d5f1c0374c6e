//! Collapsing a batch to the newest version per key.
//!
//! A sink writes each `(table, key)` at most once per batch: fewer rows to
//! send, and no statement ever touches one row twice (which Postgres' `ON
//! CONFLICT` refuses). Collapsing keeps the newest version; on a tie the
//! later record wins (equal versions are replays of the same change).

use crate::change::{Change, Op};
use std::collections::HashMap;

/// Reduces `changes` to rounds of at most one change per `(table, key)`;
/// applying the rounds in order gives the same result as applying every
/// change. Usually there is one round holding the newest version per key.
///
/// Partial rows (an unchanged TOAST column left out) are why there can be
/// more: a partial newest change cannot be completed from an older change
/// in the batch, because that older change may be a stale replay (of an
/// earlier incarnation of the row, say) rather than its direct predecessor.
/// So for such a key the chain from its last complete upsert or delete up
/// to the newest stays, one change per round in version order, and the
/// target's version condition sorts out which of them still apply.
///
/// Truncates must not be passed here (see [`split_at_truncates`]). Equal
/// versions are replays: the later record is kept. Output order within a
/// round is first appearance, deterministic for a given input.
pub fn collapse<'a>(changes: impl IntoIterator<Item = &'a Change>) -> Vec<Vec<&'a Change>> {
    let mut slots: HashMap<String, usize> = HashMap::new();
    let mut chains: Vec<Vec<&'a Change>> = Vec::new();
    for change in changes {
        let identity = change.identity();
        match slots.get(&identity) {
            None => {
                slots.insert(identity, chains.len());
                chains.push(vec![change]);
            }
            Some(&i) => chains[i].push(change),
        }
    }
    let mut rounds: Vec<Vec<&'a Change>> = Vec::new();
    for chain in chains {
        for (round, change) in trim_chain(chain).into_iter().enumerate() {
            if rounds.len() <= round {
                rounds.push(Vec::new());
            }
            rounds[round].push(change);
        }
    }
    rounds
}

/// One key's changes → what must still be applied, oldest first.
fn trim_chain(mut chain: Vec<&Change>) -> Vec<&Change> {
    if chain.len() == 1 {
        return chain;
    }
    // Stable sort: among equal versions the later record stays last...
    chain.sort_by_key(|c| c.version);
    // ...and replaces the earlier ones.
    let mut deduped: Vec<&Change> = Vec::with_capacity(chain.len());
    for change in chain {
        match deduped.last_mut() {
            Some(last) if last.version == change.version => *last = change,
            _ => deduped.push(change),
        }
    }
    // Columns any upsert of this key carries; an upsert lacking one is partial.
    let mut all_columns: Vec<&str> = Vec::new();
    for change in &deduped {
        if let Some(row) = &change.row {
            for name in row.names() {
                if !all_columns.contains(&name) {
                    all_columns.push(name);
                }
            }
        }
    }
    let complete = |c: &&Change| match &c.row {
        None => true, // a delete replaces everything
        Some(row) => all_columns.iter().all(|n| row.contains(n)),
    };
    let start = deduped.iter().rposition(complete).unwrap_or(0);
    deduped.split_off(start)
}

/// Splits changes into runs separated by truncates: `[run, truncate, run,
/// ...]` in stream order. Collapsing across a truncate would reorder a row
/// change and the truncate that must follow or precede it.
pub fn split_at_truncates(changes: Vec<&Change>) -> Vec<Vec<&Change>> {
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

/// The key columns that every keyed change in `changes` (one target
/// table's share of a batch) names, in the first such change's order;
/// empty when none is keyed (only truncates).
///
/// Checked per change, not on a sample: a record whose key names other
/// columns than the rest would be applied under a key that is not the
/// table's, or decide the key of a table created for the batch. Such a
/// batch is refused as a whole, so the sink's split isolates the record
/// for the dead-letter topic before any of it (or its DDL) is applied.
pub fn agreed_key_columns<'a>(changes: &[&'a Change]) -> Result<Vec<&'a str>, String> {
    let mut agreed: Option<Vec<&str>> = None;
    for change in changes.iter().filter(|c| !c.key.columns.is_empty()) {
        match &agreed {
            None => agreed = Some(change.key.names().collect()),
            Some(names) => {
                let same = change.key.columns.len() == names.len()
                    && change.key.names().all(|n| names.contains(&n));
                if !same {
                    return Err(format!(
                        "{}: a change keyed by ({}) among changes keyed by ({})",
                        change.table,
                        change.key.names().collect::<Vec<_>>().join(", "),
                        names.join(", "),
                    ));
                }
            }
        }
    }
    Ok(agreed.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Row, TableId, Value, Version};
    use std::sync::Arc;

    fn refs(batch: &[Change]) -> Vec<&Change> {
        batch.iter().collect()
    }

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
                    .map(|(n, v)| (Arc::from(*n), v.clone()))
                    .collect(),
            }),
            version: Version::new(version, 0),
            schema: None,
            unchanged: Vec::new(),
            source_ts_ms: None,
            transaction: None,
        }
    }

    #[test]
    fn newest_version_wins_regardless_of_arrival_order() {
        let batch = vec![
            change(1, 5, Op::Update, &[("a", Value::Int(5))]),
            change(2, 1, Op::Create, &[("a", Value::Int(1))]),
            change(1, 3, Op::Update, &[("a", Value::Int(3))]),
            change(1, 7, Op::Delete, &[]),
            change(1, 6, Op::Update, &[("a", Value::Int(6))]),
        ];
        let out = collapse(&batch);
        assert_eq!(out.len(), 1, "complete rows need one round");
        let round = &out[0];
        assert_eq!(round.len(), 2);
        assert_eq!(round[0].version, Version::new(7, 0));
        assert_eq!(round[0].op, Op::Delete);
        assert_eq!(round[1].key.get("id"), Some(&Value::Int(2)));
    }

    #[test]
    fn a_partial_newest_row_keeps_its_chain_from_the_last_complete_one() {
        let full = |v, body: &str| {
            change(
                1,
                v,
                Op::Update,
                &[
                    ("body", Value::Text(body.into())),
                    ("n", Value::Int(v as i64)),
                ],
            )
        };
        // body unchanged (TOAST placeholder) in the partial updates
        let partial = |v| change(1, v, Op::Update, &[("n", Value::Int(v as i64))]);
        let batch = vec![
            full(1, "stale replay"),
            full(4, "re-created"),
            partial(6),
            partial(5),
            full(1, "stale replay"),
        ];
        let out = collapse(&batch);
        let versions: Vec<Vec<u64>> = out
            .iter()
            .map(|r| r.iter().map(|c| c.version.major).collect())
            .collect();
        assert_eq!(versions, vec![vec![4], vec![5], vec![6]]);
        // A delete also starts the chain afresh.
        let batch = vec![full(1, "a"), change(1, 2, Op::Delete, &[]), partial(3)];
        let out = collapse(&batch);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0][0].op, Op::Delete);
    }

    #[test]
    fn truncates_split_runs() {
        let t = Change {
            op: Op::Truncate,
            key: Row::default(),
            row: None,
            ..change(0, 4, Op::Delete, &[])
        };
        let changes = [
            change(1, 1, Op::Create, &[]),
            t,
            change(1, 9, Op::Create, &[]),
        ];
        let runs = split_at_truncates(changes.iter().collect());
        assert_eq!(runs.len(), 3);
        assert_eq!(runs[1][0].op, Op::Truncate);
    }

    #[test]
    fn every_change_must_name_the_same_key_columns() {
        let keyed = |names: &[&str]| {
            let mut c = change(1, 1, Op::Create, &[]);
            c.key = Row::default();
            for n in names {
                c.key.set(*n, Value::Int(1));
            }
            c
        };
        let batch = vec![keyed(&["id", "t"]), keyed(&["t", "id"]), keyed(&[])];
        assert_eq!(agreed_key_columns(&refs(&batch)), Ok(vec!["id", "t"]));
        // The odd one out is found wherever it sits in the batch.
        for at in 0..4 {
            let mut batch: Vec<Change> = (0..3).map(|_| keyed(&["id"])).collect();
            batch.insert(at, keyed(&["x"]));
            let err = agreed_key_columns(&refs(&batch)).unwrap_err();
            assert!(err.contains("keyed by"), "{err}");
        }
        assert_eq!(agreed_key_columns(&[]), Ok(vec![]));
    }
}
