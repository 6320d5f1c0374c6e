//! The Confluent Protobuf framing: magic byte 0, a 4-byte big-endian
//! schema id, the message indexes, the Protobuf body.
//!
//! The message indexes say which message of the schema's file the body
//! is: a zig-zag varint count, then that many zig-zag varint indexes (the
//! first into the file's top-level messages, each next one into the
//! previous message's nested ones). A count of 0 (a single 0 byte) is the
//! shortcut for `[0]`, the file's first message.

use crate::error::DecodeError;

/// More indexes than any real nesting: a count past it is corrupt data.
const MAX_INDEXES: i64 = 64;

/// A record's schema id, message indexes and Protobuf body.
pub(crate) fn frame<'r>(
    part: &'static str,
    record: &'r [u8],
) -> Result<(u32, Vec<usize>, &'r [u8]), DecodeError> {
    let (id, mut rest) = crate::debezium::avro::frame(part, record)?;
    let framing = |message: String| DecodeError::Framing { part, message };
    let count = zigzag(&mut rest).map_err(|e| framing(format!("message index count {e}")))?;
    if count == 0 {
        return Ok((id, vec![0], rest));
    }
    if !(1..=MAX_INDEXES).contains(&count) {
        return Err(framing(format!(
            "undecodable message indexes: a count of {count} (expected 1 to {MAX_INDEXES})"
        )));
    }
    let mut indexes = Vec::with_capacity(count as usize);
    for n in 0..count {
        let index = zigzag(&mut rest).map_err(|e| framing(format!("message index {n} {e}")))?;
        let index = usize::try_from(index).map_err(|_| {
            framing(format!(
                "undecodable message indexes: index {n} is negative ({index})"
            ))
        })?;
        indexes.push(index);
    }
    Ok((id, indexes, rest))
}

/// Reads one zig-zag varint, advancing `rest`.
fn zigzag(rest: &mut &[u8]) -> Result<i64, String> {
    let mut value: u64 = 0;
    for (i, byte) in rest.iter().enumerate() {
        if i >= 10 {
            break;
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *rest = &rest[i + 1..];
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    if rest.len() < 10 {
        Err("is truncated (the record ends inside a varint)".into())
    } else {
        Err("is undecodable (a varint longer than 10 bytes)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(indexes: &[u8], body: &[u8]) -> Vec<u8> {
        let mut r = vec![0, 0, 0, 0, 7];
        r.extend_from_slice(indexes);
        r.extend_from_slice(body);
        r
    }

    #[test]
    fn the_zero_shortcut_names_the_first_message() {
        let r = framed(&[0], b"\x08\x01");
        let (id, indexes, body) = frame("value", &r).unwrap();
        assert_eq!((id, indexes, body), (7, vec![0], &b"\x08\x01"[..]));
    }

    #[test]
    fn indexes_are_zigzag_varints_after_a_zigzag_count() {
        // count 2 (zig-zag 4), indexes 1 (2) and 70 (140 = 0x8c 0x01).
        let r = framed(&[4, 2, 0x8c, 0x01], b"rest");
        let (_, indexes, body) = frame("key", &r).unwrap();
        assert_eq!(indexes, vec![1, 70]);
        assert_eq!(body, b"rest");
    }

    #[test]
    fn truncated_and_corrupt_indexes_are_framing_errors() {
        let reason = |r: &[u8]| match frame("value", r) {
            Err(DecodeError::Framing { message, .. }) => message,
            other => panic!("{other:?}"),
        };
        assert!(reason(&framed(&[], b"")).contains("truncated"));
        assert!(reason(&framed(&[4, 2], b"")).contains("truncated"));
        assert!(reason(&framed(&[0x80], b"")).contains("truncated"));
        assert!(reason(&framed(&[1], b"")).contains("count of -1"));
        assert!(reason(&framed(&[2, 1], b"")).contains("negative"));
        assert!(reason(&[1, 0, 0, 0, 1, 0]).contains("wrong magic byte"));
        assert!(reason(&[0, 0, 0]).contains("truncated"));
    }
}
