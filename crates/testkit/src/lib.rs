//! Test and demo support: build Debezium-shaped events, generate a
//! realistic change stream together with the final state a correct sink
//! must reach, and talk to Kafka for fixtures and assertions.

pub mod avro;
pub mod debezium;
pub mod fixtures;
pub mod json_schema;
pub mod kafka;
pub mod process;
pub mod protobuf;
pub mod records;
pub mod services;
pub mod target;
pub mod workload;
