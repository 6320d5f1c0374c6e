//! The real Debezium connector events in `../shared/fixtures/debezium`.
//!
//! They come from other projects and are not copied into this repository:
//! tests read them at test time and skip (saying so) when the folder is
//! absent. `SINKFLEET_SHARED_DIR` points elsewhere if needed.

use std::path::PathBuf;

/// The fixture's bytes, or `None` (after printing why) when the shared
/// folder is missing. Panics if the folder exists but the file does not.
pub fn debezium(name: &str) -> Option<Vec<u8>> {
    let dir = std::env::var_os("SINKFLEET_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
        .join("fixtures/debezium");
    if !dir.is_dir() {
        eprintln!("skipping: Debezium fixtures not found at {}", dir.display());
        return None;
    }
    match std::fs::read(dir.join(name)) {
        Ok(bytes) => Some(bytes),
        Err(e) => panic!("fixture {name}: {e}"),
    }
}
