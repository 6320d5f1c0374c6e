//! Versions: the total order per key that makes replays harmless.
//!
//! For Postgres CDC the version is the pair `(commit_lsn, change_lsn)`,
//! compared lexicographically. The commit LSN goes first because a
//! transaction that began before a slot's snapshot point and committed after
//! it has change LSNs *below* the snapshot LSN: ordering by the change LSN
//! alone would reject such a real update as stale.

use serde::Deserialize;
use std::fmt;

/// A totally ordered version, compared lexicographically as `(major, minor)`.
///
/// * Debezium / pg-publisher events: `(commit_lsn, change_lsn)`; snapshot
///   rows `(snapshot_lsn, 0)`; events without `source.sequence` `(lsn, lsn)`.
/// * A configured field: `(field value mapped order-preservingly to u64, 0)`.
/// * The Kafka offset: `(offset, 0)` (valid because one key lives in one
///   partition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Version {
    /// Most significant part (the commit LSN for CDC events).
    pub major: u64,
    /// Least significant part (the change's own LSN for CDC events).
    pub minor: u64,
}

impl Version {
    /// The smallest version; every real change is newer.
    pub const ZERO: Version = Version { major: 0, minor: 0 };

    /// Builds a version from its two parts.
    pub const fn new(major: u64, minor: u64) -> Self {
        Version { major, minor }
    }

    /// The version as one 128-bit integer with the same order, for targets
    /// that store it in a single numeric column.
    pub const fn as_u128(self) -> u128 {
        ((self.major as u128) << 64) | self.minor as u128
    }

    /// Inverse of [`Version::as_u128`].
    pub const fn from_u128(v: u128) -> Self {
        Version {
            major: (v >> 64) as u64,
            minor: v as u64,
        }
    }

    /// Maps a signed integer to a version so that the integer order is kept
    /// (flipping the sign bit puts negative values below positive ones).
    pub const fn from_i64(v: i64) -> Self {
        Version {
            major: (v as u64) ^ (1 << 63),
            minor: 0,
        }
    }
}

impl fmt::Display for Version {
    /// Postgres-style LSN pair, e.g. `0/22A8F10:0/22A8F58`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:X}/{:X}:{:X}/{:X}",
            self.major >> 32,
            self.major & 0xFFFF_FFFF,
            self.minor >> 32,
            self.minor & 0xFFFF_FFFF
        )
    }
}

/// Where a topic's events take their version from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum VersionSource {
    /// `source.sequence` (`[commit_lsn, lsn]`) where present, else `source.lsn`.
    #[default]
    DebeziumLsn,
    /// A column of the row image (integer, timestamp or date), e.g. `updated_at`.
    Field {
        /// Column name in the event's row image.
        field: String,
    },
    /// The Kafka offset of the record.
    KafkaOffset,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_lsn_dominates_change_lsn() {
        // A change with a low change LSN but a later commit is newer.
        let straddling = Version::new(200, 50);
        let snapshot = Version::new(100, 0);
        assert!(straddling > snapshot);
        assert!(Version::new(100, 2) > Version::new(100, 1));
    }

    #[test]
    fn u128_round_trip_keeps_order() {
        let a = Version::new(1, u64::MAX);
        let b = Version::new(2, 0);
        assert!(a.as_u128() < b.as_u128());
        assert_eq!(Version::from_u128(a.as_u128()), a);
    }

    #[test]
    fn signed_values_keep_their_order() {
        assert!(Version::from_i64(-5) < Version::from_i64(-1));
        assert!(Version::from_i64(-1) < Version::from_i64(0));
        assert!(Version::from_i64(0) < Version::from_i64(7));
    }
}
