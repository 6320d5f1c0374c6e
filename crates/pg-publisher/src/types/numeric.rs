//! `numeric` and `money` as Connect decimals, doubles or text.

use super::options::DecimalMode;
use serde_json::{Value, json};

/// Why precise mode cannot carry Postgres' special numerics.
const SPECIAL_IN_PRECISE: &str = "decimal.handling.mode=precise (a Connect Decimal) cannot carry NaN or \
     an infinity; set decimal.handling.mode=string to carry it";

/// A decimal in plain notation, split into sign and digits.
struct Plain<'a> {
    negative: bool,
    int: &'a str,
    fraction: &'a str,
}

fn plain(text: &str) -> Option<Plain<'_>> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = int
        .bytes()
        .chain(fraction.bytes())
        .all(|b| b.is_ascii_digit());
    (all_digits && !(int.is_empty() && fraction.is_empty())).then_some(Plain {
        negative,
        int,
        fraction,
    })
}

/// `-12.5` at scale 2 → the big-endian two's complement of -1250 in its
/// shortest form (Java's `BigInteger.toByteArray`). `None` if `text` is
/// no plain decimal, or has non-zero digits past `scale` (they would be
/// lost).
pub fn unscaled_bytes(text: &str, scale: u32) -> Option<Vec<u8>> {
    let p = plain(text)?;
    let scale = scale as usize;
    if p.fraction.len() > scale && p.fraction[scale..].bytes().any(|b| b != b'0') {
        return None;
    }
    let fraction = &p.fraction[..p.fraction.len().min(scale)];
    unscaled_in_i128(&p, fraction, scale).or_else(|| Some(unscaled_by_digits(&p, scale)))
}

/// [`unscaled_bytes`] of any length, digit by digit.
fn unscaled_by_digits(p: &Plain<'_>, scale: usize) -> Vec<u8> {
    let mut all: Vec<u8> = p.int.bytes().collect();
    all.extend(p.fraction.bytes().take(scale));
    all.extend(std::iter::repeat_n(
        b'0',
        scale.saturating_sub(p.fraction.len()),
    ));
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
    if p.negative && mag.iter().any(|&b| b != 0) {
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
    mag
}

/// [`unscaled_bytes`] of a value with at most 38 digits (any numeric a
/// column of precision ≤ 38 holds), computed in an `i128`: no digit
/// vector, no byte shifting. `fraction` is cut to `scale` (the rest is
/// zeros). `None` for longer values, which take the general path.
fn unscaled_in_i128(p: &Plain<'_>, fraction: &str, scale: usize) -> Option<Vec<u8>> {
    let int = p.int.trim_start_matches('0');
    if int.len() + scale > 38 {
        return None;
    }
    let digits = int.bytes().chain(fraction.bytes());
    let mut n = digits.fold(0i128, |n, d| n * 10 + i128::from(d - b'0'));
    n *= 10i128.pow((scale - fraction.len()) as u32);
    if p.negative {
        n = -n;
    }
    // Java's `BigInteger.toByteArray`: the fewest bytes whose top bit is
    // the sign, so drop leading bytes that only repeat it.
    let bytes = n.to_be_bytes();
    let sign = if n < 0 { 0xFF } else { 0x00 };
    let mut start = 0;
    while start < bytes.len() - 1 && bytes[start] == sign && (bytes[start + 1] ^ sign) & 0x80 == 0 {
        start += 1;
    }
    Some(bytes[start..].to_vec())
}

fn base64(bytes: &[u8]) -> Value {
    use base64::Engine;
    json!(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Postgres' special numerics as `decimal.handling.mode=string` writes
/// them (the names of Debezium's `SpecialValueDecimal` values).
fn special_text(text: &str) -> Option<&'static str> {
    Some(match text {
        "NaN" => "NAN",
        "Infinity" => "POSITIVE_INFINITY",
        "-Infinity" => "NEGATIVE_INFINITY",
        _ => return None,
    })
}

/// A `numeric` value (Postgres' output text) in `mode`; `scale` is the
/// column's (`None`: unconstrained).
pub fn numeric(text: &str, mode: DecimalMode, scale: Option<u32>) -> Result<Value, String> {
    let special = special_text(text);
    match mode {
        DecimalMode::Precise if special.is_some() => Err(SPECIAL_IN_PRECISE.to_owned()),
        DecimalMode::Precise => match scale {
            Some(scale) => unscaled_bytes(text, scale)
                .map(|b| base64(&b))
                .ok_or_else(|| format!("`{text}` does not fit a decimal of scale {scale}")),
            None => variable_scale(text),
        },
        DecimalMode::Double => double(text),
        DecimalMode::String => Ok(match special {
            Some(name) => json!(name),
            None => {
                plain(text).ok_or_else(|| format!("`{text}` is not a decimal"))?;
                json!(text)
            }
        }),
    }
}

/// `io.debezium.data.VariableScaleDecimal`: trailing zeros stripped (as
/// `BigDecimal.stripTrailingZeros`, a negative scale raised to 0).
fn variable_scale(text: &str) -> Result<Value, String> {
    let p = plain(text).ok_or_else(|| format!("`{text}` is not a decimal"))?;
    let fraction = p.fraction.trim_end_matches('0');
    let scale = fraction.len() as u32;
    let trimmed = format!(
        "{}{}.{fraction}",
        if p.negative { "-" } else { "" },
        if p.int.is_empty() { "0" } else { p.int }
    );
    let bytes =
        unscaled_bytes(&trimmed, scale).ok_or_else(|| format!("`{text}` is not a decimal"))?;
    Ok(json!({ "scale": scale, "value": base64(&bytes) }))
}

/// A double, the representation `double` mode chose; the special values
/// as JsonConverter writes non-finite doubles.
pub fn double(text: &str) -> Result<Value, String> {
    match text {
        "NaN" | "Infinity" | "-Infinity" => Ok(json!(text)),
        _ => text
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(|f| json!(f))
            .ok_or_else(|| format!("`{text}` is not a number")),
    }
}

/// A `money` value: Postgres writes it in the database's `lc_monetary`
/// (`$1,234.56`, `-$1,234.56`). The amount is read from a leading sign,
/// one currency symbol, `,` grouping and `.` as the decimal point; any
/// other layout is refused rather than guessed (the publisher checks the
/// server's layout at start).
pub fn money_amount(text: &str) -> Option<String> {
    let (negative, rest) = match text.trim().strip_prefix('-') {
        Some(rest) => (true, rest),
        None => match text
            .trim()
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
        {
            Some(inner) => (true, inner),
            None => (false, text.trim()),
        },
    };
    let digits = rest.trim_start_matches(|c: char| !c.is_ascii_digit());
    let amount: String = digits.chars().filter(|c| *c != ',').collect();
    plain(&amount)?;
    Some(if negative {
        format!("-{amount}")
    } else {
        amount
    })
}

/// A `money` value in `mode`, at `money.fraction.digits` in precise mode.
pub fn money(text: &str, mode: DecimalMode, fraction_digits: u32) -> Result<Value, String> {
    let amount = money_amount(text).ok_or_else(|| format!("cannot read `{text}` as money"))?;
    match mode {
        DecimalMode::Precise => unscaled_bytes(&amount, fraction_digits)
            .map(|b| base64(&b))
            .ok_or_else(|| {
                format!(
                    "`{text}` has more fraction digits than money.fraction.digits={fraction_digits}; raise it"
                )
            }),
        DecimalMode::Double => double(&amount),
        DecimalMode::String => Ok(json!(amount)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `i128` path gives the digit-by-digit path's bytes around every
    /// byte boundary, at both signs, and up to 38 digits.
    #[test]
    fn the_i128_path_matches_the_digit_path() {
        let mut texts = vec![
            "0".to_owned(),
            "-0".into(),
            "0.00".into(),
            "-0.001".into(),
            "007.50".into(),
            "+3".into(),
            ".5".into(),
            "5.".into(),
            "9".repeat(38),
            format!("-{}", "9".repeat(38)),
            format!("{}.{}", "9".repeat(20), "9".repeat(18)),
        ];
        for shift in 0..127 {
            let n = 1i128 << shift;
            for m in [n - 1, n, n + 1] {
                texts.push(m.to_string());
                texts.push((-m).to_string());
            }
        }
        for text in &texts {
            let p = plain(text).unwrap();
            for scale in [0usize, 1, 2, 5] {
                let fraction = &p.fraction[..p.fraction.len().min(scale)];
                let Some(fast) = unscaled_in_i128(&p, fraction, scale) else {
                    continue;
                };
                assert_eq!(
                    fast,
                    unscaled_by_digits(&p, scale),
                    "{text} at scale {scale}"
                );
            }
        }
        assert!(unscaled_in_i128(&plain(&"9".repeat(39)).unwrap(), "", 0).is_none());
    }

    #[test]
    fn decimals_match_connects_encoding() {
        for (text, scale) in [
            ("2.99", 2),
            ("-2.99", 2),
            ("0.00", 2),
            ("12345678901234567890.5", 1),
            ("-1", 0),
            ("128", 0),
            ("-128", 0),
        ] {
            let bytes = unscaled_bytes(text, scale).unwrap();
            assert_eq!(
                sinkfleet_core::debezium::unscaled_to_decimal(&bytes, scale),
                text,
                "{text}"
            );
        }
        assert_eq!(
            numeric("2.99", DecimalMode::Precise, Some(2)),
            Ok(json!("ASs="))
        );
        assert_eq!(
            numeric("1.10", DecimalMode::Precise, Some(2)),
            Ok(json!("bg=="))
        );
        assert_eq!(
            numeric("-1.10", DecimalMode::Precise, Some(2)),
            Ok(json!("kg=="))
        );
        assert_eq!(
            numeric("1.28", DecimalMode::Precise, Some(2)),
            Ok(json!("AIA="))
        );
        assert_eq!(unscaled_bytes("1.5", 2), unscaled_bytes("1.50", 2));
        assert_eq!(unscaled_bytes("1.500", 2), unscaled_bytes("1.50", 2));
        assert!(
            unscaled_bytes("1.505", 2).is_none(),
            "a digit would be lost"
        );
        assert!(unscaled_bytes("abc", 2).is_none());
    }

    #[test]
    fn variable_scale_strips_trailing_zeros() {
        let v = |t| numeric(t, DecimalMode::Precise, None).unwrap();
        assert_eq!(v("22.2200"), json!({"scale": 2, "value": "CK4="}));
        assert_eq!(v("10.1111"), json!({"scale": 4, "value": "AYr3"}));
        assert_eq!(v("1200"), json!({"scale": 0, "value": "BLA="}));
        assert_eq!(v("0.000"), json!({"scale": 0, "value": "AA=="}));
    }

    #[test]
    fn special_values_per_mode() {
        for text in ["NaN", "Infinity", "-Infinity"] {
            let refused = numeric(text, DecimalMode::Precise, Some(2)).unwrap_err();
            assert!(
                refused.contains("decimal.handling.mode=string"),
                "{refused}"
            );
            assert!(numeric(text, DecimalMode::Precise, None).is_err());
            assert_eq!(numeric(text, DecimalMode::Double, None), Ok(json!(text)));
        }
        assert_eq!(numeric("NaN", DecimalMode::String, None), Ok(json!("NAN")));
        assert_eq!(
            numeric("-Infinity", DecimalMode::String, Some(2)),
            Ok(json!("NEGATIVE_INFINITY"))
        );
        assert_eq!(
            numeric("22.2000", DecimalMode::String, Some(4)),
            Ok(json!("22.2000"))
        );
        assert_eq!(
            numeric("22.22", DecimalMode::Double, Some(2)),
            Ok(json!(22.22))
        );
    }

    #[test]
    fn money_reads_the_amount_exactly() {
        assert_eq!(money_amount("$1,234.56").as_deref(), Some("1234.56"));
        assert_eq!(money_amount("-$1,234.56").as_deref(), Some("-1234.56"));
        assert_eq!(money_amount("($0.50)").as_deref(), Some("-0.50"));
        assert_eq!(
            money_amount("1.234,56 €"),
            None,
            "another locale's layout is refused"
        );
        assert_eq!(
            money("$1,234.11", DecimalMode::Precise, 2),
            Ok(json!("AeIT"))
        );
        assert_eq!(
            money("-$1,234.11", DecimalMode::Precise, 2),
            Ok(json!("/h3t"))
        );
        assert_eq!(
            money("$1,234.11", DecimalMode::String, 2),
            Ok(json!("1234.11"))
        );
        assert_eq!(
            money("$1,234.11", DecimalMode::Double, 2),
            Ok(json!(1234.11))
        );
        assert!(money("$1.234", DecimalMode::Precise, 2).is_err());
        assert_eq!(money("$1.234", DecimalMode::Precise, 3), Ok(json!("BNI=")));
    }
}
