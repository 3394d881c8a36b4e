//! The bytes below were written by confluent-kafka's own serializers (`AvroSerializer`,
//! `ProtobufSerializer`, `JSONSerializer`, through `scripts/registry/produce.py` against Apicurio
//! Registry), with the schemas below registered under the ids they carry; the Glue bytes follow
//! aws-glue-schema-registry's encoder (header 3, compression 0, the version UUID, the index).

use super::*;
use crate::testing::msk_event;
use crate::{ProcessOptions, Record, process_records};
use kafka_lambda_events::DataFormat;
use serde::Deserialize;

const ORDER_AVRO: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"},{"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID"]}},{"name":"note","type":["null","string"],"default":null}]}"#;
const ORDER_KEY_AVRO: &str = r#"{"type":"record","name":"OrderKey","namespace":"shop","fields":[{"name":"id","type":"long"}]}"#;
/// `{"id": 7, "status": "PAID", "note": "gift"}` with schema 11.
const ORDER_BYTES: [u8; 13] = [0, 0, 0, 0, 0x0b, 0x0e, 2, 2, 8, b'g', b'i', b'f', b't'];
/// `{"id": 7}` with schema 12.
const ORDER_KEY_BYTES: [u8; 6] = [0, 0, 0, 0, 0x0c, 0x0e];

const LINE_PROTO: &str = "syntax = \"proto3\";\npackage shop;\nmessage Other { string x = 1; }\nmessage Order {\n  int64 id = 1;\n  message Line { string sku = 1; int32 qty = 2; }\n}\n";
/// `shop.Order.Line { sku: "abc", qty: 2 }` (message indexes [1, 0]) with schema 13.
const LINE_BYTES: [u8; 15] = [
    0, 0, 0, 0, 0x0d, 4, 2, 0, 0x0a, 3, b'a', b'b', b'c', 0x10, 2,
];

const N_JSON_SCHEMA: &str = r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"n":{"type":"integer"}},"required":["n"]}"#;
/// `{"n":5}` with schema 14.
const N_BYTES: [u8; 12] = [0, 0, 0, 0, 0x0e, b'{', b'"', b'n', b'"', b':', b'5', b'}'];

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Status {
    New,
    Paid,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Order {
    id: i64,
    status: Status,
    note: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq)]
struct OrderKey {
    id: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Line {
    #[prost(string, tag = "1")]
    sku: String,
    #[prost(int32, tag = "2")]
    qty: i32,
}

#[derive(Debug, Deserialize, PartialEq)]
struct N {
    n: i64,
}

fn known() -> SchemaSource {
    SchemaSource::default()
        .with_schema(SchemaId::Confluent(11), DataFormat::Avro, ORDER_AVRO)
        .and_then(|s| s.with_schema(SchemaId::Confluent(12), DataFormat::Avro, ORDER_KEY_AVRO))
        .and_then(|s| s.with_schema(SchemaId::Confluent(13), DataFormat::Protobuf, LINE_PROTO))
        .and_then(|s| s.with_schema(SchemaId::Confluent(14), DataFormat::Json, N_JSON_SCHEMA))
        .expect("the test schemas compile")
}

/// Decodes the one record of `event` as `T` with the schemas of `source`.
fn decode<T: crate::DecodeValue>(
    source: &SchemaSource,
    record: KafkaRecord,
) -> Result<T, DecodeError> {
    let event = msk_event().record(record).build();
    let prefetched = Arc::new(
        futures::executor::block_on(source.prefetch(&event)).expect("no registry to fail"),
    );
    let raw = event
        .records
        .into_values()
        .next()
        .expect("one record")
        .remove(0);
    prefetched.scope(|| Record::<T>::decode(raw).map(Record::into_value))
}

fn record(value: &[u8]) -> KafkaRecord {
    KafkaRecord::new("orders", 0, 5).with_value(value.to_vec())
}

fn error_type(e: &DecodeError) -> &'static str {
    match e {
        DecodeError::Schema { error_type, .. } => error_type,
        other => panic!("not a schema error: {other}"),
    }
}

#[test]
fn avro_values_and_keys_in_the_confluent_wire_format_decode_with_the_schema_they_name() {
    let Avro(order) = decode::<Avro<Order>>(&known(), record(&ORDER_BYTES)).unwrap();
    assert_eq!(
        order,
        Order {
            id: 7,
            status: Status::Paid,
            note: Some("gift".into())
        }
    );
    let both = decode::<Keyed<Avro<OrderKey>, Avro<Order>>>(
        &known(),
        record(&ORDER_BYTES).with_key(ORDER_KEY_BYTES.to_vec()),
    )
    .unwrap();
    assert_eq!(both.key.0, OrderKey { id: 7 });
    assert_eq!(both.value.0.id, 7);
}

#[test]
fn avro_in_a_source_event_is_read_with_the_schema_its_metadata_names() {
    let mut r = record(&ORDER_BYTES[5..]);
    r.value_schema_metadata = Some(SchemaMetadata {
        data_format: DataFormat::Avro,
        schema_id: "11".into(),
    });
    assert_eq!(
        decode::<Avro<Order>>(&known(), r).unwrap().0.status,
        Status::Paid
    );
}

#[test]
fn avro_without_an_id_is_read_with_the_schema_given_in_code() {
    let source = SchemaSource::default().avro_schema(ORDER_AVRO).unwrap();
    let order = decode::<Avro<Order>>(&source, record(&ORDER_BYTES[5..]))
        .unwrap()
        .0;
    assert_eq!(order.note.as_deref(), Some("gift"));
    let e = decode::<Avro<Order>>(&SchemaSource::default(), record(&ORDER_BYTES[5..])).unwrap_err();
    assert_eq!(error_type(&e), "SCHEMA_NOT_FOUND", "{e}");
}

#[test]
fn an_unknown_id_is_schema_not_found_and_bad_data_a_deserialization_error() {
    let mut unknown = ORDER_BYTES;
    unknown[4] = 99;
    let e = decode::<Avro<Order>>(&known(), record(&unknown)).unwrap_err();
    assert_eq!(error_type(&e), "SCHEMA_NOT_FOUND", "{e}");
    assert!(
        e.to_string().contains("record orders-0@5") || e.to_string().contains("orders"),
        "{e}"
    );
    let e = decode::<Avro<Order>>(&known(), record(&ORDER_BYTES[..8])).unwrap_err();
    assert_eq!(error_type(&e), "DESERIALIZATION_ERROR", "{e}");
    let e = decode::<Avro<Order>>(&known(), record(&LINE_BYTES)).unwrap_err();
    assert!(e.to_string().contains("not Avro"), "{e}");
}

#[test]
fn protobuf_messages_decode_from_confluent_glue_and_source_bytes_alike() {
    let expected = Line {
        sku: "abc".into(),
        qty: 2,
    };
    // Confluent: the header, then message indexes [1, 0].
    assert_eq!(
        decode::<Protobuf<Line>>(&known(), record(&LINE_BYTES))
            .unwrap()
            .0,
        expected
    );
    // SOURCE format from a Confluent registry: the indexes stay.
    let mut source = record(&LINE_BYTES[5..]);
    source.value_schema_metadata = Some(SchemaMetadata {
        data_format: DataFormat::Protobuf,
        schema_id: "13".into(),
    });
    assert_eq!(
        decode::<Protobuf<Line>>(&known(), source).unwrap().0,
        expected
    );
    // Glue: header 3, no compression, the version id, then Glue's index (Line is 1 of Order,
    // Order.Line, Other sorted).
    let mut glue = vec![3, 0];
    glue.extend_from_slice(uuid::Uuid::from_u128(0x1234).as_bytes());
    glue.push(1);
    glue.extend_from_slice(&LINE_BYTES[8..]);
    assert_eq!(
        decode::<Protobuf<Line>>(&SchemaSource::default(), record(&glue))
            .unwrap()
            .0,
        expected,
        "the message type is the schema: no registry needed"
    );
    // Bare protobuf.
    assert_eq!(
        decode::<Protobuf<Line>>(&SchemaSource::default(), record(&LINE_BYTES[8..]))
            .unwrap()
            .0,
        expected
    );
    let e = decode::<Protobuf<Line>>(&known(), record(&LINE_BYTES[..12])).unwrap_err();
    assert_eq!(error_type(&e), "DESERIALIZATION_ERROR", "{e}");
}

#[test]
fn json_schema_values_are_validated_when_the_schema_is_at_hand() {
    assert_eq!(
        decode::<JsonSchema<N>>(&known(), record(&N_BYTES))
            .unwrap()
            .0,
        N { n: 5 }
    );
    let mut invalid = N_BYTES[..5].to_vec();
    invalid.extend_from_slice(br#"{"n":"five"}"#);
    let e = decode::<JsonSchema<serde_json::Value>>(&known(), record(&invalid)).unwrap_err();
    assert_eq!(error_type(&e), "DESERIALIZATION_ERROR", "{e}");
    assert!(e.to_string().contains("/n"), "{e}");
    // Without the schema, the JSON is read unvalidated.
    let read = decode::<JsonSchema<serde_json::Value>>(&SchemaSource::default(), record(&invalid));
    assert_eq!(read.unwrap().0, serde_json::json!({"n": "five"}));
}

#[test]
fn process_records_fetches_the_schemas_and_fails_only_the_undecodable_record() {
    let mut unknown = ORDER_BYTES;
    unknown[4] = 99;
    let event = msk_event()
        .bytes_record("orders", 0, 1, ORDER_BYTES.to_vec())
        .bytes_record("orders", 1, 1, unknown.to_vec())
        .build();
    let seen = std::sync::Mutex::new(Vec::new());
    let outcome = futures::executor::block_on(process_records(
        event,
        |r: Record<Avro<Order>>| {
            seen.lock().unwrap().push(r.value().0.id);
            async { Ok::<(), crate::Error>(()) }
        },
        &ProcessOptions::new().schemas(known()),
    ))
    .unwrap();
    assert_eq!(*seen.lock().unwrap(), [7]);
    let failed: Vec<String> = outcome.failures.iter().map(|f| f.to_string()).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("SCHEMA_NOT_FOUND"), "{failed:?}");
}
