//! `examples/avro-orders` end to end: under the real Lambda emulator (`cargo lambda watch`),
//! with the real Apicurio Registry (`scripts/registry.sh`), on Avro orders written by
//! confluent-kafka's own `AvroSerializer` to the real broker and read back byte for byte; the
//! event carries them in both forms a function meets: the producer's bytes (registry header
//! first) and `SOURCE` format (header off, schema metadata on).

use kafka_lambda_events::{DataFormat, KafkaRecord, SchemaMetadata};
use kafka_lambda_tests::{Emulator, new_topic, produce_through_registry, read_topic, services};
use serde_json::json;
use std::time::Duration;

const FUNCTION: &str = "avro-orders";

#[test]
fn orders_decode_from_the_producers_bytes_and_from_source_format_and_an_unknown_schema_fails_alone()
{
    let topic = new_topic("avro-orders", 1);
    let schema = std::fs::read_to_string(
        kafka_lambda_tests::repo_root().join("examples/avro-orders/orders.avsc"),
    )
    .unwrap();
    let produced = produce_through_registry(&json!({
        "topic": topic, "format": "avro", "schema": schema,
        "records": [
            {"key": "1", "value": {"id": 1, "status": "PAID", "total_cents": 1500, "note": "gift"}},
            {"key": "2", "value": {"id": 2, "status": "NEW", "total_cents": 250, "note": null}},
            {"key": "3", "value": {"id": 3, "status": "PAID", "total_cents": 100, "note": null}},
        ],
    }));
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
    let mut unknown = bytes(0);
    unknown[1..5].copy_from_slice(&987_654_u32.to_be_bytes());

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
            "batchItemFailures": [{"itemIdentifier": {"topic-partition": format!("{topic}-0"), "offset": 3}}],
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
