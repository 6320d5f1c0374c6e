//! Column types → Connect schema and value, type by type and option by
//! option, against Debezium's documented mapping.

use super::*;
use options::*;

/// OIDs the tests give to types that have none fixed.
const MOOD: u32 = 90_001;
const MOOD_ARRAY: u32 = 90_002;
const POSITIVE: u32 = 90_003;
const PRICE: u32 = 90_004;
const HSTORE: u32 = 90_005;
const PG_LSN: u32 = 3220;

fn registry() -> TypeRegistry {
    let mut r = TypeRegistry::builtin();
    r.insert(
        MOOD,
        "mood",
        TypeShape::Enum(vec!["sad".into(), "ok".into(), "happy".into()]),
    );
    r.insert(MOOD_ARRAY, "_mood", TypeShape::Array { element: MOOD });
    r.insert(
        POSITIVE,
        "positive",
        TypeShape::Domain {
            base: 23,
            typmod: -1,
        },
    );
    r.insert(
        PRICE,
        "price",
        TypeShape::Domain {
            base: 1700,
            typmod: (10 << 16 | 2) + 4,
        },
    );
    r.insert(HSTORE, "hstore", TypeShape::Base);
    r.insert(PG_LSN, "pg_lsn", TypeShape::Base);
    r
}

fn column(oid: u32, typmod: i32) -> ColumnType<'static> {
    ColumnType {
        oid,
        typmod,
        not_null: false,
        default: None,
    }
}

fn with(opts: TypeOptions, oid: u32, typmod: i32) -> ColumnCodec {
    codec(column(oid, typmod), &registry(), &opts).unwrap()
}

fn default(oid: u32, typmod: i32) -> ColumnCodec {
    with(TypeOptions::default(), oid, typmod)
}

/// `(type, name)` of a schema.
fn named(c: &ColumnCodec) -> (&str, Option<&str>) {
    (
        c.schema["type"].as_str().unwrap(),
        c.schema.get("name").and_then(Value::as_str),
    )
}

fn numeric_typmod(p: i32, s: i32) -> i32 {
    (p << 16 | s) + 4
}

#[test]
fn scalars() {
    assert_eq!(named(&default(16, -1)), ("boolean", None));
    assert_eq!(named(&default(21, -1)), ("int16", None));
    assert_eq!(named(&default(23, -1)), ("int32", None));
    assert_eq!(named(&default(20, -1)), ("int64", None));
    assert_eq!(named(&default(26, -1)), ("int64", None));
    assert_eq!(named(&default(700, -1)), ("float", None));
    assert_eq!(named(&default(701, -1)), ("double", None));
    assert_eq!(
        default(701, -1).kind.encode("Infinity"),
        Ok(json!("Infinity"))
    );
    assert_eq!(default(700, -1).kind.encode("3.3"), Ok(json!(3.3)));
    assert_eq!(
        named(&default(2950, -1)),
        ("string", Some("io.debezium.data.Uuid"))
    );
    assert_eq!(
        named(&default(3802, -1)),
        ("string", Some("io.debezium.data.Json"))
    );
    assert_eq!(
        named(&default(142, -1)),
        ("string", Some("io.debezium.data.Xml"))
    );
    assert_eq!(
        named(&default(3614, -1)),
        ("string", Some("io.debezium.data.Tsvector"))
    );
    for oid in [25, 1043, 1042, 18, 19, 869, 650, 829, 774] {
        assert_eq!(named(&default(oid, -1)), ("string", None), "{oid}");
    }
    assert_eq!(
        default(1042, 9).kind.encode("ab   "),
        Ok(json!("ab   ")),
        "padding kept"
    );
}

#[test]
fn numeric_in_every_decimal_mode() {
    let c = default(1700, numeric_typmod(10, 2));
    assert_eq!(
        c.schema,
        json!({
            "type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
            "parameters": {"scale": "2", "connect.decimal.precision": "10"}, "optional": true
        })
    );
    assert_eq!(c.kind.encode("1.10"), Ok(json!("bg==")));
    let nan = c.kind.encode("NaN").unwrap_err();
    assert!(nan.contains("decimal.handling.mode=string"), "{nan}");
    let v = default(1700, -1);
    assert_eq!(
        named(&v),
        ("struct", Some("io.debezium.data.VariableScaleDecimal"))
    );
    assert!(v.kind.encode("NaN").is_err());
    let double = TypeOptions {
        decimal: DecimalMode::Double,
        ..TypeOptions::default()
    };
    let d = with(double, 1700, numeric_typmod(10, 2));
    assert_eq!(named(&d), ("double", None));
    assert_eq!(d.kind.encode("22.22"), Ok(json!(22.22)));
    assert_eq!(d.kind.encode("NaN"), Ok(json!("NaN")));
    let string = TypeOptions {
        decimal: DecimalMode::String,
        ..TypeOptions::default()
    };
    let s = with(string, 1700, -1);
    assert_eq!(named(&s), ("string", None));
    assert_eq!(s.kind.encode("22.2200"), Ok(json!("22.2200")));
    assert_eq!(s.kind.encode("Infinity"), Ok(json!("POSITIVE_INFINITY")));
}

#[test]
fn money_is_a_decimal_of_money_fraction_digits() {
    let c = default(790, -1);
    assert_eq!(
        c.schema,
        json!({
            "type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
            "parameters": {"scale": "2"}, "optional": true
        })
    );
    assert_eq!(c.kind.encode("-$1,234.56"), Ok(json!("/h3A")));
    let four = TypeOptions {
        money_fraction_digits: 4,
        ..TypeOptions::default()
    };
    let c = with(four, 790, -1);
    assert_eq!(c.schema["parameters"]["scale"], json!("4"));
    assert_eq!(c.kind.encode("$1.50"), Ok(json!("Opg=")));
    let mut r = registry();
    r.unreadable_money = Some("-1.234,56 €".into());
    assert!(matches!(
        codec(column(790, -1), &r, &TypeOptions::default()),
        Err(Unmapped::Unreadable(_))
    ));
}

#[test]
fn bytea_in_every_binary_mode() {
    for (mode, ty, value) in [
        (BinaryMode::Bytes, "bytes", "+/8="),
        (BinaryMode::Base64, "string", "+/8="),
        (BinaryMode::Base64UrlSafe, "string", "-_8="),
        (BinaryMode::Hex, "string", "fbff"),
    ] {
        let opts = TypeOptions {
            binary: mode,
            ..TypeOptions::default()
        };
        let c = with(opts, 17, -1);
        assert_eq!(named(&c), (ty, None), "{mode:?}");
        assert_eq!(c.kind.encode("\\xfbff"), Ok(json!(value)), "{mode:?}");
    }
}

#[test]
fn temporal_types_in_every_time_precision_mode() {
    let adaptive = TypeOptions::default();
    let micro_time = TypeOptions {
        time: TimePrecision::AdaptiveTimeMicroseconds,
        ..TypeOptions::default()
    };
    let connect = TypeOptions {
        time: TimePrecision::Connect,
        ..TypeOptions::default()
    };
    for (opts, oid, typmod, schema, text, value) in [
        (
            adaptive,
            1082,
            -1,
            ("int32", "io.debezium.time.Date"),
            "2016-11-04",
            json!(17109),
        ),
        (
            connect,
            1082,
            -1,
            ("int32", "org.apache.kafka.connect.data.Date"),
            "2016-11-04",
            json!(17109),
        ),
        (
            adaptive,
            1083,
            3,
            ("int32", "io.debezium.time.Time"),
            "00:00:00.5",
            json!(500),
        ),
        (
            micro_time,
            1083,
            3,
            ("int64", "io.debezium.time.MicroTime"),
            "00:00:00.5",
            json!(500_000),
        ),
        (
            connect,
            1083,
            3,
            ("int32", "org.apache.kafka.connect.data.Time"),
            "00:00:00.5",
            json!(500),
        ),
        (
            adaptive,
            1083,
            -1,
            ("int64", "io.debezium.time.MicroTime"),
            "13:51:30",
            json!(49_890_000_000i64),
        ),
        (
            adaptive,
            1114,
            3,
            ("int64", "io.debezium.time.Timestamp"),
            "2016-11-04 13:51:30.123",
            json!(1_478_267_490_123i64),
        ),
        (
            micro_time,
            1114,
            3,
            ("int64", "io.debezium.time.Timestamp"),
            "2016-11-04 13:51:30.123",
            json!(1_478_267_490_123i64),
        ),
        (
            adaptive,
            1114,
            -1,
            ("int64", "io.debezium.time.MicroTimestamp"),
            "infinity",
            json!(9_223_372_036_825_200_000i64),
        ),
        (
            connect,
            1114,
            -1,
            ("int64", "org.apache.kafka.connect.data.Timestamp"),
            "-infinity",
            json!(-9_223_372_036_832_400i64),
        ),
        (
            adaptive,
            1184,
            -1,
            ("string", "io.debezium.time.ZonedTimestamp"),
            "2020-04-01 11:51:02+00",
            json!("2020-04-01T11:51:02.000000Z"),
        ),
        (
            adaptive,
            1184,
            3,
            ("string", "io.debezium.time.ZonedTimestamp"),
            "2020-04-01 11:51:02.5+00",
            json!("2020-04-01T11:51:02.500Z"),
        ),
        (
            connect,
            1266,
            -1,
            ("string", "io.debezium.time.ZonedTime"),
            "13:51:30+02",
            json!("11:51:30Z"),
        ),
    ] {
        let c = with(opts, oid, typmod);
        assert_eq!(
            named(&c),
            (schema.0, Some(schema.1)),
            "{oid}({typmod}) {opts:?}"
        );
        assert_eq!(c.kind.encode(text), Ok(value), "{text} {opts:?}");
    }
    // Connect's milliseconds cannot carry a microsecond: refused, not truncated.
    assert!(
        with(connect, 1114, -1)
            .kind
            .encode("2016-11-04 13:51:30.000001")
            .is_err()
    );
}

#[test]
fn intervals_in_both_modes() {
    let c = default(1186, -1);
    assert_eq!(named(&c), ("int64", Some("io.debezium.time.MicroDuration")));
    assert_eq!(
        c.kind.encode("-1 years -2 mons +3 days -04:05:06.5"),
        Ok(json!(-36_572_706_500_000i64))
    );
    let string = TypeOptions {
        interval: IntervalMode::String,
        ..TypeOptions::default()
    };
    let c = with(string, 1186, -1);
    assert_eq!(named(&c), ("string", Some("io.debezium.time.Interval")));
    assert_eq!(
        c.kind.encode("1 year 2 mons 3 days 04:05:06.78"),
        Ok(json!("P1Y2M3DT4H5M6.78S"))
    );
}

#[test]
fn bits_points_hstore() {
    assert_eq!(named(&default(1560, 1)), ("boolean", None));
    assert_eq!(default(1560, 1).kind.encode("1"), Ok(json!(true)));
    assert_eq!(named(&default(1562, 1)), ("boolean", None));
    let bits = default(1560, 10);
    assert_eq!(named(&bits), ("bytes", Some("io.debezium.data.Bits")));
    assert_eq!(bits.schema["parameters"], json!({"length": "10"}));
    assert_eq!(bits.kind.encode("1000000001"), Ok(json!("AQI=")));
    assert!(
        default(1562, 8).kind.encode("101").is_err(),
        "a varbit shorter than its column"
    );
    let point = default(600, -1);
    assert_eq!(
        named(&point),
        ("struct", Some("io.debezium.data.geometry.Point"))
    );
    assert_eq!(point.kind.encode("(1,1)").unwrap()["x"], json!(1.0));
    let h = default(HSTORE, -1);
    assert_eq!(named(&h), ("string", Some("io.debezium.data.Json")));
    assert_eq!(
        h.kind.encode(r#""a"=>"1", "b"=>NULL"#),
        Ok(json!(r#"{"a":"1","b":null}"#))
    );
    let map = TypeOptions {
        hstore: HstoreMode::Map,
        ..TypeOptions::default()
    };
    let m = with(map, HSTORE, -1);
    assert_eq!(m.schema["type"], json!("map"));
    assert_eq!(m.kind.encode(r#""a"=>"1""#), Ok(json!({"a": "1"})));
}

#[test]
fn enums_domains_and_arrays() {
    let e = default(MOOD, -1);
    assert_eq!(named(&e), ("string", Some("io.debezium.data.Enum")));
    assert_eq!(e.schema["parameters"], json!({"allowed": "sad,ok,happy"}));
    let a = default(MOOD_ARRAY, -1);
    assert_eq!(
        a.schema["items"]["optional"],
        json!(false),
        "enum array elements are required"
    );
    assert_eq!(a.kind.encode("{ok,happy}"), Ok(json!(["ok", "happy"])));
    assert_eq!(
        named(&default(POSITIVE, -1)),
        ("int32", None),
        "a domain is its base type"
    );
    let price = default(PRICE, -1);
    assert_eq!(
        price.schema["parameters"]["scale"],
        json!("2"),
        "with the domain's typmod"
    );
    let ints = default(1007, -1);
    assert_eq!(
        ints.schema["items"],
        json!({"type": "int32", "optional": true})
    );
    assert_eq!(ints.kind.encode("{1,NULL,3}"), Ok(json!([1, null, 3])));
    assert_eq!(ints.kind.encode("{}"), Ok(json!([])));
    assert!(
        ints.kind
            .encode("{{1,2},{3,4}}")
            .unwrap_err()
            .contains("multi-dimensional")
    );
    let dates = default(1182, -1);
    assert_eq!(
        dates.kind.encode("{2016-11-04,infinity}"),
        Ok(json!([17109, -2_147_472_692i64]))
    );
    let decimals = default(1231, numeric_typmod(5, 2));
    assert_eq!(decimals.schema["items"]["parameters"]["scale"], json!("2"));
}

#[test]
fn unknown_types_are_left_out_or_carried_as_bytes() {
    assert_eq!(
        codec(column(PG_LSN, -1), &registry(), &TypeOptions::default()),
        Err(Unmapped::Unknown("pg_lsn".into()))
    );
    let include = TypeOptions {
        include_unknown: true,
        ..TypeOptions::default()
    };
    let c = with(include, PG_LSN, -1);
    assert_eq!(named(&c), ("bytes", None));
    assert_eq!(c.kind.encode("0/16B3748"), Ok(json!("MC8xNkIzNzQ4")));
}

#[test]
fn not_null_defaults_and_fallbacks() {
    let c = codec(
        ColumnType {
            oid: 23,
            typmod: -1,
            not_null: true,
            default: Some("42"),
        },
        &registry(),
        &TypeOptions::default(),
    )
    .unwrap();
    assert_eq!(
        c.schema,
        json!({"type": "int32", "optional": false, "default": 42})
    );
    assert_eq!(c.fallback, json!(42));
    let c = codec(
        ColumnType {
            oid: 1184,
            typmod: -1,
            not_null: true,
            default: None,
        },
        &registry(),
        &TypeOptions::default(),
    )
    .unwrap();
    assert_eq!(c.fallback, json!("1970-01-01T00:00:00Z"));
    assert!(!c.optional);
}

/// `write_json` writes what `encode` gives, byte for byte, and refuses
/// what it refuses, for the kinds it writes straight from the text and
/// for the ones it hands to `encode`.
#[test]
fn writing_json_in_place_matches_encoding_a_value() {
    let every_ascii: String = (0u8..128).map(char::from).collect();
    let samples: &[(u32, i32, &[&str])] = &[
        (16, -1, &["t", "f", "true", "", "T"]),
        (1560, 1, &["1", "0", "2", ""]),
        (
            20,
            -1,
            &[
                "0",
                "-9223372036854775808",
                "9223372036854775807",
                "9223372036854775808",
                "+5",
                " 5",
                "1.0",
                "",
            ],
        ),
        (23, -1, &["42", "-1", "x"]),
        (
            25,
            -1,
            &[
                "",
                "plain",
                "quote \" backslash \\ tab \t nl \n",
                "é ✓ 😀",
                "\u{7f}\u{1f}",
                &every_ascii,
            ],
        ),
        (MOOD, -1, &["happy"]),
        (
            1184,
            -1,
            &["2024-02-29 23:59:59.123456+05:30", "infinity", "x"],
        ),
        (1114, 3, &["2024-01-01 00:00:00.123", "1999-12-31 23:59:59"]),
        (1082, -1, &["2024-01-01", "0001-01-01 BC"]),
        (701, -1, &["3.5", "NaN", "-Infinity", "1e308"]),
        (1700, -1, &["1.10", "NaN", "-0.000001"]),
        (17, -1, &["\\x00ff", "\\xzz"]),
        (1007, -1, &["{1,NULL,3}", "{}", "{{1}}"]),
    ];
    for (oid, typmod, texts) in samples {
        let kind = default(*oid, *typmod).kind;
        for text in *texts {
            let mut written = b"[".to_vec();
            let result = kind.write_json(text, &mut written);
            let expected = kind.encode(text);
            match (result, expected) {
                (Ok(()), Ok(value)) => assert_eq!(
                    String::from_utf8_lossy(&written[1..]),
                    serde_json::to_string(&value).unwrap(),
                    "{kind:?} {text:?}"
                ),
                (Err(a), Err(b)) => {
                    assert_eq!(a, b, "{kind:?} {text:?}");
                    assert_eq!(written, b"[", "{kind:?} {text:?}: written on an error");
                }
                (a, b) => panic!("{kind:?} {text:?}: {a:?} against {b:?}"),
            }
        }
    }
}
