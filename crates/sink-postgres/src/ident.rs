//! SQL identifiers taken from events: validated, then always quoted.
//!
//! Table and column names arrive in change events, i.e. from outside the
//! process. They are never pasted into SQL raw: every one goes through
//! [`Ident::new`] (which rejects what Postgres could not store faithfully)
//! and is rendered quoted, with embedded quotes doubled.

use sinkfleet_core::SinkError;
use std::fmt;

/// Postgres truncates identifiers to 63 bytes (NAMEDATALEN - 1): longer
/// names would silently alias each other, so they are refused instead.
pub const MAX_IDENT_BYTES: usize = 63;

/// A validated SQL identifier; `Display` renders it quoted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ident(String);

/// Why a name is not a safe identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` is not a safe SQL identifier: {reason}")]
pub struct IdentError {
    /// The offending name (control characters escaped).
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Ident {
    /// Validates `name`: non-empty, at most 63 bytes, no control characters.
    pub fn new(name: &str) -> Result<Self, IdentError> {
        let err = |reason| IdentError {
            name: name.escape_debug().to_string(),
            reason,
        };
        if name.is_empty() {
            return Err(err("empty"));
        }
        if name.len() > MAX_IDENT_BYTES {
            return Err(err("longer than 63 bytes"));
        }
        if name.chars().any(char::is_control) {
            return Err(err("contains control characters"));
        }
        Ok(Ident(name.to_owned()))
    }

    /// The unquoted name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        f.write_str(&self.0.replace('"', "\"\""))?;
        f.write_str("\"")
    }
}

/// A schema-qualified table name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QualifiedName {
    /// Schema.
    pub schema: Ident,
    /// Table.
    pub table: Ident,
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

impl QualifiedName {
    /// `schema.table` without quotes, for logs, metric labels and keys.
    pub fn plain(&self) -> String {
        format!("{}.{}", self.schema.as_str(), self.table.as_str())
    }
}

/// Parses `schema.table` (split at the first dot).
pub(crate) fn parse_qualified(text: &str) -> Result<QualifiedName, IdentError> {
    let (schema, table) = text.split_once('.').ok_or(IdentError {
        name: text.to_owned(),
        reason: "expected schema.table",
    })?;
    Ok(QualifiedName {
        schema: Ident::new(schema)?,
        table: Ident::new(table)?,
    })
}

/// Comma-separated quoted identifiers.
pub(crate) fn idents(names: &[String]) -> Result<String, SinkError> {
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        out.push(
            Ident::new(n)
                .map_err(|e| SinkError::schema(e.to_string()))?
                .to_string(),
        );
    }
    Ok(out.join(", "))
}

/// A deterministic short name derived from `long` that fits in 63 bytes
/// (FNV-1a hash suffix; stable across releases, unlike std's hasher).
pub fn fit_name(long: &str) -> String {
    if long.len() <= MAX_IDENT_BYTES {
        return long.to_owned();
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in long.bytes() {
        hash ^= b as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut cut = 46;
    while !long.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{hash:016x}", &long[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_doubled_and_names_validated() {
        assert_eq!(Ident::new("we\"ird").unwrap().to_string(), "\"we\"\"ird\"");
        assert_eq!(
            Ident::new("Robert'); DROP TABLE x;--").unwrap().to_string(),
            "\"Robert'); DROP TABLE x;--\""
        );
        assert!(Ident::new("").is_err());
        assert!(Ident::new("a\0b").is_err());
        assert!(Ident::new("line\nbreak").is_err());
        assert!(Ident::new(&"x".repeat(64)).is_err());
        assert!(Ident::new(&"x".repeat(63)).is_ok());
    }

    #[test]
    fn long_names_fit_deterministically() {
        let long = "s".repeat(40) + "__" + &"t".repeat(40);
        let fitted = fit_name(&long);
        assert!(fitted.len() <= MAX_IDENT_BYTES);
        assert_eq!(fitted, fit_name(&long));
        assert_ne!(fitted, fit_name(&(long.clone() + "x")));
        assert_eq!(fit_name("short"), "short");
    }
}
