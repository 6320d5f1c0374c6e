//! The stored versions of the keys a writer has seen, for the stale check
//! on servers without `UInt128` (see `ClickHouseSink::drop_stale`).
//!
//! The check used to read every batch's keys back (`SELECT … FINAL`, 43% of
//! the write time on 18.16). A key's stored version changes only through
//! this writer: a key belongs to one partition, a partition to one writer
//! from its assignment to its revoke, and the writer records what it
//! inserts. So after one read the writer knows the key's version. What it
//! cannot know, it forgets: everything on a revoke (another writer may own
//! the partition next), on a truncate (its tombstones change versions) and
//! after any failed write (an insert may have landed without an answer).

use sinkfleet_core::Version;
use std::collections::HashMap;

/// Per target table, per key: the stored version (`None`: no row).
#[derive(Debug, Default)]
pub struct StoredVersions {
    /// Most keys remembered; past it the cache starts over (0: off).
    capacity: usize,
    tables: HashMap<String, HashMap<String, Option<Version>>>,
    len: usize,
}

impl StoredVersions {
    /// A cache of at most `capacity` keys.
    pub fn new(capacity: usize) -> Self {
        StoredVersions {
            capacity,
            ..StoredVersions::default()
        }
    }

    /// What is known of `key` in `table`: `None` if nothing, `Some(None)`
    /// if it has no stored row.
    pub fn get(&self, table: &str, key: &str) -> Option<Option<Version>> {
        self.tables.get(table)?.get(key).copied()
    }

    /// Records `key`'s stored version, read from the table or written to
    /// it; keeps the newer of what it knew and `stored`.
    pub fn record(&mut self, table: &str, key: String, stored: Option<Version>) {
        if self.capacity == 0 {
            return;
        }
        if self.len >= self.capacity && self.get(table, &key).is_none() {
            self.clear();
        }
        let keys = match self.tables.get_mut(table) {
            Some(keys) => keys,
            None => self.tables.entry(table.to_owned()).or_default(),
        };
        match keys.get_mut(&key) {
            Some(known) => *known = (*known).max(stored),
            None => {
                keys.insert(key, stored);
                self.len += 1;
            }
        }
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.tables.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_starts_over_when_full() {
        let v = |major, minor| Some(Version::new(major, minor));
        let mut c = StoredVersions::new(2);
        assert_eq!(c.get("t", "1"), None);
        c.record("t", "1".into(), None);
        assert_eq!(c.get("t", "1"), Some(None));
        c.record("t", "1".into(), v(5, 2));
        c.record("t", "1".into(), v(5, 1));
        assert_eq!(c.get("t", "1"), Some(v(5, 2)));
        c.record("u", "1".into(), v(1, 0));
        assert_eq!(c.get("u", "1"), Some(v(1, 0)));
        // A third key: the cache starts over with it.
        c.record("t", "2".into(), v(7, 0));
        assert_eq!((c.get("t", "1"), c.get("t", "2")), (None, Some(v(7, 0))));
        let mut off = StoredVersions::new(0);
        off.record("t", "1".into(), v(1, 1));
        assert_eq!(off.get("t", "1"), None);
    }
}
