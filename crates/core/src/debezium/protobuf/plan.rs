//! A Protobuf message type as the Connect schema it stands for, and how to
//! read its values: computed once per message of a registry schema.
//!
//! What `ProtobufData.fromConnectSchema` writes under the converter's
//! default settings, and how it is read back here:
//!
//! * `int8`/`int16` are `int32` fields whose `confluent.field_meta` params
//!   say `connect.type`; `int32`, `int64`, `float32`/`float64`, `boolean`,
//!   `string` and `bytes` are the same scalar types; arrays are `repeated`;
//!   structs are nested messages; maps are map fields.
//! * Connect `Decimal` is a `confluent.type.Decimal` message, its scale and
//!   precision in the field's params; `Date` is `google.type.Date`, `Time`
//!   `google.type.TimeOfDay`, `Timestamp` `google.protobuf.Timestamp`.
//! * Any other logical name (Debezium's `MicroTimestamp`, `Date` as
//!   `io.debezium.time.Date`, `MicroTime`, `ZonedTimestamp`, `Uuid`,
//!   `Json`, `Bits`, `Enum`, ...) is **not kept**: the field is its
//!   carrier type (`int64`, `int32`, `string`, `bytes`), and is read as
//!   that, exactly as `ProtobufConverter` itself reads it back, unless
//!   `decode.columns` declares the column's type (see
//!   `Message::row_codec_for`). A struct's
//!   name survives as its message's name only, so Debezium's
//!   `VariableScaleDecimal` (a message of that name with `scale` and
//!   `value`) is recognised and read as the JSON twin's.
//! * Nullability is **not kept**: with `optional.for.nullables` and
//!   `wrapper.for.nullables` off (the defaults), a Connect null scalar is
//!   not written, and an absent proto3 scalar reads as its zero value, as
//!   `ProtobufConverter.toConnectData` reads it. A field declared
//!   `optional` (proto3 presence) or of a `google.protobuf.*Value` wrapper
//!   type (the converter's two settings that keep nulls) reads an absent
//!   value as null, exactly. Absent messages are null; an absent
//!   `repeated` field is an empty array (Connect writes no empty list
//!   either). Every column is optional, as `toConnectSchema` makes it.
//! * `oneof`s (Connect unions, which Debezium does not emit) are refused.

use prost_reflect::{EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Value as Json, json};
use std::sync::Arc;

/// Messages nest no deeper than this (a recursive message type would
/// otherwise never end).
const MAX_DEPTH: usize = 32;

/// How one message's fields are read.
#[derive(Debug)]
pub(crate) struct MessagePlan {
    pub fields: Vec<FieldPlan>,
    /// Set for Debezium's `VariableScaleDecimal`.
    pub logical: Option<&'static str>,
}

/// One field: its descriptor, Connect name and how its value is read.
#[derive(Debug)]
pub(crate) struct FieldPlan {
    pub desc: FieldDescriptor,
    pub name: String,
    pub plan: Plan,
    /// An absent value is null (presence, a message, a wrapper); without
    /// presence it is the type's zero value.
    pub presence: bool,
}

/// How one value is read.
#[derive(Debug)]
pub(crate) enum Plan {
    /// A scalar, Connect type as named (`int8`, `int64`, `string`, ...).
    Scalar(&'static str),
    /// An enum: its symbol's name.
    Enum(EnumDescriptor),
    /// `confluent.type.Decimal` of a column of this scale.
    Decimal {
        scale: i32,
        precision: Option<u32>,
    },
    /// `google.type.Date`: days since 1970-01-01.
    Date,
    /// `google.type.TimeOfDay`: milliseconds of the day.
    Time,
    /// `google.protobuf.Timestamp`: milliseconds since the epoch.
    Timestamp,
    /// A `google.protobuf.*Value` wrapper of this scalar.
    Wrapper(&'static str),
    Struct(Arc<MessagePlan>),
    Array(Box<Plan>),
    Map(Box<Plan>, Box<Plan>),
}

/// The plan of a message type.
pub(crate) fn message(desc: &MessageDescriptor, depth: usize) -> Result<MessagePlan, String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "message {} nests deeper than {MAX_DEPTH} levels (a recursive type?)",
            desc.full_name()
        ));
    }
    if let Some(oneof) = desc.oneofs().find(|o| !o.is_synthetic()) {
        return Err(format!(
            "{}.{} is a oneof (a Connect union), which is not read",
            desc.full_name(),
            oneof.name()
        ));
    }
    let mut fields = Vec::new();
    for field in desc.fields() {
        let plan = if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                return Err(format!("map field {} has no entry type", field.full_name()));
            };
            let key = kind(&entry.map_entry_key_field(), depth)?;
            let value = kind(&entry.map_entry_value_field(), depth)?;
            Plan::Map(Box::new(key), Box::new(value))
        } else if field.is_list() {
            Plan::Array(Box::new(kind(&field, depth)?))
        } else {
            kind(&field, depth)?
        };
        let presence = !field.is_list()
            && !field.is_map()
            && (field.supports_presence() || matches!(field.kind(), Kind::Message(_)));
        fields.push(FieldPlan {
            name: field.name().to_owned(),
            desc: field,
            plan,
            presence,
        });
    }
    let variable_decimal = desc.name() == "VariableScaleDecimal"
        && fields.len() == 2
        && matches!(fields[0].plan, Plan::Scalar("int32"))
        && fields[0].name == "scale"
        && matches!(fields[1].plan, Plan::Scalar("bytes"))
        && fields[1].name == "value";
    Ok(MessagePlan {
        fields,
        logical: variable_decimal.then_some("io.debezium.data.VariableScaleDecimal"),
    })
}

/// The plan of one (non-repeated) value of `field`'s type.
fn kind(field: &FieldDescriptor, depth: usize) -> Result<Plan, String> {
    Ok(match field.kind() {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            match params(field).iter().find(|(k, _)| k == "connect.type") {
                Some((_, t)) if t == "int8" => Plan::Scalar("int8"),
                Some((_, t)) if t == "int16" => Plan::Scalar("int16"),
                _ => Plan::Scalar("int32"),
            }
        }
        Kind::Uint32
        | Kind::Fixed32
        | Kind::Int64
        | Kind::Sint64
        | Kind::Sfixed64
        | Kind::Uint64
        | Kind::Fixed64 => Plan::Scalar("int64"),
        Kind::Float => Plan::Scalar("float"),
        Kind::Double => Plan::Scalar("double"),
        Kind::Bool => Plan::Scalar("boolean"),
        Kind::String => Plan::Scalar("string"),
        Kind::Bytes => Plan::Scalar("bytes"),
        Kind::Enum(e) => Plan::Enum(e),
        Kind::Message(m) => match m.full_name() {
            "confluent.type.Decimal" => {
                let params = params(field);
                let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v);
                let scale = match param("scale") {
                    Some(s) => s.parse().map_err(|_| {
                        format!("{}: decimal scale {s:?} is no number", field.full_name())
                    })?,
                    None => 0,
                };
                let precision = param("precision").and_then(|p| p.parse().ok());
                Plan::Decimal { scale, precision }
            }
            "google.type.Date" => Plan::Date,
            "google.type.TimeOfDay" => Plan::Time,
            "google.protobuf.Timestamp" => Plan::Timestamp,
            "google.protobuf.Int32Value" => Plan::Wrapper("int32"),
            "google.protobuf.UInt32Value"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt64Value" => Plan::Wrapper("int64"),
            "google.protobuf.FloatValue" => Plan::Wrapper("float"),
            "google.protobuf.DoubleValue" => Plan::Wrapper("double"),
            "google.protobuf.BoolValue" => Plan::Wrapper("boolean"),
            "google.protobuf.StringValue" => Plan::Wrapper("string"),
            "google.protobuf.BytesValue" => Plan::Wrapper("bytes"),
            _ => Plan::Struct(Arc::new(message(&m, depth + 1)?)),
        },
    })
}

/// The `params` of a field's `confluent.field_meta` option.
fn params(field: &FieldDescriptor) -> Vec<(String, String)> {
    let pool = field.parent_pool();
    let Some(ext) = pool.get_extension_by_name("confluent.field_meta") else {
        return Vec::new();
    };
    let options = field.options();
    if !options.has_extension(&ext) {
        return Vec::new();
    }
    let meta = options.get_extension(&ext);
    let Some(meta) = meta.as_message() else {
        return Vec::new();
    };
    let Some(params) = meta.get_field_by_name("params") else {
        return Vec::new();
    };
    let Some(map) = params.as_map() else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(k, v)| {
            let k = k.as_str()?;
            let v = v.as_str()?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect()
}

impl MessagePlan {
    /// The Connect schema (`JsonConverter`'s form) of the message.
    pub(crate) fn connect(&self) -> Json {
        let fields: Vec<Json> = self
            .fields
            .iter()
            .map(|f| {
                let mut schema = f.plan.connect();
                schema["field"] = Json::from(f.name.as_str());
                schema
            })
            .collect();
        let mut schema = json!({ "type": "struct", "fields": fields, "optional": true });
        if let Some(name) = self.logical {
            schema["name"] = Json::from(name);
        }
        schema
    }
}

impl Plan {
    /// A scalar, or an array of them: a carrier that may have lost its
    /// Connect logical name.
    pub(crate) fn is_carrier(&self) -> bool {
        match self {
            Plan::Scalar(_) => true,
            Plan::Array(items) => items.is_carrier(),
            _ => false,
        }
    }

    /// The Connect schema of one value (every value is optional).
    fn connect(&self) -> Json {
        match self {
            Plan::Scalar(t) | Plan::Wrapper(t) => json!({ "type": t, "optional": true }),
            Plan::Enum(_) => json!({ "type": "string", "optional": true }),
            Plan::Decimal { scale, precision } => {
                let mut params = json!({ "scale": scale.to_string() });
                if let Some(p) = precision {
                    params["connect.decimal.precision"] = Json::from(p.to_string());
                }
                json!({
                    "type": "bytes", "optional": true, "parameters": params,
                    "name": "org.apache.kafka.connect.data.Decimal",
                })
            }
            Plan::Date => {
                json!({ "type": "int32", "optional": true, "name": "org.apache.kafka.connect.data.Date" })
            }
            Plan::Time => {
                json!({ "type": "int32", "optional": true, "name": "org.apache.kafka.connect.data.Time" })
            }
            Plan::Timestamp => json!({
                "type": "int64", "optional": true, "name": "org.apache.kafka.connect.data.Timestamp",
            }),
            Plan::Struct(m) => m.connect(),
            Plan::Array(items) => {
                json!({ "type": "array", "items": items.connect(), "optional": true })
            }
            Plan::Map(k, v) => {
                json!({ "type": "map", "keys": k.connect(), "values": v.connect(), "optional": true })
            }
        }
    }
}
