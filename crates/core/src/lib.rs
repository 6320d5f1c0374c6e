//! The contract every part of sinkfleet shares.
//!
//! A Kafka record carrying a CDC event is decoded into a [`Change`]: which
//! table, which key, which operation, the row image and a totally ordered
//! [`Version`]. Sinks apply changes as *(key, version) upserts*: a change
//! replaces what the target holds for its key only when its version is newer,
//! so replays, duplicates and out-of-order arrival converge to one state.
//!
//! Nothing here knows about Kafka clients or a particular target: the
//! consumer runtime lives in `sinkfleet-kafka`, each target in its own crate.

pub mod backpressure;
pub mod batch;
pub mod change;
pub mod debezium;
pub mod error;
pub mod identifier;
pub mod metrics;
pub mod sink;
pub mod table;
pub mod value;
pub mod version;
pub mod watermark;

pub use change::{
    Change, ColumnSchema, ColumnType, Op, Row, TableId, TableSchema, column_evidence,
};
pub use error::{ConfigError, DecodeError, ErrorClass, SinkError};
pub use identifier::{IdentifierError, IdentifierPolicy};
pub use sink::{
    ClaimFuture, Durability, DurableRange, FlushMode, OffsetStore, PartitionId, Position, Sink,
    SinkRecord,
};
pub use value::Value;
pub use version::{Version, VersionSource};
