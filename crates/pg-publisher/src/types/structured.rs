//! Values with inner structure in their text: arrays, bit strings,
//! `hstore` and `point`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

/// Parses a one-dimensional Postgres array literal into element texts
/// (`None` = NULL). An explicit lower bound (`[2:3]={a,b}`) is dropped, as
/// pgjdbc does; a multi-dimensional array is an error: Debezium's array
/// schema has one dimension, so such a value cannot be carried.
pub fn parse_array(text: &str) -> Result<Vec<Option<String>>, String> {
    let bad = || format!("cannot read `{text}` as an array");
    let body = match text.strip_prefix('[') {
        Some(_) => text.split_once('=').ok_or_else(bad)?.1,
        None => text,
    };
    let inner = body
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .ok_or_else(bad)?;
    let mut out = Vec::new();
    if inner.is_empty() {
        return Ok(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        match chars.peek() {
            Some('{') => {
                return Err(format!(
                    "`{text}` is a multi-dimensional array, which Debezium's array schema (one dimension) cannot carry"
                ));
            }
            Some('"') => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next().ok_or_else(bad)? {
                        '\\' => s.push(chars.next().ok_or_else(bad)?),
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
            None => return Ok(out),
            Some(',') => continue,
            Some(_) => return Err(bad()),
        }
    }
}

/// A bit string (`1000000001`) as `io.debezium.data.Bits`: bit *i* of the
/// bytes is the *i*-th character from the right (Java's
/// `BitSet.toByteArray`: little-endian, trimmed after the highest set bit).
///
/// The bytes carry no length of their own: a consumer reads `length` bits
/// from the schema. So a value shorter than `length` (a `varbit`) would
/// come back with leading zeros it never had, and is refused.
pub fn bits(text: &str, length: u32) -> Result<Value, String> {
    if !text.bytes().all(|b| b == b'0' || b == b'1') {
        return Err(format!("cannot read `{text}` as a bit string"));
    }
    if text.len() != length as usize {
        return Err(format!(
            "the bit string `{text}` has {} bits in a column of {length}: io.debezium.data.Bits carries no length \
             per value, so it would arrive as {length} bits; no option carries it (declare the column bit({}))",
            text.len(),
            text.len()
        ));
    }
    let mut bytes = vec![0u8; text.len().div_ceil(8)];
    for (i, b) in text.bytes().rev().enumerate() {
        if b == b'1' {
            bytes[i / 8] |= 1 << (i % 8);
        }
    }
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    Ok(json!(BASE64.encode(bytes)))
}

/// `hstore` text (`"a"=>"1", "b"=>NULL`) as an object of strings (keys in
/// the order Postgres printed them).
pub fn hstore(text: &str) -> Result<Map<String, Value>, String> {
    let bad = || format!("cannot read `{text}` as an hstore");
    let mut out = Map::new();
    let mut chars = text.chars().peekable();
    let quoted = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| -> Option<String> {
        if chars.next()? != '"' {
            return None;
        }
        let mut s = String::new();
        loop {
            match chars.next()? {
                '\\' => s.push(chars.next()?),
                '"' => return Some(s),
                c => s.push(c),
            }
        }
    };
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let key = quoted(&mut chars).ok_or_else(bad)?;
        if chars.next() != Some('=') || chars.next() != Some('>') {
            return Err(bad());
        }
        let value = if chars.peek() == Some(&'"') {
            Value::String(quoted(&mut chars).ok_or_else(bad)?)
        } else {
            let word: String = chars.by_ref().take_while(|c| *c != ',').collect();
            if word.trim() != "NULL" {
                return Err(bad());
            }
            out.insert(key, Value::Null);
            continue;
        };
        out.insert(key, value);
        match chars.next() {
            None => return Ok(out),
            Some(',') => continue,
            Some(_) => return Err(bad()),
        }
    }
}

/// `point` text `(x,y)` as `io.debezium.data.geometry.Point`: the
/// coordinates and their WKB (little-endian POINT), no SRID.
pub fn point(text: &str) -> Result<Value, String> {
    let bad = || format!("cannot read `{text}` as a point");
    let (x, y) = text
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .and_then(|t| t.split_once(','))
        .ok_or_else(bad)?;
    let (x, y): (f64, f64) = (
        x.trim().parse().map_err(|_| bad())?,
        y.trim().parse().map_err(|_| bad())?,
    );
    let mut wkb = Vec::with_capacity(21);
    wkb.push(1u8);
    wkb.extend_from_slice(&1u32.to_le_bytes());
    wkb.extend_from_slice(&x.to_le_bytes());
    wkb.extend_from_slice(&y.to_le_bytes());
    let coordinate = |c: f64| {
        if c.is_finite() {
            json!(c)
        } else {
            json!(c.to_string().replace("inf", "Infinity"))
        }
    };
    Ok(json!({
        "x": coordinate(x),
        "y": coordinate(y),
        "wkb": BASE64.encode(wkb),
        "srid": null,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays() {
        assert_eq!(
            parse_array(r#"{Trailers,"Behind the Scenes","q\"x",NULL,"NULL"}"#),
            Ok(vec![
                Some("Trailers".into()),
                Some("Behind the Scenes".into()),
                Some("q\"x".into()),
                None,
                Some("NULL".into()),
            ])
        );
        assert_eq!(parse_array("{}"), Ok(vec![]));
        assert_eq!(
            parse_array("[0:1]={7,8}"),
            Ok(vec![Some("7".into()), Some("8".into())])
        );
        let err = parse_array("{{1,2},{3,4}}").unwrap_err();
        assert!(err.contains("multi-dimensional"), "{err}");
    }

    #[test]
    fn bits_are_little_endian_from_the_right() {
        assert_eq!(bits("1000000001", 10), Ok(json!("AQI=")));
        assert_eq!(bits("11", 2), Ok(json!("Aw==")));
        assert_eq!(bits("1000000", 7), Ok(json!("QA==")));
        assert_eq!(bits("000000110000001000000001", 24), Ok(json!("AQID")));
        assert_eq!(bits("00", 2), Ok(json!("")));
        let msb = format!("1{}", "0".repeat(63));
        assert_eq!(bits(&msb, 64), Ok(json!("AAAAAAAAAIA=")));
        assert!(bits("101", 8).is_err(), "a shorter varbit would gain zeros");
    }

    #[test]
    fn hstore_and_point() {
        let h = hstore(r#""a"=>"1", "b"=>NULL, "q\"k"=>"v, w""#).unwrap();
        assert_eq!(
            Value::Object(h),
            json!({"a": "1", "b": null, "q\"k": "v, w"})
        );
        assert_eq!(hstore(""), Ok(Map::new()));
        assert_eq!(
            point("(1,1)"),
            Ok(json!({"x": 1.0, "y": 1.0, "wkb": "AQEAAAAAAAAAAADwPwAAAAAAAPA/", "srid": null}))
        );
        assert_eq!(
            point("(1.5,-2)").unwrap()["wkb"],
            json!("AQEAAAAAAAAAAAD4PwAAAAAAAADA")
        );
    }
}
