//! Debezium's JSON value encodings → [`Value`].

use super::schema::Codec;
use crate::value::Value;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta};
use serde_json::Value as Json;

/// Debezium's stand-in for an unchanged TOASTed column. It means "this
/// column is not part of the change", never a value to write.
pub const UNAVAILABLE_VALUE: &str = "__debezium_unavailable_value";
/// The placeholder as a bytes column carries it (base64 of the text).
const UNAVAILABLE_VALUE_BASE64: &str = "X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==";

/// True if the JSON value is the TOAST placeholder in any of its encodings.
pub(crate) fn is_unavailable(json: &Json) -> bool {
    match json {
        Json::String(s) => is_unavailable_text(s),
        Json::Array(items) => items.len() == 1 && is_unavailable(&items[0]),
        _ => false,
    }
}

/// True if a JSON string is the TOAST placeholder (as text or as base64).
pub(crate) fn is_unavailable_text(s: &str) -> bool {
    s == UNAVAILABLE_VALUE || s == UNAVAILABLE_VALUE_BASE64
}

/// The direct path for a JSON string: the value, for codecs that take a
/// string and when it decodes. `None` sends the caller to [`decode`],
/// which also gives refusals their message.
pub(crate) fn decode_str(s: &str, codec: &Codec) -> Option<Value> {
    Some(match codec {
        Codec::Text | Codec::Infer => Value::Text(s.to_owned()),
        Codec::Uuid => Value::Uuid(s.to_owned()),
        Codec::Json => Value::Json(s.to_owned()),
        Codec::ZonedTimestamp => Value::TimestampTz(s.to_owned()),
        Codec::ZonedTime => Value::TimeTz(s.to_owned()),
        Codec::Bytes => Value::Bytes(BASE64.decode(s).ok()?),
        Codec::Decimal { scale } => {
            let unscaled = BASE64.decode(s).ok().filter(|b| !b.is_empty())?;
            Value::Decimal(unscaled_to_decimal(&unscaled, *scale))
        }
        _ => return None,
    })
}

/// Decodes one column value; `Err` carries a message for the field error.
pub(crate) fn decode(json: &Json, codec: &Codec) -> Result<Value, String> {
    if json.is_null() {
        return Ok(Value::Null);
    }
    let wrong = |expected: &str| format!("expected {expected}, found {json}");
    Ok(match codec {
        Codec::Int => Value::Int(json.as_i64().ok_or_else(|| wrong("an integer"))?),
        Codec::Float => match json {
            Json::Number(n) => Value::Float(n.as_f64().ok_or_else(|| wrong("a number"))?),
            Json::String(s) => Value::Float(s.parse::<f64>().map_err(|_| wrong("a number"))?),
            _ => return Err(wrong("a number")),
        },
        Codec::Bool => Value::Bool(json.as_bool().ok_or_else(|| wrong("a boolean"))?),
        Codec::Text => Value::Text(text(json)),
        Codec::Uuid => Value::Uuid(
            str_of(json)
                .ok_or_else(|| wrong("a UUID string"))?
                .to_owned(),
        ),
        Codec::Json => Value::Json(text(json)),
        Codec::ZonedTimestamp => Value::TimestampTz(
            str_of(json)
                .ok_or_else(|| wrong("an ISO-8601 string"))?
                .to_owned(),
        ),
        Codec::ZonedTime => Value::TimeTz(
            str_of(json)
                .ok_or_else(|| wrong("an ISO-8601 string"))?
                .to_owned(),
        ),
        Codec::Bytes => Value::Bytes(base64(json)?),
        Codec::Bits { length } => Value::Text(bit_string(&base64(json)?, *length)?),
        Codec::Decimal { scale } => match json {
            // JsonConverter's `decimal.format=NUMERIC` writes plain numbers.
            Json::Number(n) => Value::Decimal(numeric_decimal(n, *scale)?),
            _ => Value::Decimal(unscaled_to_decimal(&unscaled(json)?, *scale)),
        },
        Codec::VariableDecimal => {
            let scale = json
                .get("scale")
                .and_then(Json::as_u64)
                .and_then(|s| u32::try_from(s).ok())
                .ok_or_else(|| wrong("{scale, value}"))?;
            let bytes = unscaled(json.get("value").ok_or_else(|| wrong("{scale, value}"))?)?;
            Value::Decimal(unscaled_to_decimal(&bytes, scale))
        }
        Codec::Date => {
            let days = json.as_i64().ok_or_else(|| wrong("days since epoch"))?;
            match days {
                sentinel::DATE_POSITIVE => Value::Text("infinity".into()),
                sentinel::DATE_NEGATIVE => Value::Text("-infinity".into()),
                _ => Value::Date(epoch_day(days).ok_or_else(|| wrong("a date in range"))?),
            }
        }
        Codec::TimeMillis => time_value(int(json)?, 1_000_000)?,
        Codec::TimeMicros => time_value(int(json)?, 1_000)?,
        Codec::TimeNanos => time_value(int(json)?, 1)?,
        Codec::TimestampMillis => timestamp_value(int(json)?, 1_000_000)?,
        Codec::TimestampMicros => timestamp_value(int(json)?, 1_000)?,
        Codec::TimestampNanos => timestamp_value(int(json)?, 1)?,
        Codec::Array(item) => {
            let items = json.as_array().ok_or_else(|| wrong("an array"))?;
            Value::Array(
                items
                    .iter()
                    .map(|i| decode(i, item))
                    .collect::<Result<_, _>>()?,
            )
        }
        Codec::Infer => infer(json),
    })
}

/// Schema-less values keep their JSON type: integers, floats, booleans and
/// strings map directly; objects are JSON documents.
fn infer(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            // u64 above i64::MAX keeps its exact digits.
            None if n.is_u64() => Value::Decimal(n.to_string()),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::Text(s.clone()),
        Json::Array(items) => Value::Array(items.iter().map(infer).collect()),
        Json::Object(_) => Value::Json(json.to_string()),
    }
}

/// Most significant digits a JSON number read as a double gives back
/// exactly (`DBL_DIG`): any decimal of up to 15 digits survives the round
/// trip through the nearest double.
const EXACT_DOUBLE_DIGITS: usize = 15;

/// A Decimal written as a JSON number (`decimal.format=NUMERIC`), as exact
/// text with the schema's scale.
///
/// Integers are exact as they are. Other numbers are parsed as doubles
/// (the decoder does not keep number text: that would cost every record),
/// which hold 15 significant digits exactly: the double, printed with the
/// column's scale, is the sent number if that print has at most 15
/// digits from the first non-zero one. A longer value may have been
/// rounded, so it is refused; `decimal.format=BASE64` (the converter's
/// default) carries any number of digits.
fn numeric_decimal(n: &serde_json::Number, scale: u32) -> Result<String, String> {
    if n.is_i64() || n.is_u64() {
        return Ok(n.to_string());
    }
    let f = n
        .as_f64()
        .filter(|f| f.is_finite())
        .ok_or_else(|| format!("expected a decimal number, found {n}"))?;
    let text = format!("{f:.prec$}", prec = scale as usize);
    let significant = text
        .bytes()
        .filter(u8::is_ascii_digit)
        .skip_while(|b| *b == b'0')
        .count();
    if significant > EXACT_DOUBLE_DIGITS {
        return Err(format!(
            "the JSON number {n} at scale {scale} has more than {EXACT_DOUBLE_DIGITS} significant digits, \
             which this decoder cannot read exactly; use decimal.format=BASE64"
        ));
    }
    Ok(text)
}

fn str_of(json: &Json) -> Option<&str> {
    json.as_str()
}

fn text(json: &Json) -> String {
    match json {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn int(json: &Json) -> Result<i64, String> {
    json.as_i64()
        .ok_or_else(|| format!("expected an integer, found {json}"))
}

fn base64(json: &Json) -> Result<Vec<u8>, String> {
    let s = json
        .as_str()
        .ok_or_else(|| format!("expected base64 text, found {json}"))?;
    BASE64
        .decode(s)
        .map_err(|e| format!("invalid base64 `{s}`: {e}"))
}

/// The unscaled bytes of a Decimal. Connect always writes at least one
/// byte (zero is `AA==`): empty bytes are not a number, and reading them
/// as 0 would invent a value.
fn unscaled(json: &Json) -> Result<Vec<u8>, String> {
    let bytes = base64(json)?;
    if bytes.is_empty() {
        return Err(format!(
            "empty Decimal bytes {json}: not a number (zero is \"AA==\")"
        ));
    }
    Ok(bytes)
}

/// Renders a big-endian two's-complement integer scaled by `10^-scale` as
/// exact decimal text (arbitrary length: Postgres numerics exceed i128).
pub fn unscaled_to_decimal(bytes: &[u8], scale: u32) -> String {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    // Magnitude as big-endian bytes (two's complement negate when negative).
    let mut mag: Vec<u8> = bytes.to_vec();
    if negative {
        for b in mag.iter_mut() {
            *b = !*b;
        }
        for b in mag.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
    }
    // Repeated division by 10 of the base-256 number gives decimal digits.
    let mut digits = Vec::new();
    while mag.iter().any(|&b| b != 0) {
        let mut rem: u32 = 0;
        for b in mag.iter_mut() {
            let cur = (rem << 8) | *b as u32;
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits.push(b'0' + rem as u8);
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    let scale = scale as usize;
    while digits.len() <= scale {
        digits.push(b'0');
    }
    digits.reverse();
    let (int_part, frac_part) = digits.split_at(digits.len() - scale);
    let mut out = String::with_capacity(digits.len() + 2);
    if negative {
        out.push('-');
    }
    out.push_str(std::str::from_utf8(int_part).unwrap_or("0"));
    if scale > 0 {
        out.push('.');
        out.push_str(std::str::from_utf8(frac_part).unwrap_or("0"));
    }
    out
}

fn epoch_day(days: i64) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(TimeDelta::try_days(days)?)
}

/// `value` counts units of `nanos_per_unit` nanoseconds since midnight.
///
/// Postgres' `time` also holds `24:00:00`, which no calendar time type
/// (chrono's included) can: it stays the text `24:00:00`, which a `time`
/// column stores exactly and a sink without such a value refuses, rather
/// than becoming the last instant of the day.
fn time_value(value: i64, nanos_per_unit: i64) -> Result<Value, String> {
    let nanos = value
        .checked_mul(nanos_per_unit)
        .ok_or_else(|| format!("time {value} out of range"))?;
    if nanos == 86_400 * 1_000_000_000 {
        return Ok(Value::Text("24:00:00".into()));
    }
    Ok(Value::Time(time_of_day(nanos)?))
}

fn time_of_day(nanos: i64) -> Result<NaiveTime, String> {
    let out_of_range = || format!("time of {nanos} ns since midnight is not within a day");
    if !(0..86_400 * 1_000_000_000).contains(&nanos) {
        return Err(out_of_range());
    }
    let (secs, frac) = (nanos / 1_000_000_000, nanos % 1_000_000_000);
    NaiveTime::from_num_seconds_from_midnight_opt(secs as u32, frac as u32).ok_or_else(out_of_range)
}

/// Postgres' longest bit string; a longer `length` is an unbounded
/// `varbit`, whose values' own lengths the bytes do not carry.
const MAX_BITS: u32 = 83_886_080;

/// `io.debezium.data.Bits` bytes as the `length`-bit string they encode:
/// bit *i* of the bytes (little-endian) is the *i*-th character from the
/// right, as Java's `BitSet.toByteArray` wrote them.
fn bit_string(bytes: &[u8], length: u32) -> Result<String, String> {
    if length > MAX_BITS {
        return Err(format!(
            "bits of an unbounded varbit (length {length}): the value's own length is not carried, \
             so its leading zeros cannot be known"
        ));
    }
    if bytes.len() * 8 > length as usize
        && bytes[length as usize / 8..]
            .iter()
            .enumerate()
            .any(|(i, b)| {
                if i == 0 {
                    b >> (length % 8) != 0
                } else {
                    *b != 0
                }
            })
    {
        return Err(format!(
            "{} bytes of bits do not fit {length} bits",
            bytes.len()
        ));
    }
    Ok((0..length as usize)
        .rev()
        .map(|i| {
            let set = bytes.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0);
            if set { '1' } else { '0' }
        })
        .collect())
}

/// Debezium's encodings of Postgres' `infinity` and `-infinity` (pgjdbc's
/// sentinel instants, converted like any other value).
mod sentinel {
    /// `date 'infinity'` / `'-infinity'`, in days.
    pub const DATE_POSITIVE: i64 = -2_147_472_692;
    pub const DATE_NEGATIVE: i64 = -2_147_472_691;
    /// `timestamp 'infinity'` / `'-infinity'`, in microseconds.
    pub const MICROS_POSITIVE: i64 = 9_223_372_036_825_200_000;
    pub const MICROS_NEGATIVE: i64 = -9_223_372_036_832_400_000;
}

/// A timestamp, or Postgres' `infinity`/`-infinity` as their text (which
/// no calendar type can hold: a Postgres column stores it exactly, a sink
/// without such a value refuses it, as `24:00:00`).
fn timestamp_value(value: i64, nanos_per_unit: i64) -> Result<Value, String> {
    let (positive, negative) = match nanos_per_unit {
        1_000_000 => (
            sentinel::MICROS_POSITIVE / 1_000,
            sentinel::MICROS_NEGATIVE / 1_000,
        ),
        1_000 => (sentinel::MICROS_POSITIVE, sentinel::MICROS_NEGATIVE),
        // NanoTimestamp: Debezium saturates.
        _ => (i64::MAX, i64::MIN),
    };
    Ok(match value {
        v if v == positive => Value::Text("infinity".into()),
        v if v == negative => Value::Text("-infinity".into()),
        v => Value::Timestamp(timestamp(v, nanos_per_unit)?),
    })
}

/// `value` counts units of `nanos_per_unit` since the epoch; negative values
/// are instants before 1970 (`div_euclid` keeps the fraction positive).
fn timestamp(value: i64, nanos_per_unit: i64) -> Result<chrono::NaiveDateTime, String> {
    let per_sec = 1_000_000_000 / nanos_per_unit;
    let secs = value.div_euclid(per_sec);
    let frac_nanos = value.rem_euclid(per_sec) * nanos_per_unit;
    DateTime::from_timestamp(secs, frac_nanos as u32)
        .map(|dt| dt.naive_utc())
        .ok_or_else(|| format!("timestamp {value} out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_as_their_bit_string() {
        let bits = |b64: &str, length| bit_string(&BASE64.decode(b64).unwrap(), length);
        assert_eq!(bits("AQI=", 10).as_deref(), Ok("1000000001"));
        assert_eq!(bits("Aw==", 2).as_deref(), Ok("11"));
        assert_eq!(bits("QA==", 7).as_deref(), Ok("1000000"));
        assert_eq!(bits("", 2).as_deref(), Ok("00"));
        assert_eq!(
            bits("AAAAAAAAAIA=", 64)
                .unwrap()
                .chars()
                .filter(|c| *c == '1')
                .count(),
            1
        );
        assert!(bits("Aw==", 1).is_err(), "a set bit past the length");
        assert!(bits("AQ==", 2_147_483_647).is_err(), "an unbounded varbit");
    }

    /// Postgres' `infinity` arrives as Debezium's sentinels and leaves as
    /// its text (a Postgres column stores it; other sinks refuse it).
    #[test]
    fn infinite_dates_and_timestamps() {
        let infinity = Value::Text("infinity".into());
        let minus = Value::Text("-infinity".into());
        let d = |j: Json, c: &Codec| decode(&j, c).unwrap();
        assert_eq!(
            d(serde_json::json!(-2_147_472_692i64), &Codec::Date),
            infinity
        );
        assert_eq!(d(serde_json::json!(-2_147_472_691i64), &Codec::Date), minus);
        assert_eq!(
            d(
                serde_json::json!(9_223_372_036_825_200_000i64),
                &Codec::TimestampMicros
            ),
            infinity
        );
        assert_eq!(
            d(
                serde_json::json!(-9_223_372_036_832_400_000i64),
                &Codec::TimestampMicros
            ),
            minus
        );
        assert_eq!(
            d(
                serde_json::json!(9_223_372_036_825_200i64),
                &Codec::TimestampMillis
            ),
            infinity
        );
        assert_eq!(
            d(
                serde_json::json!(-9_223_372_036_832_400i64),
                &Codec::TimestampMillis
            ),
            minus
        );
        assert!(matches!(
            d(serde_json::json!(0), &Codec::TimestampMicros),
            Value::Timestamp(_)
        ));
    }

    #[test]
    fn decimals_from_unscaled_bytes() {
        assert_eq!(
            unscaled_to_decimal(&BASE64.decode("ASs=").unwrap(), 2),
            "2.99"
        );
        assert_eq!(
            unscaled_to_decimal(&BASE64.decode("AfM=").unwrap(), 2),
            "4.99"
        );
        assert_eq!(
            unscaled_to_decimal(&BASE64.decode("CcM=").unwrap(), 2),
            "24.99"
        );
        assert_eq!(unscaled_to_decimal(&[0xFF], 0), "-1");
        assert_eq!(unscaled_to_decimal(&[0xFE, 0xD5], 2), "-2.99");
        assert_eq!(unscaled_to_decimal(&[0x05], 3), "0.005");
        assert_eq!(unscaled_to_decimal(&[], 2), "0.00");
        // 2^64 needs more than 8 bytes.
        assert_eq!(
            unscaled_to_decimal(&[0x01, 0, 0, 0, 0, 0, 0, 0, 0], 0),
            "18446744073709551616"
        );
    }

    #[test]
    fn empty_or_invalid_decimal_bytes_are_refused() {
        let decimal = Codec::Decimal { scale: 2 };
        assert_eq!(
            decode(&Json::String("AA==".into()), &decimal),
            Ok(Value::Decimal("0.00".into()))
        );
        for bad in ["", "not base64!"] {
            let err = decode(&Json::String(bad.into()), &decimal).unwrap_err();
            assert!(err.contains("Decimal") || err.contains("base64"), "{err}");
        }
        let variable = Codec::VariableDecimal;
        assert!(decode(&serde_json::json!({"scale": 2, "value": ""}), &variable).is_err());
        assert!(
            decode(
                &serde_json::json!({"scale": -1, "value": "AQ=="}),
                &variable
            )
            .is_err()
        );
        assert_eq!(
            decode(&serde_json::json!({"scale": 1, "value": "AQ=="}), &variable),
            Ok(Value::Decimal("0.1".into()))
        );
    }

    #[test]
    fn negative_timestamps_are_before_1970() {
        let t = timestamp(-1, 1_000).unwrap();
        assert_eq!(t.to_string(), "1969-12-31 23:59:59.999999");
        let t = timestamp(1_179_150_269_996_577, 1_000).unwrap();
        assert_eq!(t.to_string(), "2007-05-14 13:44:29.996577");
        assert_eq!(
            timestamp(-1, 1).unwrap().to_string(),
            "1969-12-31 23:59:59.999999999"
        );
    }

    #[test]
    fn times_and_dates() {
        assert_eq!(
            time_value(86_131_989_360, 1_000).unwrap(),
            Value::Time(NaiveTime::from_hms_micro_opt(23, 55, 31, 989_360).unwrap())
        );
        assert_eq!(
            time_value(1_000, 1_000_000).unwrap(),
            Value::Time(NaiveTime::from_hms_opt(0, 0, 1).unwrap())
        );
        assert_eq!(
            time_value(86_400_000_000, 1_000).unwrap(),
            Value::Text("24:00:00".into())
        );
        assert!(time_value(86_400_000_001, 1_000).is_err());
        assert!(time_value(-1, 1_000).is_err());
        assert_eq!(epoch_day(19279).unwrap().to_string(), "2022-10-14");
        assert_eq!(epoch_day(-1).unwrap().to_string(), "1969-12-31");
    }

    #[test]
    fn numeric_format_decimals_are_exact_or_refused() {
        let decimal = |text: &str, scale| {
            decode(
                &serde_json::from_str(text).unwrap(),
                &Codec::Decimal { scale },
            )
        };
        assert_eq!(decimal("1.5", 2), Ok(Value::Decimal("1.50".into())));
        assert_eq!(decimal("-0.07", 2), Ok(Value::Decimal("-0.07".into())));
        assert_eq!(decimal("150", 2), Ok(Value::Decimal("150".into())));
        assert_eq!(
            decimal("1234567890123.45", 2),
            Ok(Value::Decimal("1234567890123.45".into()))
        );
        // 17 digits: a double may have rounded them.
        assert!(decimal("12345678901234567.89", 2).is_err());
        assert!(decimal("0.1000000000000000001", 19).is_err());
    }

    #[test]
    fn placeholder_in_all_encodings() {
        assert!(is_unavailable(&Json::String(UNAVAILABLE_VALUE.into())));
        assert!(is_unavailable(&Json::String(
            UNAVAILABLE_VALUE_BASE64.into()
        )));
        assert!(is_unavailable(&serde_json::json!([UNAVAILABLE_VALUE])));
        assert!(!is_unavailable(&Json::String("x".into())));
        assert_eq!(BASE64.encode(UNAVAILABLE_VALUE), UNAVAILABLE_VALUE_BASE64);
    }
}
