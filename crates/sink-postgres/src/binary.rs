//! `COPY … (FORMAT binary)`: values in Postgres' own binary forms, into a
//! staging table typed per column, so the server neither parses text nor
//! casts it, and the sink renders no text for most values.
//!
//! A column travels in its type's binary form ([`Wire`]) when every value
//! of it in the statement has an exact one; otherwise the whole column
//! travels as text and is cast in the merge statement, exactly as the text
//! write paths do. The binary forms are the server's `*_send` output
//! (`tests/postgres.rs` compares each with it). Every value first passes
//! [`types::prepare`], the same checks and conversions as the text paths:
//! what one path refuses, the other refuses too.

use crate::types;
use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use sinkfleet_core::Value;

/// How a staging column carries its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wire {
    /// `smallint`.
    Int2,
    /// `integer`.
    Int4,
    /// `bigint`.
    Int8,
    /// `double precision` (`real` travels as text: a value decoded as
    /// `f64` and narrowed here could round differently from the server
    /// reading Debezium's decimal text).
    Float8,
    /// `boolean`.
    Bool,
    /// `numeric`, any precision and scale.
    Numeric,
    /// `bytea`.
    Bytea,
    /// `date`.
    Date,
    /// `time` (without time zone).
    Time,
    /// `timestamp` (without time zone).
    Timestamp,
    /// `timestamptz`.
    TimestampTz,
    /// `uuid`.
    Uuid,
    /// `text`: the value's Postgres text literal, cast in the merge.
    Text,
}

impl Wire {
    /// The binary form a column of `target_type` (`format_type` name) can
    /// take; [`Wire::Text`] for every other type (domains, enums, arrays,
    /// `varchar(n)`, `jsonb`, `interval`, `timetz`, …).
    pub fn of(target_type: &str) -> Wire {
        // `numeric(10,2)[]` is an array, whatever its element type: the
        // name's part before `(` would say `numeric`.
        if target_type.ends_with("[]") {
            return Wire::Text;
        }
        let base = target_type.split('(').next().unwrap_or(target_type);
        let zoned = target_type.ends_with("with time zone");
        match base.trim() {
            "smallint" => Wire::Int2,
            "integer" => Wire::Int4,
            "bigint" => Wire::Int8,
            "double precision" => Wire::Float8,
            "boolean" => Wire::Bool,
            "numeric" => Wire::Numeric,
            "bytea" => Wire::Bytea,
            "date" => Wire::Date,
            "time" | "time without time zone" if !zoned => Wire::Time,
            "timestamp" | "timestamp without time zone" if !zoned => Wire::Timestamp,
            "timestamp with time zone" | "timestamp" if zoned => Wire::TimestampTz,
            "uuid" => Wire::Uuid,
            _ => Wire::Text,
        }
    }

    /// One letter per wire, naming a staging table's column types.
    pub fn code(self) -> char {
        match self {
            Wire::Int2 => 's',
            Wire::Int4 => 'i',
            Wire::Int8 => 'l',
            Wire::Float8 => 'f',
            Wire::Bool => 'b',
            Wire::Numeric => 'n',
            Wire::Bytea => 'x',
            Wire::Date => 'd',
            Wire::Time => 't',
            Wire::Timestamp => 'p',
            Wire::TimestampTz => 'z',
            Wire::Uuid => 'u',
            Wire::Text => 'c',
        }
    }

    /// The staging column's type.
    pub fn sql_type(self) -> &'static str {
        match self {
            Wire::Int2 => "smallint",
            Wire::Int4 => "integer",
            Wire::Int8 => "bigint",
            Wire::Float8 => "double precision",
            Wire::Bool => "boolean",
            Wire::Numeric => "numeric",
            Wire::Bytea => "bytea",
            Wire::Date => "date",
            Wire::Time => "time",
            Wire::Timestamp => "timestamp",
            Wire::TimestampTz => "timestamptz",
            Wire::Uuid => "uuid",
            Wire::Text => "text",
        }
    }
}

/// Why a value was not encoded.
#[derive(Debug, PartialEq)]
pub enum Refusal {
    /// The value has no exact binary form of this wire: its column travels
    /// as text instead.
    NotBinary,
    /// The target cannot hold the value as the source had it (the reason).
    Refused(String),
}

/// The COPY binary stream's signature, flags and header extension length.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Microseconds from the Unix epoch to Postgres' (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A COPY binary stream being written.
pub struct CopyData {
    buf: Vec<u8>,
}

impl CopyData {
    /// An empty stream (its header written).
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes + HEADER.len() + 2);
        buf.extend_from_slice(HEADER);
        CopyData { buf }
    }

    /// Starts a row of `fields` fields.
    pub fn row(&mut self, fields: usize) {
        self.buf.extend_from_slice(&(fields as i16).to_be_bytes());
    }

    /// Appends one field: `value` (already through [`types::prepare`], or
    /// `None` for NULL) for a column of `target_type` travelling as `wire`.
    pub fn field(
        &mut self,
        value: Option<&Value>,
        target_type: &str,
        wire: Wire,
    ) -> Result<(), Refusal> {
        let Some(value) = value else {
            self.buf.extend_from_slice(&(-1i32).to_be_bytes());
            return Ok(());
        };
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        if let Err(refusal) = encode(value, target_type, wire, &mut self.buf) {
            self.buf.truncate(at);
            return Err(refusal);
        }
        let len = i32::try_from(self.buf.len() - at - 4)
            .map_err(|_| Refusal::Refused("the value is over 2 GiB".into()))?;
        self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    /// A version as `numeric`.
    pub fn version(&mut self, version: u128) {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        numeric_of_u128(version, &mut self.buf);
        let len = (self.buf.len() - at - 4) as i32;
        self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }

    /// The finished stream.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }
}

/// The binary form of a prepared, non-null value.
fn encode(value: &Value, target_type: &str, wire: Wire, out: &mut Vec<u8>) -> Result<(), Refusal> {
    match (wire, value) {
        (Wire::Int2, Value::Int(i)) => {
            let v = i16::try_from(*i).map_err(|_| out_of_range(*i, target_type))?;
            out.extend_from_slice(&v.to_be_bytes());
        }
        (Wire::Int4, Value::Int(i)) => {
            let v = i32::try_from(*i).map_err(|_| out_of_range(*i, target_type))?;
            out.extend_from_slice(&v.to_be_bytes());
        }
        (Wire::Int8, Value::Int(i)) => out.extend_from_slice(&i.to_be_bytes()),
        (Wire::Float8, Value::Float(f)) => out.extend_from_slice(&f.to_bits().to_be_bytes()),
        (Wire::Bool, Value::Bool(b)) => out.push(u8::from(*b)),
        (Wire::Numeric, Value::Decimal(text)) => numeric(text, out)?,
        (Wire::Numeric, Value::Int(i)) => numeric(&i.to_string(), out)?,
        (Wire::Bytea, Value::Bytes(bytes)) => out.extend_from_slice(bytes),
        (Wire::Date, Value::Date(d)) => out.extend_from_slice(&pg_days(*d).to_be_bytes()),
        (Wire::Time, Value::Time(t)) => out.extend_from_slice(&time_micros(*t)?.to_be_bytes()),
        (Wire::Timestamp, Value::Timestamp(t)) => {
            out.extend_from_slice(&timestamp_micros(*t)?.to_be_bytes())
        }
        (Wire::TimestampTz, Value::TimestampTz(text)) => {
            let t = sinkfleet_core::value::parse_zoned_timestamp(text)
                .map_err(|_| Refusal::NotBinary)?;
            out.extend_from_slice(&timestamp_micros(t.naive_utc())?.to_be_bytes())
        }
        (Wire::Uuid, Value::Uuid(text)) => uuid(text, out)?,
        (Wire::Text, Value::Text(text)) => out.extend_from_slice(text.as_bytes()),
        (Wire::Text, other) => {
            let text = types::render(other);
            out.extend_from_slice(text.as_bytes());
        }
        _ => return Err(Refusal::NotBinary),
    }
    Ok(())
}

fn out_of_range(i: i64, target_type: &str) -> Refusal {
    Refusal::Refused(format!("{i} is out of range for a {target_type} column"))
}

fn pg_days(d: NaiveDate) -> i32 {
    // chrono's dates span ±262,143 years: the day count always fits.
    (d - NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default()).num_days() as i32
}

/// Microseconds since midnight. A leap second (chrono's nanoseconds past
/// 999,999,999) has no binary form: such a column travels as text.
fn time_micros(t: NaiveTime) -> Result<i64, Refusal> {
    if t.nanosecond() >= 1_000_000_000 {
        return Err(Refusal::NotBinary);
    }
    Ok(i64::from(t.num_seconds_from_midnight()) * 1_000_000 + i64::from(t.nanosecond() / 1_000))
}

/// Microseconds since 2000-01-01. [`types::prepare`] has refused values
/// with digits past the microsecond, so the division is exact.
fn timestamp_micros(t: NaiveDateTime) -> Result<i64, Refusal> {
    if t.nanosecond() >= 1_000_000_000 {
        return Err(Refusal::NotBinary);
    }
    Ok(t.and_utc().timestamp_micros() - PG_EPOCH_MICROS)
}

/// A canonical UUID (`8-4-4-4-12` hex digits) as its 16 bytes; any other
/// spelling travels as text, for the server to read.
fn uuid(text: &str, out: &mut Vec<u8>) -> Result<(), Refusal> {
    let bytes = text.as_bytes();
    if bytes.len() != 36 || [8, 13, 18, 23].iter().any(|&i| bytes[i] != b'-') {
        return Err(Refusal::NotBinary);
    }
    let hex = |b: u8| (b as char).to_digit(16).ok_or(Refusal::NotBinary);
    let digits: Vec<u8> = bytes.iter().copied().filter(|&b| b != b'-').collect();
    for pair in digits.chunks(2) {
        out.push((hex(pair[0])? * 16 + hex(pair[1])?) as u8);
    }
    Ok(())
}

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;
/// The largest display scale the binary form carries.
const NUMERIC_DSCALE_MAX: usize = 0x3FFF;

/// Decimal text in plain notation (`-12.50`, `.5`, `NaN`, `Infinity`) as
/// `numeric`: base-10000 digit groups around the point, leading and
/// trailing zero groups stripped, the display scale the text's fraction
/// digits (so `12.50` stays `12.50`). Exponent notation and anything else
/// travel as text, for the server to read.
fn numeric(text: &str, out: &mut Vec<u8>) -> Result<(), Refusal> {
    let special = match text {
        "NaN" => Some(NUMERIC_NAN),
        "Infinity" | "+Infinity" => Some(NUMERIC_PINF),
        "-Infinity" => Some(NUMERIC_NINF),
        _ => None,
    };
    if let Some(sign) = special {
        numeric_header(0, 0, sign, 0, out);
        return Ok(());
    }
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (int, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && fraction.is_empty())
        || !all_digits(int)
        || !all_digits(fraction)
        || fraction.len() > NUMERIC_DSCALE_MAX
    {
        return Err(Refusal::NotBinary);
    }
    // Groups of four digits aligned on the point: the integer part padded
    // on the left, the fraction on the right.
    let int_groups = int.len().div_ceil(4);
    let mut groups: Vec<i16> = Vec::with_capacity(int_groups + fraction.len().div_ceil(4));
    let lead = int_groups * 4 - int.len();
    let padded_int = std::iter::repeat_n(0u8, lead).chain(int.bytes().map(|b| b - b'0'));
    push_groups(padded_int, &mut groups);
    push_groups(fraction.bytes().map(|b| b - b'0'), &mut groups);
    let mut weight = int_groups as i64 - 1;
    let first = groups.iter().position(|&g| g != 0);
    let last = groups.iter().rposition(|&g| g != 0);
    let (Some(first), Some(last)) = (first, last) else {
        numeric_header(0, 0, NUMERIC_POS, fraction.len() as u16, out);
        return Ok(());
    };
    weight -= first as i64;
    let groups = &groups[first..=last];
    let (Ok(count), Ok(weight)) = (i16::try_from(groups.len()), i16::try_from(weight)) else {
        return Err(Refusal::NotBinary);
    };
    let sign = if negative { NUMERIC_NEG } else { NUMERIC_POS };
    numeric_header(count, weight, sign, fraction.len() as u16, out);
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Ok(())
}

/// Appends base-10000 groups of `digits`, the last one padded with zeros.
fn push_groups(digits: impl Iterator<Item = u8>, groups: &mut Vec<i16>) {
    let mut group = 0i16;
    let mut filled = 0;
    for d in digits {
        group = group * 10 + i16::from(d);
        filled += 1;
        if filled == 4 {
            groups.push(group);
            group = 0;
            filled = 0;
        }
    }
    if filled > 0 {
        groups.push(group * 10i16.pow(4 - filled));
    }
}

fn numeric_header(count: i16, weight: i16, sign: u16, dscale: u16, out: &mut Vec<u8>) {
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
}

/// An unsigned integer as `numeric` (scale 0).
fn numeric_of_u128(mut n: u128, out: &mut Vec<u8>) {
    let mut groups = Vec::with_capacity(10);
    while n > 0 {
        groups.push((n % 10_000) as i16);
        n /= 10_000;
    }
    // Least significant first: trailing zero groups are dropped and
    // counted in the weight instead.
    let weight = groups.len() as i16 - 1;
    let skip = groups.iter().take_while(|&&g| g == 0).count();
    let groups = &groups[skip..];
    if groups.is_empty() {
        numeric_header(0, 0, NUMERIC_POS, 0, out);
        return;
    }
    numeric_header(groups.len() as i16, weight, NUMERIC_POS, 0, out);
    for g in groups.iter().rev() {
        out.extend_from_slice(&g.to_be_bytes());
    }
}

/// The binary form of one value for a column of `target_type`, as COPY
/// carries it (`Ok(None)` is NULL). For tests that compare it with the
/// server's `*_send` output; the sink writes through [`CopyData`].
pub fn encode_value(value: &Value, target_type: &str) -> Result<Option<Vec<u8>>, Refusal> {
    let Some(prepared) = types::prepare(value, target_type).map_err(Refusal::Refused)? else {
        return Ok(None);
    };
    let mut out = Vec::new();
    encode(&prepared, target_type, Wire::of(target_type), &mut out)?;
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        numeric(text, &mut out).unwrap();
        out
    }

    /// `(ndigits, weight, sign, dscale, digits…)` as the server sends them.
    fn parts(words: &[i32]) -> Vec<u8> {
        words
            .iter()
            .flat_map(|&w| (w as u16).to_be_bytes())
            .collect()
    }

    #[test]
    fn numerics_in_base_10000_groups_around_the_point() {
        assert_eq!(num("12345.678"), parts(&[3, 1, 0, 3, 1, 2345, 6780]));
        assert_eq!(num("-12.50"), parts(&[2, 0, 0x4000, 2, 12, 5000]));
        assert_eq!(num("0.0001"), parts(&[1, -1, 0, 4, 1]));
        assert_eq!(num(".5"), parts(&[1, -1, 0, 1, 5000]));
        assert_eq!(num("10000"), parts(&[1, 1, 0, 0, 1]));
        assert_eq!(num("-0.00"), parts(&[0, 0, 0, 2]));
        assert_eq!(num("NaN"), parts(&[0, 0, 0xC000, 0]));
        assert_eq!(num("-Infinity"), parts(&[0, 0, 0xF000, 0]));
        for text in ["1e5", "", ".", "1.2.3", "12a"] {
            assert_eq!(
                numeric(text, &mut Vec::new()),
                Err(Refusal::NotBinary),
                "{text}"
            );
        }
    }

    #[test]
    fn versions_as_numerics() {
        let of = |n: u128| {
            let mut out = Vec::new();
            numeric_of_u128(n, &mut out);
            out
        };
        assert_eq!(of(0), parts(&[0, 0, 0, 0]));
        assert_eq!(of(12_345_678), parts(&[2, 1, 0, 0, 1234, 5678]));
        assert_eq!(of(100_000_000), parts(&[1, 2, 0, 0, 1]));
        assert_eq!(of(u128::MAX), num(&u128::MAX.to_string()));
    }

    #[test]
    fn wires_of_target_types() {
        assert_eq!(Wire::of("numeric(10,2)"), Wire::Numeric);
        assert_eq!(Wire::of("timestamp(3) without time zone"), Wire::Timestamp);
        assert_eq!(Wire::of("timestamp with time zone"), Wire::TimestampTz);
        assert_eq!(Wire::of("time with time zone"), Wire::Text);
        assert_eq!(Wire::of("real"), Wire::Text);
        assert_eq!(Wire::of("character varying(20)"), Wire::Text);
        assert_eq!(Wire::of("integer[]"), Wire::Text);
        assert_eq!(Wire::of("numeric(10,2)[]"), Wire::Text);
        assert_eq!(Wire::of("timestamp(3) without time zone[]"), Wire::Text);
    }

    #[test]
    fn integers_a_column_cannot_hold_are_refused() {
        let mut out = Vec::new();
        assert!(matches!(
            encode(&Value::Int(40_000), "smallint", Wire::Int2, &mut out),
            Err(Refusal::Refused(_))
        ));
        assert_eq!(
            encode(&Value::Text("1".into()), "smallint", Wire::Int2, &mut out),
            Err(Refusal::NotBinary)
        );
    }
}
