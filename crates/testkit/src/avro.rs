//! Debezium's JsonConverter envelopes as Confluent's AvroSerializer writes
//! them: `scripts/testdata/connect_avro.py` (Python `confluent-kafka`,
//! the code users run), registering the schemas in a registry.

use crate::kafka::Record;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

pub use crate::services::registry_url;

/// The Python that has Confluent's serializers (the project's virtualenv,
/// installed by `scripts/services.sh` if missing).
fn serializers_python(root: &Path) -> Result<String, String> {
    if let Some(python) = crate::services::serializers_python() {
        return Ok(python);
    }
    let out = Command::new(root.join("scripts/services.sh"))
        .arg("serializers-python")
        .output()
        .map_err(|e| format!("scripts/services.sh serializers-python: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `records` (JsonConverter envelopes) in Avro for `topic`; `Err` for a
/// record the serializer refuses (a value that does not fit its schema).
/// `root` is the repository (where `scripts/` is).
pub fn try_to_avro(root: &Path, topic: &str, records: &[Record]) -> Vec<Result<Record, String>> {
    serialize(root, "connect_avro.py", &[], topic, records)
}

/// `records` through `scripts/testdata/<script>` (`connect_avro.py`'s
/// protocol: JSON lines in, base64 key/value or an error per line out).
pub(crate) fn serialize(
    root: &Path,
    script: &str,
    args: &[&str],
    topic: &str,
    records: &[Record],
) -> Vec<Result<Record, String>> {
    let json = |bytes: &Option<Vec<u8>>| match bytes {
        Some(b) => serde_json::from_slice::<serde_json::Value>(b).unwrap_or_default(),
        None => serde_json::Value::Null,
    };
    let mut input = String::new();
    for r in records {
        let line =
            serde_json::json!({"topic": topic, "key": json(&r.key), "value": json(&r.value)});
        input.push_str(&line.to_string());
        input.push('\n');
    }
    let python = serializers_python(root).unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new(python)
        .arg(root.join("scripts/testdata").join(script))
        .args(["--registry", &registry_url(), "--keep-going"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{script}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{script}: {e}"));
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    writer
        .join()
        .expect("writer")
        .unwrap_or_else(|e| panic!("writing to {script}: {e}"));
    let bytes = |v: &serde_json::Value| v.as_str().map(|s| BASE64.decode(s).expect("base64"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            match v["error"].as_str() {
                Some(e) => Err(e.to_owned()),
                None => Ok(Record {
                    key: bytes(&v["key"]),
                    value: bytes(&v["value"]),
                }),
            }
        })
        .collect()
}

/// [`try_to_avro`] of records that all fit their schemas.
pub fn to_avro(root: &Path, topic: &str, records: &[Record]) -> Vec<Record> {
    try_to_avro(root, topic, records)
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("connect_avro.py: {e}")))
        .collect()
}
