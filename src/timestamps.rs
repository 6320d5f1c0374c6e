//! How the operator commands print a time: in UTC, and with its age.

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `ms` (since the epoch) as UTC time with its age: `2026-12-06T03:12:09Z
/// (41s ago)`.
pub fn time_text(ms: i64) -> String {
    let age = (now_ms() - ms).max(0) / 1000;
    format!("{} ({age}s ago)", utc(ms))
}

/// `ms` (since the epoch) as UTC time: `2026-12-06T03:12:09Z`.
pub fn utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}
