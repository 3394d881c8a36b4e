//! `[mapping.schema_registry]` against real registries: Apicurio Registry's Confluent-compatible
//! API and moto's AWS Glue Schema Registry API (`scripts/registry.sh`), with records written by
//! confluent-kafka's own serializers (`scripts/registry/produce.py`), the real broker, the real
//! poller binary and `test-recorder` under `cargo lambda watch`. Only the corrupt and
//! unknown-id records are written by hand: no serializer writes them.

// Test helpers outside #[test] functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used)]

use kafka_lambda_tests::{
    FAST_RETRIES, OwnCa, Poller, RegistryAccess, RegistryFront, Relay, Seen, free_port, group_name,
    http_get, new_topic, produce_all, produce_through_registry, read_topic, recorder_config,
    secret_file, seen, services, unique_dir, wait_for_seen, wait_until, with_telemetry,
};
use rdkafka::producer::BaseRecord;
use serde_json::{Value, json};
use std::net::TcpListener;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

const USER_V1: &str = r#"{"type": "record", "name": "User", "namespace": "kl.test", "fields": [
    {"name": "id", "type": "long"},
    {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["ok", "bad"]}},
    {"name": "email", "type": ["null", "string"], "default": null},
    {"name": "tags", "type": {"type": "map", "values": "int"}}
]}"#;

/// `USER_V1` with a field added (with a default): the next version of the subject.
const USER_V2: &str = r#"{"type": "record", "name": "User", "namespace": "kl.test", "fields": [
    {"name": "id", "type": "long"},
    {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["ok", "bad"]}},
    {"name": "email", "type": ["null", "string"], "default": null},
    {"name": "tags", "type": {"type": "map", "values": "int"}},
    {"name": "score", "type": "double", "default": 0.0}
]}"#;

/// A poller configuration for `topic` → `test-recorder` with `registry` as its
/// `[mapping.schema_registry]` table's lines and `settings` in the mapping.
fn config(topic: &str, settings: &str, registry: &str) -> String {
    recorder_config(
        topic,
        &group_name(topic),
        &format!("{settings}\n{FAST_RETRIES}\n[mapping.schema_registry]\n{registry}"),
    )
}

/// Runs a poller of `topic` (mapping `settings`, `[mapping.schema_registry]` lines `registry`)
/// until the function has seen `count` records (`what` names the wait in a timeout), stops it
/// cleanly, and returns what it saw.
fn deliver(topic: &str, settings: &str, registry: &str, count: usize, what: &str) -> Vec<Seen> {
    let mut poller = Poller::start(topic, &config(topic, settings, registry));
    wait_for_seen(TIMEOUT, what, topic, count);
    poller.terminate_cleanly(Duration::from_secs(30));
    seen(topic)
}

/// The Confluent-compatible registry's URL, as a TOML line.
fn confluent_uri() -> String {
    format!("uri = \"{}\"", services().registries().confluent_url)
}

/// The value the function saw, parsed as JSON.
fn json_value(s: &Seen) -> Value {
    serde_json::from_slice(&s.value_bytes().expect("a value"))
        .unwrap_or_else(|e| panic!("the function's value is not JSON ({e}): {}", s.value()))
}

fn value_ids(produced: &Value) -> Vec<String> {
    produced["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value_schema_id"].to_string())
        .collect()
}

#[test]
fn avro_values_of_two_schema_versions_reach_the_function_as_json_with_their_schema_ids() {
    let topic = new_topic("sr-avro", 1);
    let v1 = produce_through_registry(&json!({
        "topic": topic, "format": "avro", "schema": USER_V1,
        "records": [
            {"key": "a", "value": {"id": 1, "status": "ok", "email": "a@x", "tags": {"b": 2, "a": 1}}},
            {"key": "b", "value": {"id": 9007199254740993_i64, "status": "bad", "email": null, "tags": {}}},
        ],
    }));
    let v2 = produce_through_registry(&json!({
        "topic": topic, "format": "avro", "schema": USER_V2,
        "records": [
            {"key": "c", "value": {"id": 3, "status": "ok", "email": null, "tags": {}, "score": 1.5}},
        ],
    }));
    let ids: Vec<String> = value_ids(&v1).into_iter().chain(value_ids(&v2)).collect();
    assert_ne!(ids[0], ids[2], "v2 is a schema of its own: {ids:?}");

    let seen = deliver(
        &topic,
        "batching_window_ms = 500",
        &confluent_uri(),
        3,
        "every record is delivered",
    );
    let values: Vec<Value> = seen.iter().map(json_value).collect();
    assert_eq!(
        values,
        [
            json!({"id": 1, "status": "ok", "email": "a@x", "tags": {"a": 1, "b": 2}}),
            json!({"id": 9007199254740993_i64, "status": "bad", "email": null, "tags": {}}),
            json!({"id": 3, "status": "ok", "email": null, "tags": {}, "score": 1.5}),
        ],
        "each record decoded with the schema that wrote it, as plain JSON"
    );
    for (s, id) in seen.iter().zip(&ids) {
        assert_eq!(
            s.0["valueSchemaMetadata"],
            json!({"dataFormat": "AVRO", "schemaId": id}),
            "{:?}",
            s.0
        );
        assert_eq!(
            s.0["keySchemaMetadata"],
            Value::Null,
            "the key is not in schema_validation"
        );
    }
    assert_eq!(
        seen[0].key_bytes().unwrap(),
        b"a",
        "the key is passed on as read"
    );
}

const ORDER_PROTO: &str = r#"syntax = "proto3";
package shop;
import "common.proto";
message Other { string x = 1; }
message Order {
  int64 id = 1;
  common.Money total = 2;
  message Line { string sku = 1; int32 qty = 2; bytes tag = 3; }
}
"#;
const COMMON_PROTO: &str =
    "syntax = \"proto3\";\npackage common;\nmessage Money { int64 cents = 1; }\n";
const KEY_PROTO: &str =
    "syntax = \"proto3\";\npackage keys;\nmessage OrderKey { string id = 1; }\n";

/// Produces two `shop.Order.Line` values (message indexes [1, 0]) with `keys.OrderKey` keys.
fn produce_order_lines(topic: &str) -> Value {
    produce_through_registry(&json!({
        "topic": topic, "format": "protobuf", "schema": ORDER_PROTO,
        "message": "shop.Order.Line", "imports": {"common.proto": COMMON_PROTO},
        "key_format": "protobuf", "key_schema": KEY_PROTO, "key_message": "keys.OrderKey",
        "records": [
            {"key": {"id": "o-1"}, "value": {"sku": "abc", "qty": 2, "tag": "AQI="}},
            {"key": {"id": "o-2"}, "value": {"sku": "xyz", "qty": 0}},
        ],
    }))
}

#[test]
fn protobuf_keys_and_nested_message_values_become_canonical_json() {
    let topic = new_topic("sr-proto-json", 1);
    let produced = produce_order_lines(&topic);
    let registry = format!(
        "{}\nschema_validation = [\"KEY\", \"VALUE\"]",
        confluent_uri()
    );
    let seen = deliver(&topic, "", &registry, 2, "both records are delivered");
    assert_eq!(
        json_value(&seen[0]),
        json!({"sku": "abc", "qty": 2, "tag": "AQI="})
    );
    assert_eq!(
        json_value(&seen[1]),
        json!({"sku": "xyz"}),
        "fields at their default value are left out, as proto3 JSON does"
    );
    let key: Value = serde_json::from_slice(&seen[0].key_bytes().unwrap()).unwrap();
    assert_eq!(key, json!({"id": "o-1"}));
    let value_id = produced["records"][0]["value_schema_id"].to_string();
    assert_eq!(
        seen[0].0["valueSchemaMetadata"],
        json!({"dataFormat": "PROTOBUF", "schemaId": value_id})
    );
    assert_eq!(seen[0].0["keySchemaMetadata"]["dataFormat"], "PROTOBUF");
}

#[test]
fn in_source_format_the_function_gets_the_data_without_the_registry_header() {
    let topic = new_topic("sr-proto-source", 1);
    produce_order_lines(&topic);
    let written = read_topic(&topic, 2, TIMEOUT);
    let registry = format!(
        "{}\nevent_record_format = \"SOURCE\"\nschema_validation = [\"VALUE\"]",
        confluent_uri()
    );
    let seen = deliver(&topic, "", &registry, 2, "both records are delivered");
    for (s, w) in seen.iter().zip(&written) {
        let value = w.value.as_ref().unwrap();
        assert_eq!(
            s.value_bytes().unwrap(),
            value[5..],
            "the magic byte and schema id are gone; the message indexes stay"
        );
        assert_eq!(
            &value[5..7],
            &[4, 2],
            "message indexes [1, 0]: count 2, then 1 (zigzag)"
        );
        assert_eq!(
            s.key_bytes(),
            w.key,
            "the key, not in schema_validation, is passed on as written"
        );
        assert_eq!(s.0["valueSchemaMetadata"]["dataFormat"], "PROTOBUF");
    }
}

/// Writes `records` (partition 0) as they are, bypassing every serializer.
fn produce_raw(topic: &str, records: &[Vec<u8>]) {
    produce_all(
        &[("enable.idempotence", "true")],
        records.iter().map(|v| {
            BaseRecord::<(), [u8]>::to(topic)
                .partition(0)
                .payload(v.as_slice())
        }),
    );
}

/// Without an `on_failure` destination, a record that does not decode is skipped and logged with
/// its error type, and the partition goes on.
#[test]
fn without_a_destination_an_undecodable_record_is_skipped_and_logged_and_the_partition_goes_on() {
    let topic = new_topic("sr-skip", 1);
    produce_raw(&topic, &[b"no registry header".to_vec()]);
    produce_one_user_to(&topic);
    let mut poller = Poller::start(&topic, &config(&topic, "", &confluent_uri()));
    wait_for_seen(TIMEOUT, "the good record is delivered", &topic, 1);
    poller.terminate_cleanly(Duration::from_secs(30));
    assert_eq!(json_value(&seen(&topic)[0])["id"], 1);
    let log = poller.log();
    assert!(
        log.contains("the record does not decode through the schema registry")
            && log.contains("DESERIALIZATION_ERROR")
            && log.contains("no on_failure destination is configured"),
        "{log}"
    );
}

#[test]
fn undecodable_records_and_unknown_schemas_are_dead_lettered_with_their_error_type_and_the_partition_goes_on()
 {
    let topic = new_topic("sr-bad", 1);
    let dlq = new_topic("sr-bad-dlq", 1);
    let schema = json!({
        "$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
        "properties": {"n": {"type": "integer"}}, "required": ["n"],
    });
    let first = produce_through_registry(&json!({
        "topic": topic, "format": "jsonschema", "schema": schema,
        "records": [{"key": "k", "value": {"n": 1}}],
    }));
    let id: u32 = first["records"][0]["value_schema_id"]
        .as_u64()
        .unwrap()
        .try_into()
        .unwrap();
    let framed = |id: u32, data: &[u8]| {
        let mut v = vec![0];
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(data);
        v
    };
    produce_raw(
        &topic,
        &[
            framed(id, br#"{"n": "not a number"}"#),
            framed(id, b"{not json"),
            framed(987_654, br#"{"n": 2}"#),
            b"no registry header".to_vec(),
        ],
    );
    produce_through_registry(&json!({
        "topic": topic, "format": "jsonschema", "schema": schema,
        "records": [{"key": "k", "value": {"n": 3}}],
    }));
    let mut poller = Poller::start(
        &topic,
        &config(
            &topic,
            &format!("on_failure = \"kafka://{dlq}\""),
            &confluent_uri(),
        ),
    );
    let dead = read_topic(&dlq, 4, TIMEOUT);
    wait_for_seen(TIMEOUT, "the good records are delivered", &topic, 2);
    poller.terminate_cleanly(Duration::from_secs(30));
    let types: Vec<Option<String>> = dead
        .iter()
        .map(|r| r.header("kafka-lambda-error-type"))
        .collect();
    assert_eq!(
        types,
        [
            Some("DESERIALIZATION_ERROR".to_owned()),
            Some("DESERIALIZATION_ERROR".to_owned()),
            Some("SCHEMA_NOT_FOUND".to_owned()),
            Some("DESERIALIZATION_ERROR".to_owned()),
        ]
    );
    assert_eq!(
        dead[2].value.as_deref(),
        Some(framed(987_654, br#"{"n": 2}"#).as_slice()),
        "a dead letter holds the record as read"
    );
    let message = dead[0].header("kafka-lambda-error-message").unwrap();
    assert!(message.contains("/n"), "names the place: {message}");
    let values: Vec<Value> = seen(&topic).iter().map(json_value).collect();
    assert_eq!(values, [json!({"n": 1}), json!({"n": 3})]);
}

#[test]
fn a_filter_on_a_decoded_avro_field_selects_the_records_invoked() {
    let topic = new_topic("sr-filter", 1);
    produce_through_registry(&json!({
        "topic": topic, "format": "avro", "schema": USER_V1,
        "records": [
            {"value": {"id": 1, "status": "ok", "email": null, "tags": {}}},
            {"value": {"id": 2, "status": "bad", "email": null, "tags": {}}},
            {"value": {"id": 3, "status": "ok", "email": "c@x", "tags": {}}},
        ],
    }));
    let filter = r#"filters = ['{"value": {"status": ["ok"]}}']"#;
    let ids: Vec<i64> = deliver(
        &topic,
        filter,
        &confluent_uri(),
        2,
        "the matching records are delivered",
    )
    .iter()
    .map(|s| json_value(s)["id"].as_i64().unwrap())
    .collect();
    assert_eq!(ids, [1, 3]);
}

/// The Glue registry `registry` (moto), as `[mapping.schema_registry]` lines.
fn glue_registry(registry: &str) -> String {
    let glue = &services().registries().glue_endpoint;
    format!(
        "uri = \"arn:aws:glue:us-east-1:123456789012:registry/{registry}\"\nglue_endpoint = \"{glue}\""
    )
}

/// The Glue registry of the Glue tests, the same in every run: moto keeps at most
/// 10 registries (its MAX_REGISTRIES_ALLOWED; CreateRegistry then answers
/// ResourceNumberLimitExceededException) for as long as it runs, across test runs, so these
/// tests make none of their own. Their schemas are their topics (produce.py's default schema
/// name), which are new in every run: nothing of one test or run is another's.
const GLUE_SHARED_REGISTRY: &str = "kl-glue-tests";

/// Glue Avro as AWS's own Java serializer writes it (scripts/registry/glue-serde, run by
/// produce.py: a GenericRecord from Avro's JSON decoder), registering the schema itself, without
/// and with zlib.
#[test]
fn glue_records_compressed_or_not_are_decoded_with_their_schema_version_id() {
    let topic = new_topic("sr-glue", 1);
    let registry = GLUE_SHARED_REGISTRY;
    let schema = r#"{"type": "record", "name": "Reading", "fields": [
        {"name": "sensor", "type": "string"}, {"name": "value", "type": "double"}]}"#;
    let mut versions = Vec::new();
    for (compression, sensor) in [("none", "s1"), ("zlib", "s2")] {
        let produced = produce_through_registry(&json!({
            "topic": topic, "registry": "glue", "format": "avro", "schema": schema,
            "glue": {"registry_name": registry, "compression": compression},
            "records": [{"key": sensor, "value": {"sensor": sensor, "value": 21.5}}],
        }));
        versions.push(produced["schema_version_id"].as_str().unwrap().to_owned());
    }
    let seen = deliver(
        &topic,
        "",
        &glue_registry(registry),
        2,
        "both records are delivered",
    );
    assert_eq!(json_value(&seen[0]), json!({"sensor": "s1", "value": 21.5}));
    assert_eq!(json_value(&seen[1]), json!({"sensor": "s2", "value": 21.5}));
    for (s, version) in seen.iter().zip(&versions) {
        assert_eq!(
            s.0["valueSchemaMetadata"],
            json!({"dataFormat": "AVRO", "schemaId": version})
        );
    }
}

/// Glue JSON Schema as AWS's own Java serializer writes it (scripts/registry/glue-serde, run by
/// produce.py: `JsonDataWithSchema`, which it validates against the schema), registering the
/// schema itself, without and with zlib.
#[test]
fn glue_json_schema_records_compressed_or_not_are_decoded_with_their_schema_version_id() {
    let topic = new_topic("sr-glue-json", 1);
    let registry = GLUE_SHARED_REGISTRY;
    let schema = json!({
        "$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
        "properties": {
            "sensor": {"type": "string"}, "value": {"type": "number"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["sensor", "value"],
    });
    let cases = [
        (
            "none",
            json!({"sensor": "s1", "value": 21.5, "tags": ["a", "b"]}),
        ),
        ("zlib", json!({"sensor": "s2", "value": -3})),
    ];
    let mut versions = Vec::new();
    for (compression, value) in &cases {
        let produced = produce_through_registry(&json!({
            "topic": topic, "registry": "glue", "format": "jsonschema", "schema": schema,
            "glue": {"registry_name": registry, "compression": compression},
            "records": [{"key": value["sensor"], "value": value}],
        }));
        versions.push(produced["schema_version_id"].as_str().unwrap().to_owned());
    }
    let seen = deliver(
        &topic,
        "",
        &glue_registry(registry),
        cases.len(),
        "both records are delivered",
    );
    for ((s, version), (_, value)) in seen.iter().zip(&versions).zip(&cases) {
        assert_eq!(&json_value(s), value);
        assert_eq!(
            s.0["valueSchemaMetadata"],
            json!({"dataFormat": "JSON", "schemaId": version})
        );
    }
}

/// A Glue Protobuf schema: Glue keeps no references, so it imports only a well-known type.
const GLUE_ORDER_PROTO: &str = r#"syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
message Other { string x = 1; }
message Order {
  int64 id = 1;
  google.protobuf.Timestamp at = 2;
  message Line { string sku = 1; int32 qty = 2; bytes tag = 3; }
}
"#;

/// Glue Protobuf as AWS's own Java serializer writes it (scripts/registry/glue-serde, run by
/// produce.py), registering the schema itself: the nested `shop.Order.Line` (message index 1 in
/// Glue's numbering) without and with zlib, and `shop.Order` (index 0) with a well-known type.
#[test]
fn glue_protobuf_written_by_aws_own_serializer_is_decoded() {
    let topic = new_topic("sr-glue-proto", 1);
    // The shared registry: moto keeps at most 10 (see GLUE_SHARED_REGISTRY); the schema is named
    // after the topic, new every run.
    let registry = GLUE_SHARED_REGISTRY;
    let cases = [
        (
            "none",
            "shop.Order.Line",
            json!({"sku": "abc", "qty": 2, "tag": "AQI="}),
        ),
        (
            "zlib",
            "shop.Order.Line",
            json!({"sku": "xyz", "qty": 3, "tag": ""}),
        ),
        (
            "none",
            "shop.Order",
            json!({"id": "7", "at": "2026-12-03T08:00:00Z"}),
        ),
    ];
    let mut versions = Vec::new();
    for (compression, message, value) in &cases {
        let produced = produce_through_registry(&json!({
            "topic": topic, "registry": "glue", "format": "protobuf",
            "schema": GLUE_ORDER_PROTO, "message": message,
            "glue": {"registry_name": registry, "compression": compression},
            "records": [{"key": message, "value": value}],
        }));
        versions.push(produced["schema_version_id"].as_str().unwrap().to_owned());
    }
    let seen = deliver(
        &topic,
        "",
        &glue_registry(registry),
        cases.len(),
        "every record is delivered",
    );
    for ((s, version), (_, message, value)) in seen.iter().zip(&versions).zip(&cases) {
        // Canonical proto3 JSON leaves out fields at their default (the empty `tag`).
        let mut expected = value.clone();
        expected.as_object_mut().unwrap().retain(|_, v| v != "");
        assert_eq!(json_value(s), expected, "{message}");
        assert_eq!(
            s.0["valueSchemaMetadata"],
            json!({"dataFormat": "PROTOBUF", "schemaId": version})
        );
    }
}

#[test]
fn a_registry_that_is_down_holds_the_partition_until_it_is_up_and_loses_nothing() {
    let topic = new_topic("sr-down", 1);
    produce_through_registry(&json!({
        "topic": topic, "format": "avro", "schema": USER_V1,
        "records": (0..5).map(|i| json!({"value": {"id": i, "status": "ok", "email": null, "tags": {}}})).collect::<Vec<_>>(),
    }));
    let registry_url = &services().registries().confluent_url;
    let (authority, path) = registry_url
        .strip_prefix("http://")
        .unwrap()
        .split_once('/')
        .unwrap();
    // Nothing listens on this port yet: the registry is down.
    let port = free_port();
    let telemetry = free_port();
    let mut poller = Poller::start(
        &topic,
        &with_telemetry(
            &config(
                &topic,
                "",
                &format!("uri = \"http://127.0.0.1:{port}/{path}\"\nrequest_timeout_ms = 500"),
            ),
            telemetry,
            None,
        ),
    );
    assert_waiting_for_registry(&poller, telemetry);
    assert!(
        seen(&topic).is_empty(),
        "no record is invoked, or given up, while the registry is down"
    );
    Relay::serve(TcpListener::bind(("127.0.0.1", port)).unwrap(), authority);
    wait_for_seen(
        TIMEOUT,
        "every record is delivered once it is up",
        &topic,
        5,
    );
    wait_until(TIMEOUT, "ready again", || {
        http_get(telemetry, "/readyz").0 == 200
    });
    poller.terminate_cleanly(Duration::from_secs(30));
    let ids: Vec<i64> = seen(&topic)
        .iter()
        .map(|s| json_value(s)["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [0, 1, 2, 3, 4], "in order, none lost, none twice");
}

/// Waits until `poller` logs that its partition waits for the registry, then checks that
/// `/readyz` on `telemetry` says so.
fn assert_waiting_for_registry(poller: &Poller, telemetry: u16) {
    wait_until(TIMEOUT, "the poller waits for the registry", || {
        poller
            .log()
            .contains("the schema registry cannot be asked; the partition waits for it")
    });
    let (status, body) = http_get(telemetry, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("schema registry"), "{body}");
}

/// One Avro record on a new topic of its own.
fn produce_one_user(prefix: &str) -> String {
    let topic = new_topic(prefix, 1);
    produce_one_user_to(&topic);
    topic
}

/// One Avro record (`id` 1) on `topic`.
fn produce_one_user_to(topic: &str) {
    produce_through_registry(&json!({
        "topic": topic, "format": "avro", "schema": USER_V1,
        "records": [{"value": {"id": 1, "status": "ok", "email": null, "tags": {}}}],
    }));
}

/// The registry behind a stand-in front that checks credentials as Confluent Schema Registry
/// does (`RegistryFront`: Apicurio here authenticates only through OIDC), over TLS with a
/// certificate from the front's own CA, which the poller trusts through `server_root_ca`.
#[test]
fn a_registry_behind_basic_auth_a_bearer_token_or_mutual_tls_is_read_trusting_its_private_ca() {
    let dir = unique_dir("sr-access");
    let client_ca = OwnCa::create(&dir, "sr-client-ca");
    let (cert, key) = client_ca.client_cert(&dir, "kafka-lambda-poller", "poller");
    let upstream = &services().registries().confluent_url;
    let basic = || RegistryAccess::Basic {
        username: "poller".to_owned(),
        password: "s3cret pass".to_owned(),
    };
    let client_certificate = format!(
        "client_certificate = \"{}\"\nclient_key = \"{}\"",
        cert.display(),
        key.display()
    );
    let cases = [
        (
            "basic",
            basic(),
            format!(
                "username = \"poller\"\npassword = {}",
                secret_file("s3cret pass")
            ),
        ),
        (
            "bearer",
            RegistryAccess::Bearer("token-123".to_owned()),
            format!("bearer_token = {}", secret_file("token-123")),
        ),
        (
            "mtls",
            RegistryAccess::ClientCertificate(client_ca.pem.clone()),
            client_certificate,
        ),
    ];
    for (name, access, settings) in cases.clone() {
        let front_dir = dir.join(name);
        std::fs::create_dir_all(&front_dir).unwrap();
        let front = RegistryFront::start(&front_dir, upstream, access);
        let topic = produce_one_user(&format!("sr-{name}"));
        let registry = format!(
            "uri = \"{}\"\nserver_root_ca = \"{}\"\n{settings}",
            front.url,
            front.ca_file.display()
        );
        assert_eq!(
            json_value(&deliver(&topic, "", &registry, 1, name)[0]),
            json!({"id": 1, "status": "ok", "email": null, "tags": {}}),
            "{name}"
        );
        assert!(
            front.relayed() >= 1,
            "{name}: the schema came through the front"
        );
        assert_eq!(front.refused(), 0, "{name}: nothing was refused");
    }

    // Refused: a wrong password, and no client certificate where one is required. The
    // registry, not the record, is at fault: the partition waits, and a poller of the same
    // group given the right credentials then delivers the record, which was not given up.
    let refusals = [
        (
            "wrong-password",
            basic(),
            format!("username = \"poller\"\npassword = {}", secret_file("wrong")),
            cases[0].2.clone(),
        ),
        (
            "no-certificate",
            RegistryAccess::ClientCertificate(client_ca.pem.clone()),
            String::new(),
            cases[2].2.clone(),
        ),
    ];
    for (name, access, wrong, right) in refusals {
        let front_dir = dir.join(name);
        std::fs::create_dir_all(&front_dir).unwrap();
        let front = RegistryFront::start(&front_dir, upstream, access);
        let topic = produce_one_user(&format!("sr-{name}"));
        let telemetry = free_port();
        let registry = |settings: &str| {
            format!(
                "uri = \"{}\"\nserver_root_ca = \"{}\"\nrequest_timeout_ms = 2000\n{settings}",
                front.url,
                front.ca_file.display()
            )
        };
        let mut poller = Poller::start(
            &topic,
            &with_telemetry(&config(&topic, "", &registry(&wrong)), telemetry, None),
        );
        assert_waiting_for_registry(&poller, telemetry);
        assert!(front.refused() >= 1, "{name}: the front refused the poller");
        assert_eq!(front.relayed(), 0, "{name}");
        poller.terminate_cleanly(Duration::from_secs(30));
        assert!(seen(&topic).is_empty(), "{name}: nothing was invoked");

        let delivered = deliver(
            &topic,
            "",
            &registry(&right),
            1,
            "the record waited for the registry",
        );
        assert_eq!(json_value(&delivered[0])["id"], 1, "{name}");
    }
}

/// What one format's records are produced from, and the JSON the function must see of them.
struct FormatCase {
    name: &'static str,
    spec: Value,
    key_json: Value,
    value_json: Value,
    data_format: &'static str,
}

fn format_cases() -> Vec<FormatCase> {
    let avro_key = r#"{"type": "record", "name": "Key", "namespace": "kl.test", "fields": [{"name": "id", "type": "long"}]}"#;
    let json_schema = |props: Value, required: &str| {
        json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
               "properties": props, "required": [required]})
    };
    vec![
        FormatCase {
            name: "avro",
            spec: json!({
                "format": "avro", "schema": USER_V1, "key_format": "avro", "key_schema": avro_key,
                "records": [{"key": {"id": 5}, "value": {"id": 5, "status": "bad", "email": null, "tags": {"x": 1}}}],
            }),
            key_json: json!({"id": 5}),
            value_json: json!({"id": 5, "status": "bad", "email": null, "tags": {"x": 1}}),
            data_format: "AVRO",
        },
        FormatCase {
            name: "protobuf",
            spec: json!({
                "format": "protobuf", "schema": ORDER_PROTO, "message": "shop.Order",
                "imports": {"common.proto": COMMON_PROTO},
                "key_format": "protobuf", "key_schema": KEY_PROTO, "key_message": "keys.OrderKey",
                "records": [{"key": {"id": "o-5"}, "value": {"id": 5, "total": {"cents": 250}}}],
            }),
            key_json: json!({"id": "o-5"}),
            value_json: json!({"id": "5", "total": {"cents": "250"}}),
            data_format: "PROTOBUF",
        },
        FormatCase {
            name: "jsonschema",
            spec: json!({
                "format": "jsonschema", "schema": json_schema(json!({"n": {"type": "integer"}}), "n"),
                "key_format": "jsonschema", "key_schema": json_schema(json!({"k": {"type": "string"}}), "k"),
                "records": [{"key": {"k": "five"}, "value": {"n": 5}}],
            }),
            key_json: json!({"k": "five"}),
            value_json: json!({"n": 5}),
            data_format: "JSON",
        },
    ]
}

#[test]
fn keys_and_values_of_every_format_reach_the_function_in_both_record_formats() {
    for case in format_cases() {
        for record_format in ["JSON", "SOURCE"] {
            let what = format!("{} in {record_format}", case.name);
            let topic = new_topic(
                &format!("sr-{}-{record_format}", case.name).to_lowercase(),
                1,
            );
            let mut spec = case.spec.clone();
            spec["topic"] = json!(topic);
            produce_through_registry(&spec);
            let written = read_topic(&topic, 1, TIMEOUT);
            let registry = format!(
                "{}\nevent_record_format = \"{record_format}\"\nschema_validation = [\"KEY\", \"VALUE\"]",
                confluent_uri()
            );
            let s = &deliver(&topic, "", &registry, 1, &what)[0];
            let (key, value) = (s.key_bytes().unwrap(), s.value_bytes().unwrap());
            if record_format == "JSON" {
                let parse = |b: &[u8]| serde_json::from_slice::<Value>(b).unwrap();
                assert_eq!(parse(&key), case.key_json, "{what}: key");
                assert_eq!(parse(&value), case.value_json, "{what}: value");
            } else {
                let (k, v) = (
                    written[0].key.as_ref().unwrap(),
                    written[0].value.as_ref().unwrap(),
                );
                assert_eq!(key, k[5..], "{what}: the key without its header");
                assert_eq!(value, v[5..], "{what}: the value without its header");
            }
            for metadata in ["keySchemaMetadata", "valueSchemaMetadata"] {
                assert_eq!(
                    s.0[metadata]["dataFormat"], case.data_format,
                    "{what}: {metadata}: {:?}",
                    s.0
                );
                assert!(s.0[metadata]["schemaId"].is_string(), "{what}: {:?}", s.0);
            }
        }
    }
}
