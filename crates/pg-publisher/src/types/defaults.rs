//! Column defaults in field schemas, as Debezium's
//! `PostgresDefaultValueConverter` derives them from the catalog's default
//! expression: a literal is converted like a value of the column; a
//! function call (`now()`, `nextval(...)`) becomes the type's placeholder
//! (zero, empty, the epoch); types Debezium has no default converter for
//! get no default, and neither does one whose value is a struct.

use super::Kind;
use super::registry::{TypeRegistry, TypeShape};
use serde_json::Value;

/// Base types whose defaults Debezium converts (enums too).
const CONVERTED: &[&str] = &[
    "bit",
    "varbit",
    "bool",
    "bpchar",
    "varchar",
    "text",
    "numeric",
    "float4",
    "float8",
    "int2",
    "int4",
    "int8",
    "json",
    "jsonb",
    "xml",
    "uuid",
    "date",
    "time",
    "timestamp",
    "timestamptz",
    "interval",
];

/// SQL value functions Debezium treats as generated values.
const VALUE_FUNCTIONS: &[&str] = &[
    "current_timestamp",
    "current_time",
    "current_date",
    "localtime",
    "localtimestamp",
];

/// The type name behind domains, and whether it is an enum.
fn root(oid: u32, registry: &TypeRegistry) -> Option<(&str, bool)> {
    let ty = registry.get(oid)?;
    match &ty.shape {
        TypeShape::Domain { base, .. } => root(*base, registry),
        TypeShape::Enum(_) => Some((ty.name.as_str(), true)),
        TypeShape::Base => Some((ty.name.as_str(), false)),
        _ => None,
    }
}

/// `name(...)` or `(name(...))`: a function call.
fn is_call(expr: &str) -> bool {
    let expr = expr.strip_prefix('(').unwrap_or(expr);
    let name_end = expr
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(expr.len());
    name_end > 0 && expr[name_end..].starts_with('(') && expr.trim_end().ends_with(')')
}

/// The first quoted literal of `expr` (`''` unescaped), else `expr` itself.
fn literal(expr: &str) -> String {
    let Some(start) = expr.find('\'') else {
        return expr.trim().to_owned();
    };
    let mut out = String::new();
    let mut chars = expr[start + 1..].chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            if chars.peek() == Some(&'\'') {
                chars.next();
            } else {
                break;
            }
        }
        out.push(c);
    }
    out
}

/// The placeholder of a generated default, as the type's output text.
fn generated(type_name: &str, kind: &Kind) -> String {
    match kind {
        Kind::Bits { length } if *length <= 1 << 16 => "0".repeat(*length as usize),
        _ => match type_name {
            "bool" => "f",
            "bit" => "0",
            "json" | "jsonb" => "{}",
            "uuid" => "00000000-0000-0000-0000-000000000000",
            "date" => "1970-01-01",
            "time" => "00:00:00",
            "timestamp" => "1970-01-01 00:00:00",
            "timestamptz" => "1970-01-01 00:00:00+00",
            "interval" => "00:00:00",
            "bpchar" | "varchar" | "text" | "xml" => "",
            _ => "0",
        }
        .to_owned(),
    }
}

/// The schema default of a column of type `oid` with default `expr`.
pub fn default_value(expr: &str, oid: u32, kind: &Kind, registry: &TypeRegistry) -> Option<Value> {
    let (type_name, is_enum) = root(oid, registry)?;
    if !is_enum && !CONVERTED.contains(&type_name) {
        return None;
    }
    let expr = expr.trim();
    if expr.to_ascii_uppercase().starts_with("NULL") {
        return None;
    }
    let text = if is_call(expr) || VALUE_FUNCTIONS.contains(&expr.to_ascii_lowercase().as_str()) {
        generated(type_name, kind)
    } else {
        match (type_name, literal(expr).as_str()) {
            ("bool", "true") => "t".to_owned(),
            ("bool", "false") => "f".to_owned(),
            (_, text) => text.to_owned(),
        }
    };
    kind.encode(&text).ok().filter(|v| !v.is_object())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::options::DecimalMode;
    use crate::types::temporal::Unit;
    use serde_json::json;

    #[test]
    fn literals_functions_and_types_without_a_converter() {
        let r = TypeRegistry::builtin();
        let int = Kind::Int;
        assert_eq!(default_value("0", 23, &int, &r), Some(json!(0)));
        assert_eq!(
            default_value("'-1'::integer", 23, &int, &r),
            Some(json!(-1))
        );
        assert_eq!(
            default_value("nextval('s_id_seq'::regclass)", 20, &int, &r),
            Some(json!(0))
        );
        assert_eq!(
            default_value("'x'::text", 25, &Kind::Text, &r),
            Some(json!("x"))
        );
        assert_eq!(
            default_value("'it''s'::text", 25, &Kind::Text, &r),
            Some(json!("it's"))
        );
        assert_eq!(
            default_value("NULL::character varying", 1043, &Kind::Text, &r),
            None
        );
        assert_eq!(
            default_value("true", 16, &Kind::Bool, &r),
            Some(json!(true))
        );
        let decimal = Kind::Numeric {
            mode: DecimalMode::Precise,
            scale: Some(2),
        };
        assert_eq!(
            default_value("1.5", 1700, &decimal, &r),
            Some(json!("AJY="))
        );
        let variable = Kind::Numeric {
            mode: DecimalMode::Precise,
            scale: None,
        };
        assert_eq!(default_value("1", 1700, &variable, &r), None, "a struct");
        let tz = Kind::TimestampTz { fraction: 6 };
        assert_eq!(
            default_value("now()", 1184, &tz, &r),
            Some(json!("1970-01-01T00:00:00.000000Z"))
        );
        assert_eq!(
            default_value("CURRENT_DATE", 1082, &Kind::Date, &r),
            Some(json!(0))
        );
        assert_eq!(
            default_value("'2020-01-01'::date", 1082, &Kind::Date, &r),
            Some(json!(18262))
        );
        assert_eq!(
            default_value(
                "'12:00:00'::time without time zone",
                1083,
                &Kind::Time(Unit::Micros),
                &r
            ),
            Some(json!(43_200_000_000i64))
        );
        assert_eq!(
            default_value("gen_random_uuid()", 2950, &Kind::Text, &r),
            Some(json!("00000000-0000-0000-0000-000000000000"))
        );
        assert_eq!(
            default_value("'\\x00'::bytea", 17, &Kind::Bytes(Default::default()), &r),
            None,
            "no converter for bytea defaults"
        );
    }
}
