//! Postgres column types → Debezium's Connect schemas and values.
//!
//! Debezium's PostgreSQL connector documentation and its converters are
//! the specification, type by type and option by option
//! ([`options::TypeOptions`]). A column's type is resolved through the
//! source's catalog ([`registry`]): domains become their base type, enums
//! carry their labels, arrays their element type. Values arrive as
//! Postgres' output text (pgoutput, and the snapshot, which reads the
//! same text) and are encoded by [`Kind::encode`].
//!
//! Exact or refused: a value the configured mapping cannot carry (a
//! `numeric` NaN in precise mode, a date past a Debezium date's int32, a
//! multi-dimensional array) is an error naming why and, where one exists,
//! the option that would carry it. The publisher then stops before
//! confirming the transaction; it never sends a null or text instead.

mod defaults;
mod numeric;
pub mod options;
pub mod registry;
mod structured;
pub mod temporal;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE as BASE64_URL};
use options::{BinaryMode, DecimalMode, HstoreMode, IntervalMode, TimePrecision, TypeOptions};
use registry::{TypeRegistry, TypeShape};
use serde_json::{Value, json};
use temporal::Unit;

/// How one column's values are encoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `bool`: `t`/`f`.
    Bool,
    /// Integers (`int2`, `int4`, `int8`, `oid`).
    Int,
    /// `float4`/`float8`; NaN and infinities as JsonConverter's strings.
    Float,
    /// `numeric`/`money` in [`DecimalMode`]; `scale` is the column's
    /// (`None`: unconstrained `numeric`).
    Numeric {
        /// The representation.
        mode: DecimalMode,
        /// The column's scale.
        scale: Option<u32>,
    },
    /// `money`, read from its locale text.
    Money {
        /// The representation.
        mode: DecimalMode,
        /// `money.fraction.digits`.
        scale: u32,
    },
    /// Carried as its text (text types, enums, `uuid`, `json`, ranges, ...).
    Text,
    /// `bytea` (`\x…`) in a [`BinaryMode`].
    Bytes(BinaryMode),
    /// A type without a mapping, with `include.unknown.datatypes`: the
    /// bytes of its text, in a [`BinaryMode`].
    Unknown(BinaryMode),
    /// `date`: days since the epoch.
    Date,
    /// `time`: since midnight.
    Time(Unit),
    /// `timestamp`: since the epoch.
    Timestamp(Unit),
    /// `timestamptz`: ISO 8601 in UTC with the column's fraction digits.
    TimestampTz {
        /// Fraction digits (the column's precision).
        fraction: u32,
    },
    /// `timetz`: ISO 8601 time in UTC.
    TimeTz,
    /// `interval` in [`IntervalMode`].
    Interval(IntervalMode),
    /// `bit(1)`/`varbit(1)`: a boolean.
    Bit,
    /// `bit(n)`/`varbit(n)`: `io.debezium.data.Bits` of `length` bits.
    Bits {
        /// The column's length in bits.
        length: u32,
    },
    /// `point`: `io.debezium.data.geometry.Point`.
    Point,
    /// `hstore` in [`HstoreMode`].
    Hstore(HstoreMode),
    /// A one-dimensional array of the element kind.
    Array(Box<Kind>),
}

/// A column's encoding: its kind, Connect field schema, and what a
/// missing value of a NOT NULL column becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnCodec {
    /// How values are encoded.
    pub kind: Kind,
    /// The Connect field schema, without `field` (its `optional` and
    /// `default` included).
    pub schema: Value,
    /// Whether the column may be null (`optional` in the schema).
    pub optional: bool,
    /// The value of a NOT NULL column absent from a row image (a delete's
    /// key-only `before`): its default, else the type's zero, as
    /// Debezium's converters fill it in, so the value fits its schema.
    pub fallback: Value,
}

/// A column as the catalog describes it.
#[derive(Debug, Clone, Copy)]
pub struct ColumnType<'a> {
    /// Type OID (`atttypid`).
    pub oid: u32,
    /// Type modifier (`atttypmod`; -1 none).
    pub typmod: i32,
    /// NOT NULL (the column's or its domain's).
    pub not_null: bool,
    /// The default expression (`pg_get_expr(adbin)`), if any.
    pub default: Option<&'a str>,
}

/// Why a column has no codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmapped {
    /// A type Debezium has no mapping for: the column is left out of the
    /// events (as Debezium does) unless `include.unknown.datatypes`.
    Unknown(String),
    /// A type whose values this server writes in a form that cannot be
    /// read exactly (`money` in some locales): the table is refused.
    Unreadable(String),
}

fn logical(connect: &str, name: &str) -> Value {
    json!({ "type": connect, "name": name, "version": 1 })
}

/// Precision of a time type from its modifier (-1: the default, 6).
fn time_precision(typmod: i32) -> u32 {
    if typmod < 0 { 6 } else { typmod as u32 }
}

impl Kind {
    /// Encodes one value from its Postgres output text.
    pub fn encode(&self, text: &str) -> Result<Value, String> {
        Ok(match self {
            Kind::Bool => match text {
                "t" => json!(true),
                "f" => json!(false),
                _ => return Err(format!("cannot read `{text}` as a boolean")),
            },
            Kind::Int => json!(
                text.parse::<i64>()
                    .map_err(|_| format!("cannot read `{text}` as an integer"))?
            ),
            Kind::Float => numeric::double(text)?,
            Kind::Numeric { mode, scale } => numeric::numeric(text, *mode, *scale)?,
            Kind::Money { mode, scale } => numeric::money(text, *mode, *scale)?,
            Kind::Text => json!(text),
            Kind::Bytes(mode) => {
                let hex = text
                    .strip_prefix("\\x")
                    .and_then(hex_decode)
                    .ok_or_else(|| format!("cannot read `{text}` as hex bytea"))?;
                binary(&hex, *mode)
            }
            Kind::Unknown(mode) => binary(text.as_bytes(), *mode),
            Kind::Date => temporal::date(text)?,
            Kind::Time(unit) => temporal::time(text, *unit)?,
            Kind::Timestamp(unit) => temporal::timestamp(text, *unit)?,
            Kind::TimestampTz { fraction } => temporal::timestamptz(text, *fraction)?,
            Kind::TimeTz => temporal::timetz(text)?,
            Kind::Interval(IntervalMode::Numeric) => temporal::interval_micros(text)?,
            Kind::Interval(IntervalMode::String) => temporal::interval_iso(text)?,
            Kind::Bit => match text {
                "1" => json!(true),
                "0" => json!(false),
                _ => return Err(format!("cannot read `{text}` as bit(1)")),
            },
            Kind::Bits { length } => structured::bits(text, *length)?,
            Kind::Point => structured::point(text)?,
            Kind::Hstore(mode) => {
                let map = structured::hstore(text)?;
                match mode {
                    HstoreMode::Json => json!(Value::Object(map).to_string()),
                    HstoreMode::Map => Value::Object(map),
                }
            }
            Kind::Array(item) => {
                let mut out = Vec::new();
                for element in structured::parse_array(text)? {
                    out.push(match element {
                        None => Value::Null,
                        Some(e) => item.encode(&e)?,
                    });
                }
                Value::Array(out)
            }
        })
    }

    /// [`Kind::encode`], written as JSON text into `out`: the kinds most
    /// columns have are written straight from the text, without a
    /// `Value` in between (this runs for every value of every event).
    /// On an error `out` is left as it was.
    pub fn write_json(&self, text: &str, out: &mut Vec<u8>) -> Result<(), String> {
        match self {
            Kind::Bool | Kind::Bit => {
                let value = match (self, text) {
                    (Kind::Bool, "t") | (Kind::Bit, "1") => "true",
                    (Kind::Bool, "f") | (Kind::Bit, "0") => "false",
                    (Kind::Bool, _) => return Err(format!("cannot read `{text}` as a boolean")),
                    _ => return Err(format!("cannot read `{text}` as bit(1)")),
                };
                out.extend_from_slice(value.as_bytes());
            }
            Kind::Int => {
                let n = text
                    .parse::<i64>()
                    .map_err(|_| format!("cannot read `{text}` as an integer"))?;
                out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            }
            Kind::Text => crate::event::envelope::push_json_str(out, text),
            _ => {
                // Writing a `Value` into a `Vec` cannot fail.
                let _ = serde_json::to_writer(&mut *out, &self.encode(text)?);
            }
        }
        Ok(())
    }

    /// The zero of the type: what Debezium's converters put in a NOT NULL
    /// column whose value is missing and that has no default.
    fn zero(&self) -> Value {
        match self {
            Kind::Bool | Kind::Bit => json!(false),
            Kind::Int | Kind::Date | Kind::Time(_) | Kind::Timestamp(_) => json!(0),
            Kind::Interval(IntervalMode::Numeric) => json!(0),
            Kind::Interval(IntervalMode::String) => json!("P0Y0M0DT0H0M0S"),
            Kind::Float => json!(0.0),
            Kind::Numeric {
                mode: DecimalMode::Double,
                ..
            }
            | Kind::Money {
                mode: DecimalMode::Double,
                ..
            } => json!(0.0),
            Kind::Numeric {
                mode: DecimalMode::Precise,
                scale: None,
            } => json!({ "scale": 0, "value": "AA==" }),
            Kind::Numeric {
                mode: DecimalMode::Precise,
                ..
            }
            | Kind::Money {
                mode: DecimalMode::Precise,
                ..
            } => json!("AA=="),
            Kind::Numeric {
                mode: DecimalMode::String,
                scale,
            } => json!(zero_text(scale.unwrap_or(0))),
            Kind::Money {
                mode: DecimalMode::String,
                scale,
            } => json!(zero_text(*scale)),
            Kind::Text | Kind::Bytes(_) | Kind::Unknown(_) | Kind::Bits { .. } => json!(""),
            Kind::TimestampTz { .. } => json!("1970-01-01T00:00:00Z"),
            Kind::TimeTz => json!("00:00:00Z"),
            Kind::Point => json!({
                "x": 0.0, "y": 0.0, "wkb": "AQEAAAAAAAAAAAAAAAAAAAAAAAAA", "srid": null
            }),
            Kind::Hstore(HstoreMode::Json) => json!("{}"),
            Kind::Hstore(HstoreMode::Map) => json!({}),
            Kind::Array(_) => json!([]),
        }
    }
}

/// `0` with `scale` zeros after the point (`0.00`).
fn zero_text(scale: u32) -> String {
    if scale == 0 {
        "0".into()
    } else {
        format!("0.{}", "0".repeat(scale as usize))
    }
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

/// Bytes in `binary.handling.mode`: Connect bytes are base64 in JSON too,
/// the string modes differ in their schema and alphabet.
pub(crate) fn binary(bytes: &[u8], mode: BinaryMode) -> Value {
    json!(match mode {
        BinaryMode::Bytes | BinaryMode::Base64 => BASE64.encode(bytes),
        BinaryMode::Base64UrlSafe => BASE64_URL.encode(bytes),
        BinaryMode::Hex => bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    })
}

pub(crate) fn binary_schema(mode: BinaryMode) -> Value {
    match mode {
        BinaryMode::Bytes => json!({ "type": "bytes" }),
        _ => json!({ "type": "string" }),
    }
}

/// The kind and Connect schema (without `optional`/`default`) of a type.
fn resolve(
    oid: u32,
    typmod: i32,
    registry: &TypeRegistry,
    opts: &TypeOptions,
) -> Result<(Kind, Value), Unmapped> {
    let Some(ty) = registry.get(oid) else {
        return Err(Unmapped::Unknown(format!("type oid {oid}")));
    };
    let unknown = || {
        if opts.include_unknown {
            Ok((Kind::Unknown(opts.binary), binary_schema(opts.binary)))
        } else {
            Err(Unmapped::Unknown(ty.name.clone()))
        }
    };
    match &ty.shape {
        TypeShape::Domain { base, typmod: own } => {
            return resolve(
                *base,
                if typmod < 0 { *own } else { typmod },
                registry,
                opts,
            );
        }
        TypeShape::Enum(labels) => {
            let mut schema = logical("string", "io.debezium.data.Enum");
            schema["parameters"] = json!({ "allowed": labels.join(",") });
            return Ok((Kind::Text, schema));
        }
        TypeShape::Array { element } => {
            let (item, mut items) = resolve(*element, typmod, registry, opts)?;
            // Debezium's enum array elements are required.
            let enum_items = items.get("name") == Some(&json!("io.debezium.data.Enum"));
            items["optional"] = json!(!enum_items);
            return Ok((
                Kind::Array(Box::new(item)),
                json!({ "type": "array", "items": items }),
            ));
        }
        TypeShape::Range => return Ok((Kind::Text, json!({ "type": "string" }))),
        TypeShape::Other => return unknown(),
        TypeShape::Base => {}
    }
    let scalar = |t: &str| json!({ "type": t });
    let time_unit = |precision: u32| match (opts.time, precision) {
        (TimePrecision::Connect, _) => Unit::Millis,
        (_, p) if p <= 3 => Unit::Millis,
        _ => Unit::Micros,
    };
    Ok(match ty.name.as_str() {
        "bool" => (Kind::Bool, scalar("boolean")),
        "int2" => (Kind::Int, scalar("int16")),
        "int4" => (Kind::Int, scalar("int32")),
        "int8" | "oid" => (Kind::Int, scalar("int64")),
        "float4" => (Kind::Float, scalar("float")),
        "float8" => (Kind::Float, scalar("double")),
        "numeric" => {
            let scale = (typmod >= 4).then(|| ((typmod - 4) & 0xFFFF) as u32);
            let kind = Kind::Numeric {
                mode: opts.decimal,
                scale,
            };
            let schema = match (opts.decimal, scale) {
                (DecimalMode::Precise, Some(s)) => {
                    let precision = ((typmod - 4) >> 16) & 0xFFFF;
                    let mut schema = logical("bytes", "org.apache.kafka.connect.data.Decimal");
                    schema["parameters"] = json!({ "scale": s.to_string(), "connect.decimal.precision": precision.to_string() });
                    schema
                }
                (DecimalMode::Precise, None) => json!({
                    "type": "struct", "name": "io.debezium.data.VariableScaleDecimal", "version": 1,
                    "doc": "Variable scaled decimal",
                    "fields": [
                        { "type": "int32", "optional": false, "field": "scale" },
                        { "type": "bytes", "optional": false, "field": "value" }
                    ]
                }),
                (DecimalMode::Double, _) => scalar("double"),
                (DecimalMode::String, _) => scalar("string"),
            };
            (kind, schema)
        }
        "money" => {
            if let Some(sample) = &registry.unreadable_money {
                return Err(Unmapped::Unreadable(format!(
                    "this server writes money as `{sample}` (its lc_monetary), which cannot be read exactly; \
                     use a locale that writes `-$1,234.56`, or cast the column to numeric"
                )));
            }
            let kind = Kind::Money {
                mode: opts.decimal,
                scale: opts.money_fraction_digits,
            };
            let schema = match opts.decimal {
                DecimalMode::Precise => {
                    let mut schema = logical("bytes", "org.apache.kafka.connect.data.Decimal");
                    schema["parameters"] =
                        json!({ "scale": opts.money_fraction_digits.to_string() });
                    schema
                }
                DecimalMode::Double => scalar("double"),
                DecimalMode::String => scalar("string"),
            };
            (kind, schema)
        }
        "bpchar" | "varchar" | "text" | "char" | "name" | "citext" | "inet" | "cidr"
        | "macaddr" | "macaddr8" | "isbn" => (Kind::Text, scalar("string")),
        "uuid" => (Kind::Text, logical("string", "io.debezium.data.Uuid")),
        "json" | "jsonb" => (Kind::Text, logical("string", "io.debezium.data.Json")),
        "xml" => (Kind::Text, logical("string", "io.debezium.data.Xml")),
        "tsvector" => (Kind::Text, logical("string", "io.debezium.data.Tsvector")),
        "ltree" => (Kind::Text, logical("string", "io.debezium.data.Ltree")),
        "bytea" => (Kind::Bytes(opts.binary), binary_schema(opts.binary)),
        "date" => (
            Kind::Date,
            match opts.time {
                TimePrecision::Connect => logical("int32", "org.apache.kafka.connect.data.Date"),
                _ => logical("int32", "io.debezium.time.Date"),
            },
        ),
        "time" => {
            let precision = time_precision(typmod);
            match opts.time {
                TimePrecision::Connect => (
                    Kind::Time(Unit::Millis),
                    logical("int32", "org.apache.kafka.connect.data.Time"),
                ),
                TimePrecision::Adaptive if precision <= 3 => (
                    Kind::Time(Unit::Millis),
                    logical("int32", "io.debezium.time.Time"),
                ),
                _ => (
                    Kind::Time(Unit::Micros),
                    logical("int64", "io.debezium.time.MicroTime"),
                ),
            }
        }
        "timestamp" => {
            let unit = time_unit(time_precision(typmod));
            let name = match (opts.time, unit) {
                (TimePrecision::Connect, _) => "org.apache.kafka.connect.data.Timestamp",
                (_, Unit::Millis) => "io.debezium.time.Timestamp",
                (_, Unit::Micros) => "io.debezium.time.MicroTimestamp",
            };
            (Kind::Timestamp(unit), logical("int64", name))
        }
        "timestamptz" => (
            Kind::TimestampTz {
                fraction: time_precision(typmod),
            },
            logical("string", "io.debezium.time.ZonedTimestamp"),
        ),
        "timetz" => (
            Kind::TimeTz,
            logical("string", "io.debezium.time.ZonedTime"),
        ),
        "interval" => match opts.interval {
            IntervalMode::Numeric => (
                Kind::Interval(IntervalMode::Numeric),
                logical("int64", "io.debezium.time.MicroDuration"),
            ),
            IntervalMode::String => (
                Kind::Interval(IntervalMode::String),
                logical("string", "io.debezium.time.Interval"),
            ),
        },
        "bit" | "varbit" => {
            // bit without a length is bit(1); varbit without one is unbounded.
            let length = match (ty.name.as_str(), typmod) {
                (_, n) if n > 0 => n as u32,
                ("bit", _) => 1,
                _ => i32::MAX as u32,
            };
            if length == 1 {
                (Kind::Bit, scalar("boolean"))
            } else {
                let mut schema = logical("bytes", "io.debezium.data.Bits");
                schema["parameters"] = json!({ "length": length.to_string() });
                (Kind::Bits { length }, schema)
            }
        }
        "point" => (
            Kind::Point,
            json!({
                "type": "struct", "name": "io.debezium.data.geometry.Point", "version": 1,
                "doc": "Geometry (POINT)",
                "fields": [
                    { "type": "double", "optional": false, "field": "x" },
                    { "type": "double", "optional": false, "field": "y" },
                    { "type": "bytes", "optional": true, "field": "wkb" },
                    { "type": "int32", "optional": true, "field": "srid" }
                ]
            }),
        ),
        "hstore" => match opts.hstore {
            HstoreMode::Json => (
                Kind::Hstore(HstoreMode::Json),
                logical("string", "io.debezium.data.Json"),
            ),
            HstoreMode::Map => (
                Kind::Hstore(HstoreMode::Map),
                json!({
                    "type": "map",
                    "keys": { "type": "string", "optional": false },
                    "values": { "type": "string", "optional": true }
                }),
            ),
        },
        _ => return unknown(),
    })
}

/// The codec of a column; `Err` for a type without a mapping.
pub fn codec(
    column: ColumnType<'_>,
    registry: &TypeRegistry,
    opts: &TypeOptions,
) -> Result<ColumnCodec, Unmapped> {
    let (kind, mut schema) = resolve(column.oid, column.typmod, registry, opts)?;
    let optional = !column.not_null;
    schema["optional"] = json!(optional);
    let default = column
        .default
        .and_then(|expr| defaults::default_value(expr, column.oid, &kind, registry));
    if let Some(value) = &default {
        schema["default"] = value.clone();
    }
    let fallback = default.unwrap_or_else(|| kind.zero());
    Ok(ColumnCodec {
        kind,
        schema,
        optional,
        fallback,
    })
}

#[cfg(test)]
mod tests;
