//! The schema registries of the services (`scripts/registry.sh`): Apicurio Registry's
//! Confluent-compatible API and moto's AWS Glue Schema Registry API, and records produced
//! through them by confluent-kafka's own serializers (`scripts/registry/produce.py`), never by
//! this project's code, so that what the tests decode is what real producers write.

use crate::{repo_root, services};
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Where the schema registries answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registries {
    /// The Confluent-compatible API's base URL (`KL_SCHEMA_REGISTRY_URL`).
    pub confluent_url: String,
    /// moto's endpoint for the Glue API (`KL_GLUE_ENDPOINT`).
    pub glue_endpoint: String,
    /// The Python of the venv that has confluent-kafka and its serializers
    /// (`KL_REGISTRY_PYTHON`).
    pub python: PathBuf,
}

/// Produces records through a registry with `scripts/registry/produce.py`, whose spec `spec`
/// is (its docstring says every field; `bootstrap`, `registry_url` and the Glue endpoint are
/// filled in when absent). Returns what the script prints: per record its partition, offset
/// and schema ids.
///
/// # Panics
///
/// When the script fails; the panic shows its stderr.
pub fn produce_through_registry(spec: &Value) -> Value {
    let services = services();
    let registries = services.registries();
    let mut spec = spec.clone();
    let object = spec.as_object_mut().expect("the spec is a JSON object");
    object
        .entry("bootstrap")
        .or_insert_with(|| services.kafka_bootstrap_servers().into());
    object
        .entry("registry_url")
        .or_insert_with(|| registries.confluent_url.clone().into());
    if let Some(glue) = object.get_mut("glue").and_then(Value::as_object_mut) {
        glue.entry("endpoint")
            .or_insert_with(|| registries.glue_endpoint.clone().into());
    }
    let mut child = Command::new(&registries.python)
        .arg(repo_root().join("scripts/registry/produce.py"))
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", registries.python.display()));
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(spec.to_string().as_bytes())
        .expect("produce.py reads its spec");
    let output = child.wait_with_output().expect("produce.py runs");
    assert!(
        output.status.success(),
        "produce.py failed ({}):\n{}\nspec: {spec}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "produce.py printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}
