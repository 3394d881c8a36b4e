//! `examples/avro-orders` end to end: under the real Lambda emulator (`cargo lambda watch`),
//! with the real Apicurio Registry (`scripts/registry.sh`), on Avro orders written by
//! confluent-kafka's own `AvroSerializer` to the real broker and read back byte for byte; the
//! event carries them in both forms a function meets: the producer's bytes (registry header
//! first) and `SOURCE` format (header off, schema metadata on); and behind the real poller
//! reading those bytes from the broker, with the function behind `cargo lambda watch` and behind
//! AWS's Runtime Interface Emulator alike (`kafka_lambda_tests::FunctionHost`).

use kafka_lambda_events::{DataFormat, KafkaRecord, SchemaMetadata};
use kafka_lambda_tests::{
    Emulator, FunctionHost, HostKind, Poller, new_topic, produce_all, produce_through_registry,
    read_topic, services, wait_until,
};
use rdkafka::producer::BaseRecord;
use serde_json::{Value, json};
use std::time::Duration;

const FUNCTION: &str = "avro-orders";

/// The `Order` schema of the example.
fn orders_schema() -> String {
    std::fs::read_to_string(
        kafka_lambda_tests::repo_root().join("examples/avro-orders/orders.avsc"),
    )
    .expect("examples/avro-orders/orders.avsc")
}

/// Produces three orders (ids 1 to 3: PAID 1500, NEW 250, PAID 100) to partition 0 of `topic`
/// through the registry, with confluent-kafka's `AvroSerializer`; what produce.py printed.
fn produce_orders(topic: &str) -> Value {
    produce_through_registry(&json!({
        "topic": topic, "format": "avro", "schema": orders_schema(),
        "records": [
            {"key": "1", "value": {"id": 1, "status": "PAID", "total_cents": 1500, "note": "gift"}},
            {"key": "2", "value": {"id": 2, "status": "NEW", "total_cents": 250, "note": null}},
            {"key": "3", "value": {"id": 3, "status": "PAID", "total_cents": 100, "note": null}},
        ],
    }))
}

/// `bytes` (a value the serializer wrote) with a schema id the registry does not have.
fn with_unknown_schema_id(bytes: &[u8]) -> Vec<u8> {
    let mut unknown = bytes.to_vec();
    unknown[1..5].copy_from_slice(&987_654_u32.to_be_bytes());
    unknown
}

#[test]
fn orders_decode_from_the_producers_bytes_and_from_source_format_and_an_unknown_schema_fails_alone()
{
    let topic = new_topic("avro-orders", 1);
    let produced = produce_orders(&topic);
    let id = produced["records"][0]["value_schema_id"].to_string();
    let written = read_topic(&topic, 3, Duration::from_secs(60));
    let bytes = |i: usize| written[i].value.clone().unwrap();
    let record =
        |offset: i64, value: Vec<u8>| KafkaRecord::new(&topic, 0, offset).with_value(value);
    let mut source = record(2, bytes(2)[5..].to_vec());
    source.value_schema_metadata = Some(SchemaMetadata {
        data_format: DataFormat::Avro,
        schema_id: id,
    });
    let unknown = with_unknown_schema_id(&bytes(0));

    let registry = services().registries().confluent_url.clone();
    let emulator = Emulator::start(
        FUNCTION,
        &["avro-orders"],
        &[("SCHEMA_REGISTRY_URL", registry.as_str())],
    );
    let response = emulator.invoke(
        FUNCTION,
        kafka_lambda_tests::msk_event(
            "orders",
            "eu-west-1",
            [
                record(0, bytes(0)),
                record(1, bytes(1)),
                source,
                record(3, unknown),
            ],
        ),
    );
    assert_eq!(
        response.expect_success(),
        json!({
            "batchItemFailures": [{"itemIdentifier": {"partition": format!("{topic}-0"), "offset": 3}}],
            "orders": 3,
            "byStatus": {
                "NEW": {"orders": 1, "totalCents": 250},
                "PAID": {"orders": 2, "totalCents": 1600},
            },
        })
    );
    assert!(
        emulator.log_text().contains("SCHEMA_NOT_FOUND"),
        "the unknown schema is logged by name"
    );
}

#[test]
fn the_poller_delivers_the_producers_bytes_and_dead_letters_an_unknown_schema() {
    orders_through_the_poller(HostKind::CargoLambdaWatch);
}

#[test]
fn the_poller_delivers_the_producers_bytes_and_dead_letters_an_unknown_schema_behind_the_runtime_interface_emulator()
 {
    orders_through_the_poller(HostKind::RuntimeInterfaceEmulator);
}

/// The poller reads the serializer's bytes (no `[mapping.schema_registry]`: the function looks
/// the schema up itself) and invokes avro-orders behind `kind` of host; the record whose schema
/// the registry lacks is reported failed, retried, then dead-lettered, alone.
fn orders_through_the_poller(kind: HostKind) {
    let topic = new_topic("avro-orders-poller", 1);
    let dead_letters = new_topic("avro-orders-poller-dlq", 1);
    produce_orders(&topic);
    let written = read_topic(&topic, 3, Duration::from_secs(60));
    let unknown = with_unknown_schema_id(written[0].value.as_deref().unwrap_or_default());
    produce_all(
        &[],
        [BaseRecord::<str, _>::to(&topic)
            .partition(0)
            .key("4")
            .payload(&unknown)],
    );

    let registry = services().registries().confluent_url.clone();
    let host = kind.start(
        "avro-orders-poller",
        FUNCTION,
        &[("SCHEMA_REGISTRY_URL", registry.as_str())],
    );
    let config = host.mapping_config(
        FUNCTION,
        &topic,
        &format!(
            "starting_position = \"TRIM_HORIZON\"\n\
             batching_window_ms = 200\n\
             report_batch_item_failures = true\n\
             max_retry_attempts = 1\n\
             retry_backoff_base_ms = 100\n\
             retry_backoff_max_ms = 500\n\
             on_failure = \"kafka://{dead_letters}\""
        ),
    );
    let mut poller = Poller::start("avro-orders", &config);

    let dead = read_topic(&dead_letters, 1, Duration::from_secs(120));
    assert_eq!(
        dead.len(),
        1,
        "{dead:?}; poller log:\n{}\n{kind:?} log:\n{}",
        poller.log(),
        host.log_text()
    );
    assert_eq!(dead[0].value.as_deref(), Some(&unknown[..]));
    assert_eq!(
        dead[0].header("kafka-lambda-source-offset").as_deref(),
        Some("3")
    );
    assert_eq!(
        dead[0].header("kafka-lambda-function").as_deref(),
        Some(host.function_name(FUNCTION))
    );
    // Every order decoded once: the retries resend the failed record alone.
    wait_until(
        Duration::from_secs(10),
        "the function logs its summaries",
        || orders_summed(&host) == 3,
    );
    poller.stop();
    assert!(host.log_text().contains("SCHEMA_NOT_FOUND"));
}

/// The orders of every summary the function logged (`orders summed orders=N`), added up.
fn orders_summed(host: &FunctionHost) -> u64 {
    let log = host.log_text();
    // The runtime's subscriber colours its fields: drop the escape sequences.
    let mut plain = String::with_capacity(log.len());
    let mut in_escape = false;
    for c in log.chars() {
        match (in_escape, c) {
            (false, '\u{1b}') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, c) => plain.push(c),
        }
    }
    plain
        .lines()
        .filter_map(|line| {
            line.split_once("orders summed")?
                .1
                .split_once("orders=")?
                .1
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}
