//! Postgres types → Debezium's encodings (`decimal.handling.mode=precise`,
//! `time.precision.mode=adaptive`), from pgoutput's *text* values.
//!
//! The walsender renders text with its session settings, which the
//! publisher pins (`TimeZone=UTC`, `DateStyle=ISO`, `bytea_output=hex`,
//! `extra_float_digits=3`), so the formats parsed here are fixed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::format::{Item, Parsed};
use chrono::{NaiveDate, Timelike};
use serde_json::{Value, json};

/// How one column is encoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// boolean.
    Bool,
    /// int2/int4/int8/oid.
    Int,
    /// float4/float8 (NaN and infinities as strings).
    Float,
    /// numeric(p, s): Connect Decimal, base64 unscaled bytes.
    Decimal {
        /// Scale.
        scale: u32,
    },
    /// numeric without typmod: `io.debezium.data.VariableScaleDecimal`.
    VariableDecimal,
    /// Everything carried as text (text, varchar, enums, intervals, ...).
    Text,
    /// bytea: base64.
    Bytes,
    /// date: days since epoch.
    Date,
    /// time(0..3): ms since midnight.
    TimeMillis,
    /// time(4..6): µs since midnight.
    TimeMicros,
    /// timestamp(0..3): ms since epoch.
    TimestampMillis,
    /// timestamp(4..6): µs since epoch.
    TimestampMicros,
    /// timestamptz: ISO-8601 in UTC.
    TimestampTz,
    /// timetz: ISO-8601 time in UTC.
    TimeTz,
    /// uuid.
    Uuid,
    /// json/jsonb.
    Json,
    /// One-dimensional array of the element kind.
    Array(Box<Kind>),
}

/// A column's encoding: its kind and its Connect field schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnCodec {
    /// The kind.
    pub kind: Kind,
    /// Connect schema of the field (without `field` and `optional`).
    pub schema: Value,
}

fn scalar(kind: Kind, connect: &str, logical: Option<&str>) -> ColumnCodec {
    let mut schema = json!({ "type": connect });
    if let Some(l) = logical {
        schema["name"] = json!(l);
        schema["version"] = json!(1);
    }
    ColumnCodec { kind, schema }
}

/// Time precision from a typmod (-1 = default 6).
fn precision(typmod: i32) -> i32 {
    if typmod < 0 { 6 } else { typmod }
}

/// The codec of a column of type `oid` with modifier `typmod`.
pub fn codec(oid: u32, typmod: i32) -> ColumnCodec {
    if let Some(element) = array_element(oid) {
        let inner = codec(element, typmod);
        let mut items = inner.schema;
        items["optional"] = json!(true);
        return ColumnCodec {
            schema: json!({ "type": "array", "items": items }),
            kind: Kind::Array(Box::new(inner.kind)),
        };
    }
    match oid {
        16 => scalar(Kind::Bool, "boolean", None),
        21 => scalar(Kind::Int, "int16", None),
        23 => scalar(Kind::Int, "int32", None),
        20 | 26 => scalar(Kind::Int, "int64", None),
        700 => scalar(Kind::Float, "float32", None),
        701 => scalar(Kind::Float, "float64", None),
        1700 if typmod >= 4 => {
            let (p, s) = (((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF);
            let mut c = scalar(
                Kind::Decimal { scale: s as u32 },
                "bytes",
                Some("org.apache.kafka.connect.data.Decimal"),
            );
            c.schema["parameters"] =
                json!({ "scale": s.to_string(), "connect.decimal.precision": p.to_string() });
            c
        }
        1700 => ColumnCodec {
            kind: Kind::VariableDecimal,
            schema: json!({
                "type": "struct", "name": "io.debezium.data.VariableScaleDecimal", "version": 1,
                "fields": [
                    { "type": "int32", "optional": false, "field": "scale" },
                    { "type": "bytes", "optional": false, "field": "value" }
                ]
            }),
        },
        17 => scalar(Kind::Bytes, "bytes", None),
        1082 => scalar(Kind::Date, "int32", Some("io.debezium.time.Date")),
        1083 if precision(typmod) <= 3 => {
            scalar(Kind::TimeMillis, "int32", Some("io.debezium.time.Time"))
        }
        1083 => scalar(
            Kind::TimeMicros,
            "int64",
            Some("io.debezium.time.MicroTime"),
        ),
        1114 if precision(typmod) <= 3 => scalar(
            Kind::TimestampMillis,
            "int64",
            Some("io.debezium.time.Timestamp"),
        ),
        1114 => scalar(
            Kind::TimestampMicros,
            "int64",
            Some("io.debezium.time.MicroTimestamp"),
        ),
        1184 => scalar(
            Kind::TimestampTz,
            "string",
            Some("io.debezium.time.ZonedTimestamp"),
        ),
        1266 => scalar(Kind::TimeTz, "string", Some("io.debezium.time.ZonedTime")),
        2950 => scalar(Kind::Uuid, "string", Some("io.debezium.data.Uuid")),
        114 | 3802 => scalar(Kind::Json, "string", Some("io.debezium.data.Json")),
        // text, varchar, bpchar, name, xml, interval, inet, enums, domains...
        _ => scalar(Kind::Text, "string", None),
    }
}

/// Element type of the built-in array types.
fn array_element(oid: u32) -> Option<u32> {
    Some(match oid {
        1000 => 16,
        1001 => 17,
        1005 => 21,
        1007 => 23,
        1016 => 20,
        1009 => 25,
        1015 => 1043,
        1014 => 1042,
        1021 => 700,
        1022 => 701,
        1231 => 1700,
        2951 => 2950,
        1182 => 1082,
        1115 => 1114,
        1185 => 1184,
        199 => 114,
        3807 => 3802,
        _ => return None,
    })
}

/// Encodes a pgoutput text value.
pub fn encode(kind: &Kind, text: &str) -> Result<Value, String> {
    let bad = |what: &str| format!("cannot read `{text}` as {what}");
    Ok(match kind {
        Kind::Bool => json!(matches!(text, "t" | "true")),
        Kind::Int => json!(text.parse::<i64>().map_err(|_| bad("an integer"))?),
        Kind::Float => match text.parse::<f64>() {
            Ok(f) if f.is_finite() => json!(f),
            // JSON has no NaN/Infinity: strings, as JsonConverter writes them.
            Ok(_) | Err(_) if matches!(text, "NaN" | "Infinity" | "-Infinity") => json!(text),
            _ => return Err(bad("a float")),
        },
        Kind::Decimal { scale } => match decimal_unscaled_bytes(text, *scale) {
            Some(bytes) => json!(BASE64.encode(bytes)),
            None if text == "NaN" => Value::Null, // not representable as a Decimal
            None => return Err(bad("a decimal")),
        },
        Kind::VariableDecimal => {
            if text == "NaN" {
                return Ok(Value::Null);
            }
            let scale = text.split_once('.').map_or(0, |(_, f)| f.len() as u32);
            let bytes = decimal_unscaled_bytes(text, scale).ok_or_else(|| bad("a decimal"))?;
            json!({ "scale": scale, "value": BASE64.encode(bytes) })
        }
        Kind::Text | Kind::Uuid | Kind::Json => json!(text),
        Kind::Bytes => {
            let hex = text.strip_prefix("\\x").ok_or_else(|| bad("hex bytea"))?;
            json!(BASE64.encode(hex_decode(hex).ok_or_else(|| bad("hex bytea"))?))
        }
        Kind::Date => {
            let d = parse(text, &formats::DATE)
                .and_then(|p| p.to_naive_date().ok())
                .ok_or_else(|| bad("a date"))?;
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).ok_or_else(|| bad("a date"))?;
            json!((d - epoch).num_days())
        }
        Kind::TimeMillis | Kind::TimeMicros => {
            let micros = if text == "24:00:00" {
                86_400_000_000
            } else {
                let t = parse(text, &formats::TIME)
                    .and_then(|p| p.to_naive_time().ok())
                    .ok_or_else(|| bad("a time"))?;
                t.num_seconds_from_midnight() as i64 * 1_000_000 + (t.nanosecond() / 1000) as i64
            };
            json!(if *kind == Kind::TimeMillis {
                micros / 1000
            } else {
                micros
            })
        }
        Kind::TimestampMillis | Kind::TimestampMicros => {
            let t = parse(text, &formats::TIMESTAMP)
                .and_then(|p| p.to_naive_datetime_with_offset(0).ok())
                .ok_or_else(|| bad("a timestamp"))?;
            let micros = t.and_utc().timestamp_micros();
            json!(if *kind == Kind::TimestampMillis {
                micros.div_euclid(1000)
            } else {
                micros
            })
        }
        Kind::TimestampTz => {
            let t = parse(text, &formats::TIMESTAMPTZ)
                .and_then(|p| p.to_datetime().ok())
                .ok_or_else(|| bad("a timestamptz"))?;
            json!(
                t.to_utc()
                    .format_with_items(formats::ISO_UTC.iter())
                    .to_string()
            )
        }
        Kind::TimeTz => {
            // `10:11:12.5+02` → `08:11:12.5Z` (Debezium normalises to UTC).
            let split = text.rfind(['+', '-']).ok_or_else(|| bad("a timetz"))?;
            let (time, offset) = text.split_at(split);
            let t = parse(time, &formats::TIME)
                .and_then(|p| p.to_naive_time().ok())
                .ok_or_else(|| bad("a timetz"))?;
            let mut parts = offset[1..]
                .split(':')
                .map(|p| p.parse::<i64>().unwrap_or(0));
            let secs = parts.next().unwrap_or(0) * 3600
                + parts.next().unwrap_or(0) * 60
                + parts.next().unwrap_or(0);
            let secs = if offset.starts_with('-') { -secs } else { secs };
            let utc = t - chrono::TimeDelta::seconds(secs);
            json!(utc.format_with_items(formats::TIME_UTC.iter()).to_string())
        }
        Kind::Array(item) => {
            let Some(elements) = parse_array(text) else {
                return Err(bad("a one-dimensional array"));
            };
            let mut out = Vec::with_capacity(elements.len());
            for e in elements {
                out.push(match e {
                    None => Value::Null,
                    Some(s) => encode(item, &s)?,
                });
            }
            Value::Array(out)
        }
    })
}

fn hex_decode(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `-12.5` at scale 2 → big-endian two's complement of -1250, shortest form.
pub fn decimal_unscaled_bytes(text: &str, scale: u32) -> Option<Vec<u8>> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let scale = scale as usize;
    let mut all: Vec<u8> = int.bytes().collect();
    all.extend(frac.bytes().take(scale));
    all.extend(std::iter::repeat_n(b'0', scale.saturating_sub(frac.len())));
    // Decimal digits → base-256 magnitude (big-endian).
    let mut mag: Vec<u8> = vec![0];
    for d in all {
        let mut carry = (d - b'0') as u32;
        for byte in mag.iter_mut().rev() {
            let v = *byte as u32 * 10 + carry;
            *byte = v as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            mag.insert(0, carry as u8);
            carry >>= 8;
        }
    }
    while mag.len() > 1 && mag[0] == 0 {
        mag.remove(0);
    }
    if mag[0] & 0x80 != 0 {
        mag.insert(0, 0);
    }
    if negative && mag.iter().any(|&b| b != 0) {
        for b in mag.iter_mut() {
            *b = !*b;
        }
        for b in mag.iter_mut().rev() {
            let (v, overflow) = b.overflowing_add(1);
            *b = v;
            if !overflow {
                break;
            }
        }
        // Shortest form: drop redundant leading 0xFF bytes.
        while mag.len() > 1 && mag[0] == 0xFF && mag[1] & 0x80 != 0 {
            mag.remove(0);
        }
    }
    Some(mag)
}

/// Parses a one-dimensional Postgres array literal into element texts
/// (`None` = NULL). Multi-dimensional arrays return `None`.
pub fn parse_array(text: &str) -> Option<Vec<Option<String>>> {
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::new();
    if inner.is_empty() {
        return Some(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        match chars.peek() {
            Some('{') => return None,
            Some('"') => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next()? {
                        '\\' => s.push(chars.next()?),
                        '"' => break,
                        c => s.push(c),
                    }
                }
                out.push(Some(s));
            }
            _ => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    s.push(c);
                    chars.next();
                }
                out.push(if s == "NULL" { None } else { Some(s) });
            }
        }
        match chars.next() {
            None => return Some(out),
            Some(',') => continue,
            Some(_) => return None,
        }
    }
}

/// Postgres' text formats as compiled strftime items. chrono's
/// `parse_from_str` and `format` compile their format string on every
/// call, which showed in the publisher's profile; these are compiled once.
mod formats {
    use chrono::format::{Item, StrftimeItems};
    use std::sync::LazyLock;

    type Items = LazyLock<Vec<Item<'static>>>;

    pub static DATE: Items = LazyLock::new(|| StrftimeItems::new("%Y-%m-%d").collect());
    pub static TIME: Items = LazyLock::new(|| StrftimeItems::new("%H:%M:%S%.f").collect());
    pub static TIMESTAMP: Items =
        LazyLock::new(|| StrftimeItems::new("%Y-%m-%d %H:%M:%S%.f").collect());
    pub static TIMESTAMPTZ: Items =
        LazyLock::new(|| StrftimeItems::new("%Y-%m-%d %H:%M:%S%.f%#z").collect());
    pub static ISO_UTC: Items =
        LazyLock::new(|| StrftimeItems::new("%Y-%m-%dT%H:%M:%S%.fZ").collect());
    pub static TIME_UTC: Items = LazyLock::new(|| StrftimeItems::new("%H:%M:%S%.fZ").collect());
}

/// `text` parsed with `items`, as `parse_from_str` would (the caller picks
/// the `to_*` that `parse_from_str` of its type uses).
fn parse(text: &str, items: &[Item<'_>]) -> Option<Parsed> {
    let mut parsed = Parsed::new();
    chrono::format::parse(&mut parsed, text, items.iter()).ok()?;
    Some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_match_connects_encoding() {
        // Round trip through the sink side's decoder.
        for (text, scale) in [
            ("2.99", 2),
            ("-2.99", 2),
            ("0.00", 2),
            ("12345678901234567890.5", 1),
            ("-1", 0),
            ("128", 0),
            ("-128", 0),
        ] {
            let bytes = decimal_unscaled_bytes(text, scale).unwrap();
            assert_eq!(
                sinkfleet_core::debezium::unscaled_to_decimal(&bytes, scale),
                text,
                "{text}"
            );
        }
        assert_eq!(
            BASE64.encode(decimal_unscaled_bytes("2.99", 2).unwrap()),
            "ASs="
        );
        assert_eq!(
            decimal_unscaled_bytes("1.5", 2).unwrap(),
            decimal_unscaled_bytes("1.50", 2).unwrap()
        );
        assert!(decimal_unscaled_bytes("abc", 2).is_none());
    }

    #[test]
    fn numeric_typmods_and_adaptive_time() {
        let c = codec(1700, (10 << 16 | 2) + 4);
        assert_eq!(c.kind, Kind::Decimal { scale: 2 });
        assert_eq!(c.schema["parameters"]["connect.decimal.precision"], "10");
        assert_eq!(codec(1700, -1).kind, Kind::VariableDecimal);
        assert_eq!(codec(1114, -1).kind, Kind::TimestampMicros);
        assert_eq!(codec(1114, 3).kind, Kind::TimestampMillis);
        assert_eq!(codec(1009, -1).kind, Kind::Array(Box::new(Kind::Text)));
    }

    #[test]
    fn text_values() {
        assert_eq!(encode(&Kind::Date, "2007-06-29").unwrap(), json!(13693));
        assert_eq!(
            encode(&Kind::TimestampMicros, "2007-05-14 13:44:29.996577").unwrap(),
            json!(1_179_150_269_996_577i64)
        );
        assert_eq!(
            encode(&Kind::TimestampMicros, "1969-12-31 23:59:59.999999").unwrap(),
            json!(-1)
        );
        assert_eq!(
            encode(&Kind::TimeMicros, "23:55:31.98936").unwrap(),
            json!(86_131_989_360i64)
        );
        assert_eq!(
            encode(&Kind::TimestampTz, "2024-02-29 23:59:59.123456+00").unwrap(),
            json!("2024-02-29T23:59:59.123456Z")
        );
        assert_eq!(
            encode(&Kind::TimeTz, "10:11:12.5+02").unwrap(),
            json!("08:11:12.500Z")
        );
        assert_eq!(encode(&Kind::Bytes, "\\x0001ff").unwrap(), json!("AAH/"));
        assert_eq!(encode(&Kind::Float, "NaN").unwrap(), json!("NaN"));
        assert_eq!(encode(&Kind::Bool, "t").unwrap(), json!(true));
        assert_eq!(
            encode(
                &Kind::Array(Box::new(Kind::Text)),
                r#"{Trailers,"Behind the Scenes","q\"x",NULL}"#
            )
            .unwrap(),
            json!(["Trailers", "Behind the Scenes", "q\"x", null])
        );
        assert_eq!(
            encode(&Kind::Array(Box::new(Kind::Int)), "{}").unwrap(),
            json!([])
        );
        assert!(encode(&Kind::Array(Box::new(Kind::Int)), "{{1},{2}}").is_err());
    }
}
