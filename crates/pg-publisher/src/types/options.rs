//! The connector properties that choose how values are represented
//! (Debezium's "data representation" options), each implemented.

/// `decimal.handling.mode`: how `numeric` (and `money`) travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecimalMode {
    /// Connect `Decimal` (fixed scale) or `VariableScaleDecimal`: exact.
    /// `NaN` and infinities have no such representation and are refused.
    #[default]
    Precise,
    /// A double: the user chose a lossy representation.
    Double,
    /// The plain decimal text (`NAN`, `POSITIVE_INFINITY`, ... for the
    /// special values).
    String,
}

/// `time.precision.mode`: the units of `date`, `time` and `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimePrecision {
    /// Milliseconds for precision 0-3, microseconds for 4-6.
    #[default]
    Adaptive,
    /// As `Adaptive`, but `time` always in microseconds.
    AdaptiveTimeMicroseconds,
    /// Kafka Connect's own `Date`, `Time` and `Timestamp` (milliseconds).
    Connect,
}

/// `interval.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IntervalMode {
    /// `io.debezium.time.MicroDuration`: microseconds, a month counted as
    /// 365.25 / 12 days (Debezium's definition: approximate).
    #[default]
    Numeric,
    /// `io.debezium.time.Interval`: ISO 8601 `PnYnMnDTnHnMnS`, exact.
    String,
}

/// `hstore.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HstoreMode {
    /// A JSON object as text (`io.debezium.data.Json`).
    #[default]
    Json,
    /// A Connect map of strings.
    Map,
}

/// `binary.handling.mode`: how `bytea` (and unknown types) travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BinaryMode {
    /// Connect `bytes` (base64 in JSON).
    #[default]
    Bytes,
    /// A string, standard base64.
    Base64,
    /// A string, URL-safe base64 (padded, as Java's encoder).
    Base64UrlSafe,
    /// A string, lower-case hex.
    Hex,
}

/// Every representation option, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeOptions {
    /// `decimal.handling.mode`.
    pub decimal: DecimalMode,
    /// `time.precision.mode`.
    pub time: TimePrecision,
    /// `interval.handling.mode`.
    pub interval: IntervalMode,
    /// `hstore.handling.mode`.
    pub hstore: HstoreMode,
    /// `binary.handling.mode`.
    pub binary: BinaryMode,
    /// `money.fraction.digits`: the scale of `money` as a `Decimal`.
    pub money_fraction_digits: u32,
    /// `include.unknown.datatypes`: columns of types without a mapping
    /// travel as the bytes of their text instead of being left out.
    pub include_unknown: bool,
}

impl Default for TypeOptions {
    fn default() -> Self {
        TypeOptions {
            decimal: DecimalMode::default(),
            time: TimePrecision::default(),
            interval: IntervalMode::default(),
            hstore: HstoreMode::default(),
            binary: BinaryMode::default(),
            money_fraction_digits: 2,
            include_unknown: false,
        }
    }
}

impl TypeOptions {
    /// The properties [`TypeOptions::from_properties`] reads.
    pub const PROPERTIES: [&'static str; 7] = [
        "decimal.handling.mode",
        "time.precision.mode",
        "interval.handling.mode",
        "hstore.handling.mode",
        "binary.handling.mode",
        "money.fraction.digits",
        "include.unknown.datatypes",
    ];

    /// Reads the options; a value outside Debezium's set (or one Debezium
    /// has that this publisher does not implement) is reported to `err`.
    pub fn from_properties(
        get: impl Fn(&str) -> Option<String>,
        err: &mut dyn FnMut(&str, String),
    ) -> TypeOptions {
        let mut options = TypeOptions::default();
        let mut choose = |key: &str, allowed: &[&str], later: &[&str]| -> Option<usize> {
            let value = get(key)?;
            if let Some(i) = allowed.iter().position(|a| *a == value) {
                return Some(i);
            }
            let why = if later.contains(&value.as_str()) {
                "is a Debezium mode this publisher does not implement"
            } else {
                "is not a Debezium value"
            };
            err(
                key,
                format!("`{value}` {why} (supported: {})", allowed.join(", ")),
            );
            None
        };
        if let Some(i) = choose(
            "decimal.handling.mode",
            &["precise", "double", "string"],
            &[],
        ) {
            options.decimal = [
                DecimalMode::Precise,
                DecimalMode::Double,
                DecimalMode::String,
            ][i];
        }
        if let Some(i) = choose(
            "time.precision.mode",
            &["adaptive", "adaptive_time_microseconds", "connect"],
            &["isostring", "microseconds", "nanoseconds", "structured"],
        ) {
            options.time = [
                TimePrecision::Adaptive,
                TimePrecision::AdaptiveTimeMicroseconds,
                TimePrecision::Connect,
            ][i];
        }
        if let Some(i) = choose("interval.handling.mode", &["numeric", "string"], &[]) {
            options.interval = [IntervalMode::Numeric, IntervalMode::String][i];
        }
        if let Some(i) = choose("hstore.handling.mode", &["json", "map"], &[]) {
            options.hstore = [HstoreMode::Json, HstoreMode::Map][i];
        }
        if let Some(i) = choose(
            "binary.handling.mode",
            &["bytes", "base64", "base64-url-safe", "hex"],
            &[],
        ) {
            options.binary = [
                BinaryMode::Bytes,
                BinaryMode::Base64,
                BinaryMode::Base64UrlSafe,
                BinaryMode::Hex,
            ][i];
        }
        if let Some(v) = get("money.fraction.digits") {
            // Debezium reads a short; a Decimal's scale cannot be negative.
            match v.parse::<u32>() {
                Ok(d) if d <= 32_767 => options.money_fraction_digits = d,
                _ => err(
                    "money.fraction.digits",
                    format!("`{v}`: expected a number of digits (0 or more)"),
                ),
            }
        }
        match get("include.unknown.datatypes").as_deref() {
            None | Some("false") => {}
            Some("true") => options.include_unknown = true,
            Some(other) => err(
                "include.unknown.datatypes",
                format!("expected true or false, found `{other}`"),
            ),
        }
        options
    }
}
