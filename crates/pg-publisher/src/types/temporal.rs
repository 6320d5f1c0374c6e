//! Dates, times, timestamps and intervals: Postgres' output text (the
//! publisher pins `DateStyle=ISO`, `TimeZone=UTC`, `IntervalStyle=postgres`)
//! as Debezium's encodings.
//!
//! Calendar arithmetic is done here on plain integers over the proleptic
//! Gregorian calendar, because Postgres' range (4713 BC to 5874897 AD,
//! `infinity`) is wider than chrono's. A value whose encoding would
//! overflow its field (a date past the int32 of `io.debezium.time.Date`) is
//! refused, never wrapped.

use serde_json::{Value, json};
use sinkfleet_core::value::push_padded;

/// Debezium's encodings of `infinity` / `-infinity` (pgjdbc's sentinels,
/// converted as any other value would be).
pub mod sentinel {
    /// `date 'infinity'` in days (Debezium's `Date`: Postgres' int32 day
    /// limit since 2000, overflowed into epoch days).
    pub const DATE_POSITIVE: i64 = -2_147_472_692;
    /// `date '-infinity'`.
    pub const DATE_NEGATIVE: i64 = -2_147_472_691;
    /// `timestamp 'infinity'` in microseconds.
    pub const TIMESTAMP_POSITIVE_MICROS: i64 = 9_223_372_036_825_200_000;
    /// `timestamp '-infinity'` in microseconds.
    pub const TIMESTAMP_NEGATIVE_MICROS: i64 = -9_223_372_036_832_400_000;
}

/// The unit of a time or timestamp field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Milliseconds (`Time`, `Timestamp`, Connect's types).
    Millis,
    /// Microseconds (`MicroTime`, `MicroTimestamp`).
    Micros,
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Days from 1970-01-01 to `y-m-d` (astronomical year: 0 is 1 BC).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `(year, month, day)` of a day count from 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// A date or timestamp that may be infinite.
enum Point<T> {
    At(T),
    Infinity,
    MinusInfinity,
}

/// Strips a trailing ` BC`: the astronomical year of `y BC` is `1 - y`.
fn era(text: &str) -> (&str, bool) {
    match text.strip_suffix(" BC") {
        Some(rest) => (rest, true),
        None => (text, false),
    }
}

fn number(text: &str) -> Option<i64> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// `YYYY-MM-DD` (the year may be longer) → days since 1970-01-01.
fn parse_ymd(text: &str, bc: bool) -> Option<i64> {
    let mut parts = text.splitn(3, '-');
    let (y, m, d) = (
        number(parts.next()?)?,
        number(parts.next()?)?,
        number(parts.next()?)?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let year = if bc { 1 - y } else { y };
    Some(days_from_civil(year, m, d))
}

/// `HH:MM:SS[.ffffff]` → microseconds (hours may exceed 23: `24:00:00`).
fn parse_clock(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, ':');
    let (h, m, s) = (
        number(parts.next()?)?,
        number(parts.next()?)?,
        parts.next()?,
    );
    let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
    let (s, fraction) = (number(whole)?, fraction);
    if m > 59 || s > 60 || fraction.len() > 6 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // The fraction's digits are micro-seconds once padded to six.
    let micros = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(6)
        .fold(0i64, |n, digit| n * 10 + i64::from(digit - b'0'));
    Some(((h * 60 + m) * 60 + s) * 1_000_000 + micros)
}

fn parse_date(text: &str) -> Option<Point<i64>> {
    Some(match text {
        "infinity" => Point::Infinity,
        "-infinity" => Point::MinusInfinity,
        _ => {
            let (text, bc) = era(text);
            Point::At(parse_ymd(text, bc)?)
        }
    })
}

/// `date` → days since 1970-01-01 (`io.debezium.time.Date`, Connect `Date`).
pub fn date(text: &str) -> Result<Value, String> {
    let days = match parse_date(text).ok_or_else(|| format!("cannot read `{text}` as a date"))? {
        Point::Infinity => sentinel::DATE_POSITIVE,
        Point::MinusInfinity => sentinel::DATE_NEGATIVE,
        Point::At(days) => days,
    };
    if i32::try_from(days).is_err() {
        return Err(format!(
            "date `{text}` is {days} days from 1970-01-01, past the int32 of a Debezium date"
        ));
    }
    Ok(json!(days))
}

/// Microseconds in `unit`, refusing digits the unit would drop.
fn in_unit(micros: i64, unit: Unit, what: &str, text: &str) -> Result<Value, String> {
    match unit {
        Unit::Micros => Ok(json!(micros)),
        Unit::Millis if micros.rem_euclid(1000) == 0 => Ok(json!(micros.div_euclid(1000))),
        Unit::Millis => Err(format!(
            "{what} `{text}` has microseconds, which time.precision.mode=connect (milliseconds) would drop; use adaptive"
        )),
    }
}

/// `time` → time since midnight (`24:00:00` is a day's worth).
pub fn time(text: &str, unit: Unit) -> Result<Value, String> {
    let micros = parse_clock(text)
        .filter(|m| *m <= MICROS_PER_DAY)
        .ok_or_else(|| format!("cannot read `{text}` as a time"))?;
    in_unit(micros, unit, "time", text)
}

/// `YYYY-MM-DD HH:MM:SS[.f][ BC]` → microseconds since the epoch.
fn parse_timestamp(text: &str) -> Option<Point<i128>> {
    Some(match text {
        "infinity" => Point::Infinity,
        "-infinity" => Point::MinusInfinity,
        _ => {
            let (text, bc) = era(text);
            let (date, clock) = text.split_once(' ')?;
            let days = parse_ymd(date, bc)?;
            Point::At(days as i128 * MICROS_PER_DAY as i128 + parse_clock(clock)? as i128)
        }
    })
}

/// `timestamp` → time since the epoch, the wall clock read as UTC.
pub fn timestamp(text: &str, unit: Unit) -> Result<Value, String> {
    let micros = match parse_timestamp(text)
        .ok_or_else(|| format!("cannot read `{text}` as a timestamp"))?
    {
        Point::Infinity => sentinel::TIMESTAMP_POSITIVE_MICROS,
        Point::MinusInfinity => sentinel::TIMESTAMP_NEGATIVE_MICROS,
        Point::At(micros) => i64::try_from(micros).map_err(|_| {
            format!("timestamp `{text}` is past the int64 microseconds of a Debezium timestamp")
        })?,
    };
    in_unit(micros, unit, "timestamp", text)
}

/// `+HH[:MM[:SS]]` → seconds east of UTC.
fn parse_offset(text: &str) -> Option<i64> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let mut seconds = 0;
    for (i, part) in rest.split(':').enumerate() {
        seconds += number(part)? * [3600, 60, 1].get(i)?;
    }
    Some(sign * seconds)
}

/// Splits `<clock><offset>` at the offset's sign.
fn split_offset(text: &str) -> Option<(&str, i64)> {
    let at = text.rfind(['+', '-'])?;
    Some((&text[..at], parse_offset(&text[at..])?))
}

/// Appends Java's ISO year: four digits at least, `+` past 9999, `-`
/// before year 0.
fn push_iso_year(out: &mut String, year: i64) {
    if year > 9999 {
        out.push('+');
    } else if year < 0 {
        out.push('-');
    }
    push_padded(out, year.unsigned_abs(), 4);
}

/// `HH:MM:SS` and a fraction of `digits` digits (`None`: as many as the
/// value needs, none for whole seconds) of microseconds into the day.
fn clock(micros: i64, digits: Option<u32>) -> String {
    let mut out = String::with_capacity(16);
    push_clock(&mut out, micros, digits);
    out
}

/// [`clock`], appended. `micros` is a time of day: 0 to 24 hours.
fn push_clock(out: &mut String, micros: i64, digits: Option<u32>) {
    let micros = micros.unsigned_abs();
    let (seconds, fraction) = (micros / 1_000_000, micros % 1_000_000);
    push_padded(out, seconds / 3600, 2);
    out.push(':');
    push_padded(out, seconds / 60 % 60, 2);
    out.push(':');
    push_padded(out, seconds % 60, 2);
    // Six digits, zero-padded, without an allocation: 1_000_000 + f has
    // seven, the first of them a 1.
    let mut padded = itoa::Buffer::new();
    let six = &padded.format(1_000_000 + fraction)[1..];
    let shown = match digits {
        Some(d) => d as usize,
        None => six.trim_end_matches('0').len(),
    };
    if shown > 0 {
        out.push('.');
        out.push_str(&six[..shown.min(6)]);
        for _ in 6..shown {
            out.push('0');
        }
    }
}

/// `timestamptz` → `io.debezium.time.ZonedTimestamp`: ISO 8601 in UTC with
/// exactly the column's `fraction` digits (0: none), `infinity` as is.
pub fn timestamptz(text: &str, fraction: u32) -> Result<Value, String> {
    if text == "infinity" || text == "-infinity" {
        return Ok(json!(text));
    }
    let bad = || format!("cannot read `{text}` as a timestamptz");
    let (body, bc) = era(text);
    let (date, rest) = body.split_once(' ').ok_or_else(bad)?;
    let (clock_text, offset) = split_offset(rest).ok_or_else(bad)?;
    let days = parse_ymd(date, bc).ok_or_else(bad)?;
    let local =
        days as i128 * MICROS_PER_DAY as i128 + parse_clock(clock_text).ok_or_else(bad)? as i128;
    let utc = local - offset as i128 * 1_000_000;
    let (day, micros) = (
        utc.div_euclid(MICROS_PER_DAY as i128) as i64,
        utc.rem_euclid(MICROS_PER_DAY as i128) as i64,
    );
    if micros % 10i64.pow(6 - fraction.min(6)) != 0 {
        return Err(format!(
            "timestamptz `{text}` has more fraction digits than its column ({fraction})"
        ));
    }
    let (y, m, d) = civil_from_days(day);
    let mut out = String::with_capacity(32);
    push_iso_year(&mut out, y);
    out.push('-');
    push_padded(&mut out, m as u64, 2);
    out.push('-');
    push_padded(&mut out, d as u64, 2);
    out.push('T');
    push_clock(&mut out, micros, Some(fraction.min(6)));
    out.push('Z');
    Ok(Value::String(out))
}

/// `timetz` → `io.debezium.time.ZonedTime`: the time in UTC (the date
/// dropped), as many fraction digits as needed; `24:00:00` at UTC stays.
pub fn timetz(text: &str) -> Result<Value, String> {
    let bad = || format!("cannot read `{text}` as a timetz");
    let (clock_text, offset) = split_offset(text).ok_or_else(bad)?;
    let local = parse_clock(clock_text)
        .filter(|m| *m <= MICROS_PER_DAY)
        .ok_or_else(bad)?;
    if local == MICROS_PER_DAY && offset == 0 {
        return Ok(json!("24:00:00Z"));
    }
    let utc = (local - offset * 1_000_000).rem_euclid(MICROS_PER_DAY);
    Ok(json!(format!("{}Z", clock(utc, None))))
}

/// An interval's parts as Postgres prints them (`IntervalStyle=postgres`):
/// `1 year 2 mons -3 days -04:05:06.5`.
#[derive(Debug, Default, PartialEq, Eq)]
struct Interval {
    years: i64,
    months: i64,
    days: i64,
    hours: i64,
    minutes: i64,
    micros: i64,
}

fn parse_interval(text: &str) -> Option<Interval> {
    let mut out = Interval::default();
    let mut tokens = text.split_whitespace();
    while let Some(token) = tokens.next() {
        if token.contains(':') {
            let (negative, clock) = match token.as_bytes().first()? {
                b'-' => (true, &token[1..]),
                b'+' => (false, &token[1..]),
                _ => (false, token),
            };
            let micros = parse_clock(clock)?;
            let sign = if negative { -1 } else { 1 };
            out.hours = sign * (micros / 3_600_000_000);
            out.minutes = sign * (micros / 60_000_000 % 60);
            out.micros = sign * (micros % 60_000_000);
            continue;
        }
        let n: i64 = token.parse().ok()?;
        match tokens.next()? {
            "year" | "years" => out.years = n,
            "mon" | "mons" => out.months = n,
            "day" | "days" => out.days = n,
            _ => return None,
        }
    }
    Some(out)
}

/// Seconds with their fraction, trailing zeros stripped (`6.5`, `-1`, `0`).
fn seconds_text(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let (whole, fraction) = (
        micros.unsigned_abs() / 1_000_000,
        micros.unsigned_abs() % 1_000_000,
    );
    let fraction = format!("{fraction:06}");
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction}")
    }
}

/// Microseconds in Debezium's month (365.25 / 12 days).
const MICROS_PER_MONTH: i128 = 2_629_800_000_000;

/// `interval` → `io.debezium.time.MicroDuration` (microseconds, months of
/// 365.25 / 12 days, computed exactly: Debezium's double arithmetic can
/// lose a microsecond, this does not).
pub fn interval_micros(text: &str) -> Result<Value, String> {
    let i = parse_interval(text).ok_or_else(|| format!("cannot read `{text}` as an interval"))?;
    let total = (i.years as i128 * 12 + i.months as i128) * MICROS_PER_MONTH
        + i.days as i128 * MICROS_PER_DAY as i128
        + i.hours as i128 * 3_600_000_000
        + i.minutes as i128 * 60_000_000
        + i.micros as i128;
    i64::try_from(total)
        .map(|t| json!(t))
        .map_err(|_| format!("interval `{text}` is past the int64 microseconds of a MicroDuration; set interval.handling.mode=string"))
}

/// `interval` → `io.debezium.time.Interval`: `P<y>Y<m>M<d>DT<h>H<m>M<s>S`,
/// every part present with its own sign.
pub fn interval_iso(text: &str) -> Result<Value, String> {
    let i = parse_interval(text).ok_or_else(|| format!("cannot read `{text}` as an interval"))?;
    Ok(json!(format!(
        "P{}Y{}M{}DT{}H{}M{}S",
        i.years,
        i.months,
        i.days,
        i.hours,
        i.minutes,
        seconds_text(i.micros)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_days_with_bc_and_infinity() {
        assert_eq!(date("2016-11-04"), Ok(json!(17109)));
        assert_eq!(date("1900-01-01"), Ok(json!(-25567)));
        assert_eq!(date("2007-06-29"), Ok(json!(13693)));
        assert_eq!(date("0044-03-15 BC"), Ok(json!(-735_160)));
        assert_eq!(date("infinity"), Ok(json!(-2_147_472_692i64)));
        assert_eq!(date("-infinity"), Ok(json!(-2_147_472_691i64)));
        assert_eq!(
            date("5874897-12-31"),
            Ok(json!(2_145_042_905)),
            "Postgres' last date"
        );
        assert!(date("2016-13-01").is_err());
    }

    #[test]
    fn times_in_their_unit() {
        assert_eq!(time("13:51:30", Unit::Micros), Ok(json!(49_890_000_000i64)));
        assert_eq!(time("13:51:30.123", Unit::Millis), Ok(json!(49_890_123)));
        assert_eq!(
            time("23:55:31.98936", Unit::Micros),
            Ok(json!(86_131_989_360i64))
        );
        assert_eq!(time("24:00:00", Unit::Micros), Ok(json!(86_400_000_000i64)));
        assert_eq!(time("24:00:00", Unit::Millis), Ok(json!(86_400_000)));
        assert!(
            time("13:51:30.123456", Unit::Millis).is_err(),
            "µs would be dropped"
        );
        assert!(time("24:00:01", Unit::Micros).is_err());
    }

    #[test]
    fn timestamps_with_bc_far_years_and_infinity() {
        let us = |t| timestamp(t, Unit::Micros).unwrap();
        assert_eq!(
            us("2016-11-04 13:51:30.123456"),
            json!(1_478_267_490_123_456i64)
        );
        assert_eq!(
            us("2007-05-14 13:44:29.996577"),
            json!(1_179_150_269_996_577i64)
        );
        assert_eq!(us("1969-12-31 23:59:59.999999"), json!(-1));
        assert_eq!(
            us("1936-10-25 22:10:12.608"),
            json!(-1_047_174_587_392_000i64)
        );
        assert_eq!(
            us("4713-12-31 23:59:59.999999 BC"),
            json!(-210_831_897_600_000_001i64)
        );
        assert_eq!(
            us("294247-01-01 23:59:59.999999"),
            json!(9_223_371_331_199_999_999i64)
        );
        assert_eq!(us("infinity"), json!(9_223_372_036_825_200_000i64));
        assert_eq!(us("-infinity"), json!(-9_223_372_036_832_400_000i64));
        assert_eq!(
            timestamp("2016-11-04 13:51:30.123", Unit::Millis),
            Ok(json!(1_478_267_490_123i64))
        );
        assert_eq!(
            timestamp("infinity", Unit::Millis),
            Ok(json!(9_223_372_036_825_200i64))
        );
        assert!(timestamp("2016-11-04 13:51:30.123456", Unit::Millis).is_err());
        assert!(timestamp("294276-12-31 23:59:59.999999", Unit::Micros).is_err());
    }

    #[test]
    fn zoned_values_in_utc() {
        assert_eq!(
            timestamptz("2016-11-04 13:51:30.123456+02", 6),
            Ok(json!("2016-11-04T11:51:30.123456Z"))
        );
        assert_eq!(
            timestamptz("2020-04-01 11:51:02+00", 6),
            Ok(json!("2020-04-01T11:51:02.000000Z"))
        );
        assert_eq!(
            timestamptz("2016-11-04 11:51:30.12+00", 3),
            Ok(json!("2016-11-04T11:51:30.120Z"))
        );
        assert_eq!(
            timestamptz("2016-11-04 11:51:30+00", 0),
            Ok(json!("2016-11-04T11:51:30Z"))
        );
        assert_eq!(
            timestamptz("21016-11-04 06:51:30+00", 6),
            Ok(json!("+21016-11-04T06:51:30.000000Z"))
        );
        assert_eq!(
            timestamptz("4714-12-31 23:59:59.999999+00 BC", 6),
            Ok(json!("-4713-12-31T23:59:59.999999Z"))
        );
        assert_eq!(
            timestamptz("0001-01-01 00:30:00+01", 6),
            Ok(json!("0000-12-31T23:30:00.000000Z")),
            "1 BC is year 0"
        );
        assert_eq!(timestamptz("infinity", 6), Ok(json!("infinity")));
        assert_eq!(timetz("13:51:30.123789+02"), Ok(json!("11:51:30.123789Z")));
        assert_eq!(timetz("10:11:12.5+02"), Ok(json!("08:11:12.5Z")));
        assert_eq!(timetz("13:51:30+02"), Ok(json!("11:51:30Z")));
        assert_eq!(timetz("01:00:00+02"), Ok(json!("23:00:00Z")));
        assert_eq!(timetz("05:00:00-05:30"), Ok(json!("10:30:00Z")));
        assert_eq!(timetz("24:00:00+00"), Ok(json!("24:00:00Z")));
    }

    #[test]
    fn intervals_in_both_modes() {
        for (text, micros, iso) in [
            ("1 mon", 2_629_800_000_000i64, "P0Y1M0DT0H0M0S"),
            ("1 year", 31_557_600_000_000, "P1Y0M0DT0H0M0S"),
            (
                "1 year 2 mons 3 days 04:05:06.78",
                37_091_106_780_000,
                "P1Y2M3DT4H5M6.78S",
            ),
            (
                "-1 years -2 mons +3 days -04:05:06.5",
                -36_572_706_500_000,
                "P-1Y-2M3DT-4H-5M-6.5S",
            ),
            ("00:00:01.000001", 1_000_001, "P0Y0M0DT0H0M1.000001S"),
            (
                "12:34:56.789012",
                45_296_789_012,
                "P0Y0M0DT12H34M56.789012S",
            ),
            ("1 day", 86_400_000_000, "P0Y0M1DT0H0M0S"),
            ("00:00:00", 0, "P0Y0M0DT0H0M0S"),
            ("100:00:00", 360_000_000_000, "P0Y0M0DT100H0M0S"),
        ] {
            assert_eq!(interval_micros(text), Ok(json!(micros)), "{text}");
            assert_eq!(interval_iso(text), Ok(json!(iso)), "{text}");
        }
        assert!(interval_micros("1 fortnight").is_err());
    }

    #[test]
    fn the_calendar_round_trips() {
        for days in [
            -2_500_000i64,
            -719_528,
            -1,
            0,
            1,
            17_109,
            2_932_896,
            100_000_000,
        ] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
