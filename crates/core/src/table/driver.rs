//! The table-sink pipeline, once: a sink implements [`TableTarget`] (its
//! session, how a table is made to fit, how a truncate and a run of row
//! changes are applied) and [`apply`] does the rest in the same order for
//! every sink.
//!
//! For one batch: split the records by target table; prepare every table
//! (load, plan, DDL) before any row is written, so a refusal in planning
//! leaves no row behind; then per table, in stream order, apply truncates
//! and the runs of row changes between them; commit; count. After a
//! failure the target forgets its cached table metadata (a table may have
//! been dropped or altered behind its back) and reloads it on the retry.

use super::ApplyStats;
use super::split::{Run, runs, split_by_target};
use crate::change::{Change, TableId};
use crate::error::SinkError;
use crate::sink::SinkRecord;
use std::future::Future;
use std::hash::Hash;

/// A table-shaped target: the hooks [`apply`] calls, in this order per
/// batch: `begin`, `prepare` for each table, then `truncate` and
/// `apply_run` in stream order, `commit`, and `remember` for each table
/// (`forget` instead after any error).
pub trait TableTarget: Send {
    /// A target table's name.
    type Target: Clone + Eq + Hash + Send + Sync;
    /// What the sink knows about a table that fits the batch.
    type Meta: Send + Sync;
    /// One batch's unit of work: a transaction, or nothing for a target
    /// whose writes are durable one by one.
    type Session: Send;

    /// The target table of a source table (see [`super::route`]).
    fn route(&self, table: &TableId) -> Result<Self::Target, SinkError>;

    /// The table's name in metrics.
    fn label(target: &Self::Target) -> String;

    /// Starts the batch's session.
    fn begin(&mut self) -> impl Future<Output = Result<Self::Session, SinkError>> + Send;

    /// Makes `target` fit `changes` (create it, add and widen columns:
    /// see [`super::plan`]) and returns its metadata, cached or loaded.
    fn prepare(
        &mut self,
        session: &mut Self::Session,
        target: &Self::Target,
        changes: &[&Change],
    ) -> impl Future<Output = Result<Self::Meta, SinkError>> + Send;

    /// Applies one truncate of `target` (a versioned delete of every
    /// older row).
    fn truncate(
        &mut self,
        session: &mut Self::Session,
        target: &Self::Target,
        meta: &mut Self::Meta,
        truncate: &Change,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Applies run number `index` of the table's row changes (upserts and
    /// deletes between truncates, in stream order, not collapsed) from
    /// `records`; returns how many changed a row (the rest were stale).
    fn apply_run(
        &mut self,
        session: &mut Self::Session,
        meta: &mut Self::Meta,
        records: &[&SinkRecord],
        index: usize,
        run: Vec<&Change>,
    ) -> impl Future<Output = Result<u64, SinkError>> + Send;

    /// Makes the batch durable.
    fn commit(
        &mut self,
        session: Self::Session,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Keeps a table's metadata for the next batch.
    fn remember(&mut self, target: Self::Target, meta: Self::Meta);

    /// Drops every cached table's metadata.
    fn forget(&mut self);
}

/// Applies `batch` through `target` (see the module docs); the counts are
/// published for `sink` once the batch is durable.
pub async fn apply<T: TableTarget>(
    target: &mut T,
    batch: &[SinkRecord],
    sink: &'static str,
) -> Result<(), SinkError> {
    match try_apply(target, batch).await {
        Ok(stats) => {
            stats.publish(sink);
            Ok(())
        }
        Err(e) => {
            target.forget();
            Err(e)
        }
    }
}

async fn try_apply<T: TableTarget>(
    target: &mut T,
    batch: &[SinkRecord],
) -> Result<ApplyStats, SinkError> {
    let shares = split_by_target(batch, |table| target.route(table))?;
    let mut session = target.begin().await?;
    let mut tables = Vec::with_capacity(shares.len());
    for share in shares {
        let changes = share.changes();
        let meta = target
            .prepare(&mut session, &share.target, &changes)
            .await?;
        tables.push((share, changes, meta));
    }
    let mut stats = ApplyStats::default();
    for (share, changes, meta) in &mut tables {
        let label = T::label(&share.target);
        for (index, run) in runs(std::mem::take(changes)).into_iter().enumerate() {
            match run {
                Run::Truncates(truncates) => {
                    for t in &truncates {
                        target
                            .truncate(&mut session, &share.target, meta, t)
                            .await?;
                    }
                }
                Run::Changes(run) => {
                    let submitted = run.len() as u64;
                    let applied = target
                        .apply_run(&mut session, meta, &share.records, index, run)
                        .await?;
                    stats.add(&label, submitted, applied);
                }
            }
        }
    }
    target.commit(session).await?;
    for (share, _, meta) in tables {
        target.remember(share.target, meta);
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::Op;
    use crate::table::test_record as record;

    /// Logs every hook call; fails `apply_run` for table `bad`.
    #[derive(Default)]
    struct Log(Vec<String>);

    impl TableTarget for Log {
        type Target = String;
        type Meta = usize;
        type Session = ();

        fn route(&self, table: &TableId) -> Result<String, SinkError> {
            Ok(table.table.clone())
        }
        fn label(target: &String) -> String {
            target.clone()
        }
        async fn begin(&mut self) -> Result<(), SinkError> {
            self.0.push("begin".into());
            Ok(())
        }
        async fn prepare(
            &mut self,
            _: &mut (),
            target: &String,
            changes: &[&Change],
        ) -> Result<usize, SinkError> {
            self.0.push(format!("prepare {target} {}", changes.len()));
            Ok(0)
        }
        async fn truncate(
            &mut self,
            _: &mut (),
            target: &String,
            _: &mut usize,
            _: &Change,
        ) -> Result<(), SinkError> {
            self.0.push(format!("truncate {target}"));
            Ok(())
        }
        async fn apply_run(
            &mut self,
            _: &mut (),
            _: &mut usize,
            records: &[&SinkRecord],
            index: usize,
            run: Vec<&Change>,
        ) -> Result<u64, SinkError> {
            let table = &run[0].table.table;
            self.0.push(format!(
                "run {table} #{index} {} of {}",
                run.len(),
                records.len()
            ));
            if table == "bad" {
                return Err(SinkError::apply("refused"));
            }
            Ok(run.len() as u64)
        }
        async fn commit(&mut self, _: ()) -> Result<(), SinkError> {
            self.0.push("commit".into());
            Ok(())
        }
        fn remember(&mut self, target: String, _: usize) {
            self.0.push(format!("remember {target}"));
        }
        fn forget(&mut self) {
            self.0.push("forget".into());
        }
    }

    #[tokio::test]
    async fn every_table_is_prepared_before_any_row_is_written() {
        let batch = [
            record("a", Op::Create, 1),
            record("b", Op::Create, 2),
            record("a", Op::Truncate, 3),
            record("a", Op::Update, 4),
        ];
        let mut log = Log::default();
        apply(&mut log, &batch, "test").await.unwrap();
        assert_eq!(
            log.0,
            [
                "begin",
                "prepare a 3",
                "prepare b 1",
                "run a #0 1 of 3",
                "truncate a",
                "run a #2 1 of 3",
                "run b #0 1 of 1",
                "commit",
                "remember a",
                "remember b",
            ]
        );
    }

    #[tokio::test]
    async fn a_failed_batch_commits_nothing_and_forgets_the_metadata() {
        let batch = [record("a", Op::Create, 1), record("bad", Op::Create, 2)];
        let mut log = Log::default();
        assert!(apply(&mut log, &batch, "test").await.is_err());
        assert_eq!(
            log.0,
            [
                "begin",
                "prepare a 1",
                "prepare bad 1",
                "run a #0 1 of 1",
                "run bad #0 1 of 1",
                "forget",
            ]
        );
    }
}
