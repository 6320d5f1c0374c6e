//! Which names taken from events a sink accepts for schemas, tables and
//! columns.
//!
//! Names arrive in change events, from outside the process. Quoting makes
//! any name *safe* to put into SQL, but not *sane*: a table named
//! `x"; CREATE TABLE …; --` would still be created, and a name longer than
//! the target's limit is cut by Postgres, so two long source names could
//! land in one table. Every sink therefore checks event names against one
//! policy before it creates or writes anything; a name outside it sends its
//! record to the dead-letter topic (class `schema`), naming the rule. Names
//! are never truncated or rewritten.

use crate::change::TableId;
use serde::Deserialize;
use std::fmt;

/// The identifier policy of a sink (`identifiers:` in its config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentifierPolicy {
    /// ASCII letters, digits, `_` and `$`, starting with a letter or `_`:
    /// names every SQL dialect, shell and path accepts without quoting.
    #[default]
    Strict,
    /// Any name without control characters (still always quoted), for
    /// sources whose names use spaces, dots or non-ASCII letters.
    Printable,
}

/// A name the policy refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} `{name}` is refused by the `{policy}` identifier policy: {reason}")]
pub struct IdentifierError {
    /// What the name names (`table`, `schema`, `column`).
    pub what: &'static str,
    /// The name, with control characters escaped.
    pub name: String,
    /// The policy that refused it.
    pub policy: IdentifierPolicy,
    /// Which rule it breaks.
    pub reason: &'static str,
}

impl fmt::Display for IdentifierPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdentifierPolicy::Strict => "strict",
            IdentifierPolicy::Printable => "printable",
        })
    }
}

impl IdentifierPolicy {
    /// Checks `name` (a `what`: table, schema, column) against the policy
    /// and the target's limit of `max_bytes`.
    pub fn check(
        self,
        what: &'static str,
        name: &str,
        max_bytes: usize,
    ) -> Result<(), IdentifierError> {
        let refuse = |reason| IdentifierError {
            what,
            name: name.escape_debug().to_string(),
            policy: self,
            reason,
        };
        if name.is_empty() {
            return Err(refuse("empty"));
        }
        if name.len() > max_bytes {
            return Err(refuse(
                "longer than the target allows (it would be cut, and two names could become one)",
            ));
        }
        match self {
            IdentifierPolicy::Strict => {
                let mut bytes = name.bytes();
                let first_ok = bytes
                    .next()
                    .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
                if !first_ok {
                    return Err(refuse("must start with an ASCII letter or `_`"));
                }
                if !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$') {
                    return Err(refuse(
                        "only ASCII letters, digits, `_` and `$` are allowed",
                    ));
                }
            }
            IdentifierPolicy::Printable => {
                if name.chars().any(char::is_control) {
                    return Err(refuse("contains control characters"));
                }
            }
        }
        Ok(())
    }

    /// Checks the names a sink takes from `table`: its schema (unless the
    /// sink's configuration names the schema instead: `configured_schema`)
    /// and its table name. Returns the `(schema, table)` to write to.
    pub fn check_table<'a>(
        self,
        table: &'a TableId,
        configured_schema: Option<&'a str>,
        max_bytes: usize,
    ) -> Result<(&'a str, &'a str), IdentifierError> {
        let schema = match configured_schema {
            Some(schema) => schema,
            None => {
                self.check("schema", &table.schema, max_bytes)?;
                &table.schema
            }
        };
        self.check("table", &table.table, max_bytes)?;
        Ok((schema, &table.table))
    }

    /// One line for `sinkfleet validate`: what is accepted, up to which
    /// length, and what happens to the rest.
    pub fn describe(self, max_bytes: usize) -> String {
        let rule = match self {
            IdentifierPolicy::Strict => {
                "ASCII letters, digits, `_` and `$`, starting with a letter or `_`"
            }
            IdentifierPolicy::Printable => "any name without control characters, always quoted",
        };
        format!(
            "identifiers: {self} ({rule}; at most {max_bytes} bytes); records with other schema, table or column names go to the dead-letter topic"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_accepts_plain_names_only() {
        let strict = IdentifierPolicy::Strict;
        for ok in ["orders", "_tmp", "Order_Items2", "a$b", &"x".repeat(63)] {
            assert!(strict.check("table", ok, 63).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "x\"; CREATE TABLE pwned (); --",
            "2fa",
            "$x",
            "first name",
            "naïve",
            "a.b",
            "../etc",
            &"x".repeat(64),
        ] {
            assert!(strict.check("table", bad, 63).is_err(), "{bad}");
        }
    }

    #[test]
    fn printable_refuses_control_characters_and_long_names() {
        let printable = IdentifierPolicy::Printable;
        assert!(printable.check("column", "first name", 63).is_ok());
        assert!(printable.check("column", "naïve", 63).is_ok());
        assert!(printable.check("column", "a\nb", 63).is_err());
        let err = printable
            .check("table", &"é".repeat(32), 63)
            .unwrap_err()
            .to_string();
        assert!(err.contains("longer than the target allows"), "{err}");
    }

    #[test]
    fn the_error_names_the_rule_and_the_policy() {
        let err = IdentifierPolicy::Strict
            .check("schema", "a-b", 63)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "schema `a-b` is refused by the `strict` identifier policy: only ASCII letters, digits, `_` and `$` are allowed"
        );
    }
}
