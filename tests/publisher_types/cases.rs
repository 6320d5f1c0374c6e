//! The conformance table: one source table per type family, its columns'
//! DDL, the Connect field schema Debezium's PostgreSQL connector gives
//! each column, and rows of edge values with the JSON value Debezium
//! writes for each. Written out from Debezium's documentation ("Data type
//! mappings") and its converters (`PostgresValueConverter`,
//! `JdbcValueConverters`, `io.debezium.time.*`), with the deviations
//! docs/publisher.md lists where the converters lose a value.

use serde_json::{Value, json};

/// One column: its DDL (`{s}` is the test's schema), field schema, and
/// how a Postgres target's column is compared with the source's (`s.c`
/// against `d.c`; by default their text) where the target's type differs.
pub struct Column {
    pub name: &'static str,
    pub ddl: &'static str,
    pub schema: Value,
    pub compare: Option<&'static str>,
}

/// One table: columns after the `id int PRIMARY KEY`, and rows of
/// `(SQL literal, expected JSON)` in column order.
pub struct Table {
    pub name: &'static str,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<(&'static str, Value)>>,
}

fn col(name: &'static str, ddl: &'static str, schema: Value) -> Column {
    Column {
        name,
        ddl,
        schema,
        compare: None,
    }
}

/// A column whose target holds it as another type (`{s}`/`{d}` are the
/// source and target values).
fn compared(mut column: Column, compare: &'static str) -> Column {
    column.compare = Some(compare);
    column
}

/// `{"type": t, "optional": optional}`.
fn plain(t: &str, optional: bool) -> Value {
    json!({ "type": t, "optional": optional })
}

/// A named (logical) type, version 1.
fn named(t: &str, name: &str, optional: bool) -> Value {
    json!({ "type": t, "optional": optional, "name": name, "version": 1 })
}

fn with(mut schema: Value, key: &str, value: Value) -> Value {
    schema[key] = value;
    schema
}

fn decimal(scale: &str, precision: Option<&str>) -> Value {
    let mut parameters = json!({ "scale": scale });
    if let Some(p) = precision {
        parameters["connect.decimal.precision"] = json!(p);
    }
    with(
        named("bytes", "org.apache.kafka.connect.data.Decimal", true),
        "parameters",
        parameters,
    )
}

pub const NULL: (&str, Value) = ("NULL", Value::Null);

/// The tables, in the order the snapshot reads them (by name).
pub fn tables() -> Vec<Table> {
    vec![
        Table {
            name: "t_arrays",
            columns: vec![
                col(
                    "ia",
                    "int[]",
                    json!({"type": "array", "items": plain("int32", true), "optional": true}),
                ),
                col(
                    "ta",
                    "text[]",
                    json!({"type": "array", "items": plain("string", true), "optional": true}),
                ),
                col(
                    "da",
                    "date[]",
                    json!({"type": "array", "items": named("int32", "io.debezium.time.Date", true), "optional": true}),
                ),
                col(
                    "na",
                    "numeric(5,2)[]",
                    json!({"type": "array", "items": decimal("2", Some("5")), "optional": true}),
                ),
                col(
                    "ea",
                    "{s}.mood[]",
                    json!({"type": "array", "optional": true, "items": {
                        "type": "string", "optional": false, "name": "io.debezium.data.Enum", "version": 1,
                        "parameters": {"allowed": "sad,ok,happy"}}}),
                ),
            ],
            rows: vec![
                vec![
                    ("'{1,NULL,3}'", json!([1, null, 3])),
                    (
                        r#"'{"a,b","q\"x",NULL,"é"}'"#,
                        json!(["a,b", "q\"x", null, "é"]),
                    ),
                    // Debezium's date[] goes through java.sql.Date: its
                    // infinity differs from the scalar's; this publisher
                    // writes the scalar's sentinel (docs/publisher.md).
                    ("'{2016-11-04,infinity}'", json!([17109, -2_147_472_692i64])),
                    ("'{1.10,-1.10}'", json!(["bg==", "kg=="])),
                    ("'{ok,happy}'", json!(["ok", "happy"])),
                ],
                vec![
                    ("'{}'", json!([])),
                    ("'{}'", json!([])),
                    NULL,
                    NULL,
                    ("'{}'", json!([])),
                ],
            ],
        },
        Table {
            name: "t_bits",
            columns: vec![
                col("b", "bytea", plain("bytes", true)),
                compared(
                    col("b1", "bit(1)", plain("boolean", true)),
                    "({s} = B'1') IS NOT DISTINCT FROM {d}",
                ),
                col(
                    "b10",
                    "bit(10)",
                    with(
                        named("bytes", "io.debezium.data.Bits", true),
                        "parameters",
                        json!({"length": "10"}),
                    ),
                ),
                col(
                    "vb",
                    "varbit(8)",
                    with(
                        named("bytes", "io.debezium.data.Bits", true),
                        "parameters",
                        json!({"length": "8"}),
                    ),
                ),
                compared(
                    col(
                        "p",
                        "point",
                        json!({"type": "struct", "optional": true, "name": "io.debezium.data.geometry.Point",
                        "version": 1, "doc": "Geometry (POINT)", "fields": [
                            {"type": "double", "optional": false, "field": "x"},
                            {"type": "double", "optional": false, "field": "y"},
                            {"type": "bytes", "optional": true, "field": "wkb"},
                            {"type": "int32", "optional": true, "field": "srid"}]}),
                    ),
                    "{s}[0] = ({d}->>'x')::float8 AND {s}[1] = ({d}->>'y')::float8",
                ),
                compared(
                    col(
                        "h",
                        "hstore",
                        named("string", "io.debezium.data.Json", true),
                    ),
                    "hstore_to_jsonb({s}) = {d}",
                ),
            ],
            rows: vec![vec![
                (r"'\x0001ff'", json!("AAH/")),
                ("B'1'", json!(true)),
                ("B'1000000001'", json!("AQI=")),
                ("B'00000011'", json!("Aw==")),
                (
                    "'(1.5,-2)'",
                    json!({"x": 1.5, "y": -2.0, "wkb": "AQEAAAAAAAAAAAD4PwAAAAAAAADA", "srid": null}),
                ),
                (r#"'"a"=>"1", "b"=>NULL'"#, json!(r#"{"a":"1","b":null}"#)),
            ]],
        },
        Table {
            name: "t_num",
            columns: vec![
                col(
                    "i2",
                    "smallint NOT NULL DEFAULT 7",
                    json!({"type": "int16", "optional": false, "default": 7}),
                ),
                col("i4", "int", plain("int32", true)),
                col("i8", "bigint", plain("int64", true)),
                col("f4", "real", plain("float", true)),
                col("f8", "double precision", plain("double", true)),
                col("n", "numeric(10,2)", decimal("2", Some("10"))),
                // Debezium strips trailing zeros (22.2200 → 22.22): equal as numbers.
                compared(
                    col(
                        "nv",
                        "numeric",
                        json!({"type": "struct", "optional": true, "name": "io.debezium.data.VariableScaleDecimal",
                        "version": 1, "doc": "Variable scaled decimal", "fields": [
                            {"type": "int32", "optional": false, "field": "scale"},
                            {"type": "bytes", "optional": false, "field": "value"}]}),
                    ),
                    "{s} = {d}",
                ),
                compared(col("m", "money", decimal("2", None)), "{s}::numeric = {d}"),
                col("o", "oid", plain("int64", true)),
            ],
            rows: vec![
                vec![
                    ("-32768", json!(-32768)),
                    ("2147483647", json!(2_147_483_647)),
                    ("-9223372036854775808", json!(i64::MIN)),
                    ("3.3", json!(3.3)),
                    ("'NaN'", json!("NaN")),
                    ("12345678.90", json!("SZYC0g==")),
                    ("22.2200", json!({"scale": 2, "value": "CK4="})),
                    ("'-1234.56'", json!("/h3A")),
                    ("4000000000", json!(4_000_000_000i64)),
                ],
                vec![
                    ("0", json!(0)),
                    NULL,
                    ("0", json!(0)),
                    ("'-Infinity'", json!("-Infinity")),
                    ("1e-7", json!(1e-7)),
                    ("-0.01", json!("/w==")),
                    ("1200", json!({"scale": 0, "value": "BLA="})),
                    ("'0'", json!("AA==")),
                    NULL,
                ],
            ],
        },
        Table {
            name: "t_text",
            columns: vec![
                compared(
                    col("c", "char(5)", plain("string", true)),
                    "format('%s', {s}) = {d}",
                ),
                col("vc", "varchar(10)", plain("string", true)),
                col(
                    "t",
                    "text NOT NULL DEFAULT 'x'",
                    json!({"type": "string", "optional": false, "default": "x"}),
                ),
                col("nm", "name", plain("string", true)),
                col("u", "uuid", named("string", "io.debezium.data.Uuid", true)),
                compared(
                    col("j", "json", named("string", "io.debezium.data.Json", true)),
                    "{s}::jsonb = {d}",
                ),
                col(
                    "jb",
                    "jsonb",
                    named("string", "io.debezium.data.Json", true),
                ),
                col("x", "xml", named("string", "io.debezium.data.Xml", true)),
                col("ip", "inet", plain("string", true)),
                col("cd", "cidr", plain("string", true)),
                col("mac", "macaddr", plain("string", true)),
                col(
                    "tv",
                    "tsvector",
                    named("string", "io.debezium.data.Tsvector", true),
                ),
                col("r", "int4range", plain("string", true)),
                col(
                    "e",
                    "{s}.mood",
                    with(
                        named("string", "io.debezium.data.Enum", true),
                        "parameters",
                        json!({"allowed": "sad,ok,happy"}),
                    ),
                ),
                col("d", "{s}.posint", plain("int32", true)),
            ],
            rows: vec![
                vec![
                    ("'ab'", json!("ab   ")),
                    ("'héllo ✓'", json!("héllo ✓")),
                    (r#"E'line1\nline2 "q"'"#, json!("line1\nline2 \"q\"")),
                    ("'pg_name'", json!("pg_name")),
                    (
                        "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
                        json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
                    ),
                    (
                        r#"'{"b": 1,  "a": [1,2]}'"#,
                        json!(r#"{"b": 1,  "a": [1,2]}"#),
                    ),
                    (
                        r#"'{"b": 1, "a": [1, 2]}'"#,
                        json!(r#"{"a": [1, 2], "b": 1}"#),
                    ),
                    ("'<a>1</a>'", json!("<a>1</a>")),
                    ("'192.168.2.1/24'", json!("192.168.2.1/24")),
                    ("'192.168.100.128/25'", json!("192.168.100.128/25")),
                    ("'08:00:2b:01:02:03'", json!("08:00:2b:01:02:03")),
                    ("'a fat cat'", json!("'a' 'cat' 'fat'")),
                    ("'[1,10)'", json!("[1,10)")),
                    ("'happy'", json!("happy")),
                    ("5", json!(5)),
                ],
                vec![
                    NULL,
                    NULL,
                    ("'y'", json!("y")),
                    NULL,
                    NULL,
                    NULL,
                    NULL,
                    NULL,
                    NULL,
                    NULL,
                    NULL,
                    NULL,
                    NULL,
                    NULL,
                    NULL,
                ],
            ],
        },
        Table {
            name: "t_time",
            columns: vec![
                col("d", "date", named("int32", "io.debezium.time.Date", true)),
                col(
                    "t",
                    "time",
                    named("int64", "io.debezium.time.MicroTime", true),
                ),
                col(
                    "t3",
                    "time(3)",
                    named("int32", "io.debezium.time.Time", true),
                ),
                compared(
                    col(
                        "tz",
                        "timetz",
                        named("string", "io.debezium.time.ZonedTime", true),
                    ),
                    "({s} AT TIME ZONE 'UTC') = ({d} AT TIME ZONE 'UTC')",
                ),
                col(
                    "ts",
                    "timestamp",
                    named("int64", "io.debezium.time.MicroTimestamp", true),
                ),
                col(
                    "ts3",
                    "timestamp(3)",
                    named("int64", "io.debezium.time.Timestamp", true),
                ),
                col(
                    "tstz",
                    "timestamptz",
                    named("string", "io.debezium.time.ZonedTimestamp", true),
                ),
                col(
                    "tstz0",
                    "timestamptz(0)",
                    named("string", "io.debezium.time.ZonedTimestamp", true),
                ),
                col(
                    "iv",
                    "interval",
                    named("int64", "io.debezium.time.MicroDuration", true),
                ),
            ],
            rows: vec![
                vec![
                    ("'2016-11-04'", json!(17109)),
                    ("'13:51:30.123456'", json!(49_890_123_456i64)),
                    ("'00:00:00.5'", json!(500)),
                    ("'13:51:30.123789+02'", json!("11:51:30.123789Z")),
                    (
                        "'2016-11-04 13:51:30.123456'",
                        json!(1_478_267_490_123_456i64),
                    ),
                    ("'2016-11-04 13:51:30.123'", json!(1_478_267_490_123i64)),
                    (
                        "'2016-11-04 13:51:30.123456+02'",
                        json!("2016-11-04T11:51:30.123456Z"),
                    ),
                    ("'2016-11-04 13:51:30+02'", json!("2016-11-04T11:51:30Z")),
                    (
                        "'1 year 2 mons 3 days 04:05:06.78'",
                        json!(37_091_106_780_000i64),
                    ),
                ],
                vec![
                    ("'infinity'", json!(-2_147_472_692i64)),
                    ("'24:00:00'", json!(86_400_000_000i64)),
                    ("'23:59:59.999'", json!(86_399_999)),
                    ("'00:00:00+00'", json!("00:00:00Z")),
                    ("'infinity'", json!(9_223_372_036_825_200_000i64)),
                    ("'-infinity'", json!(-9_223_372_036_832_400i64)),
                    ("'infinity'", json!("infinity")),
                    ("'-infinity'", json!("-infinity")),
                    (
                        "'-1 years -2 mons +3 days -04:05:06.5'",
                        json!(-36_572_706_500_000i64),
                    ),
                ],
                vec![
                    ("'0044-03-15 BC'", json!(-735_160)),
                    NULL,
                    NULL,
                    NULL,
                    (
                        "'4713-12-31 23:59:59.999999 BC'",
                        json!(-210_831_897_600_000_001i64),
                    ),
                    NULL,
                    (
                        "'0044-03-15 10:00:00+00 BC'",
                        json!("-0043-03-15T10:00:00.000000Z"),
                    ),
                    NULL,
                    ("'00:00:01.000001'", json!(1_000_001)),
                ],
            ],
        },
        Table {
            // pg_lsn has no Debezium mapping: the column is left out.
            name: "t_unknown",
            columns: vec![col("l", "pg_lsn", Value::Null)],
            rows: vec![vec![("'0/16B3748'", Value::Null)]],
        },
    ]
}
