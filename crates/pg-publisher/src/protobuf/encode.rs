//! A JsonConverter payload → the Protobuf binary `ProtobufData.fromConnectData`
//! gives for the same Connect value, in the schema [`super::proto_schema`]
//! made (default settings: no presence, so a null or a proto3 zero value
//! is not written; empty repeated fields are not written; numeric repeated
//! fields are packed; a nested message is written whenever it is not null).
//!
//! Decimal: `confluent.type.Decimal {value: the unscaled two's complement
//! big-endian bytes (Connect's Decimal bytes, as JsonConverter wrote them);
//! precision: the unscaled value's digit count (`BigDecimal.precision`);
//! scale}`. Date: `google.type.Date` of the epoch day; Time:
//! `google.type.TimeOfDay` of the milliseconds since midnight; Timestamp:
//! `google.protobuf.Timestamp` (seconds floored, nanos non-negative).
//! Refused, as values ProtobufData would change or refuse: a Date before
//! 1582-10-15 (its `Calendar` is Julian there), a Time of 24:00 (written as
//! 00:00), a Timestamp outside years 1 to 9999 (`Timestamps.fromMillis`).

use super::Options;
use crate::connect_schema::{
    DATE, DECIMAL, TIME, TIMESTAMP, base64_bytes, decimal_scale, field_name, fields, s_default,
    s_name, s_optional, s_type,
};
use serde_json::Value;

const VARINT: u32 = 0;
/// 1582-10-15 as days since 1970-01-01.
const GREGORIAN_CUTOVER_DAY: i64 = -141_427;
const TIMESTAMP_MIN_SECONDS: i64 = -62_135_596_800;
const TIMESTAMP_MAX_SECONDS: i64 = 253_402_300_799;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(number: u32, wire: u32, out: &mut Vec<u8>) {
    varint(u64::from(number << 3 | wire), out);
}

fn len_delimited(number: u32, body: &[u8], out: &mut Vec<u8>) {
    tag(number, LEN, out);
    varint(body.len() as u64, out);
    out.extend_from_slice(body);
}

/// A scalar as it goes on the wire: its wire type and bytes (without tag);
/// `None` for the proto3 zero value unless `presence` (a zero is not
/// written without presence).
fn scalar(
    s: &Value,
    v: &Value,
    presence: bool,
    here: &str,
) -> Result<Option<(u32, Vec<u8>)>, String> {
    let wrong = || format!("{here}: {v} where {} is expected", s_type(s));
    let mut out = Vec::new();
    let wire = match s_type(s) {
        "int8" | "int16" | "int32" => {
            let n = v.as_i64().ok_or_else(wrong)?;
            let n = i32::try_from(n).map_err(|_| wrong())?;
            if n == 0 && !presence {
                return Ok(None);
            }
            // int32 negatives are sign-extended to 64 bits on the wire.
            varint(i64::from(n) as u64, &mut out);
            VARINT
        }
        "int64" => {
            let n = v.as_i64().ok_or_else(wrong)?;
            if n == 0 && !presence {
                return Ok(None);
            }
            varint(n as u64, &mut out);
            VARINT
        }
        "float" => {
            let x = float(v).ok_or_else(wrong)? as f32;
            if x.to_bits() == 0 && !presence {
                return Ok(None);
            }
            out.extend_from_slice(&x.to_le_bytes());
            FIXED32
        }
        "double" => {
            let x = float(v).ok_or_else(wrong)?;
            if x.to_bits() == 0 && !presence {
                return Ok(None);
            }
            out.extend_from_slice(&x.to_le_bytes());
            FIXED64
        }
        "boolean" => {
            let b = v.as_bool().ok_or_else(wrong)?;
            if !b && !presence {
                return Ok(None);
            }
            out.push(u8::from(b));
            VARINT
        }
        "string" => {
            let t = v.as_str().ok_or_else(wrong)?;
            if t.is_empty() && !presence {
                return Ok(None);
            }
            varint(t.len() as u64, &mut out);
            out.extend_from_slice(t.as_bytes());
            LEN
        }
        "bytes" => {
            let b = base64_bytes(v).map_err(|e| format!("{here}: {e}"))?;
            if b.is_empty() && !presence {
                return Ok(None);
            }
            varint(b.len() as u64, &mut out);
            out.extend_from_slice(&b);
            LEN
        }
        other => return Err(format!("{here}: unexpected Connect type `{other}`")),
    };
    Ok(Some((wire, out)))
}

/// A JsonConverter float: a number, or Jackson's non-finite strings.
fn float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(t) => match t.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// The decimal digit count of a two's complement big-endian integer
/// (`BigDecimal.precision`: 1 for zero).
pub(crate) fn digits(bytes: &[u8]) -> u32 {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    // The magnitude, big-endian.
    let mut mag: Vec<u8> = if negative {
        let mut m: Vec<u8> = bytes.iter().map(|b| !b).collect();
        for b in m.iter_mut().rev() {
            let (sum, carry) = b.overflowing_add(1);
            *b = sum;
            if !carry {
                break;
            }
        }
        m
    } else {
        bytes.to_vec()
    };
    let mut count = 0;
    loop {
        while mag.first() == Some(&0) {
            mag.remove(0);
        }
        if mag.is_empty() {
            return count.max(1);
        }
        let mut rem: u32 = 0;
        for b in mag.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        count += 1;
    }
}

/// A message field's body, for the logical types `ProtobufData` keeps.
fn logical_body(s: &Value, v: &Value, here: &str) -> Result<Option<Vec<u8>>, String> {
    let wrong = || format!("{here}: {v} where {} is expected", s_name(s).unwrap_or(""));
    let mut body = Vec::new();
    match s_name(s) {
        Some(DECIMAL) => {
            let bytes = base64_bytes(v).map_err(|e| format!("{here}: {e}"))?;
            if bytes.is_empty() {
                return Err(wrong());
            }
            len_delimited(1, &bytes, &mut body);
            tag(2, VARINT, &mut body);
            varint(u64::from(digits(&bytes)), &mut body);
            let scale = decimal_scale(s).map_err(|e| format!("{here}: {e}"))?;
            let scale = i32::try_from(scale).map_err(|_| wrong())?;
            if scale != 0 {
                tag(3, VARINT, &mut body);
                varint(i64::from(scale) as u64, &mut body);
            }
        }
        Some(DATE) => {
            let days = v.as_i64().ok_or_else(wrong)?;
            // ProtobufData splits the date with a java.util.Calendar, which
            // is Julian before the Gregorian cutover: it would write
            // another day than the proleptic Gregorian one the value means.
            if days < GREGORIAN_CUTOVER_DAY {
                return Err(format!(
                    "{here}: {v} (days since 1970-01-01) is before 1582-10-15, where ProtobufData's Calendar writes Julian dates"
                ));
            }
            let date = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
                .and_then(|e| e.checked_add_signed(chrono::TimeDelta::try_days(days)?))
                .ok_or_else(wrong)?;
            use chrono::Datelike;
            for (n, x) in [
                (1, date.year()),
                (2, date.month() as i32),
                (3, date.day() as i32),
            ] {
                if x != 0 {
                    tag(n, VARINT, &mut body);
                    varint(i64::from(x) as u64, &mut body);
                }
            }
        }
        Some(TIME) => {
            let ms = v
                .as_i64()
                .filter(|m| (0..86_400_000).contains(m))
                .ok_or_else(wrong)?;
            let parts = [
                ms / 3_600_000,
                ms / 60_000 % 60,
                ms / 1000 % 60,
                ms % 1000 * 1_000_000,
            ];
            for (n, x) in (1..).zip(parts) {
                if x != 0 {
                    tag(n, VARINT, &mut body);
                    varint(x as u64, &mut body);
                }
            }
        }
        Some(TIMESTAMP) => {
            let ms = v.as_i64().ok_or_else(wrong)?;
            // Timestamps.fromMillis refuses what google.protobuf.Timestamp
            // cannot hold (0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z).
            if !(TIMESTAMP_MIN_SECONDS..=TIMESTAMP_MAX_SECONDS).contains(&ms.div_euclid(1000)) {
                return Err(format!(
                    "{here}: {v} (ms since the epoch) is outside google.protobuf.Timestamp's range (years 1 to 9999)"
                ));
            }
            let (seconds, nanos) = (ms.div_euclid(1000), ms.rem_euclid(1000) * 1_000_000);
            for (n, x) in [(1, seconds), (2, nanos)] {
                if x != 0 {
                    tag(n, VARINT, &mut body);
                    varint(x as u64, &mut body);
                }
            }
        }
        _ => return Ok(None),
    }
    Ok(Some(body))
}

/// One non-null value of field `number` (schema `s`), appended to `out`;
/// a scalar zero only with `presence` (an `optional` field, or an element
/// of a repeated one).
fn write_one(
    s: &Value,
    v: &Value,
    number: u32,
    presence: bool,
    options: Options,
    here: &str,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    if let Some(body) = logical_body(s, v, here)? {
        len_delimited(number, &body, out);
    } else if s_type(s) == "struct" {
        let mut body = Vec::new();
        write_fields(s, v, options, here, &mut body)?;
        len_delimited(number, &body, out);
    } else if let Some((wire, bytes)) = scalar(s, v, presence, here)? {
        tag(number, wire, out);
        out.extend_from_slice(&bytes);
    }
    Ok(())
}

fn write_fields(
    s: &Value,
    v: &Value,
    options: Options,
    path: &str,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let object = v
        .as_object()
        .ok_or_else(|| format!("{}: {v} where a struct is expected", or_root(path)))?;
    for (i, f) in fields(s).iter().enumerate() {
        let name = field_name(f);
        let here = format!("{path}.{name}");
        let number = u32::try_from(i + 1).map_err(|_| format!("{here}: too many fields"))?;
        let mut e = object.get(name).unwrap_or(&Value::Null);
        if e.is_null() {
            e = s_default(f).unwrap_or(e);
        }
        if e.is_null() {
            if s_optional(f) {
                continue;
            }
            return Err(format!("{here}: null for a required {} field", s_type(f)));
        }
        if s_type(f) != "array" {
            let presence = options.optional_for_nullables && s_optional(f);
            write_one(f, e, number, presence, options, &here, out)?;
            continue;
        }
        let items = f.get("items").ok_or("an array schema without items")?;
        let values = e
            .as_array()
            .ok_or_else(|| format!("{here}: {e} where an array is expected"))?;
        if let Some(i) = values.iter().position(Value::is_null) {
            return Err(format!(
                "{here}[{i}]: a null array element, which ProtobufConverter cannot write"
            ));
        }
        if values.is_empty() {
            continue;
        }
        let packed = super::logical(items).is_none()
            && matches!(
                s_type(items),
                "int8" | "int16" | "int32" | "int64" | "float" | "double" | "boolean"
            );
        if packed {
            let mut body = Vec::new();
            for (j, x) in values.iter().enumerate() {
                if let Some((_, bytes)) = scalar(items, x, true, &format!("{here}[{j}]"))? {
                    body.extend_from_slice(&bytes);
                }
            }
            len_delimited(number, &body, out);
        } else {
            for (j, x) in values.iter().enumerate() {
                write_one(
                    items,
                    x,
                    number,
                    true,
                    options,
                    &format!("{here}[{j}]"),
                    out,
                )?;
            }
        }
    }
    Ok(())
}

fn or_root(path: &str) -> &str {
    if path.is_empty() { "<root>" } else { path }
}

/// The Protobuf binary of payload `v` (a struct) of Connect schema `s`,
/// appended to `out`.
pub fn write_message(
    s: &Value,
    v: &Value,
    options: Options,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    write_fields(s, v, options, "", out)
}
