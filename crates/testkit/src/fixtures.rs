//! The real Debezium connector events in `../shared/fixtures/debezium`.
//!
//! They come from other projects and are not copied into this repository:
//! tests read them at test time and skip (saying so) when the folder is
//! absent. Under CI (`CI` set and not `false`/`0`) a missing folder fails
//! the test instead: a suite that silently skips its real-data tests would
//! pass without proving anything. `SINKFLEET_SHARED_DIR` points elsewhere
//! if needed.

use std::path::{Path, PathBuf};

/// The fixture's bytes, or `None` (after printing why) when the shared
/// folder is missing outside CI. Panics under CI when the folder is
/// missing, and always when the folder exists but the file does not.
pub fn debezium(name: &str) -> Option<Vec<u8>> {
    let dir = std::env::var_os("SINKFLEET_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
        .join("fixtures/debezium");
    if !dir.is_dir() {
        missing(&dir, std::env::var("CI").ok().as_deref());
        return None;
    }
    match std::fs::read(dir.join(name)) {
        Ok(bytes) => Some(bytes),
        Err(e) => panic!("fixture {name}: {e}"),
    }
}

/// Skips (with a message) or, under CI, fails for a missing fixture folder.
fn missing(dir: &Path, ci: Option<&str>) {
    let under_ci = ci.is_some_and(|v| !v.is_empty() && v != "false" && v != "0");
    if under_ci {
        panic!(
            "Debezium fixtures not found at {} and CI is set: these tests must run in CI",
            dir.display()
        );
    }
    eprintln!("skipping: Debezium fixtures not found at {}", dir.display());
}

/// The fixtures as `(value file, key file, key columns)`, in the order the
/// fixtures' README gives (the order a sink applies them in).
pub const STEPS: [(&str, Option<&str>, &[&str]); 16] = [
    (
        "01-read-snapshot-with-schema.value.json",
        Some("01-read-snapshot-with-schema.key.json"),
        &[],
    ),
    ("02-read-snapshot-no-schema.value.json", None, &["id"]),
    ("03-update-full-before-no-schema.value.json", None, &["id"]),
    ("04-create-with-schema.value.json", None, &["id"]),
    (
        "05-update-full-before-with-schema.value.json",
        None,
        &["id"],
    ),
    (
        "06-delete-full-before-with-schema.value.json",
        None,
        &["id"],
    ),
    ("07-create-no-schema.value.json", None, &["id"]),
    ("08-update-before-null-no-schema.value.json", None, &["id"]),
    (
        "09-delete-default-identity-no-schema.value.json",
        None,
        &["id"],
    ),
    ("10-update-full-before-no-schema.value.json", None, &["id"]),
    (
        "19-read-decimal-microtimestamp-with-schema.value.json",
        None,
        &["payment_id"],
    ),
    (
        "20-read-array-enum-decimal-with-schema.value.json",
        None,
        &["film_id"],
    ),
    (
        "21-delete-composite-pk-default-identity-with-schema.value.json",
        None,
        &["actor_id", "film_id"],
    ),
    (
        "22-read-microtimestamp-date-microtime-with-schema.value.json",
        None,
        &["id"],
    ),
    ("25-create-with-schema-docs-3x.value.json", None, &["id"]),
    ("26-truncate-docs-payload-only.value.json", None, &[]),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_folder_skips_locally_and_fails_under_ci() {
        let dir = Path::new("/nonexistent");
        missing(dir, None);
        missing(dir, Some("false"));
        missing(dir, Some(""));
        let failed = std::panic::catch_unwind(|| missing(dir, Some("true")));
        assert!(failed.is_err(), "CI=true must fail the test");
    }
}
