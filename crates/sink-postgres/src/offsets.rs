//! Offsets in the target: each partition's next offset, written in the same
//! transaction as the rows it covers and fenced by an epoch per partition.
//!
//! The table `<meta_schema>.offsets` (created with the other bookkeeping
//! tables by [`catalog::ensure_meta`]) holds one row per consumer group and
//! partition:
//! * **claim** (on assignment, [`OffsetStore::claim`]) bumps the partition's
//!   epoch in its own, committed transaction and returns the stored next
//!   offset, where consumption resumes.
//! * **advance** (in every batch's transaction, just before its commit)
//!   moves the next offset on, but only where the epoch is still the one
//!   this process claimed. A partition claimed since by another process (a
//!   rebalance while this one was paused: a zombie) matches no row: the
//!   batch's transaction rolls back and the write fails retryably, until the
//!   revoke that follows drops the partition from the retry.
//!
//! The check sits next to the commit on purpose. A claim committed before
//! it is seen (under READ COMMITTED an `UPDATE` re-reads the newest row);
//! a claim that comes after it waits for the row lock until this
//! transaction ends, and then reads the offset this transaction wrote. So
//! every batch lands either wholly before the new owner starts, and is not
//! read again, or not at all.

use crate::catalog;
use crate::config::PostgresSinkConfig;
use crate::error::classify;
use crate::ident::Ident;
use crate::metrics::FENCED_WRITES_TOTAL;
use sinkfleet_core::{ClaimFuture, OffsetStore, PartitionId, Position, SinkError};
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The offsets of one consumer group in the target, shared by the
/// process's sink instances and the consumer's assign callback.
pub struct TargetOffsets {
    pool: PgPool,
    cfg: PostgresSinkConfig,
    /// `<meta_schema>.offsets`, quoted.
    table: String,
    group: String,
    /// The epoch this process claimed, per partition it owns.
    epochs: Mutex<HashMap<PartitionId, i64>>,
    /// The bookkeeping tables exist.
    ready: AtomicBool,
}

impl TargetOffsets {
    pub(crate) fn new(
        pool: PgPool,
        cfg: PostgresSinkConfig,
        group: &str,
    ) -> Result<Self, SinkError> {
        let meta = Ident::new(&cfg.meta_schema).map_err(|e| SinkError::schema(e.to_string()))?;
        crate::metrics::at_zero::target_offsets();
        Ok(TargetOffsets {
            pool,
            cfg,
            table: format!("{meta}.offsets"),
            group: group.to_owned(),
            epochs: Mutex::new(HashMap::new()),
            ready: AtomicBool::new(false),
        })
    }

    async fn claim_now(&self, partitions: &[PartitionId]) -> Result<Vec<Option<i64>>, SinkError> {
        if !self.ready.load(Ordering::Acquire) {
            let mut conn = self.pool.acquire().await.map_err(classify)?;
            catalog::ensure_meta(&mut conn, &self.cfg).await?;
            self.ready.store(true, Ordering::Release);
        }
        let topics: Vec<&str> = partitions.iter().map(|(t, _)| &**t).collect();
        let numbers: Vec<i32> = partitions.iter().map(|(_, p)| *p).collect();
        // Sorted, so two processes claiming overlapping sets lock the rows
        // in the same order and cannot deadlock.
        let sql = format!(
            "INSERT INTO {t} AS o (group_id, topic, partition, next_offset, epoch)
             SELECT $1, u.topic, u.partition, NULL, 1
               FROM unnest($2::text[], $3::integer[]) AS u(topic, partition)
              ORDER BY 2, 3
             ON CONFLICT (group_id, topic, partition)
             DO UPDATE SET epoch = o.epoch + 1, claimed_at = now()
             RETURNING o.topic, o.partition, o.next_offset, o.epoch",
            t = self.table
        );
        let rows: Vec<(String, i32, Option<i64>, i64)> = sqlx::query_as(&sql)
            .bind(&self.group)
            .bind(&topics)
            .bind(&numbers)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        let claimed: HashMap<(String, i32), (Option<i64>, i64)> = rows
            .into_iter()
            .map(|(t, p, next, epoch)| ((t, p), (next, epoch)))
            .collect();
        let mut epochs = self.epochs.lock().unwrap_or_else(|p| p.into_inner());
        let mut stored = Vec::with_capacity(partitions.len());
        for (topic, partition) in partitions {
            let Some(&(next, epoch)) = claimed.get(&(topic.to_string(), *partition)) else {
                return Err(SinkError::Retryable(format!(
                    "claiming {topic}/{partition} in {} returned no row",
                    self.table
                )));
            };
            epochs.insert((Arc::clone(topic), *partition), epoch);
            tracing::info!(%topic, partition, epoch, next_offset = ?next, "partition claimed in the target");
            stored.push(next);
        }
        Ok(stored)
    }

    /// Writes `next` offsets (see [`next_offsets`]) within the batch's
    /// transaction `conn`, fenced by the claimed epochs (see the module
    /// docs).
    pub(crate) async fn advance(
        &self,
        conn: &mut PgConnection,
        next: &[(PartitionId, i64)],
    ) -> Result<(), SinkError> {
        let mut topics = Vec::with_capacity(next.len());
        let mut numbers = Vec::with_capacity(next.len());
        let mut offsets = Vec::with_capacity(next.len());
        let mut epochs = Vec::with_capacity(next.len());
        {
            let claimed = self.epochs.lock().unwrap_or_else(|p| p.into_inner());
            for ((topic, partition), offset) in next {
                let Some(&epoch) = claimed.get(&(Arc::clone(topic), *partition)) else {
                    return Err(SinkError::Retryable(format!(
                        "{topic}/{partition} was never claimed by this process"
                    )));
                };
                topics.push(topic.to_string());
                numbers.push(*partition);
                offsets.push(*offset);
                epochs.push(epoch);
            }
        }
        let sql = format!(
            "UPDATE {t} AS o
                SET next_offset = GREATEST(o.next_offset, u.next_offset), written_at = now()
               FROM unnest($2::text[], $3::integer[], $4::bigint[], $5::bigint[])
                    AS u(topic, partition, next_offset, epoch)
              WHERE o.group_id = $1 AND o.topic = u.topic
                AND o.partition = u.partition AND o.epoch = u.epoch
             RETURNING o.topic, o.partition",
            t = self.table
        );
        let written: Vec<(String, i32)> = sqlx::query_as(&sql)
            .bind(&self.group)
            .bind(&topics)
            .bind(&numbers)
            .bind(&offsets)
            .bind(&epochs)
            .fetch_all(&mut *conn)
            .await
            .map_err(classify)?;
        if written.len() == topics.len() {
            return Ok(());
        }
        let fenced: Vec<String> = topics
            .iter()
            .zip(&numbers)
            .filter(|(t, p)| !written.iter().any(|(wt, wp)| wt == *t && wp == *p))
            .map(|(t, p)| format!("{t}/{p}"))
            .collect();
        metrics::counter!(FENCED_WRITES_TOTAL).increment(1);
        tracing::warn!(
            ?fenced,
            "write fenced: another process claimed these partitions; rolling back"
        );
        Err(SinkError::Retryable(format!(
            "fenced: {} claimed by another process since this one did",
            fenced.join(", ")
        )))
    }
}

impl TargetOffsets {
    /// Sets the stored next offset of each partition of `offsets`, for an
    /// operator's reset while the group is stopped (`sinkfleet offsets
    /// reset`): the next claim starts there. Each epoch is bumped too, so a
    /// write of a process that claimed before the reset is fenced. Returns
    /// the offsets stored before, in the order given.
    pub async fn reset(
        &self,
        offsets: &[(String, i32, i64)],
    ) -> Result<Vec<Option<i64>>, SinkError> {
        let mut conn = self.pool.acquire().await.map_err(classify)?;
        catalog::ensure_meta(&mut conn, &self.cfg).await?;
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(classify)?;
        let mut before = Vec::with_capacity(offsets.len());
        for (topic, partition, next) in offsets {
            let sql = format!(
                "WITH old AS (
                     SELECT next_offset FROM {t}
                      WHERE group_id = $1 AND topic = $2 AND partition = $3 FOR UPDATE)
                 INSERT INTO {t} AS o (group_id, topic, partition, next_offset, epoch)
                 VALUES ($1, $2, $3, $4, 1)
                 ON CONFLICT (group_id, topic, partition)
                 DO UPDATE SET next_offset = EXCLUDED.next_offset, epoch = o.epoch + 1,
                               written_at = now()
                 RETURNING (SELECT next_offset FROM old)",
                t = self.table
            );
            let old: Option<i64> = sqlx::query_scalar(&sql)
                .bind(&self.group)
                .bind(topic)
                .bind(partition)
                .bind(next)
                .fetch_one(&mut *tx)
                .await
                .map_err(classify)?;
            before.push(old);
        }
        tx.commit().await.map_err(classify)?;
        Ok(before)
    }
}

/// The next offset of every partition of `positions`: its highest offset + 1.
pub(crate) fn next_offsets<'a>(
    positions: impl Iterator<Item = &'a Position>,
) -> Vec<(PartitionId, i64)> {
    let mut next: HashMap<PartitionId, i64> = HashMap::new();
    for p in positions {
        let slot = next.entry((Arc::clone(&p.topic), p.partition)).or_insert(0);
        *slot = (*slot).max(p.offset + 1);
    }
    next.into_iter().collect()
}

impl OffsetStore for TargetOffsets {
    fn claim<'a>(&'a self, partitions: &'a [PartitionId]) -> ClaimFuture<'a> {
        Box::pin(self.claim_now(partitions))
    }
}
