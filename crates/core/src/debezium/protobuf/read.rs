//! A decoded Protobuf message as the values Avro's decoding reads
//! (`apache_avro::types::Value`), each the Connect value `ProtobufData`
//! wrote: the row then goes through the same cell decoding, and so the
//! same [`crate::debezium::values::decode`], as Avro and JSON.

use super::plan::{MessagePlan, Plan};
use apache_avro::types::Value as Avro;
use chrono::NaiveDate;
use prost_reflect::{DynamicMessage, MapKey, ReflectMessage, Value as Proto};

/// A message's fields, by Connect name, in field order. The message is
/// taken apart: its values move, not copied.
pub(super) fn message(
    mut message: DynamicMessage,
    plan: &MessagePlan,
) -> Result<Vec<(String, Avro)>, String> {
    if let Some(unknown) = message.unknown_fields().next() {
        return Err(format!(
            "field number {} is not in message {}",
            unknown.number(),
            message.descriptor().full_name()
        ));
    }
    plan.fields
        .iter()
        .map(|f| {
            let value = match message.take_field(&f.desc) {
                Some(v) => value(v, &f.plan).map_err(|e| format!("{}: {e}", f.name))?,
                None if f.presence => Avro::Null,
                // Unset without presence: proto3's zero value, as
                // ProtobufConverter reads it.
                None => value(Proto::default_value_for_field(&f.desc), &f.plan)
                    .map_err(|e| format!("{}: {e}", f.name))?,
            };
            Ok((f.name.clone(), value))
        })
        .collect()
}

/// One value by its plan.
fn value(v: Proto, plan: &Plan) -> Result<Avro, String> {
    Ok(match (plan, v) {
        (Plan::Scalar(_), v) => scalar(v)?,
        (Plan::Enum(e), Proto::EnumNumber(n)) => match e.get_value(n) {
            Some(symbol) => Avro::String(symbol.name().to_owned()),
            None => return Err(format!("{n} is no symbol of enum {}", e.full_name())),
        },
        (Plan::Wrapper(_), Proto::Message(m)) => match m.get_field_by_name("value") {
            Some(v) => scalar(v.into_owned())?,
            None => return Err("a wrapper without `value`".into()),
        },
        (Plan::Decimal { scale, .. }, Proto::Message(m)) => {
            let got = int(&m, "scale")?;
            if got != *scale {
                return Err(format!(
                    "a decimal of scale {got} in a column of scale {scale}"
                ));
            }
            match m.get_field_by_name("value").as_deref() {
                Some(Proto::Bytes(b)) => Avro::Bytes(b.to_vec()),
                _ => return Err("a decimal without `value`".into()),
            }
        }
        (Plan::Date, Proto::Message(m)) => {
            let (y, mo, d) = (int(&m, "year")?, int(&m, "month")?, int(&m, "day")?);
            let date = u32::try_from(mo)
                .ok()
                .zip(u32::try_from(d).ok())
                .and_then(|(mo, d)| NaiveDate::from_ymd_opt(y, mo, d))
                .ok_or_else(|| format!("no date {y}-{mo}-{d}"))?;
            let days = date.signed_duration_since(NaiveDate::default()).num_days();
            Avro::Int(i32::try_from(days).map_err(|_| format!("date {date} out of range"))?)
        }
        (Plan::Time, Proto::Message(m)) => {
            let (h, mi, s, n) = (
                int(&m, "hours")?,
                int(&m, "minutes")?,
                int(&m, "seconds")?,
                int(&m, "nanos")?,
            );
            let in_range = (0..24).contains(&h) && (0..60).contains(&mi) && (0..60).contains(&s);
            if !in_range || !(0..1_000_000_000).contains(&n) || n % 1_000_000 != 0 {
                return Err(format!(
                    "time {h}:{mi}:{s}.{n:09} is no Connect Time (whole milliseconds of a day)"
                ));
            }
            Avro::Int(((h * 60 + mi) * 60 + s) * 1000 + n / 1_000_000)
        }
        (Plan::Timestamp, Proto::Message(m)) => {
            let seconds = match m.get_field_by_name("seconds").as_deref() {
                Some(Proto::I64(s)) => *s,
                _ => return Err("a timestamp without `seconds`".into()),
            };
            let nanos = int(&m, "nanos")?;
            if !(0..1_000_000_000).contains(&nanos) || nanos % 1_000_000 != 0 {
                return Err(format!(
                    "timestamp nanos {nanos} are no whole milliseconds (a Connect Timestamp)"
                ));
            }
            let millis = seconds
                .checked_mul(1000)
                .and_then(|ms| ms.checked_add(i64::from(nanos / 1_000_000)))
                .ok_or_else(|| format!("timestamp of {seconds} s out of range"))?;
            Avro::Long(millis)
        }
        (Plan::Struct(plan), Proto::Message(m)) => Avro::Record(message(m, plan)?),
        (Plan::Array(items), Proto::List(list)) => Avro::Array(
            list.into_iter()
                .map(|v| value(v, items))
                .collect::<Result<_, _>>()?,
        ),
        (Plan::Map(_, values), Proto::Map(map)) => {
            let mut entries = Vec::with_capacity(map.len());
            for (k, v) in map {
                entries.push((key(&k), value(v, values)?));
            }
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Avro::Map(entries.into_iter().collect())
        }
        (plan, v) => return Err(format!("a {v:?} where the schema says {plan:?}")),
    })
}

/// A scalar as the Connect value of its type.
fn scalar(v: Proto) -> Result<Avro, String> {
    Ok(match v {
        Proto::Bool(b) => Avro::Boolean(b),
        Proto::I32(i) => Avro::Int(i),
        Proto::I64(i) => Avro::Long(i),
        Proto::U32(u) => Avro::Long(i64::from(u)),
        Proto::U64(u) => {
            Avro::Long(i64::try_from(u).map_err(|_| format!("{u} does not fit a Connect int64"))?)
        }
        Proto::F32(f) => Avro::Float(f),
        Proto::F64(f) => Avro::Double(f),
        Proto::String(s) => Avro::String(s),
        Proto::Bytes(b) => Avro::Bytes(b.into()),
        other => return Err(format!("a {other:?} where the schema says a scalar")),
    })
}

fn int(m: &DynamicMessage, name: &str) -> Result<i32, String> {
    match m.get_field_by_name(name).as_deref() {
        Some(Proto::I32(i)) => Ok(*i),
        _ => Err(format!(
            "`{name}` missing from {}",
            m.descriptor().full_name()
        )),
    }
}

/// A map key as the JSON object key `JsonConverter` writes.
fn key(k: &MapKey) -> String {
    match k {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(i) => i.to_string(),
        MapKey::I64(i) => i.to_string(),
        MapKey::U32(u) => u.to_string(),
        MapKey::U64(u) => u.to_string(),
        MapKey::String(s) => s.clone(),
    }
}
