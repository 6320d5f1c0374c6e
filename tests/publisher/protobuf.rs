//! The publisher with Confluent's ProtobufConverter, checked with
//! Confluent's own Python `ProtobufDeserializer` (each record read with the
//! message type of the schema registered under its id) and against the
//! source.

use super::{CONVERGE, Framed, SOURCE_LOAD, Source, brokers, free_port};
use super::{common, publish_orders, read_framed, stream_orders_changes, wait_slot_confirms_now};
use base64::Engine;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Runs `script` with the serializers' Python, `input` on stdin.
fn python(script: &str, input: String) -> String {
    let python = sinkfleet_testkit::services::serializers_python_required();
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
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
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const BUILTINS: &str = r#"
import base64, json
from confluent_kafka.schema_registry.confluent import meta_pb2
from confluent_kafka.schema_registry.confluent.type import decimal_pb2
from google.protobuf import descriptor_pb2, timestamp_pb2
from google.type import date_pb2, timeofday_pb2
print(json.dumps({m.DESCRIPTOR.name: base64.b64encode(m.DESCRIPTOR.serialized_pb).decode()
                  for m in (meta_pb2, decimal_pb2, date_pb2, timeofday_pb2)}))
"#;

/// The registry's `.proto` text, compiled by protox with the builtin files
/// as Python's protobuf packages define them: the serialized
/// `FileDescriptorProto` of the registry file, named `registry-<id>.proto`.
struct Resolver {
    text: String,
    builtins: HashMap<String, Vec<u8>>,
    google: protox::file::GoogleFileResolver,
}

impl protox::file::FileResolver for Resolver {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        use protox::file::File;
        if name == "registry.proto" {
            return File::from_source(name, &self.text);
        }
        match self.builtins.get(name) {
            Some(bytes) => File::decode_file_descriptor_proto(bytes.as_slice())
                .map_err(|e| protox::Error::new(e.to_string())),
            None => self.google.open_file(name),
        }
    }
}

/// Decodes framed Protobuf records with Confluent's `ProtobufDeserializer`:
/// for each schema id the text registered under it (schemaType PROTOBUF,
/// only builtin imports) is compiled, and the record's message type is its
/// first message (message indexes `[0]`). One `{"key", "value",
/// "key_schema", "value_schema"}` per record, messages as
/// `MessageToDict(preserving_proto_field_name=True)`.
async fn protobuf_decode(records: &[Framed]) -> Vec<serde_json::Value> {
    let builtins: HashMap<String, String> =
        serde_json::from_str(&python(BUILTINS, String::new())).unwrap();
    let builtins: HashMap<String, Vec<u8>> = builtins
        .into_iter()
        .map(|(k, v)| (k, B64.decode(v).unwrap()))
        .collect();
    let client = common::avro::registry();
    let mut files: BTreeMap<u32, String> = BTreeMap::new();
    for bytes in records.iter().flat_map(|(_, k, v)| [k, v]).flatten() {
        assert_eq!(bytes[0], 0, "magic byte");
        let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap());
        if files.contains_key(&id) {
            continue;
        }
        let text = match client.schema(id).await.unwrap() {
            sinkfleet_core::debezium::RegistrySchema::Found { schema_type, text } => {
                assert_eq!(schema_type, "PROTOBUF");
                text
            }
            other => panic!("{other:?}"),
        };
        let mut compiler = protox::Compiler::with_file_resolver(Resolver {
            text,
            builtins: builtins.clone(),
            google: protox::file::GoogleFileResolver::new(),
        });
        compiler.open_file("registry.proto").unwrap();
        files.insert(id, B64.encode(compiler.encode_file_descriptor_set()));
    }
    let b64 = |b: &Option<Vec<u8>>| b.as_ref().map(|b| B64.encode(b));
    let mut input = serde_json::to_string(&files).unwrap();
    input.push('\n');
    for (t, k, v) in records {
        input
            .push_str(&serde_json::json!({"topic": t, "key": b64(k), "value": b64(v)}).to_string());
        input.push('\n');
    }
    const SCRIPT: &str = r#"
import base64, json, struct, sys
from confluent_kafka.schema_registry.confluent import meta_pb2
from confluent_kafka.schema_registry.confluent.type import decimal_pb2
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory, timestamp_pb2
from google.type import date_pb2, timeofday_pb2
files = json.loads(sys.stdin.readline())
deserializers = {}
for schema_id, fds in files.items():
    pool = descriptor_pool.DescriptorPool()
    for m in (descriptor_pb2, timestamp_pb2, meta_pb2, decimal_pb2, date_pb2, timeofday_pb2):
        pool.AddSerializedFile(m.DESCRIPTOR.serialized_pb)
    fd = descriptor_pb2.FileDescriptorSet.FromString(base64.b64decode(fds)).file[0]
    for dep in fd.dependency:
        assert dep.startswith(("confluent/", "google/")), dep
    added = pool.Add(fd)
    first = fd.message_type[0].name
    full = (fd.package + "." if fd.package else "") + first
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(full))
    deserializers[int(schema_id)] = ProtobufDeserializer(cls, conf={"use.deprecated.format": False})
for line in sys.stdin:
    r = json.loads(line)
    out = {}
    for part, field in (("key", MessageField.KEY), ("value", MessageField.VALUE)):
        raw = r[part]
        if raw is None:
            out[part] = None
            continue
        data = base64.b64decode(raw)
        schema_id = struct.unpack(">I", data[1:5])[0]
        assert data[5] == 0, "message indexes [0]"
        msg = deserializers[schema_id](data, SerializationContext(r["topic"], field))
        out[part] = json_format.MessageToDict(msg, preserving_proto_field_name=True)
        out[part + "_schema"] = schema_id
    print(json.dumps(out))
"#;
    python(SCRIPT, input)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// id, amount, placed_at (epoch ms), day, note, tier, flags, raw.
type SourceRow = (
    i64,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<Vec<u8>>,
);

/// A `confluent.type.Decimal` as Postgres prints a `numeric(12,2)`; its
/// precision is the unscaled value's digit count.
fn decimal_text(v: &serde_json::Value) -> Option<String> {
    let bytes = B64.decode(v.get("value")?.as_str()?).unwrap();
    assert_eq!(v["scale"], 2, "{v}");
    let fill = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        0xff
    } else {
        0
    };
    let mut wide = [fill; 16];
    wide[16 - bytes.len()..].copy_from_slice(&bytes);
    let n = i128::from_be_bytes(wide);
    assert_eq!(
        v["precision"].as_u64().unwrap_or(0),
        n.unsigned_abs().to_string().len() as u64,
        "{v}"
    );
    let sign = if n < 0 { "-" } else { "" };
    Some(format!("{sign}{}.{:02}", n.abs() / 100, n.abs() % 100))
}

/// An absent proto3 string is "" (ProtobufConverter's default settings do
/// not keep nulls): compared as the source's value or NULL-as-empty.
fn text(v: &serde_json::Value) -> String {
    v.as_str().unwrap_or("").to_owned()
}

/// The publisher with ProtobufConverter for keys and values (and
/// transaction metadata), `time.precision.mode: connect` so that Connect
/// Date and Timestamp become google.type.Date and google.protobuf.Timestamp:
/// snapshot, streamed changes, a column added mid-stream (the subject's
/// next schema version). Every record decodes with Confluent's
/// deserializer and the message type of its registered schema, and
/// replaying the decoded events gives the source's rows.
#[tokio::test(flavor = "multi_thread")]
async fn protobuf_records_decode_and_replay_to_the_source() {
    let _shared = SOURCE_LOAD.read().await;
    let src = Source::new("protobuf").await;
    let s = &src.schema;
    src.sql(&format!(
        "CREATE TABLE {s}.orders (id bigint PRIMARY KEY, amount numeric(12,2), placed_at timestamp(3),
                                  day date, note text, flags smallint[], raw bytea);
         INSERT INTO {s}.orders SELECT g, g * -1.25, '2024-01-01'::timestamp + g * interval '1 min 1 ms',
                                       '1969-12-20'::date + g, 'n' || g,
                                       ARRAY[g % 3, -g]::smallint[], decode(md5(g::text), 'hex')
                                  FROM generate_series(1, 200) g;"
    ))
    .await;
    let registry = common::avro::registry_url();
    let properties = format!(
        "  key.converter: io.confluent.connect.protobuf.ProtobufConverter
  key.converter.schema.registry.url: {registry}
  value.converter: io.confluent.connect.protobuf.ProtobufConverter
  value.converter.schema.registry.url: {registry}
  value.converter.optional.for.nullables: \"false\"
  time.precision.mode: connect
  provide.transaction.metadata: true
"
    );
    let pp = free_port();
    let publisher = publish_orders(&src, &properties, pp).await;
    stream_orders_changes(&src, 0).await;
    wait_slot_confirms_now(&src).await;

    let topic = format!("{}.{s}.orders", src.prefix);
    let framed = read_framed(&topic);
    let decoded = protobuf_decode(&framed).await;
    assert_eq!(decoded.len(), framed.len());

    // Two value schemas (before and after the new column), registered as
    // PROTOBUF under the topic's value subject, the second with `tier`.
    let value_ids: BTreeSet<u64> = decoded
        .iter()
        .filter_map(|d| d["value_schema"].as_u64())
        .collect();
    assert_eq!(value_ids.len(), 2, "{value_ids:?}");
    let client = common::avro::registry();
    let mut with_tier = 0;
    for id in &value_ids {
        match client.schema(u32::try_from(*id).unwrap()).await.unwrap() {
            sinkfleet_core::debezium::RegistrySchema::Found { text, .. } => {
                assert!(text.contains("google.type.Date day = "), "{text}");
                assert!(
                    text.contains("google.protobuf.Timestamp placed_at = "),
                    "{text}"
                );
                with_tier += usize::from(text.contains(" tier = "));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(with_tier, 1);

    // Replaying the events in order gives the source's rows, value for
    // value (ints as MessageToDict writes int64: strings).
    let mut rows: BTreeMap<i64, serde_json::Value> = BTreeMap::new();
    for d in &decoded {
        let id: i64 = d["key"]["id"].as_str().unwrap().parse().unwrap();
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
        "SELECT id, amount::text, (extract(epoch FROM placed_at) * 1000)::bigint,
                to_char(day, 'YYYY-MM-DD'), note, tier,
                coalesce(array_to_json(flags)::text, '[]'), raw
           FROM {s}.orders ORDER BY id"
    ))
    .fetch_all(&src.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), source.len());
    for ((id, amount, placed, day, note, tier, flags, raw), (rid, row)) in source.iter().zip(&rows)
    {
        assert_eq!(id, rid);
        assert_eq!(decimal_text(&row["amount"]), *amount, "amount of {id}");
        let placed_read = row["placed_at"].as_str().map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .unwrap()
                .timestamp_millis()
        });
        assert_eq!(placed_read, *placed, "placed_at of {id}");
        let day_read = row.get("day").map(|d| {
            format!(
                "{:04}-{:02}-{:02}",
                d["year"].as_i64().unwrap_or(0),
                d["month"].as_i64().unwrap_or(0),
                d["day"].as_i64().unwrap_or(0)
            )
        });
        assert_eq!(day_read, *day, "day of {id}");
        assert_eq!(
            text(&row["note"]),
            note.clone().unwrap_or_default(),
            "note of {id}"
        );
        assert_eq!(
            text(&row["tier"]),
            tier.clone().unwrap_or_default(),
            "tier of {id}"
        );
        let flags_json: serde_json::Value = serde_json::from_str(flags).unwrap();
        let flags_read = row.get("flags").cloned().unwrap_or(serde_json::json!([]));
        assert_eq!(flags_read, flags_json, "flags of {id}");
        let raw_read = row["raw"].as_str().map(|b| B64.decode(b).unwrap());
        assert_eq!(raw_read, *raw, "raw of {id}");
    }

    // Transaction metadata goes through the same converter.
    let tx_topic = format!("{}.transaction", src.prefix);
    let tx = sinkfleet_testkit::kafka::read_to_end(&brokers(), &tx_topic, CONVERGE).unwrap();
    let tx: Vec<Framed> = tx
        .iter()
        .map(|r| (tx_topic.clone(), r.key.clone(), r.value.clone()))
        .collect();
    let tx = protobuf_decode(&tx).await;
    assert!(tx.iter().any(|d| d["value"]["status"] == "END"), "{tx:?}");
    src.stop(publisher).await;
}

/// The publisher with ProtobufConverter and `optional.for.nullables=true`
/// (keys and values), a worker reading it (`nulls: presence`, the
/// timestamps whose Debezium names Protobuf drops declared back with
/// `decode.columns`): snapshot, streamed changes with NULLs, zeros and
/// empty strings, a column added mid-stream, and the target ends identical.
/// Confluent's deserializer reads every record with its registered schema.
#[tokio::test(flavor = "multi_thread")]
async fn protobuf_optional_for_nullables_source_and_target_end_identical() {
    let _shared = SOURCE_LOAD.read().await;
    let src = Source::new("pbnull").await;
    let s = &src.schema;
    src.sql(&format!(
        "CREATE TABLE {s}.orders (id bigint PRIMARY KEY, amount numeric(12,2), placed_at timestamp,
                                  paid_at timestamptz, qty int, note text, body text);
         INSERT INTO {s}.orders SELECT g, g * -1.25, '2024-01-01'::timestamp + g * interval '1 min', now(),
                                       CASE WHEN g % 3 = 0 THEN NULL ELSE g % 2 END,
                                       CASE WHEN g % 5 = 0 THEN NULL WHEN g % 5 = 1 THEN '' ELSE 'n' || g END,
                                       repeat(md5(g::text), 3) FROM generate_series(1, 200) g;"
    ))
    .await;
    let registry = common::avro::registry_url();
    let properties = format!(
        "  key.converter: io.confluent.connect.protobuf.ProtobufConverter
  key.converter.schema.registry.url: {registry}
  key.converter.optional.for.nullables: \"true\"
  value.converter: io.confluent.connect.protobuf.ProtobufConverter
  value.converter.schema.registry.url: {registry}
  value.converter.optional.for.nullables: \"true\"
  provide.transaction.metadata: true
"
    );
    let (pp, wp) = (free_port(), free_port());
    let publisher = publish_orders(&src, &properties, pp).await;
    let topic = format!("{}.{s}.orders", src.prefix);
    let worker = src.sink_worker_with(
        &["orders"],
        wp,
        &format!(
            "decode:
  formats:
    - {{ topics: {topic}, key: protobuf, value: protobuf, nulls: presence }}
  registry: {{ url: \"{registry}\" }}
  columns:
    {s}.orders: {{ placed_at: io.debezium.time.MicroTimestamp, paid_at: io.debezium.time.ZonedTimestamp }}
"
        ),
    );
    src.sql(&format!(
        "UPDATE {s}.orders SET amount = amount + 1, qty = 0 WHERE id % 10 = 0"
    ))
    .await;
    src.sql(&format!(
        "BEGIN;
         INSERT INTO {s}.orders (id, amount, note, body) VALUES (1001, 0, '', NULL);
         UPDATE {s}.orders SET note = NULL WHERE id = 1001;
         DELETE FROM {s}.orders WHERE id = 5;
         COMMIT;"
    ))
    .await;
    src.sql(&format!("ALTER TABLE {s}.orders ADD COLUMN tier text"))
        .await;
    src.sql(&format!(
        "UPDATE {s}.orders SET tier = CASE WHEN id % 2 = 0 THEN 'gold' ELSE '' END WHERE id <= 50"
    ))
    .await;
    src.sql(&format!(
        "INSERT INTO {s}.orders (id, amount, note, tier) VALUES (2000, 1, 'after alter', 'silver');
         DELETE FROM {s}.orders WHERE id BETWEEN 100 AND 120"
    ))
    .await;
    // quote_nullable: a NULL and an empty string must differ.
    src.wait_identical(
        "orders",
        "id, amount, placed_at, paid_at, quote_nullable(qty), quote_nullable(note), \
         quote_nullable(body), quote_nullable(tier)",
    )
    .await;
    wait_slot_confirms_now(&src).await;

    let framed = read_framed(&topic);
    let decoded = protobuf_decode(&framed).await;
    assert_eq!(decoded.len(), framed.len());
    // Presence: a zero and an empty string are written, a NULL is not.
    let after = |id: &str| {
        decoded
            .iter()
            .rev()
            .find(|d| d["key"]["id"] == id && d["value"]["op"].is_string())
            .map(|d| d["value"]["after"].clone())
            .unwrap()
    };
    assert_eq!(after("10")["qty"], 0);
    assert!(after("3").get("qty").is_none(), "{}", after("3"));
    assert_eq!(after("6")["note"], "");
    assert!(after("1001").get("note").is_none(), "{}", after("1001"));
    let value_ids: BTreeSet<u64> = decoded
        .iter()
        .filter_map(|d| d["value_schema"].as_u64())
        .collect();
    assert_eq!(value_ids.len(), 2, "{value_ids:?}");
    src.finish(publisher, worker).await;
}
