//! A batch as per-table work: records split by target table, each
//! table's changes split into runs at truncates.

use crate::batch::split_at_truncates;
use crate::change::{Change, Op, TableId};
use crate::error::SinkError;
use crate::sink::SinkRecord;
use std::collections::HashMap;
use std::hash::Hash;

/// One target table's share of a batch, in stream order.
#[derive(Debug)]
pub struct TableShare<'a, T> {
    /// Where the records go.
    pub target: T,
    /// The records, in batch order.
    pub records: Vec<&'a SinkRecord>,
}

impl<'a, T> TableShare<'a, T> {
    /// The changes, in batch order (borrowed: a batch is never copied).
    pub fn changes(&self) -> Vec<&'a Change> {
        self.records.iter().map(|r| &r.change).collect()
    }
}

/// Splits `batch` by target table (`route` maps a source table to it),
/// tables in order of first appearance, records in batch order. A record
/// whose table cannot be routed fails the batch (the runtime then isolates
/// it for the dead-letter topic).
pub fn split_by_target<'a, T: Clone + Eq + Hash>(
    batch: &'a [SinkRecord],
    mut route: impl FnMut(&TableId) -> Result<T, SinkError>,
) -> Result<Vec<TableShare<'a, T>>, SinkError> {
    let mut index: HashMap<T, usize> = HashMap::new();
    let mut shares: Vec<TableShare<'a, T>> = Vec::new();
    for record in batch {
        let target = route(&record.change.table)?;
        let i = *index.entry(target.clone()).or_insert_with(|| {
            shares.push(TableShare {
                target,
                records: Vec::new(),
            });
            shares.len() - 1
        });
        shares[i].records.push(record);
    }
    Ok(shares)
}

/// A stretch of one table's changes between truncates.
#[derive(Debug, PartialEq)]
pub enum Run<'a> {
    /// Truncates, in stream order.
    Truncates(Vec<&'a Change>),
    /// Row changes (upserts and deletes), in stream order: collapse them
    /// into rounds ([`crate::batch::collapse`]) to apply.
    Changes(Vec<&'a Change>),
}

/// Splits one table's changes into [`Run`]s: collapsing across a truncate
/// would reorder a row change and the truncate it must follow or precede.
pub fn runs(changes: Vec<&Change>) -> Vec<Run<'_>> {
    split_at_truncates(changes)
        .into_iter()
        .map(|run| {
            if run.first().is_some_and(|c| c.op == Op::Truncate) {
                Run::Truncates(run)
            } else {
                Run::Changes(run)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::test_record as record;

    #[test]
    fn shares_keep_first_appearance_and_stream_order() {
        let batch = [
            record("b", Op::Create, 1),
            record("a", Op::Create, 2),
            record("b", Op::Delete, 3),
        ];
        let shares = split_by_target(&batch, |t| Ok(t.table.clone())).unwrap();
        let seen: Vec<(String, Vec<i64>)> = shares
            .iter()
            .map(|g| {
                (
                    g.target.clone(),
                    g.records.iter().map(|r| r.position.offset).collect(),
                )
            })
            .collect();
        assert_eq!(seen, vec![("b".into(), vec![1, 3]), ("a".into(), vec![2])]);
        let refused = split_by_target(&batch, |t| {
            if t.table == "a" {
                Err(SinkError::schema("no route"))
            } else {
                Ok(())
            }
        });
        assert!(refused.is_err());
    }

    #[test]
    fn runs_split_at_truncates() {
        let changes: Vec<Change> = [Op::Create, Op::Truncate, Op::Truncate, Op::Update]
            .into_iter()
            .enumerate()
            .map(|(i, op)| record("t", op, i as i64).change)
            .collect();
        let kinds: Vec<(bool, usize)> = runs(changes.iter().collect())
            .iter()
            .map(|r| match r {
                Run::Truncates(t) => (true, t.len()),
                Run::Changes(c) => (false, c.len()),
            })
            .collect();
        assert_eq!(kinds, vec![(false, 1), (true, 1), (true, 1), (false, 1)]);
    }
}
