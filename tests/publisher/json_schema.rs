//! The publisher with Confluent's JsonSchemaConverter, checked with
//! Confluent's own Python `JSONDeserializer` (writer schema from the
//! registry, payload validated against it) and against the source.

use super::{CONVERGE, Framed, SOURCE_LOAD, Source, brokers, free_port};
use super::{common, publish_orders, read_framed, stream_orders_changes, wait_slot_confirms_now};
use std::collections::BTreeMap;

/// Decodes framed JSON Schema records with Confluent's `JSONDeserializer`
/// (validation on, the writer schema fetched by id) and validates each
/// payload again with `jsonschema` against the schema registered under
/// that id, which must be of type JSON: one `{"key", "value"}` per record.
fn json_schema_decode(records: &[Framed]) -> Vec<serde_json::Value> {
    use base64::Engine;
    use std::io::Write;
    let b64 = |b: &Option<Vec<u8>>| {
        b.as_ref()
            .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
    };
    let input: String = records
        .iter()
        .map(|(t, k, v)| {
            format!(
                "{}\n",
                serde_json::json!({"topic": t, "key": b64(k), "value": b64(v)})
            )
        })
        .collect();
    const SCRIPT: &str = r#"
import base64, json, struct, sys
import jsonschema
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
client = SchemaRegistryClient({"url": sys.argv[1]})
de = JSONDeserializer(None, schema_registry_client=client, conf={"validate": True})
validators = {}
def validator(schema_id):
    if schema_id not in validators:
        s = client.get_schema(schema_id)
        assert s.schema_type == "JSON", (schema_id, s.schema_type)
        schema = json.loads(s.schema_str)
        jsonschema.Draft7Validator.check_schema(schema)
        validators[schema_id] = jsonschema.Draft7Validator(schema)
    return validators[schema_id]
for line in sys.stdin:
    r = json.loads(line)
    out = {}
    for part, field in (("key", MessageField.KEY), ("value", MessageField.VALUE)):
        raw = r[part]
        if raw is None:
            out[part] = None
            continue
        data = base64.b64decode(raw)
        assert data[0] == 0, "magic byte"
        schema_id = struct.unpack(">I", data[1:5])[0]
        out[part] = de(data, SerializationContext(r["topic"], field))
        validator(schema_id).validate(json.loads(data[5:]))
        out[part + "_schema"] = schema_id
    print(json.dumps(out))
"#;
    let python = sinkfleet_testkit::services::serializers_python_required();
    let mut child = std::process::Command::new(python)
        .args(["-c", SCRIPT, &common::avro::registry_url()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "JSONDeserializer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// id, amount, placed_at (epoch µs), note, tier, flags (JSON), raw.
type SourceRow = (
    i64,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    String,
    Option<Vec<u8>>,
);

/// A Connect Decimal of scale 2 (JsonSchemaConverter's default
/// `decimal.format=BASE64`: the unscaled two's complement bytes) as
/// Postgres prints a `numeric(12,2)`.
fn decimal_text(v: &serde_json::Value) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.as_str()?)
        .unwrap();
    let fill = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        0xff
    } else {
        0
    };
    let mut wide = [fill; 16];
    wide[16 - bytes.len()..].copy_from_slice(&bytes);
    let n = i128::from_be_bytes(wide);
    let sign = if n < 0 { "-" } else { "" };
    Some(format!("{sign}{}.{:02}", n.abs() / 100, n.abs() % 100))
}

/// The publisher with JsonSchemaConverter for keys and values (and
/// transaction metadata): snapshot, streamed changes, a column added
/// mid-stream (the subject's next schema version). Every record is framed,
/// decodes with Confluent's deserializer and validates against its
/// registered schema, and replaying the decoded events gives the source's
/// rows exactly.
#[tokio::test(flavor = "multi_thread")]
async fn json_schema_records_decode_and_replay_to_the_source() {
    let _shared = SOURCE_LOAD.read().await;
    let src = Source::new("jsonschema").await;
    let s = &src.schema;
    src.sql(&format!(
        "CREATE TABLE {s}.orders (id bigint PRIMARY KEY, amount numeric(12,2), placed_at timestamp,
                                  note text, flags smallint[], raw bytea);
         INSERT INTO {s}.orders SELECT g, g * -1.25, '2024-01-01'::timestamp + g * interval '1 min', 'n' || g,
                                       ARRAY[g % 3, NULL]::smallint[], decode(md5(g::text), 'hex')
                                  FROM generate_series(1, 200) g;"
    ))
    .await;
    let registry = common::avro::registry_url();
    let properties = format!(
        "  key.converter: io.confluent.connect.json.JsonSchemaConverter
  key.converter.schema.registry.url: {registry}
  value.converter: io.confluent.connect.json.JsonSchemaConverter
  value.converter.schema.registry.url: {registry}
  value.converter.decimal.format: BASE64
  provide.transaction.metadata: true
"
    );
    let pp = free_port();
    let publisher = publish_orders(&src, &properties, pp).await;
    stream_orders_changes(&src, 1).await;
    wait_slot_confirms_now(&src).await;

    let topic = format!("{}.{s}.orders", src.prefix);
    let framed = read_framed(&topic);
    let decoded = json_schema_decode(&framed);
    assert_eq!(decoded.len(), framed.len());

    // Two value schemas (before and after the new column), registered as
    // JSON under the topic's value subject, the second with `tier`.
    let value_ids: std::collections::BTreeSet<u64> = decoded
        .iter()
        .filter_map(|d| d["value_schema"].as_u64())
        .collect();
    assert_eq!(value_ids.len(), 2, "{value_ids:?}");
    let client = common::avro::registry();
    let mut with_tier = 0;
    for id in &value_ids {
        match client.schema(u32::try_from(*id).unwrap()).await.unwrap() {
            sinkfleet_core::debezium::RegistrySchema::Found { schema_type, text } => {
                assert_eq!(schema_type, "JSON");
                with_tier += usize::from(text.contains("\"tier\""));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(with_tier, 1);

    // Replaying the events in order gives the source's rows, value for
    // value (the decimal from its base64 bytes, the array with its null).
    let mut rows: BTreeMap<i64, serde_json::Value> = BTreeMap::new();
    for d in &decoded {
        let id = d["key"]["id"].as_i64().unwrap();
        match d["value"]["op"].as_str() {
            Some("r" | "c" | "u") => {
                rows.insert(id, d["value"]["after"].clone());
            }
            Some("d") => {
                rows.remove(&id);
            }
            None => assert!(d["value"].is_null(), "a tombstone: {d}"),
            Some(other) => panic!("op {other}"),
        }
    }
    let source: Vec<SourceRow> = sqlx::query_as(&format!(
        "SELECT id, amount::text,
                    (extract(epoch FROM placed_at) * 1000000)::bigint,
                    note, tier, coalesce(array_to_json(flags)::text, 'null'), raw
               FROM {s}.orders ORDER BY id"
    ))
    .fetch_all(&src.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), source.len());
    for ((id, amount, placed, note, tier, flags, raw), (rid, row)) in source.iter().zip(&rows) {
        assert_eq!(id, rid);
        assert_eq!(decimal_text(&row["amount"]), *amount, "amount of {id}");
        assert_eq!(row["placed_at"].as_i64(), *placed, "placed_at of {id}");
        assert_eq!(row["note"].as_str(), note.as_deref(), "note of {id}");
        assert_eq!(row["tier"].as_str(), tier.as_deref(), "tier of {id}");
        let flags_json: serde_json::Value = serde_json::from_str(flags).unwrap_or_default();
        assert_eq!(row["flags"], flags_json, "flags of {id}");
        use base64::Engine;
        let raw_read = row["raw"]
            .as_str()
            .map(|b| base64::engine::general_purpose::STANDARD.decode(b).unwrap());
        assert_eq!(raw_read, *raw, "raw of {id}");
    }

    // Transaction metadata goes through the same converter.
    let tx_topic = format!("{}.transaction", src.prefix);
    let tx = sinkfleet_testkit::kafka::read_to_end(&brokers(), &tx_topic, CONVERGE).unwrap();
    let tx: Vec<Framed> = tx
        .iter()
        .map(|r| (tx_topic.clone(), r.key.clone(), r.value.clone()))
        .collect();
    let tx = json_schema_decode(&tx);
    assert!(tx.iter().any(|d| d["value"]["status"] == "END"), "{tx:?}");
    src.stop(publisher).await;
}
