//! A Decimal written as a JSON number (`decimal.format=NUMERIC`), read
//! from the number's text: exact at any length, never through a double.

/// Longest unscaled value accepted, in decimal digits (Postgres' numeric
/// holds 131072 before the point and 16383 after).
const MAX_DIGITS: usize = 147_455;

/// The unscaled value of a JSON number's `text` at `scale`, as the
/// big-endian two's complement bytes a Connect Decimal carries (what
/// `values::unscaled_to_decimal` reads). Refused when the number has more
/// fractional digits than the scale (not zeros), or is no JSON number.
pub(super) fn unscaled_bytes(text: &str, scale: u32) -> Result<Vec<u8>, String> {
    let no_number = || format!("{text} is no JSON number");
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => {
            let exp = &rest[at + 1..];
            let exp = exp.strip_prefix('+').unwrap_or(exp);
            let exp: i64 = exp.parse().map_err(|_| no_number())?;
            (&rest[..at], exp)
        }
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(no_number());
    }
    // value = digits × 10^(exponent − |frac|); unscaled = value × 10^scale.
    let mut digits: Vec<u8> = int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect();
    let shift = exponent - frac.len() as i64 + i64::from(scale);
    if shift >= 0 {
        let zeros = usize::try_from(shift).map_err(|_| no_number())?;
        if digits.len().saturating_add(zeros) > MAX_DIGITS {
            return Err(format!("{text} has more than {MAX_DIGITS} digits"));
        }
        digits.resize(digits.len() + zeros, 0);
    } else {
        let cut = usize::try_from(-shift).unwrap_or(usize::MAX);
        let kept = digits.len().saturating_sub(cut);
        if digits[kept..].iter().any(|d| *d != 0) {
            return Err(format!(
                "{text} has more fractional digits than the column's scale {scale}"
            ));
        }
        digits.truncate(kept);
    }
    if digits.len() > MAX_DIGITS {
        return Err(format!("{text} has more than {MAX_DIGITS} digits"));
    }
    // Decimal digits → base-256 magnitude, most significant byte first.
    let mut magnitude: Vec<u8> = Vec::with_capacity(digits.len() / 2 + 1);
    for d in digits {
        let mut carry = u32::from(d);
        for byte in magnitude.iter_mut().rev() {
            let v = u32::from(*byte) * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            magnitude.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    // Room for the sign bit, as BigInteger.toByteArray gives it.
    if magnitude.first().is_none_or(|b| b & 0x80 != 0) {
        magnitude.insert(0, 0);
    }
    if negative && magnitude.iter().any(|b| *b != 0) {
        for b in magnitude.iter_mut() {
            *b = !*b;
        }
        for b in magnitude.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
        // A magnitude of exactly 0x80.. needs no sign byte when negative.
        while magnitude.len() > 1 && magnitude[0] == 0xff && magnitude[1] & 0x80 != 0 {
            magnitude.remove(0);
        }
    }
    Ok(magnitude)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debezium::values::unscaled_to_decimal;

    fn exact(text: &str, scale: u32) -> Result<String, String> {
        unscaled_bytes(text, scale).map(|b| unscaled_to_decimal(&b, scale))
    }

    #[test]
    fn numbers_are_read_exactly_at_the_scale() {
        assert_eq!(exact("12.34", 2).as_deref(), Ok("12.34"));
        assert_eq!(exact("12.3", 2).as_deref(), Ok("12.30"));
        assert_eq!(exact("150", 2).as_deref(), Ok("150.00"));
        assert_eq!(exact("-0.07", 2).as_deref(), Ok("-0.07"));
        assert_eq!(exact("0", 0).as_deref(), Ok("0"));
        assert_eq!(exact("-0.0", 1).as_deref(), Ok("0.0"));
        assert_eq!(exact("1.2E+3", 0).as_deref(), Ok("1200"));
        assert_eq!(exact("1.250e-1", 3).as_deref(), Ok("0.125"));
        assert_eq!(
            exact("12345678901234567890123456789.123456789", 9).as_deref(),
            Ok("12345678901234567890123456789.123456789")
        );
        assert_eq!(
            exact("-12345678901234567890123456789.5", 1).as_deref(),
            Ok("-12345678901234567890123456789.5")
        );
        // Powers of two at the sign boundary.
        for n in ["128", "-128", "255", "-256", "32768", "-32768", "-129"] {
            assert_eq!(exact(n, 0).as_deref(), Ok(n));
        }
        assert_eq!(unscaled_bytes("-128", 0), Ok(vec![0x80]));
        assert_eq!(unscaled_bytes("128", 0), Ok(vec![0x00, 0x80]));
        assert_eq!(unscaled_bytes("0", 0), Ok(vec![0x00]));
    }

    #[test]
    fn what_the_scale_cannot_hold_is_refused() {
        assert!(exact("12.345", 2).unwrap_err().contains("scale 2"));
        assert!(exact("1e-3", 2).is_err());
        assert_eq!(exact("12.340", 2).as_deref(), Ok("12.34"));
        assert!(exact("1e999999999", 0).is_err());
        for bad in ["", "-", ".5", "1.2.3", "0x10", "1e", "NaN"] {
            assert!(exact(bad, 2).is_err(), "{bad}");
        }
    }
}
