//! pg-publisher: tails the Postgres WAL through a logical replication slot
//! (pgoutput) and produces Debezium-compatible change events to Kafka.
//!
//! Built in steps (see the issue tracker); so far: the pgoutput decoder.

pub mod pgoutput;
