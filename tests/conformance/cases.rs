//! The conformance table: one Debezium logical type and edge value per row,
//! with what each sink must store (as the test reads it back) or refuse.
//!
//! Read-back texts: Postgres `v::text` with `TimeZone = UTC`; ClickHouse
//! the server's TSV text of the column (18.16: no `DateTime64`, so
//! timestamps are `String` columns holding the exact text); Parquet the
//! test's own rendering of the Arrow value (see `render`).

use serde_json::{Value as Json, json};

/// What a sink must do with a case.
#[derive(Debug, Clone, PartialEq)]
pub enum Want {
    /// Store it; reads back as this text.
    Is(String),
    /// Refuse the record (dead-letter it, naming the column).
    Refused,
}

/// One row of the table.
pub struct Case {
    /// Table name (one table per case and sink).
    pub name: &'static str,
    /// The column's Connect field schema (`type`, `name`, `parameters`).
    pub field: Json,
    /// The same type in `decode.columns` for the schema-less run.
    pub declared: &'static str,
    /// The value as Debezium's JSON converter writes it.
    pub wire: Json,
    /// Postgres.
    pub pg: Want,
    /// ClickHouse (18.16).
    pub ch: Want,
    /// A current ClickHouse (26.9 in the tests: `DateTime64(6)` timestamps,
    /// from 1900 to 2299 in microseconds; day 0 printed as 1970-01-01),
    /// where it differs from 18.16.
    pub ch_current: Option<Want>,
    /// Parquet.
    pub pq: Want,
}

fn is(text: &str) -> Want {
    Want::Is(text.to_owned())
}

/// A row whose value reads back as the same text everywhere.
fn same(name: &'static str, field: Json, declared: &'static str, wire: Json, text: &str) -> Case {
    Case {
        name,
        field,
        declared,
        wire,
        pg: is(text),
        ch: is(text),
        ch_current: None,
        pq: is(text),
    }
}

fn decimal(precision: u32, scale: u32) -> Json {
    json!({"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
           "parameters": {"scale": scale.to_string(), "connect.decimal.precision": precision.to_string()}})
}

fn logical(physical: &str, name: &str) -> Json {
    json!({"type": physical, "name": name})
}

/// 100 000 bytes, and their hex text.
pub fn large_bytes() -> (Vec<u8>, String) {
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let hex = bytes.iter().map(|b| format!("{b:02x}")).collect();
    (bytes, hex)
}

/// The table (built once).
pub fn cases() -> &'static [Case] {
    static CASES: std::sync::LazyLock<Vec<Case>> = std::sync::LazyLock::new(table);
    &CASES
}

/// Expected texts are written out, not computed by the sinks.
fn table() -> Vec<Case> {
    use base64::Engine;
    let (large, large_hex) = large_bytes();
    let nines = |n: usize| "9".repeat(n);
    vec![
        same(
            "int16_max",
            json!({"type": "int16"}),
            "int16",
            json!(32767),
            "32767",
        ),
        same(
            "int32_min",
            json!({"type": "int32"}),
            "int32",
            json!(-2147483648i64),
            "-2147483648",
        ),
        same(
            "int64_max",
            json!({"type": "int64"}),
            "int64",
            json!(i64::MAX),
            "9223372036854775807",
        ),
        same(
            "float64",
            json!({"type": "double"}),
            "float64",
            json!(1.5),
            "1.5",
        ),
        Case {
            pg: is("NaN"),
            ch: is("nan"),
            pq: is("NaN"),
            ..same(
                "float64_nan",
                json!({"type": "double"}),
                "float64",
                json!("NaN"),
                "",
            )
        },
        Case {
            pg: is("-Infinity"),
            ch: is("-inf"),
            pq: is("-inf"),
            ..same(
                "float64_neg_inf",
                json!({"type": "double"}),
                "float64",
                json!("-Infinity"),
                "",
            )
        },
        same(
            "float32",
            json!({"type": "float"}),
            "float32",
            json!(0.25),
            "0.25",
        ),
        Case {
            pg: is("true"),
            ch: is("1"),
            pq: is("true"),
            ..same(
                "boolean",
                json!({"type": "boolean"}),
                "boolean",
                json!(true),
                "",
            )
        },
        same(
            "text_empty",
            json!({"type": "string"}),
            "string",
            json!(""),
            "",
        ),
        same(
            "text_null",
            json!({"type": "string"}),
            "string",
            Json::Null,
            "NULL",
        ),
        same(
            "text_unicode",
            json!({"type": "string"}),
            "string",
            json!("żółw 🐢 ∑"),
            "żółw 🐢 ∑",
        ),
        // Postgres text cannot hold NUL; ClickHouse's TSV escapes it.
        Case {
            pg: Want::Refused,
            ch: is("a\\0b"),
            pq: is("a\0b"),
            ..same(
                "text_nul",
                json!({"type": "string"}),
                "string",
                json!("a\u{0}b"),
                "",
            )
        },
        Case {
            pg: is("\\x"),
            ..same(
                "bytes_empty",
                json!({"type": "bytes"}),
                "bytes",
                json!(""),
                "",
            )
        },
        Case {
            pg: is("\\x0001ff"),
            ..same(
                "bytes",
                json!({"type": "bytes"}),
                "bytes",
                json!("AAH/"),
                "0001ff",
            )
        },
        Case {
            pg: is(&format!("\\x{large_hex}")),
            ..same(
                "bytes_large",
                json!({"type": "bytes"}),
                "bytes",
                json!(base64::engine::general_purpose::STANDARD.encode(&large)),
                &large_hex,
            )
        },
        same(
            "decimal_5_2",
            decimal(5, 2),
            "decimal(5,2)",
            json!("MDk="),
            "123.45",
        ),
        same(
            "decimal_negative",
            decimal(5, 2),
            "decimal(5,2)",
            json!("z8c="),
            "-123.45",
        ),
        same(
            "decimal_39_digits",
            decimal(39, 0),
            "decimal(39,0)",
            json!("AvBQ/pOJQ6zEX2VWf/////8="),
            &nines(39),
        ),
        same(
            "decimal_76_digits",
            decimal(76, 10),
            "decimal(76,10)",
            json!("FhvMpxGZFbUHZLSr6GUpeXd1pfFxlQ////////////8="),
            &format!("{}.{}", nines(66), nines(10)),
        ),
        same(
            "decimal_100_digits",
            decimal(100, 2),
            "decimal(100,2)",
            json!("EkmtJZTDfOsLJ4TEzgvzis5AjiEafKqyQwioLo8P////////////////"),
            &format!("{}.99", nines(98)),
        ),
        // 12345.67 has 7 digits: more than numeric(5,2) holds.
        Case {
            pg: Want::Refused,
            ch: Want::Refused,
            pq: Want::Refused,
            ..same(
                "decimal_over_precision",
                decimal(5, 2),
                "decimal(5,2)",
                json!("EtaH"),
                "",
            )
        },
        // `decimal.format=NUMERIC`: a JSON number (up to 15 digits; longer
        // ones are refused by the decoder, see its tests).
        same(
            "decimal_numeric_format",
            decimal(15, 2),
            "decimal(15,2)",
            serde_json::from_str("1234567890123.45").expect("a JSON number"),
            "1234567890123.45",
        ),
        // numeric(5,6), legal since Postgres 15: 0.012345.
        same(
            "decimal_scale_above_precision",
            decimal(5, 6),
            "decimal(5,6)",
            json!("MDk="),
            "0.012345",
        ),
        same(
            "variable_decimal",
            // Debezium's schema, with its two fields.
            json!({"type": "struct", "name": "io.debezium.data.VariableScaleDecimal",
                   "version": 1, "doc": "Variable scaled decimal", "fields": [
                       {"field": "scale", "type": "int32", "optional": false},
                       {"field": "value", "type": "bytes", "optional": false}]}),
            "variable_decimal",
            json!({"scale": 3, "value": "AeI="}),
            "0.482",
        ),
        same(
            "date",
            logical("int32", "io.debezium.time.Date"),
            "date",
            json!(13693),
            "2007-06-29",
        ),
        // ClickHouse before 20.7 prints its minimum Date (day 0, stored
        // exactly) as 0000-00-00; later servers print 1970-01-01.
        Case {
            ch_current: Some(is("1970-01-01")),
            ch: is("0000-00-00"),
            ..same(
                "date_epoch",
                logical("int32", "io.debezium.time.Date"),
                "date",
                json!(0),
                "1970-01-01",
            )
        },
        // ClickHouse's Date holds 1970-2105 only.
        Case {
            ch: Want::Refused,
            ..same(
                "date_before_1970",
                logical("int32", "io.debezium.time.Date"),
                "date",
                json!(-1),
                "1969-12-31",
            )
        },
        Case {
            ch: Want::Refused,
            ..same(
                "date_9999",
                logical("int32", "io.debezium.time.Date"),
                "date",
                json!(2932896),
                "9999-12-31",
            )
        },
        // Before 1 AD and after 9999: Postgres reads `… BC` and no `+`;
        // the test renders Parquet's days in ISO form (year 0 is 1 BC).
        Case {
            pg: is("0044-03-15 BC"),
            ch: Want::Refused,
            pq: is("-0043-03-15"),
            ..same(
                "date_bc",
                logical("int32", "io.debezium.time.Date"),
                "date",
                json!(-735_160),
                "",
            )
        },
        Case {
            pg: is("10000-01-01"),
            ch: Want::Refused,
            pq: is("+10000-01-01"),
            ..same(
                "date_10000",
                logical("int32", "io.debezium.time.Date"),
                "date",
                json!(2_932_897),
                "",
            )
        },
        Case {
            ch_current: Some(Want::Refused),
            pg: is("0044-03-15 10:00:00 BC"),
            ch: is("-0043-03-15 10:00:00.000000"),
            pq: is("-0043-03-15 10:00:00"),
            ..same(
                "timestamp_bc",
                logical("int64", "io.debezium.time.MicroTimestamp"),
                "timestamp_micros",
                json!(-63_517_788_000_000_000i64),
                "",
            )
        },
        same(
            "timestamp_micros",
            logical("int64", "io.debezium.time.MicroTimestamp"),
            "timestamp_micros",
            json!(1179150269996577i64),
            "2007-05-14 13:44:29.996577",
        ),
        same(
            "timestamp_before_1970",
            logical("int64", "io.debezium.time.MicroTimestamp"),
            "timestamp_micros",
            json!(-1),
            "1969-12-31 23:59:59.999999",
        ),
        Case {
            ch: is("2007-05-14 13:44:29.996000"),
            ..same(
                "timestamp_millis",
                logical("int64", "io.debezium.time.Timestamp"),
                "timestamp_millis",
                json!(1179150269996i64),
                "2007-05-14 13:44:29.996",
            )
        },
        // Postgres and Parquet hold microseconds: a nanosecond is refused,
        // never rounded. 18.16's String column keeps the exact text.
        Case {
            ch_current: Some(Want::Refused),
            pg: Want::Refused,
            ch: is("1970-01-01 00:00:00.000000001"),
            pq: Want::Refused,
            ..same(
                "timestamp_nanos",
                logical("int64", "io.debezium.time.NanoTimestamp"),
                "timestamp_nanos",
                json!(1),
                "",
            )
        },
        Case {
            pg: is("23:55:31.98936"),
            ..same(
                "time_micros",
                logical("int64", "io.debezium.time.MicroTime"),
                "time_micros",
                json!(86131989360i64),
                "23:55:31.989360",
            )
        },
        // Postgres' `time` holds 24:00:00; Parquet's TIME does not.
        Case {
            pq: Want::Refused,
            ..same(
                "time_24_00",
                logical("int64", "io.debezium.time.MicroTime"),
                "time_micros",
                json!(86_400_000_000i64),
                "24:00:00",
            )
        },
        same(
            "time_millis",
            logical("int32", "io.debezium.time.Time"),
            "time_millis",
            json!(1000),
            "00:00:01",
        ),
        Case {
            pg: is("2007-05-14 13:44:29.996577+00"),
            ..same(
                "zoned_timestamp",
                logical("string", "io.debezium.time.ZonedTimestamp"),
                "zoned_timestamp",
                json!("2007-05-14T13:44:29.996577Z"),
                "2007-05-14 13:44:29.996577",
            )
        },
        Case {
            pg: is("13:44:29.996577+00"),
            ..same(
                "zoned_time",
                logical("string", "io.debezium.time.ZonedTime"),
                "zoned_time",
                json!("13:44:29.996577Z"),
                "13:44:29.996577Z",
            )
        },
        // ISO 8601's signed years: Postgres reads them as `… BC`; 18.16's
        // String column keeps the exact UTC text.
        Case {
            ch_current: Some(Want::Refused),
            pg: is("0044-03-15 10:00:00+00 BC"),
            ch: is("-0043-03-15 10:00:00.000000"),
            pq: is("-0043-03-15 10:00:00"),
            ..same(
                "zoned_timestamp_bc",
                logical("string", "io.debezium.time.ZonedTimestamp"),
                "zoned_timestamp",
                json!("-0043-03-15T10:00:00.000000Z"),
                "",
            )
        },
        // Postgres' infinity arrives as Debezium's sentinels: a Postgres
        // column holds it, 18.16's String column its text; ClickHouse's
        // Date and Parquet's date and timestamp types have no infinity.
        Case {
            ch_current: Some(Want::Refused),
            pg: is("infinity"),
            ch: is("infinity"),
            pq: Want::Refused,
            ..same(
                "timestamp_infinity",
                logical("int64", "io.debezium.time.MicroTimestamp"),
                "timestamp_micros",
                json!(9_223_372_036_825_200_000i64),
                "",
            )
        },
        Case {
            pg: is("-infinity"),
            ch: Want::Refused,
            pq: Want::Refused,
            ..same(
                "date_minus_infinity",
                logical("int32", "io.debezium.time.Date"),
                "date",
                json!(-2_147_472_691i64),
                "",
            )
        },
        Case {
            pg: is("1 year 2 mons 3 days 04:05:06.78"),
            ..same(
                "interval_iso",
                logical("string", "io.debezium.time.Interval"),
                "interval",
                json!("P1Y2M3DT4H5M6.78S"),
                "P1Y2M3DT4H5M6.78S",
            )
        },
        same(
            "bits",
            json!({"type": "bytes", "name": "io.debezium.data.Bits", "parameters": {"length": "10"}}),
            "bits(10)",
            json!("AQI="),
            "1000000001",
        ),
        same(
            "uuid",
            logical("string", "io.debezium.data.Uuid"),
            "uuid",
            json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        ),
        same(
            "json",
            logical("string", "io.debezium.data.Json"),
            "json",
            json!("{\"a\": [1, null]}"),
            "{\"a\": [1, null]}",
        ),
        same(
            "enum",
            logical("string", "io.debezium.data.Enum"),
            "enum",
            json!("happy"),
            "happy",
        ),
        Case {
            pg: is("{1,NULL,3}"),
            ..same(
                "int_array_with_nulls",
                json!({"type": "array", "items": {"type": "int32", "optional": true}}),
                "int32[]",
                json!([1, null, 3]),
                "[1,NULL,3]",
            )
        },
        Case {
            pg: is("{a,NULL,\"\"}"),
            ch: is("['a',NULL,'']"),
            pq: is("[\"a\",NULL,\"\"]"),
            ..same(
                "text_array_with_nulls",
                json!({"type": "array", "items": {"type": "string", "optional": true}}),
                "string[]",
                json!(["a", null, ""]),
                "",
            )
        },
    ]
}
