//! Checking a JSON Schema record's payload against its schema, read
//! straight from the text: no JSON tree is built (the payload is parsed
//! again, by the JSON envelope path, to decode it).
//!
//! Decimals written as JSON numbers (`decimal.format=NUMERIC`) are the one
//! value whose form differs from `JsonConverter`'s default: their text is
//! read exactly ([`json_decimal`]) and rewritten as the base64 unscaled
//! bytes `JsonConverter` writes, so the envelope path reads them as it
//! reads its own, at any length and never through a double.

use super::json_decimal;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

/// What a JSON value must be.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Check {
    pub kind: Kind,
    /// `null` is allowed (an optional Connect field).
    pub nullable: bool,
    /// The property must be present (listed in `required`, or a Connect
    /// field that is not optional: Connect refuses a struct without it).
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind {
    Bool,
    Integer,
    Number,
    /// A Decimal as a JSON number, at its column's scale.
    Decimal {
        scale: u32,
    },
    String,
    Array(Box<Check>),
    /// A struct: its properties, and whether others are refused
    /// (`additionalProperties: false`).
    Object {
        properties: Vec<(String, Check)>,
        closed: bool,
    },
    /// A Connect map with string keys: every value of one schema.
    Map(Box<Check>),
}

/// Why a payload was refused.
#[derive(Debug)]
pub(super) enum Invalid {
    /// It is no JSON (the parser's message).
    NotJson(String),
    /// It is JSON that does not match: what, naming the field.
    Mismatch(String),
}

impl Check {
    /// The check of a whole value (which no parent requires).
    pub fn kind_only(self) -> Check {
        Check {
            required: false,
            ..self
        }
    }

    /// Checks one JSON text; `Some` is the text to decode instead, with
    /// numeric Decimals as `JsonConverter`'s base64.
    pub fn validate<'b>(&self, body: &'b [u8]) -> Result<Cow<'b, [u8]>, Invalid> {
        let mut path = String::new();
        let mut failure = None;
        let mut rewrites = Vec::new();
        let mut de = serde_json::Deserializer::from_slice(body);
        let parsed = CheckSeed {
            check: self,
            path: &mut path,
            failure: &mut failure,
            base: body.as_ptr() as usize,
            rewrites: &mut rewrites,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end());
        match (failure, parsed) {
            (Some(message), _) => Err(Invalid::Mismatch(message)),
            (None, Err(e)) => Err(Invalid::NotJson(e.to_string())),
            (None, Ok(())) if rewrites.is_empty() => Ok(Cow::Borrowed(body)),
            (None, Ok(())) => {
                let mut out = Vec::with_capacity(body.len());
                let mut at = 0;
                for (range, text) in rewrites {
                    out.extend_from_slice(&body[at..range.start]);
                    out.push(b'"');
                    out.extend_from_slice(text.as_bytes());
                    out.push(b'"');
                    at = range.end;
                }
                out.extend_from_slice(&body[at..]);
                Ok(Cow::Owned(out))
            }
        }
    }
}

/// Checks one value; a mismatch is left in `failure` and stops the parse.
struct CheckSeed<'c> {
    check: &'c Check,
    path: &'c mut String,
    failure: &'c mut Option<String>,
    /// The address of the text's first byte: a raw value's offset is its
    /// address less this.
    base: usize,
    /// Numeric Decimals to replace: their span, and the base64 text.
    rewrites: &'c mut Vec<(Range<usize>, String)>,
}

impl CheckSeed<'_> {
    fn at(&self) -> String {
        if self.path.is_empty() {
            "the payload".to_owned()
        } else {
            format!("`{}`", self.path)
        }
    }

    fn fail<E: de::Error>(self, message: String) -> Result<(), E> {
        *self.failure = Some(message);
        Err(E::custom("the payload does not match its schema"))
    }

    fn wrong<E: de::Error>(self, found: &dyn fmt::Display) -> Result<(), E> {
        let expected = match &self.check.kind {
            Kind::Bool => "a boolean",
            Kind::Integer => "an integer",
            Kind::Number | Kind::Decimal { .. } => "a number",
            Kind::String => "a string",
            Kind::Array(_) => "an array",
            Kind::Object { .. } | Kind::Map(_) => "an object",
        };
        let mut found = found.to_string();
        if found.chars().count() > 64 {
            found = found.chars().take(64).chain(['…']).collect();
        }
        let message = format!("{} must be {expected}, found {found}", self.at());
        self.fail(message)
    }

    /// The seed of a child value (its path already pushed).
    fn child<'s>(&'s mut self, check: &'s Check) -> CheckSeed<'s> {
        CheckSeed {
            check,
            path: self.path,
            failure: self.failure,
            base: self.base,
            rewrites: self.rewrites,
        }
    }

    /// A numeric Decimal: its exact unscaled value, to be rewritten as
    /// base64 in place of the number.
    fn decimal<E: de::Error>(self, raw: &RawValue, scale: u32) -> Result<(), E> {
        let text = raw.get();
        match text.as_bytes().first() {
            Some(b'n') => return self.visit_unit(),
            Some(b'-' | b'0'..=b'9') => {}
            _ => return self.wrong(&text),
        }
        match json_decimal::unscaled_bytes(text, scale) {
            Ok(bytes) => {
                let start = (text.as_ptr() as usize).wrapping_sub(self.base);
                self.rewrites
                    .push((start..start + text.len(), BASE64.encode(bytes)));
                Ok(())
            }
            Err(message) => {
                let message = format!("{}: {message}", self.at());
                self.fail(message)
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for CheckSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.check.kind {
            Kind::Decimal { scale } => {
                let raw = <&RawValue as serde::Deserialize>::deserialize(d)?;
                self.decimal(raw, scale)
            }
            _ => d.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for CheckSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        if self.check.nullable {
            return Ok(());
        }
        let message = format!("{} is null, which its schema does not allow", self.at());
        self.fail(message)
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<(), E> {
        match self.check.kind {
            Kind::Bool => Ok(()),
            _ => self.wrong(&b),
        }
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<(), E> {
        match self.check.kind {
            Kind::Integer | Kind::Number => Ok(()),
            _ => self.wrong(&i),
        }
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<(), E> {
        match self.check.kind {
            Kind::Integer | Kind::Number => Ok(()),
            _ => self.wrong(&u),
        }
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<(), E> {
        match self.check.kind {
            Kind::Number => Ok(()),
            _ => self.wrong(&serde_json::Value::from(f)),
        }
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        match self.check.kind {
            Kind::String => Ok(()),
            _ => self.wrong(&serde_json::Value::from(s)),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let Kind::Array(item) = &self.check.kind else {
            return self.wrong(&"an array");
        };
        let mut i = 0;
        loop {
            let len = self.path.len();
            self.path.push_str(&format!("[{i}]"));
            let more = seq.next_element_seed(self.child(item))?;
            self.path.truncate(len);
            if more.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        match &self.check.kind {
            Kind::Map(values) => {
                while let Some(Key(name)) = map.next_key::<Key<'de>>()? {
                    let len = self.path.len();
                    push_name(self.path, &name);
                    map.next_value_seed(self.child(values))?;
                    self.path.truncate(len);
                }
                Ok(())
            }
            Kind::Object { properties, closed } => {
                let mut seen = vec![false; properties.len()];
                while let Some(Key(name)) = map.next_key::<Key<'de>>()? {
                    let len = self.path.len();
                    push_name(self.path, &name);
                    match properties.iter().position(|(n, _)| *n == name) {
                        Some(i) => {
                            seen[i] = true;
                            map.next_value_seed(self.child(&properties[i].1))?;
                        }
                        None if *closed => {
                            let message = format!(
                                "`{}` is not a property of the schema, which allows no others",
                                self.path
                            );
                            return self.fail(message);
                        }
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                    self.path.truncate(len);
                }
                if let Some((name, _)) = properties
                    .iter()
                    .zip(&seen)
                    .find(|((_, check), seen)| check.required && !**seen)
                    .map(|(p, _)| p)
                {
                    push_name(self.path, name);
                    let message = format!("required field `{}` is missing", self.path);
                    return self.fail(message);
                }
                Ok(())
            }
            _ => self.wrong(&"an object"),
        }
    }
}

/// An object's key, borrowed from the text unless it has escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a property name")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

fn push_name(path: &mut String, name: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(name);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(kind: Kind, nullable: bool, required: bool) -> Check {
        Check {
            kind,
            nullable,
            required,
        }
    }

    fn row() -> Check {
        check(
            Kind::Object {
                properties: vec![
                    ("id".into(), check(Kind::Integer, false, true)),
                    ("é\"x".into(), check(Kind::Number, true, false)),
                    (
                        "tags".into(),
                        check(
                            Kind::Array(Box::new(check(Kind::String, true, false))),
                            true,
                            false,
                        ),
                    ),
                    (
                        "attrs".into(),
                        check(
                            Kind::Map(Box::new(check(Kind::Bool, false, false))),
                            true,
                            false,
                        ),
                    ),
                ],
                closed: true,
            },
            false,
            false,
        )
    }

    fn mismatch(body: &str) -> String {
        match row().validate(body.as_bytes()) {
            Err(Invalid::Mismatch(m)) => m,
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn matching_payloads_pass() {
        for ok in [
            r#"{"id": 1}"#,
            r#"{"id": 18446744073709551615, "\u00e9\"x": 1.5, "tags": ["a", null], "attrs": {"k": true}}"#,
            r#"{"id": -1, "é\"x": null, "tags": null, "attrs": {}}"#,
        ] {
            assert!(row().validate(ok.as_bytes()).is_ok(), "{ok}");
        }
    }

    #[test]
    fn mismatches_name_the_field() {
        assert_eq!(
            mismatch(r#"{"id": 1.5}"#),
            "`id` must be an integer, found 1.5"
        );
        assert_eq!(
            mismatch(r#"{"id": "1"}"#),
            "`id` must be an integer, found \"1\""
        );
        assert_eq!(
            mismatch(r#"{"id": null}"#),
            "`id` is null, which its schema does not allow"
        );
        assert_eq!(mismatch(r#"{}"#), "required field `id` is missing");
        assert_eq!(
            mismatch(r#"{"id": 1, "tags": ["a", 2]}"#),
            "`tags[1]` must be a string, found 2"
        );
        assert_eq!(
            mismatch(r#"{"id": 1, "attrs": {"k": 1}}"#),
            "`attrs.k` must be a boolean, found 1"
        );
        assert_eq!(
            mismatch(r#"{"id": 1, "other": 1}"#),
            "`other` is not a property of the schema, which allows no others"
        );
        assert_eq!(
            mismatch(r#"[1]"#),
            "the payload must be an object, found an array"
        );
        let long = format!(r#"{{"id": "{}"}}"#, "x".repeat(100));
        assert!(mismatch(&long).ends_with("xxx…"));
    }

    #[test]
    fn text_that_is_no_json_is_told_apart() {
        for bad in [r#"{"id": 1"#, r#"{"id": 1} x"#, "", "nope"] {
            assert!(
                matches!(row().validate(bad.as_bytes()), Err(Invalid::NotJson(_))),
                "{bad}"
            );
        }
    }
}
