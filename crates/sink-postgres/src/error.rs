//! Classification of Postgres errors into retryable and permanent.

use sinkfleet_core::SinkError;

/// SQLSTATE classes and codes worth retrying: connection problems (08),
/// serialization failures and deadlocks (40001, 40P01), lock timeouts
/// (55P03), operator intervention and server shutdown (57), resources (53),
/// system errors (58). Everything else a database reports is about the
/// data or the schema and will fail again.
fn retryable_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57")
        || code.starts_with("58")
        || matches!(code, "40001" | "40P01" | "55P03" | "55006" | "XX000")
}

/// Maps a driver error to a [`SinkError`].
pub(crate) fn classify(e: sqlx::Error) -> SinkError {
    match &e {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) if retryable_sqlstate(&code) => {
                SinkError::Retryable(format!("{db} (SQLSTATE {code})"))
            }
            // A table or column vanished under us: the cache is stale.
            Some(code) if matches!(code.as_ref(), "42P01" | "42703") => {
                SinkError::Retryable(format!("{db} (SQLSTATE {code}); refreshing table metadata"))
            }
            Some(code) => SinkError::apply(format!("{db} (SQLSTATE {code})")),
            None => SinkError::apply(db.to_string()),
        },
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => SinkError::Retryable(e.to_string()),
        _ => SinkError::Retryable(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::retryable_sqlstate;

    #[test]
    fn sqlstates() {
        assert!(retryable_sqlstate("08006"));
        assert!(retryable_sqlstate("57P01"));
        assert!(retryable_sqlstate("40P01"));
        assert!(!retryable_sqlstate("22P02"));
        assert!(!retryable_sqlstate("23502"));
    }
}
