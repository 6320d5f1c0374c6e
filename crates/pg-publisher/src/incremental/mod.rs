//! Incremental snapshots on demand: Debezium's signal table and DBLog's
//! watermark algorithm.
//!
//! A row inserted into `signal.data.collection` with type
//! `execute-snapshot` and data `{"data-collections": ["schema.table"],
//! "type": "incremental"}` queues those tables. Each is then read in chunks
//! of `incremental.snapshot.chunk.size` rows in primary-key order, each
//! chunk inside a window the stream itself delimits:
//!
//! 1. the publisher inserts a `snapshot-window-open` row into the signal
//!    table;
//! 2. when the stream delivers that insert, it reads the chunk (`SELECT …
//!    WHERE key > last ORDER BY key LIMIT n`), then inserts a
//!    `snapshot-window-close` row;
//! 3. until the stream delivers the close, every streamed change of the
//!    table removes its key from the chunk: the stream has a newer version
//!    of that row;
//! 4. at the close, the rest of the chunk is published as `op = r` events
//!    with `source.snapshot = "incremental"`, as part of the close's
//!    transaction (confirmed with it).
//!
//! Versions: a chunk row carries the close's commit LSN and LSN. Every
//! change committed before the window opened is older (the chunk read it,
//! or a newer state of it), every change committed after the window closed
//! is newer, and a change committed inside the window took its key out of
//! the chunk. So in no interleaving can a chunk row overwrite a newer
//! streamed change in a sink.
//!
//! `stop-snapshot` drops the running and queued tables (or those named in
//! its `data-collections`), `pause-snapshot` and `resume-snapshot` hold and
//! release the next window.
//!
//! Windows follow each other without waiting for Kafka: up to
//! [`CHUNKS_IN_FLIGHT`] published chunks may await the broker's
//! acknowledgement while the next windows are read. Each open watermark
//! records the progress a restart resumes: the position before the oldest
//! chunk not yet acknowledged (the table, the last key before it, the
//! tables waiting). A restarted publisher resumes from the newest such
//! record, so it reads again at most the chunks that were in flight, which
//! the versions make harmless. The done marker is written only once every
//! chunk is acknowledged.

mod chunk;

use crate::config::ConnectorConfig;
use crate::control::{self, CapturedTable, ControlError};
use crate::event::{Row, TableCodec};
use crate::metrics::PUBLISHER_SNAPSHOT_ROWS_DONE;
use crate::pgoutput::TupleValue;
use crate::types::registry::TypeRegistry;
use chunk::{Chunk, Current};
use sqlx::PgPool;
use std::collections::VecDeque;
use std::sync::Arc;

/// One row of the signal table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    /// `id`.
    pub id: String,
    /// `type`.
    pub kind: String,
    /// `data` (JSON text), if any.
    pub data: Option<String>,
}

impl Signal {
    /// Reads a signal from an insert's tuple, by the relation's column names.
    pub fn from_tuple(columns: &[String], tuple: &[TupleValue]) -> Option<Signal> {
        let text = |name: &str| {
            let i = columns.iter().position(|c| c == name)?;
            match tuple.get(i)? {
                TupleValue::Text(b) | TupleValue::Binary(b) => {
                    Some(String::from_utf8_lossy(b).into_owned())
                }
                _ => None,
            }
        };
        Some(Signal {
            id: text("id")?,
            kind: text("type")?,
            data: text("data"),
        })
    }
}

/// A table asked for, waiting its turn (or resumed after a restart).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Request {
    table: String,
    /// `additional-conditions`' filter for it.
    filter: Option<String>,
    /// Where a resumed table goes on from (`None`: its start).
    #[serde(default)]
    last: Option<Vec<String>>,
    /// Rows it published before.
    #[serde(default)]
    done: u64,
}

/// The progress an open watermark records (in its `data`, under
/// `"sinkfleet"`), or a done marker (`current` null): what a restarted
/// publisher resumes. Every chunk before `current.last` is acknowledged
/// by Kafka when it is written.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Progress {
    /// Microseconds since the epoch: the newest record wins.
    seq: i64,
    /// The table being read, from `last`.
    current: Option<Request>,
    /// Tables waiting.
    queue: Vec<Request>,
}

/// The signal `type` of the marker written when nothing is left to read.
const DONE: &str = "sinkfleet-snapshot-done";

/// How many published chunks may await Kafka's acknowledgement while the
/// next window is read: waiting for each one cost a broker round trip per
/// chunk, and a restart reads at most this many chunks again.
pub const CHUNKS_IN_FLIGHT: usize = 4;

/// A published chunk not yet acknowledged.
struct InFlight {
    /// The stream's count of the commit carrying it (`None`: its
    /// transaction has not committed yet).
    commit: Option<u64>,
    /// Its table's position before it: where a restart resumes.
    before: Request,
}

/// The chunk window.
enum Window {
    Idle,
    /// The open watermark is written; waiting for the stream to deliver it.
    Opening(String),
    /// The chunk is read; waiting for the close watermark.
    Open {
        close: String,
        rows: Vec<(Vec<u8>, Row)>,
        /// The last key of the chunk as read, and whether it was full.
        last: Option<Vec<String>>,
        full: bool,
    },
}

/// What an incremental snapshot asks of the stream after a signal.
pub enum Step {
    /// Nothing to publish.
    Nothing,
    /// Publish these rows (the window closed) with this codec.
    Publish(Arc<TableCodec>, Vec<Row>),
}

/// The incremental snapshot state of one publisher.
pub struct Incremental {
    signal: Option<(String, String)>,
    signal_oid: Option<u32>,
    signal_columns: Vec<String>,
    chunk: usize,
    queue: VecDeque<Request>,
    current: Option<Current>,
    paused: bool,
    window: Window,
    /// Published chunks, oldest first, until Kafka acknowledges them.
    in_flight: VecDeque<InFlight>,
    /// The newest progress written says a snapshot is running: a done
    /// marker is owed once it ends.
    recorded: bool,
}

/// Why a signal or a chunk failed.
fn refused(why: String) -> ControlError {
    ControlError::Refused(why)
}

impl Incremental {
    /// The state for `cfg` (inactive without `signal.data.collection`).
    pub fn new(cfg: &ConnectorConfig) -> Self {
        Incremental {
            signal: cfg.signal_table.clone(),
            signal_oid: None,
            signal_columns: Vec::new(),
            chunk: cfg.incremental_chunk_size,
            queue: VecDeque::new(),
            current: None,
            paused: false,
            window: Window::Idle,
            in_flight: VecDeque::new(),
            recorded: false,
        }
    }

    /// Resumes the snapshot a previous run left unfinished, from the
    /// progress its last open watermark recorded.
    pub async fn restore(&mut self, pool: &PgPool) -> Result<(), ControlError> {
        let Some((schema, name)) = &self.signal else {
            return Ok(());
        };
        let sql = format!(
            "SELECT data FROM {}.{} WHERE type IN ('snapshot-window-open', '{DONE}') AND data LIKE '{{\"sinkfleet\"%'",
            control::quote(schema),
            control::quote(name)
        );
        let rows: Vec<(Option<String>,)> =
            sqlx::query_as(&sql)
                .fetch_all(pool)
                .await
                .map_err(control::sql(
                    "reading incremental snapshot progress from the signal table",
                ))?;
        let newest = rows
            .iter()
            .filter_map(|(data,)| {
                let v: serde_json::Value = serde_json::from_str(data.as_deref()?).ok()?;
                serde_json::from_value::<Progress>(v.get("sinkfleet")?.clone()).ok()
            })
            .max_by_key(|p| p.seq);
        if let Some(p) = newest
            && let Some(current) = p.current
        {
            tracing::info!(table = %current.table, rows = current.done, waiting = p.queue.len(),
                "incremental snapshot: resuming after the last acknowledged chunk");
            self.queue.push_back(current);
            self.queue.extend(p.queue);
            self.recorded = true;
        }
        Ok(())
    }

    /// Notes a Relation message; true if it is the signal table's.
    pub fn relation(&mut self, oid: u32, schema: &str, name: &str, columns: Vec<String>) -> bool {
        let is_signal = self
            .signal
            .as_ref()
            .is_some_and(|(s, t)| s == schema && t == name);
        if is_signal {
            self.signal_oid = Some(oid);
            self.signal_columns = columns;
        }
        is_signal
    }

    /// Whether `oid` is the signal table.
    pub fn is_signal(&self, oid: u32) -> bool {
        self.signal_oid == Some(oid)
    }

    /// The signal an insert into the signal table carries.
    pub fn signal(&self, tuple: &[TupleValue]) -> Option<Signal> {
        Signal::from_tuple(&self.signal_columns, tuple)
    }

    /// Whether changes of `schema.table` are being watched (a window of
    /// its chunk is open): only then does [`Incremental::touched`] need
    /// their keys.
    pub fn watching(&self, schema: &str, table: &str) -> bool {
        matches!(self.window, Window::Open { .. })
            && self
                .current
                .as_ref()
                .is_some_and(|c| c.table.schema == schema && c.table.name == table)
    }

    /// A streamed change of `schema.table` with key `identity`: inside an
    /// open window it takes the key out of the chunk (`None`: a truncate,
    /// which takes every key).
    pub fn touched(&mut self, schema: &str, table: &str, identity: Option<&[u8]>) {
        let Window::Open { rows, .. } = &mut self.window else {
            return;
        };
        let Some(current) = &self.current else { return };
        if current.table.schema != schema || current.table.name != table {
            return;
        }
        match identity {
            Some(id) => rows.retain(|(k, _)| k.as_slice() != id),
            None => rows.clear(),
        }
    }

    /// Handles a signal delivered by the stream.
    pub async fn on_signal(
        &mut self,
        signal: &Signal,
        pool: &PgPool,
    ) -> Result<Step, ControlError> {
        match signal.kind.as_str() {
            "execute-snapshot" => {
                self.execute(signal)?;
                Ok(Step::Nothing)
            }
            "stop-snapshot" => {
                self.stop(signal);
                Ok(Step::Nothing)
            }
            "pause-snapshot" => {
                tracing::info!("incremental snapshot paused");
                self.paused = true;
                Ok(Step::Nothing)
            }
            "resume-snapshot" => {
                tracing::info!("incremental snapshot resumed");
                self.paused = false;
                Ok(Step::Nothing)
            }
            "snapshot-window-open" => {
                if matches!(&self.window, Window::Opening(id) if *id == signal.id) {
                    self.read_chunk(pool).await?;
                }
                Ok(Step::Nothing)
            }
            "snapshot-window-close" => Ok(self.close(&signal.id)),
            DONE => Ok(Step::Nothing),
            other => {
                tracing::warn!(id = %signal.id, kind = %other, "signal of an unknown type: ignored");
                Ok(Step::Nothing)
            }
        }
    }

    fn execute(&mut self, signal: &Signal) -> Result<(), ControlError> {
        let data: serde_json::Value = serde_json::from_str(signal.data.as_deref().unwrap_or(""))
            .map_err(|e| refused(format!("signal {}: data is not JSON: {e}", signal.id)))?;
        let kind = data["type"].as_str().unwrap_or("incremental");
        if !kind.eq_ignore_ascii_case("incremental") {
            tracing::warn!(id = %signal.id, %kind, "execute-snapshot of a type other than incremental: ignored");
            return Ok(());
        }
        let filters: Vec<(String, String)> = data["additional-conditions"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|c| {
                        Some((
                            c["data-collection"].as_str()?.to_owned(),
                            c["filter"].as_str()?.to_owned(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let tables = data["data-collections"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for t in tables.iter().filter_map(|t| t.as_str()) {
            let filter = filters.iter().find(|(c, _)| c == t).map(|(_, f)| f.clone());
            tracing::info!(id = %signal.id, table = %t, ?filter, "incremental snapshot requested");
            let running = self.current.as_ref().is_some_and(|c| c.label == t)
                || self.queue.iter().any(|r| r.table == t);
            if running {
                tracing::info!(table = %t, "incremental snapshot already running or queued");
                continue;
            }
            self.queue.push_back(Request {
                table: t.to_owned(),
                filter,
                last: None,
                done: 0,
            });
        }
        Ok(())
    }

    fn stop(&mut self, signal: &Signal) {
        let named: Vec<String> = signal
            .data
            .as_deref()
            .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
            .and_then(|d| d["data-collections"].as_array().cloned())
            .map(|l| {
                l.iter()
                    .filter_map(|t| Some(t.as_str()?.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let stops = |table: &str| named.is_empty() || named.iter().any(|n| n == table);
        self.queue.retain(|r| !stops(&r.table));
        self.in_flight.retain(|f| !stops(&f.before.table));
        if let Some(c) = &self.current
            && stops(&c.label)
        {
            tracing::info!(table = %c.label, rows = c.done, "incremental snapshot stopped");
            self.current = None;
            self.window = Window::Idle;
        }
    }

    /// Whether [`Incremental::next_window`] has something to do: a window
    /// to open while fewer than [`CHUNKS_IN_FLIGHT`] chunks await Kafka, or
    /// the done marker to write once none does.
    pub fn wants_window(&self) -> bool {
        if self.paused || !matches!(self.window, Window::Idle) {
            return false;
        }
        if self.current.is_some() || !self.queue.is_empty() {
            self.in_flight.len() < CHUNKS_IN_FLIGHT
        } else {
            self.recorded && self.in_flight.is_empty()
        }
    }

    /// The stream counted a commit as its `commit`th: it carries the chunk
    /// published in its transaction, if any.
    pub fn committed(&mut self, commit: u64) {
        for f in self.in_flight.iter_mut().rev() {
            if f.commit.is_some() {
                break;
            }
            f.commit = Some(commit);
        }
    }

    /// Kafka acknowledged the stream's first `commits` commits.
    pub fn acknowledged(&mut self, commits: u64) {
        while self
            .in_flight
            .front()
            .is_some_and(|f| f.commit.is_some_and(|c| c <= commits))
        {
            self.in_flight.pop_front();
        }
    }

    /// What a restart must resume: each table with a chunk in flight from
    /// before its oldest one, then the table being read, then those
    /// waiting.
    fn progress(&self) -> Option<Progress> {
        let mut tables: Vec<Request> = Vec::new();
        let current = self.current.as_ref().map(Current::request);
        let pending = self.in_flight.iter().map(|f| &f.before);
        for r in pending.chain(current.iter()).chain(self.queue.iter()) {
            if !tables.iter().any(|t| t.table == r.table) {
                tables.push(r.clone());
            }
        }
        let mut tables = tables.into_iter();
        Some(Progress {
            seq: crate::event::envelope::now_us(),
            current: Some(tables.next()?),
            queue: tables.collect(),
        })
    }

    /// Starts the next window if a table is being read or waiting, nothing
    /// is paused and no window is open: writes the open watermark.
    pub async fn next_window(
        &mut self,
        pool: &PgPool,
        cfg: &ConnectorConfig,
        registry: &TypeRegistry,
    ) -> Result<(), ControlError> {
        if !self.wants_window() {
            return Ok(());
        }
        while self.current.is_none() {
            let Some(request) = self.queue.pop_front() else {
                if self.recorded && self.in_flight.is_empty() {
                    let done = Progress {
                        seq: crate::event::envelope::now_us(),
                        current: None,
                        queue: Vec::new(),
                    };
                    self.watermark(pool, &format!("{}-done", uuid()), DONE, Some(&done))
                        .await?;
                    self.recorded = false;
                }
                return Ok(());
            };
            self.current = Current::start(request, pool, cfg, registry).await?;
        }
        let progress = self.progress();
        let id = format!("{}-open", uuid());
        self.watermark(pool, &id, "snapshot-window-open", progress.as_ref())
            .await?;
        self.recorded = true;
        self.window = Window::Opening(id);
        Ok(())
    }

    async fn watermark(
        &self,
        pool: &PgPool,
        id: &str,
        kind: &str,
        progress: Option<&Progress>,
    ) -> Result<(), ControlError> {
        let Some(table) = &self.signal else {
            return Ok(());
        };
        let data = progress.map(|p| serde_json::json!({ "sinkfleet": p }).to_string());
        insert_signal(pool, table, id, kind, data.as_deref())
            .await
            .map_err(control::sql(
                "writing a snapshot watermark to the signal table",
            ))
    }

    /// The window opened: reads the chunk, then writes the close watermark.
    async fn read_chunk(&mut self, pool: &PgPool) -> Result<(), ControlError> {
        let Some(c) = &self.current else {
            self.window = Window::Idle;
            return Ok(());
        };
        let Chunk { rows, last, full } = c.read(pool, self.chunk).await?;
        let close = format!("{}-close", uuid());
        self.watermark(pool, &close, "snapshot-window-close", None)
            .await?;
        self.window = Window::Open {
            close,
            rows,
            last,
            full,
        };
        Ok(())
    }

    /// The window closed: the chunk's rows still unchanged by the stream.
    fn close(&mut self, id: &str) -> Step {
        let Window::Open { close, .. } = &self.window else {
            return Step::Nothing;
        };
        if close != id {
            return Step::Nothing;
        }
        let Window::Open {
            rows, last, full, ..
        } = std::mem::replace(&mut self.window, Window::Idle)
        else {
            return Step::Nothing;
        };
        let Some(c) = self.current.as_mut() else {
            return Step::Nothing;
        };
        let codec = Arc::clone(&c.codec);
        self.in_flight.push_back(InFlight {
            commit: None,
            before: c.request(),
        });
        c.done += rows.len() as u64;
        c.last = last;
        let labels = [("table", c.label.clone())];
        metrics::gauge!(PUBLISHER_SNAPSHOT_ROWS_DONE, &labels).set(c.done as f64);
        if !full {
            tracing::info!(table = %c.label, rows = c.done, "incremental snapshot: table done");
            self.current = None;
        }
        Step::Publish(codec, rows.into_iter().map(|(_, row)| row).collect())
    }
}

/// With `snapshot.new.tables: incremental`: the captured tables the
/// (filtered) publication does not cover yet, as `schema.table`; none on
/// a first start, when the publication does not exist.
pub async fn new_tables(
    pool: &PgPool,
    cfg: &ConnectorConfig,
    captured: &[CapturedTable],
) -> Result<Vec<String>, ControlError> {
    if !cfg.snapshot_new_tables {
        return Ok(Vec::new());
    }
    let covered: Vec<(String, String)> = sqlx::query_as(
        "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1",
    )
    .bind(&cfg.publication_name)
    .fetch_all(pool)
    .await
    .map_err(control::sql("reading the publication's tables"))?;
    let exists: Option<(i64,)> =
        sqlx::query_as("SELECT 1::bigint FROM pg_publication WHERE pubname = $1")
            .bind(&cfg.publication_name)
            .fetch_optional(pool)
            .await
            .map_err(control::sql("reading publications"))?;
    if exists.is_none() {
        return Ok(Vec::new());
    }
    Ok(captured
        .iter()
        .filter(|t| !covered.iter().any(|(s, n)| *s == t.schema && *n == t.name))
        .map(|t| format!("{}.{}", t.schema, t.name))
        .collect())
}

/// Asks for an incremental snapshot of `tables` through the signal table,
/// as an operator would (so it is queued, recorded and resumed alike).
pub async fn request(
    pool: &PgPool,
    cfg: &ConnectorConfig,
    tables: &[String],
) -> Result<(), ControlError> {
    let Some(table) = &cfg.signal_table else {
        return Ok(());
    };
    let data = serde_json::json!({ "data-collections": tables, "type": "incremental" });
    tracing::info!(
        ?tables,
        "snapshot.new.tables: requesting an incremental snapshot of the new tables"
    );
    // Debezium's `id` is varchar(42): a UUID fits, with a suffix of 6.
    let id = format!("{}-new", uuid());
    insert_signal(
        pool,
        table,
        &id,
        "execute-snapshot",
        Some(&data.to_string()),
    )
    .await
    .map_err(control::sql("signalling a snapshot of the new tables"))
}

/// Writes one row into the signal table `(schema, name)`, in Debezium's
/// layout: watermarks and the publisher's own snapshot requests alike.
async fn insert_signal(
    pool: &PgPool,
    (schema, name): &(String, String),
    id: &str,
    kind: &str,
    data: Option<&str>,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO {}.{} (id, type, data) VALUES ($1, $2, $3)",
        control::quote(schema),
        control::quote(name)
    );
    sqlx::query(&sql)
        .bind(id)
        .bind(kind)
        .bind(data)
        .execute(pool)
        .await?;
    Ok(())
}

/// A random id for a watermark (UUID-shaped, as Debezium's).
fn uuid() -> String {
    let a: u128 = rand::random();
    let h = format!("{a:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests;
