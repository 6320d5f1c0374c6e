//! Names and string literals in ClickHouse SQL: which names are usable, and
//! how names and strings are quoted.

use sinkfleet_core::SinkError;

/// Longest database, table or column name accepted: names become
/// directory and file names on the server (255 bytes on most file systems).
pub const MAX_NAME_BYTES: usize = 255;

/// Any identifier (configured ones included): no control characters, at
/// most [`MAX_NAME_BYTES`]. Names from events also pass the identifier policy.
pub fn check_ident(name: &str) -> Result<(), SinkError> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control) {
        return Err(SinkError::schema(format!(
            "`{}` is not a safe identifier",
            name.escape_debug()
        )));
    }
    Ok(())
}

/// A back-quoted identifier (backslash and backquote escaped).
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
}

/// A single-quoted string literal.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_and_unsafe_names_are_refused() {
        assert_eq!(quote("we`ird\\"), "`we\\`ird\\\\`");
        assert!(check_ident("a\nb").is_err());
    }
}
