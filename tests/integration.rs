//! The integration tests, one module per area, in one test executable:
//! the shared harness (`common`) and the dependencies are compiled and
//! linked once instead of once per file, and libtest keeps its threads
//! busy across areas instead of waiting for each file's slowest test.
//!
//! Four stay executables of their own, because they must not share the
//! machine with unrelated tests: `clickhouse_restart` restarts the ClickHouse
//! server, `chaos` is a crash storm that takes both cores, `monitoring`
//! runs its own Prometheus whose alerts must fire on time, and `publisher`
//! holds a source transaction open while its slot's consistent point waits
//! for the transactions running then (any other test's would stall it).

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

mod common;

mod avro;
mod cli;
mod clickhouse_pipeline;
mod conformance;
mod dlq;
mod docs;
mod exactly_once;
mod failures;
mod fixtures;
mod flattened;
mod json_schema;
mod manifests;
mod offsets;
mod operations;
mod parking;
mod pipeline;
mod protobuf;
mod publisher_types;
mod s3_parquet_pipeline;
mod transactions;
