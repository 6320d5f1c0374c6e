//! Transactional apply: source transactions reach the sink whole, in
//! commit order.
//!
//! The publisher (or Debezium) frames every transaction with a BEGIN and
//! an END record on a transaction topic of one partition; END counts the
//! transaction's events per table. Each data partition delivers its events
//! in commit order too (a row's changes share a partition, and the
//! publisher produces in commit order). So when the END at the head of the
//! transaction topic is transaction X, X's events are at the heads of the
//! data partitions, right behind what was already taken. The assembler
//! counts them there; once it has as many as END says (for the tables this
//! process consumes), X goes into the next job whole, with its END, and
//! the next END is looked at. A job holds whole transactions, and the sink
//! applies a job in one target transaction.
//!
//! Records that belong to no pending transaction flow as usual: events
//! without transaction metadata (snapshot rows), Kafka tombstones,
//! undecodable records, events of a transaction already passed (commit LSN
//! at or below the last applied END's) and late events of a split one.
//!
//! **Split.** A transaction is applied as far as it arrived, counted in
//! `sinkfleet_transactions_split_total` and logged, when it cannot
//! complete: a partition that may still owe it events is paused because
//! the in-flight budgets are full, so nothing more can arrive
//! (`reason=budget`; a pause for a failing sink does not count, it ends
//! with the outage, before the assembler looks again), or its END waited
//! `max_wait_ms` (`reason=timeout`). Its later events
//! then flow as they come. Nothing is dropped, and versions keep replays
//! harmless either way.
//!
//! **Ownership.** Every partition of the transaction's tables and the
//! transaction topic must be assigned to this process: the binary runs one
//! active worker per group in this mode (see docs/transactions.md).

use super::{Coordinator, JobShare};
use crate::messages::PartitionId;
use crate::metrics::{
    TRANSACTION_BUFFERED_BYTES, TRANSACTION_OLDEST_AGE_SECONDS, TRANSACTIONS_APPLIED_TOTAL,
    TRANSACTIONS_BUFFERED, TRANSACTIONS_SPLIT_TOTAL,
};
use crate::partition::{PartitionState, PauseCause};
use crate::writer::{Item, Payload};
use sinkfleet_core::debezium::transaction::{TxMarker, TxStatus, commit_lsn};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most transaction ids remembered as split (their late events flow).
const SPLIT_MEMORY: usize = 10_000;

/// The assembler's state between dispatches.
pub(crate) struct Assembler {
    /// The transaction topic.
    topic: Arc<str>,
    /// `<prefix>.` of data topics: the transaction topic's name without
    /// `transaction`.
    prefix: String,
    max_wait: Duration,
    /// The END at the head and since when it waits.
    head: Option<(Arc<str>, Instant)>,
    /// Transactions applied as far as they arrived.
    split: HashSet<Arc<str>>,
    /// Commit LSN of the newest END taken: events of older transactions
    /// belong to no pending one.
    passed_lsn: u64,
    applied: metrics::Counter,
    buffered: metrics::Gauge,
    buffered_bytes: metrics::Gauge,
    oldest_age: metrics::Gauge,
}

/// What one dispatch takes: how many records from each partition's head.
type Plan = HashMap<PartitionId, usize>;

impl Assembler {
    pub(crate) fn new(cfg: &crate::config::TransactionsConfig) -> Self {
        let prefix = cfg
            .topic
            .strip_suffix("transaction")
            .unwrap_or(&cfg.topic)
            .to_owned();
        crate::metrics::at_zero::transactions();
        Assembler {
            topic: Arc::from(cfg.topic.as_str()),
            prefix,
            max_wait: Duration::from_millis(cfg.max_wait_ms),
            head: None,
            split: HashSet::new(),
            passed_lsn: 0,
            applied: metrics::counter!(TRANSACTIONS_APPLIED_TOTAL),
            buffered: metrics::gauge!(TRANSACTIONS_BUFFERED),
            buffered_bytes: metrics::gauge!(TRANSACTION_BUFFERED_BYTES),
            oldest_age: metrics::gauge!(TRANSACTION_OLDEST_AGE_SECONDS),
        }
    }

    /// True for the transaction topic.
    pub(crate) fn is_marker_topic(&self, topic: &str) -> bool {
        *self.topic == *topic
    }

    /// Whether `item` may be taken without waiting for a transaction.
    fn is_free(&self, item: &Item) -> bool {
        let Payload::Change(record) = &item.payload else {
            return true;
        };
        match &record.change.transaction {
            None => true,
            Some(id) => {
                self.split.contains(id) || commit_lsn(id).is_some_and(|lsn| lsn <= self.passed_lsn)
            }
        }
    }

    fn belongs_to(item: &Item, id: &str) -> bool {
        matches!(&item.payload, Payload::Change(r) if r.change.transaction.as_deref() == Some(id))
    }

    /// Events of `end` this process consumes: those of tables whose topic
    /// is assigned here.
    fn expected(&self, end: &TxMarker, partitions: &HashMap<PartitionId, PartitionState>) -> u64 {
        end.collections
            .iter()
            .filter(|(collection, _)| {
                let topic = format!("{}{collection}", self.prefix);
                partitions.keys().any(|(t, _)| **t == *topic)
            })
            .map(|(_, n)| n)
            .sum()
    }

    /// Plans the next job: free records, then whole transactions in commit
    /// order, up to `max_records` (a transaction is taken whole even if it
    /// goes over).
    fn plan(
        &mut self,
        partitions: &HashMap<PartitionId, PartitionState>,
        max_records: usize,
    ) -> Plan {
        let mut plan: Plan = HashMap::new();
        let mut taken = 0usize;
        let markers = partitions
            .iter()
            .find(|((t, _), _)| self.is_marker_topic(t));
        loop {
            for (pid, state) in partitions
                .iter()
                .filter(|((t, _), _)| !self.is_marker_topic(t))
            {
                let cursor = plan.entry(pid.clone()).or_default();
                while taken < max_records
                    && *cursor < state.pending.len()
                    && self.is_free(&state.pending[*cursor])
                {
                    *cursor += 1;
                    taken += 1;
                }
            }
            let Some((marker_pid, marker_state)) = markers else {
                break;
            };
            let cursor = *plan.get(marker_pid).unwrap_or(&0);
            let Some(item) = marker_state.pending.get(cursor) else {
                self.head = None;
                break;
            };
            let end = match &item.payload {
                Payload::Marker(m) if m.status == TxStatus::End => m,
                // BEGIN, or a record that is no marker: nothing to wait for.
                _ => {
                    plan.insert(marker_pid.clone(), cursor + 1);
                    taken += 1;
                    continue;
                }
            };
            if taken >= max_records {
                break;
            }
            // The transaction's events at the data heads (with the
            // tombstones and other free records between them).
            let mut runs: Vec<(PartitionId, usize)> = Vec::new();
            let mut present = 0u64;
            let mut stuck = false;
            for (pid, state) in partitions
                .iter()
                .filter(|((t, _), _)| !self.is_marker_topic(t))
            {
                let from = *plan.get(pid).unwrap_or(&0);
                let mut to = from;
                while let Some(next) = state.pending.get(to) {
                    if Self::belongs_to(next, &end.id) {
                        present += 1;
                    } else if !self.is_free(next) {
                        break;
                    }
                    to += 1;
                }
                // Paused for its budget with nothing of a later
                // transaction behind: this partition may owe events it
                // cannot fetch until something is taken. A partition paused
                // because the sink was failing is not stuck: it resumes
                // with the sink (see `Coordinator::backpressure`), and its
                // events follow.
                stuck |= state.pause == Some(PauseCause::Budget) && to == state.pending.len();
                if to > from {
                    runs.push((pid.clone(), to));
                }
            }
            let expected = self.expected(end, partitions);
            let since = match &self.head {
                Some((id, since)) if *id == end.id => *since,
                _ => {
                    let now = Instant::now();
                    self.head = Some((Arc::clone(&end.id), now));
                    now
                }
            };
            let split = if present >= expected {
                None
            } else if stuck {
                Some("budget")
            } else if since.elapsed() >= self.max_wait {
                Some("timeout")
            } else {
                self.oldest_age.set(since.elapsed().as_secs_f64());
                break;
            };
            if let Some(reason) = split {
                metrics::counter!(TRANSACTIONS_SPLIT_TOTAL, "reason" => reason).increment(1);
                tracing::warn!(transaction = %end.id, present, expected, reason,
                    "applying a transaction as far as it arrived (split): its other events follow on their own");
                if self.split.len() >= SPLIT_MEMORY {
                    self.split.clear();
                }
                self.split.insert(Arc::clone(&end.id));
            } else {
                self.applied.increment(1);
            }
            for (pid, to) in runs {
                taken += to - plan.get(&pid).copied().unwrap_or(0);
                plan.insert(pid, to);
            }
            plan.insert(marker_pid.clone(), cursor + 1);
            taken += 1;
            if let Some(lsn) = end.commit_lsn() {
                self.passed_lsn = self.passed_lsn.max(lsn);
            }
            self.head = None;
            self.oldest_age.set(0.0);
        }
        plan.retain(|_, n| *n > 0);
        plan
    }

    /// Publishes what waits: END records not applied yet, and the bytes
    /// held in partitions. On the commit tick: it walks the transaction
    /// topic's queue.
    pub(super) fn publish(&self, partitions: &HashMap<PartitionId, PartitionState>) {
        let ends = partitions
            .iter()
            .filter(|((t, _), _)| self.is_marker_topic(t))
            .flat_map(|(_, s)| s.pending.iter())
            .filter(|i| matches!(&i.payload, Payload::Marker(m) if m.status == TxStatus::End))
            .count();
        self.buffered.set(ends as f64);
        let bytes: u64 = partitions.values().map(|s| s.pending_bytes).sum();
        self.buffered_bytes.set(bytes as f64);
        if self.head.is_none() {
            self.oldest_age.set(0.0);
        }
    }
}

impl Coordinator {
    /// Dispatch in transactional mode: one writer, jobs of whole
    /// transactions (see the module docs).
    pub(super) async fn dispatch_transactions(&mut self) {
        if self.lanes.iter().any(|l| l.held || l.inflight.is_some()) || self.draining(0) {
            return;
        }
        let Some(assembler) = self.transactions.as_mut() else {
            return;
        };
        let plan = assembler.plan(&self.partitions, self.cfg.batch_max_records);
        if plan.is_empty() {
            return;
        }
        let mut items = Vec::new();
        let mut job_load: HashMap<PartitionId, JobShare> = HashMap::new();
        for (pid, n) in plan {
            let Some(state) = self.partitions.get_mut(&pid) else {
                continue;
            };
            let share = job_load.entry(pid).or_insert_with(|| JobShare::of(state));
            for _ in 0..n {
                if let Some(item) = super::dispatch::take_head(state, share, self.lsn_versions) {
                    items.push(item);
                }
            }
            state.pending_since = (!state.pending.is_empty()).then(Instant::now);
        }
        self.send_job(0, items, job_load).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TransactionsConfig;
    use sinkfleet_core::debezium::transaction::decode_marker;
    use sinkfleet_core::debezium::{DecodeOptions, Decoder};
    use sinkfleet_core::{Position, SinkRecord};

    const MARKERS: &str = "app.transaction";

    fn item(topic: &str, offset: i64, payload: Payload) -> Item {
        Item {
            covers_from: offset,
            position: Position {
                topic: Arc::from(topic),
                partition: 0,
                offset,
            },
            key: None,
            value: None,
            replayed_offset: None,
            payload,
            timestamp_ms: None,
            held: 0,
        }
    }

    /// An event of `app.public.<table>` in transaction `tx` (or none).
    fn event(table: &str, offset: i64, tx: Option<&str>) -> Item {
        let transaction = tx.map_or("null".to_owned(), |id| format!(r#"{{"id":"{id}"}}"#));
        let value = format!(
            r#"{{"op":"c","source":{{"schema":"public","table":"{table}","lsn":{offset}}},"after":{{"id":{offset}}},"transaction":{transaction}}}"#
        );
        let mut opts = DecodeOptions::default();
        opts.key_columns.insert("*".into(), vec!["id".into()]);
        let change = Decoder::new(opts)
            .decode(None, Some(value.as_bytes()), offset)
            .expect("decodes")
            .expect("a change");
        let topic = format!("app.public.{table}");
        let record = SinkRecord {
            position: item(&topic, offset, Payload::Skip).position,
            change,
        };
        item(&topic, offset, Payload::Change(record))
    }

    fn marker(offset: i64, json: &str) -> Item {
        let m = decode_marker(json.as_bytes()).expect("a marker");
        item(MARKERS, offset, Payload::Marker(Box::new(m)))
    }

    fn end(offset: i64, id: &str, a: u64, b: u64) -> Item {
        marker(
            offset,
            &format!(
                r#"{{"status":"END","id":"{id}","data_collections":[{{"data_collection":"public.a","event_count":{a}}},{{"data_collection":"public.b","event_count":{b}}}]}}"#
            ),
        )
    }

    fn begin(offset: i64, id: &str) -> Item {
        marker(offset, &format!(r#"{{"status":"BEGIN","id":"{id}"}}"#))
    }

    fn partitions(queues: Vec<(&str, Vec<Item>)>) -> HashMap<PartitionId, PartitionState> {
        queues
            .into_iter()
            .map(|(topic, items)| {
                let state = PartitionState {
                    pending: items.into(),
                    ..PartitionState::default()
                };
                ((Arc::from(topic), 0), state)
            })
            .collect()
    }

    fn assembler(max_wait_ms: u64) -> Assembler {
        Assembler::new(&TransactionsConfig {
            topic: MARKERS.into(),
            max_wait_ms,
        })
    }

    fn taken(plan: &Plan, topic: &str) -> usize {
        plan.get(&(Arc::from(topic), 0)).copied().unwrap_or(0)
    }

    #[test]
    fn a_transaction_waits_until_every_counted_event_is_there() {
        let mut parts = partitions(vec![
            (MARKERS, vec![begin(0, "7:100"), end(1, "7:100", 1, 1)]),
            (
                "app.public.a",
                vec![event("a", 0, None), event("a", 1, Some("7:100"))],
            ),
            ("app.public.b", vec![]),
        ]);
        let mut asm = assembler(60_000);
        // The snapshot row flows; the transaction waits for its event in b.
        let plan = asm.plan(&parts, 100);
        assert_eq!(taken(&plan, "app.public.a"), 1);
        assert_eq!(taken(&plan, MARKERS), 1, "BEGIN only");

        let b = parts.get_mut(&(Arc::from("app.public.b"), 0)).expect("b");
        b.pending.push_back(event("b", 0, Some("7:100")));
        b.pending.push_back(item("app.public.b", 1, Payload::Skip));
        b.pending.push_back(event("b", 2, Some("8:200")));
        let plan = asm.plan(&parts, 100);
        assert_eq!(taken(&plan, "app.public.a"), 2);
        assert_eq!(taken(&plan, MARKERS), 2);
        // The transaction's event and the tombstone behind it, not the
        // next transaction's event.
        assert_eq!(taken(&plan, "app.public.b"), 2);
    }

    #[test]
    fn a_stuck_transaction_is_split_and_its_late_events_flow() {
        let mut parts = partitions(vec![
            (MARKERS, vec![end(0, "7:100", 2, 0)]),
            ("app.public.a", vec![event("a", 0, Some("7:100"))]),
        ]);
        let mut asm = assembler(60_000);
        assert!(
            asm.plan(&parts, 100).is_empty(),
            "waits while it can still complete"
        );
        // Paused because the sink fails: not stuck, the partition resumes
        // with the sink and the second event follows.
        let a = parts.get_mut(&(Arc::from("app.public.a"), 0)).expect("a");
        a.pause = Some(PauseCause::Sink);
        assert!(
            asm.plan(&parts, 100).is_empty(),
            "a failing sink is no full budget"
        );
        // The partition is paused for its budget with only the
        // transaction's events: the second one cannot arrive until
        // something is taken.
        let a = parts.get_mut(&(Arc::from("app.public.a"), 0)).expect("a");
        a.pause = Some(PauseCause::Budget);
        let plan = asm.plan(&parts, 100);
        assert_eq!(
            (taken(&plan, MARKERS), taken(&plan, "app.public.a")),
            (1, 1)
        );

        let mut late = partitions(vec![
            (MARKERS, vec![]),
            ("app.public.a", vec![event("a", 1, Some("7:100"))]),
        ]);
        late.get_mut(&(Arc::from("app.public.a"), 0))
            .expect("a")
            .pause = None;
        assert_eq!(taken(&asm.plan(&late, 100), "app.public.a"), 1);
    }

    #[test]
    fn a_transaction_whose_end_waited_too_long_is_split() {
        let parts = partitions(vec![
            (MARKERS, vec![end(0, "7:100", 2, 0)]),
            ("app.public.a", vec![event("a", 0, Some("7:100"))]),
        ]);
        let mut asm = assembler(0);
        let plan = asm.plan(&parts, 100);
        assert_eq!(
            (taken(&plan, MARKERS), taken(&plan, "app.public.a")),
            (1, 1)
        );
    }

    #[test]
    fn events_of_a_transaction_already_passed_flow() {
        let parts = partitions(vec![
            (MARKERS, vec![end(0, "9:300", 0, 1)]),
            (
                "app.public.a",
                // Replayed: older than the END at the head.
                vec![event("a", 0, Some("7:100"))],
            ),
            ("app.public.b", vec![event("b", 0, Some("9:300"))]),
        ]);
        let mut asm = assembler(60_000);
        asm.passed_lsn = 100;
        let plan = asm.plan(&parts, 100);
        assert_eq!(taken(&plan, "app.public.a"), 1);
        assert_eq!(taken(&plan, "app.public.b"), 1);
        assert_eq!(taken(&plan, MARKERS), 1);
    }
}
