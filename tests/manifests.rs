//! The Kubernetes manifests in `deploy/kubernetes`: every built-in kind
//! validated against the Kubernetes schemas (`kubernetes-validate`,
//! installed by `scripts/services.sh start`), strictly; KEDA's
//! ScaledObject, whose schema is a CRD that tool does not bundle, checked
//! against the Deployment and config it scales.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

use serde_yaml::Value;
use std::path::PathBuf;
use std::process::Command;

fn manifests() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn documents(path: &PathBuf) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

#[test]
fn built_in_kinds_pass_the_kubernetes_schemas() {
    let tool = sinkfleet_testkit::services::kubernetes_validate();
    let out = Command::new(&tool)
        .arg("--strict")
        .args(manifests())
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    // Every built-in resource was checked, not skipped.
    for kind in [
        "configmap/sinkfleet-postgres",
        "deployment/sinkfleet-postgres",
    ] {
        assert!(
            text.contains(&format!("passed for resource {kind}")),
            "{text}"
        );
    }
}

#[test]
fn the_scaled_object_scales_the_worker_deployment_on_its_group_lag() {
    let deployment_file = manifests()
        .into_iter()
        .find(|p| p.ends_with("sinkfleet-postgres.yaml"))
        .unwrap();
    let docs = documents(&deployment_file);
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let config_map = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    let config: Value =
        serde_yaml::from_str(config_map["data"]["config.yaml"].as_str().unwrap()).unwrap();

    let keda = manifests()
        .into_iter()
        .find(|p| p.ends_with("sinkfleet-postgres-keda.yaml"))
        .unwrap();
    let docs = documents(&keda);
    let scaled = docs.iter().find(|d| d["kind"] == "ScaledObject").unwrap();
    assert_eq!(scaled["apiVersion"], "keda.sh/v1alpha1");
    let spec = &scaled["spec"];
    assert_eq!(
        spec["scaleTargetRef"]["name"],
        deployment["metadata"]["name"]
    );
    let (min, max) = (
        spec["minReplicaCount"].as_u64().unwrap(),
        spec["maxReplicaCount"].as_u64().unwrap(),
    );
    assert!(1 <= min && min <= max, "replica bounds {min}..{max}");
    let trigger = &spec["triggers"][0];
    assert_eq!(trigger["type"], "kafka");
    let meta = &trigger["metadata"];
    assert_eq!(meta["consumerGroup"], config["kafka"]["group_id"]);
    assert_eq!(meta["bootstrapServers"], config["kafka"]["brokers"]);
    // KEDA wants its metadata as strings.
    let threshold: u64 = meta["lagThreshold"].as_str().unwrap().parse().unwrap();
    assert!(threshold > 0);
    assert_eq!(meta["limitToPartitionsWithLag"], "true");
}
