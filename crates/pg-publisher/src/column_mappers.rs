//! Debezium's column mappers: `column.truncate.to.N.chars`,
//! `column.mask.with.N.chars` and `column.mask.hash[.v2].ALG.with.salt.SALT`.
//!
//! Each property's value is a list of anchored, case-insensitive regexes
//! over `schema.table.column` (as `column.include.list`). A column gets the
//! first rule that matches it, in Debezium's order (every truncation, every
//! fixed mask, every V1 hash, every V2 hash; within one kind, property-name
//! order): rules are never chained. Mappers act on the value's `before` and
//! `after` only, never on the Kafka key or the key headers, and see the
//! value as the type converter produced it.

use crate::config::{column_patterns, regex_list};
use crate::types::Kind;
use crate::types::options::{BinaryMode, DecimalMode, HstoreMode, IntervalMode};
use crate::types::registry::{TypeRegistry, TypeShape};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use sha2::Digest;
use sinkfleet_core::debezium::UNAVAILABLE_VALUE;
use std::collections::BTreeMap;

/// A JCA `MessageDigest` this publisher can compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `MD5`.
    Md5,
    /// `SHA-1` (also `SHA`, `SHA1`).
    Sha1,
    /// `SHA-224`.
    Sha224,
    /// `SHA-256`.
    Sha256,
    /// `SHA-384`.
    Sha384,
    /// `SHA-512`.
    Sha512,
    /// `SHA-512/224`.
    Sha512_224,
    /// `SHA-512/256`.
    Sha512_256,
}

/// The JCA names accepted, case-insensitively (Java looks them up so).
const ALGORITHMS: &[(&str, Algorithm)] = &[
    ("MD5", Algorithm::Md5),
    ("SHA-1", Algorithm::Sha1),
    ("SHA", Algorithm::Sha1),
    ("SHA1", Algorithm::Sha1),
    ("SHA-224", Algorithm::Sha224),
    ("SHA-256", Algorithm::Sha256),
    ("SHA-384", Algorithm::Sha384),
    ("SHA-512", Algorithm::Sha512),
    ("SHA-512/224", Algorithm::Sha512_224),
    ("SHA-512/256", Algorithm::Sha512_256),
];

impl Algorithm {
    fn digest(self, salt: &[u8], value: &[u8]) -> Vec<u8> {
        fn run<D: Digest>(salt: &[u8], value: &[u8]) -> Vec<u8> {
            let mut d = D::new();
            d.update(salt);
            d.update(value);
            d.finalize().to_vec()
        }
        match self {
            Algorithm::Md5 => run::<md5::Md5>(salt, value),
            Algorithm::Sha1 => run::<sha1::Sha1>(salt, value),
            Algorithm::Sha224 => run::<sha2::Sha224>(salt, value),
            Algorithm::Sha256 => run::<sha2::Sha256>(salt, value),
            Algorithm::Sha384 => run::<sha2::Sha384>(salt, value),
            Algorithm::Sha512 => run::<sha2::Sha512>(salt, value),
            Algorithm::Sha512_224 => run::<sha2::Sha512_224>(salt, value),
            Algorithm::Sha512_256 => run::<sha2::Sha512_256>(salt, value),
        }
    }
}

/// What a rule does to a column's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapper {
    /// `column.truncate.to.N.chars`: strings to N UTF-16 code units,
    /// `bytea` (in `bytes` mode) to N bytes.
    Truncate(usize),
    /// `column.mask.with.N.chars`: N asterisks, NULL included.
    Mask(usize),
    /// `column.mask.hash[.v2].ALG.with.salt.SALT`: the lower-case hex
    /// digest of the salt followed by the value, NULL kept.
    Hash {
        /// The digest.
        algorithm: Algorithm,
        /// The salt's UTF-8 bytes, digested before the value.
        salt: Vec<u8>,
        /// V2 hashes the UTF-8 bytes; V1 the Java serialization of the
        /// string.
        v2: bool,
    },
}

/// One property: its patterns and its mapper.
#[derive(Debug, Clone)]
struct Rule {
    patterns: Vec<regex::Regex>,
    mapper: Mapper,
}

/// Every mapper property of a connector, in the order rules are tried.
#[derive(Debug, Clone, Default)]
pub struct ColumnMappers {
    rules: Vec<Rule>,
}

/// Whether `key` names a mapper property (valid or not: the parser says).
pub fn is_mapper_property(key: &str) -> bool {
    key.starts_with("column.mask.") || key.starts_with("column.truncate.")
}

impl ColumnMappers {
    /// Reads every mapper property of `props`; problems as `(property,
    /// problem)`.
    pub fn from_properties(props: &BTreeMap<String, String>) -> (Self, Vec<(String, String)>) {
        let mut problems = Vec::new();
        // Debezium's kinds, in the order its rules are registered.
        let mut kinds: [Vec<Rule>; 4] = Default::default();
        for (key, value) in props.iter().filter(|(k, _)| is_mapper_property(k)) {
            let parsed = parse_key(key).and_then(|(kind, mapper)| {
                let list = regex_list(value);
                if list.is_empty() {
                    return Err("names no column".to_owned());
                }
                let patterns = column_patterns(&list)?;
                Ok((kind, Rule { patterns, mapper }))
            });
            match parsed {
                Ok((kind, rule)) => kinds[kind].push(rule),
                Err(problem) => problems.push((key.clone(), problem)),
            }
        }
        let rules = kinds.into_iter().flatten().collect();
        (ColumnMappers { rules }, problems)
    }

    /// The mapper of column `id` (`schema.table.column`), if any.
    pub fn for_column(&self, id: &str) -> Option<&Mapper> {
        self.rules
            .iter()
            .find(|r| r.patterns.iter().any(|p| p.is_match(id)))
            .map(|r| &r.mapper)
    }
}

/// `(kind index, mapper)` of a property name, or why it is not one.
fn parse_key(key: &str) -> Result<(usize, Mapper), String> {
    let count = |n: &str| {
        n.parse::<usize>()
            .map_err(|_| format!("`{n}` is not a length (a whole number, 0 or more)"))
    };
    if let Some(n) = key
        .strip_prefix("column.truncate.to.")
        .and_then(|r| r.strip_suffix(".chars"))
    {
        return Ok((0, Mapper::Truncate(count(n)?)));
    }
    if let Some(n) = key
        .strip_prefix("column.mask.with.")
        .and_then(|r| r.strip_suffix(".chars"))
    {
        return Ok((1, Mapper::Mask(count(n)?)));
    }
    let (v2, rest) = match key.strip_prefix("column.mask.hash.v2.") {
        Some(rest) => (true, Some(rest)),
        None => (false, key.strip_prefix("column.mask.hash.")),
    };
    if let Some((name, salt)) = rest.and_then(|r| r.split_once(".with.salt.")) {
        let algorithm = ALGORITHMS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, a)| *a)
            .ok_or_else(|| {
                format!(
                    "hash algorithm `{name}` is not supported (supported: {})",
                    ALGORITHMS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
        if salt.is_empty() {
            return Err("the salt is empty".into());
        }
        let mapper = Mapper::Hash {
            algorithm,
            salt: salt.as_bytes().to_vec(),
            v2,
        };
        return Ok((if v2 { 3 } else { 2 }, mapper));
    }
    Err(
        "not a mapper property: expected column.truncate.to.N.chars, column.mask.with.N.chars, \
         column.mask.hash.ALGORITHM.with.salt.SALT or column.mask.hash.v2.ALGORITHM.with.salt.SALT"
            .into(),
    )
}

/// What a column's values are, for the mappers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    /// A Java `String` at the converter's output, of a character type
    /// (`text`, `varchar`, `bpchar`, `"char"`, `name`, an enum, or a
    /// domain over one): masked, hashed and truncated.
    CharString,
    /// Another `String` (a `uuid`, `json`, a timestamp with time zone, a
    /// decimal in `string` mode, ...): truncated only.
    OtherString,
    /// Bytes (`bytea` in `bytes` mode, base64 in JSON): truncated by bytes.
    Bytes,
    /// Anything else (numbers, booleans, structs, arrays): unchanged.
    Other,
}

/// A mapper bound to one column: what it does and the schema parameter it
/// adds.
#[derive(Debug, Clone)]
pub struct ColumnMapper {
    mapper: Mapper,
    carrier: Carrier,
    /// The column's declared length (`varchar(n)`, `char(n)`, `"char"`);
    /// `None`: unbounded.
    length: Option<usize>,
}

impl ColumnMapper {
    /// The mapper for a column, or `None` when it changes nothing there (a
    /// truncation longer than the column's declared length, which Debezium
    /// leaves out along with its schema parameter).
    pub fn bind(mapper: &Mapper, carrier: Carrier, length: Option<usize>) -> Option<Self> {
        if let Mapper::Truncate(n) = mapper
            && length.is_some_and(|l| l <= *n)
        {
            return None;
        }
        Some(ColumnMapper {
            mapper: mapper.clone(),
            carrier,
            length,
        })
    }

    /// Whether it hides the value (a mask or a hash), rather than cutting it.
    pub fn hides(&self) -> bool {
        !matches!(self.mapper, Mapper::Truncate(_))
    }

    /// The parameter the value schema's field gets: `masked` for masks and
    /// hashes (whatever the type, as Debezium does), `truncateLength`.
    pub fn parameter(&self) -> (&'static str, String) {
        match self.mapper {
            Mapper::Truncate(n) => ("truncateLength", n.to_string()),
            Mapper::Mask(_) | Mapper::Hash { .. } => ("masked", "true".into()),
        }
    }

    /// The value as the mapper leaves it. The unchanged-TOAST placeholder
    /// is masked (so it is not told apart from a value), but never hashed
    /// or truncated: sinks keep their stored value for it, and a hash or a
    /// cut of the placeholder would be stored as if it were the value.
    pub fn apply(&self, value: &Value) -> Value {
        if !matches!(self.mapper, Mapper::Mask(_)) && is_placeholder(value, self.carrier) {
            return value.clone();
        }
        match (&self.mapper, self.carrier) {
            (Mapper::Mask(n), Carrier::CharString) => json!("*".repeat(*n)),
            (Mapper::Hash { .. }, Carrier::CharString) if value.is_null() => Value::Null,
            (
                Mapper::Hash {
                    algorithm,
                    salt,
                    v2,
                },
                Carrier::CharString,
            ) => match value.as_str() {
                Some(s) => {
                    let bytes = if *v2 {
                        s.as_bytes().to_vec()
                    } else {
                        java_serialized(s)
                    };
                    let mut hex: String = algorithm
                        .digest(salt, &bytes)
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    if let Some(l) = self.length {
                        hex.truncate(l);
                    }
                    json!(hex)
                }
                None => value.clone(),
            },
            (Mapper::Truncate(n), Carrier::CharString | Carrier::OtherString) => {
                match value.as_str() {
                    Some(s) => json!(truncate_utf16(s, *n)),
                    None => value.clone(),
                }
            }
            (Mapper::Truncate(n), Carrier::Bytes) => match value.as_str() {
                Some(b64) => match BASE64.decode(b64) {
                    Ok(bytes) if bytes.len() > *n => json!(BASE64.encode(&bytes[..*n])),
                    _ => value.clone(),
                },
                None => value.clone(),
            },
            _ => value.clone(),
        }
    }
}

impl ColumnMapper {
    /// [`ColumnMapper::apply`] on a value's JSON text, written to `out`.
    /// Only strings change (and, under a mask, any value of a character
    /// column), so only those are read back; anything else is copied as
    /// written, and a number is never re-read.
    pub fn apply_json(&self, json: &[u8], out: &mut Vec<u8>) {
        let masked = matches!(
            (&self.mapper, self.carrier),
            (Mapper::Mask(_), Carrier::CharString)
        );
        let value = (masked || json.first() == Some(&b'"'))
            .then(|| serde_json::from_slice::<Value>(json).ok())
            .flatten();
        match value {
            // Writing a `Value` into a `Vec` cannot fail.
            Some(value) => {
                let _ = serde_json::to_writer(&mut *out, &self.apply(&value));
            }
            None => out.extend_from_slice(json),
        }
    }
}

fn is_placeholder(value: &Value, carrier: Carrier) -> bool {
    match (value.as_str(), carrier) {
        (Some(b64), Carrier::Bytes) => BASE64
            .decode(b64)
            .is_ok_and(|b| b == UNAVAILABLE_VALUE.as_bytes()),
        (Some(s), _) => s == UNAVAILABLE_VALUE,
        (None, _) => false,
    }
}

/// How a column's values are carried and its declared length, from its
/// type (domains followed to their base) and its kind.
pub fn carrier(
    oid: u32,
    typmod: i32,
    kind: &Kind,
    registry: &TypeRegistry,
) -> (Carrier, Option<usize>) {
    let (mut oid, mut typmod) = (oid, typmod);
    let mut character = false;
    // A domain over a domain over ...: bounded, as the catalog is finite.
    for _ in 0..32 {
        let Some(ty) = registry.get(oid) else { break };
        match &ty.shape {
            TypeShape::Domain { base, typmod: own } => {
                if typmod < 0 {
                    typmod = *own;
                }
                oid = *base;
            }
            TypeShape::Enum(_) => {
                character = true;
                break;
            }
            TypeShape::Base => {
                character = matches!(
                    ty.name.as_str(),
                    "text" | "varchar" | "bpchar" | "char" | "name"
                );
                let length = match ty.name.as_str() {
                    "varchar" | "bpchar" if typmod >= 4 => usize::try_from(typmod - 4).ok(),
                    "char" => Some(1),
                    _ => None,
                };
                if character {
                    return (Carrier::CharString, length);
                }
                break;
            }
            _ => break,
        }
    }
    if character {
        return (Carrier::CharString, None);
    }
    let carrier = match kind {
        Kind::Bytes(BinaryMode::Bytes) | Kind::Unknown(BinaryMode::Bytes) => Carrier::Bytes,
        Kind::Text
        | Kind::Bytes(_)
        | Kind::Unknown(_)
        | Kind::TimestampTz { .. }
        | Kind::TimeTz
        | Kind::Interval(IntervalMode::String)
        | Kind::Hstore(HstoreMode::Json)
        | Kind::Numeric {
            mode: DecimalMode::String,
            ..
        }
        | Kind::Money {
            mode: DecimalMode::String,
            ..
        } => Carrier::OtherString,
        _ => Carrier::Other,
    };
    (carrier, None)
}

/// `s` cut to `n` UTF-16 code units, as Java's `substring(0, n)`. A cut
/// inside a surrogate pair (a character outside the BMP) would leave half
/// a character, which no JSON text can hold: the cut goes before it.
fn truncate_utf16(s: &str, n: usize) -> &str {
    let mut units = 0;
    for (i, c) in s.char_indices() {
        units += c.len_utf16();
        if units > n {
            return &s[..i];
        }
    }
    s
}

/// A string as Java's `ObjectOutputStream.writeObject` writes it (the
/// stream header, then `TC_STRING` or `TC_LONGSTRING`, the length, and the
/// modified UTF-8 bytes): what Debezium's V1 hash digests.
fn java_serialized(s: &str) -> Vec<u8> {
    let mut utf = Vec::with_capacity(s.len());
    for unit in s.encode_utf16() {
        match unit {
            0x0001..=0x007f => utf.push(unit as u8),
            0x0000 | 0x0080..=0x07ff => {
                utf.push(0xc0 | (unit >> 6) as u8);
                utf.push(0x80 | (unit & 0x3f) as u8);
            }
            _ => {
                utf.push(0xe0 | (unit >> 12) as u8);
                utf.push(0x80 | ((unit >> 6) & 0x3f) as u8);
                utf.push(0x80 | (unit & 0x3f) as u8);
            }
        }
    }
    let mut out = vec![0xac, 0xed, 0x00, 0x05];
    match u16::try_from(utf.len()) {
        Ok(len) => {
            out.push(0x74);
            out.extend_from_slice(&len.to_be_bytes());
        }
        Err(_) => {
            out.push(0x7c);
            out.extend_from_slice(&(utf.len() as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&utf);
    out
}

#[cfg(test)]
mod tests;
