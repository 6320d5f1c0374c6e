//! pg-publisher: tails the Postgres WAL through a logical replication slot
//! (pgoutput) and produces Debezium-compatible change events to Kafka.
//!
//! Built in steps (see the issue tracker); so far: the pgoutput decoder
//! and the Debezium-compatible configuration.

pub mod config;
pub mod event;
pub mod pgoutput;
pub mod types;
