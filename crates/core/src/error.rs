//! Errors, classified by what the runtime should do about them.
//!
//! *Retryable* errors (a target that is down, a timeout, a serialization
//! failure) are retried with backoff while the affected partitions stay
//! paused. *Permanent* errors (bad data, a value the target column cannot
//! hold) are never retried as they are: the runtime splits the batch to
//! isolate the offending record and routes it to the dead-letter topic.

use thiserror::Error;

/// The class of an error that put a record into the dead-letter topic; it
/// goes into the `sinkfleet.error.class` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The record could not be decoded (malformed JSON, unknown envelope).
    Decode,
    /// The target refused the change (type mismatch, constraint, identifier).
    Apply,
    /// The change needs a schema change the sink will not make automatically.
    Schema,
    /// Nothing is wrong with the record itself: an earlier record of its key
    /// was dead-lettered and the key is parked (`on_error: park_key`), so it
    /// may not overtake that record.
    Parked,
}

impl ErrorClass {
    /// Every class, for series registered before their first record.
    pub const ALL: [ErrorClass; 4] = [
        ErrorClass::Decode,
        ErrorClass::Apply,
        ErrorClass::Schema,
        ErrorClass::Parked,
    ];

    /// Stable name used in headers and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Decode => "decode",
            ErrorClass::Apply => "apply",
            ErrorClass::Schema => "schema",
            ErrorClass::Parked => "parked",
        }
    }
}

/// A sink that cannot be built from its configuration: an unparsable URL,
/// an unreadable CA file, a directory that cannot be created. Reported at
/// start with the key at fault. It is no [`ErrorClass`]: no record is at
/// fault, so nothing goes to the dead-letter topic for it.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    /// The configuration key, e.g. `sink.clickhouse.ca_cert`.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    /// The key at fault and why.
    pub fn new(key: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        ConfigError {
            key: key.into(),
            reason: reason.to_string(),
        }
    }
}

/// A Kafka record that cannot be turned into a [`crate::Change`].
#[derive(Debug, Error, Clone, PartialEq)]
pub enum DecodeError {
    /// The value (or key) is not valid JSON.
    #[error("invalid JSON in record {part}: {message}")]
    Json {
        /// `key` or `value`.
        part: &'static str,
        /// Parser message.
        message: String,
    },
    /// A required field is missing or has the wrong JSON type.
    #[error("field `{path}`: {message}")]
    Field {
        /// Dotted path of the field, e.g. `payload.source.lsn`.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// The record is JSON but no change event: it names what arrived.
    #[error(
        "{part} is not a Debezium change event: {found}; expected `op`, `source` and `before`/`after`, \
         bare or as the `payload` of a JsonConverter envelope {{\"schema\", \"payload\"}}"
    )]
    NotAnEvent {
        /// `value`, or `payload` inside an envelope.
        part: &'static str,
        /// What the record holds instead (its top-level keys).
        found: String,
    },
    /// The `op` is not one of c, r, u, d, t.
    #[error("unknown op `{0}`")]
    UnknownOp(String),
    /// A logical decoding message event (`op` m), which the publisher
    /// writes to `<topic.prefix>.message`.
    #[error(
        "a logical decoding message (op `m`) is not a table change: sinks do not apply messages \
         (leave the `<topic.prefix>.message` topic out of kafka.topics)"
    )]
    LogicalMessage,
    /// The record is not in the Confluent wire format (magic byte 0, a
    /// 4-byte schema id) its topic is configured for.
    #[error("record {part} is not framed for a schema registry: {message}")]
    Framing {
        /// `key` or `value`.
        part: &'static str,
        /// What is wrong (wrong magic byte, truncated).
        message: String,
    },
    /// The registry schema the record names cannot decode it: unknown to
    /// the registry, of another type, or no usable schema.
    #[error("record {part}, schema id {id}: {message}")]
    UnusableSchema {
        /// `key` or `value`.
        part: &'static str,
        /// The schema id from the record's framing.
        id: u32,
        /// Why.
        message: String,
    },
    /// The payload does not decode with the schema it names (truncated,
    /// trailing bytes, or written with another schema).
    #[error("record {part} does not match its schema (id {id}): {message}")]
    SchemaMismatch {
        /// `key` or `value`.
        part: &'static str,
        /// The schema id from the record's framing.
        id: u32,
        /// The decoder's message.
        message: String,
    },
    /// No key could be determined for a keyed operation.
    #[error("no key: the record has no key and no key columns are configured for {0}")]
    MissingKey(String),
}

/// An error from a sink write.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SinkError {
    /// Temporary: retry the same batch later (connection refused, timeout,
    /// deadlock, serialization failure, server shutting down).
    #[error("retryable: {0}")]
    Retryable(String),
    /// The batch cannot be applied as it is; retrying will not help.
    #[error("permanent ({}): {message}", class.as_str())]
    Permanent {
        /// Why, for the dead-letter header.
        class: ErrorClass,
        /// Human-readable reason.
        message: String,
    },
}

impl SinkError {
    /// True if retrying the same write may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SinkError::Retryable(_))
    }

    /// Shorthand for a permanent apply error.
    pub fn apply(message: impl Into<String>) -> Self {
        SinkError::Permanent {
            class: ErrorClass::Apply,
            message: message.into(),
        }
    }

    /// Shorthand for a permanent schema error.
    pub fn schema(message: impl Into<String>) -> Self {
        SinkError::Permanent {
            class: ErrorClass::Schema,
            message: message.into(),
        }
    }
}

/// `e` with its chain of causes, `outer: inner: innermost`. Client
/// libraries often say only "error sending request" at the top and keep
/// the reason (refused, a certificate, a timeout) in the sources, which
/// an operator reading a log line needs.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some wrappers repeat their source's message; say it once.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod causes_tests {
    use super::with_causes;

    #[derive(Debug, thiserror::Error)]
    #[error("error sending request")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_reason_behind_a_generic_message_is_kept() {
        let e = Outer(std::io::Error::other(
            "invalid peer certificate: UnknownIssuer",
        ));
        assert_eq!(
            with_causes(&e),
            "error sending request: invalid peer certificate: UnknownIssuer"
        );
    }
}
