//! The AWS documentation samples and our own edge-case event: each parses, reads back field by
//! field, and survives parse → serialize → parse with numbers kept as numbers, group order kept,
//! and the streaming writer producing exactly `serde_json`'s bytes.

use base64::Engine;
use kafka_lambda_events::{DataFormat, EventSource, KafkaEvent, SchemaMetadata, TimestampType};
use serde_json::Value;

const MSK: &[u8] = include_bytes!("../fixtures/msk-event.json");
const SELF_MANAGED: &[u8] = include_bytes!("../fixtures/self-managed-event.json");
const SCHEMA_REGISTRY: &[u8] = include_bytes!("../fixtures/schema-registry-event.json");
const EDGE_CASES: &[u8] = include_bytes!("../fixtures/edge-cases-event.json");

const ALL: [(&str, &[u8]); 4] = [
    ("msk-event.json", MSK),
    ("self-managed-event.json", SELF_MANAGED),
    ("schema-registry-event.json", SCHEMA_REGISTRY),
    ("edge-cases-event.json", EDGE_CASES),
];

const SAMPLE_ARN: &str = "arn:aws:kafka:us-east-1:123456789012:cluster/vpc-2priv-2pub/751d2973-a626-431c-9d4e-d7975eb44dd7-2";
const SAMPLE_SERVERS: &str = "b-2.demo-cluster-1.a1bcde.c1.kafka.us-east-1.amazonaws.com:9092,b-1.demo-cluster-1.a1bcde.c1.kafka.us-east-1.amazonaws.com:9092";

/// The key of AWS's sample as published: its last quantum carries non-zero trailing bits, which a
/// strict decoder rejects.
const SAMPLE_KEY: &str = "abcDEFghiJKLmnoPQRstuVWXyz1234==";
/// The same bytes, canonically encoded (what we write back).
const SAMPLE_KEY_CANONICAL: &str = "abcDEFghiJKLmnoPQRstuVWXyz123w==";

fn parse(json: &[u8]) -> KafkaEvent {
    match KafkaEvent::from_slice(json) {
        Ok(event) => event,
        Err(e) => panic!("fixture does not parse: {e}"),
    }
}

/// Asserts the one record of an AWS sample (`mytopic-0` at offset 15).
fn assert_sample_record(event: &KafkaEvent) {
    assert_eq!(event.records.len(), 1);
    assert_eq!(event.len(), 1);
    assert!(!event.is_empty());
    let group = &event.records["mytopic-0"];
    assert_eq!(group.len(), 1);
    let record = &group[0];
    assert_eq!(record.topic, "mytopic");
    assert_eq!(record.partition, 0);
    assert_eq!(record.offset, 15);
    assert_eq!(record.timestamp, 1_545_084_650_987);
    assert_eq!(record.timestamp_type, TimestampType::CreateTime);
    assert_eq!(
        record.timestamp().map(|t| t.to_rfc3339()),
        Some("2018-12-17T22:10:50.987+00:00".to_owned())
    );
    assert_eq!(
        record.value_str().expect("UTF-8"),
        Some("Hello, this is a test.")
    );
    assert_eq!(record.value(), Some(&b"Hello, this is a test."[..]));
    assert_eq!(record.headers().len(), 1);
    assert_eq!(record.headers()[0].name, "headerKey");
    assert_eq!(record.header("headerKey"), Some(&b"headerValue"[..]));
    assert_eq!(
        record.header_str("headerKey").expect("UTF-8"),
        Some("headerValue")
    );
    assert_eq!(record.header("missing"), None);
    assert_eq!(record.key_schema_metadata, None);
    assert_eq!(record.value_schema_metadata, None);
    assert_eq!(record.id().to_string(), "mytopic-0@15");
    assert_eq!(record.topic_partition().to_string(), "mytopic-0");
    assert_eq!(
        event.bootstrap_server_list(),
        [
            "b-2.demo-cluster-1.a1bcde.c1.kafka.us-east-1.amazonaws.com:9092",
            "b-1.demo-cluster-1.a1bcde.c1.kafka.us-east-1.amazonaws.com:9092",
        ]
    );
}

#[test]
fn msk_sample_reads_field_by_field() {
    let event = parse(MSK);
    assert_eq!(event.event_source, EventSource::Msk);
    assert_eq!(event.event_source.as_str(), "aws:kafka");
    assert_eq!(event.event_source_arn.as_deref(), Some(SAMPLE_ARN));
    assert_eq!(event.bootstrap_servers.as_deref(), Some(SAMPLE_SERVERS));
    assert_sample_record(&event);
}

#[test]
fn self_managed_sample_reads_field_by_field_and_has_no_arn() {
    let event = parse(SELF_MANAGED);
    assert_eq!(event.event_source, EventSource::SelfManagedKafka);
    assert_eq!(event.event_source.to_string(), "SelfManagedKafka");
    assert_eq!(event.event_source_arn, None);
    assert_eq!(event.bootstrap_servers.as_deref(), Some(SAMPLE_SERVERS));
    assert_sample_record(&event);

    let json: Value = serde_json::from_slice(&event.to_vec()).unwrap();
    assert!(json.get("eventSourceArn").is_none(), "{json}");
}

#[test]
fn non_canonical_base64_key_of_the_aws_sample_is_decoded_leniently() {
    let strict = base64::engine::general_purpose::STANDARD;
    assert!(
        strict.decode(SAMPLE_KEY).is_err(),
        "the sample key is expected to be non-canonical"
    );
    let expected = strict.decode(SAMPLE_KEY_CANONICAL).unwrap();
    assert_eq!(expected.len(), 22);

    for json in [MSK, SELF_MANAGED] {
        let event = parse(json);
        let record = event.records().next().unwrap();
        assert_eq!(record.key(), Some(expected.as_slice()));
        // Not UTF-8: the accessor says which record and field.
        let err = record.key_str().unwrap_err();
        assert!(err.to_string().contains("mytopic-0@15: key"), "{err}");

        // Written back canonically: the same bytes, the canonical spelling.
        let out: Value = serde_json::from_slice(&event.to_vec()).unwrap();
        assert_eq!(out["records"]["mytopic-0"][0]["key"], SAMPLE_KEY_CANONICAL);
    }
}

#[test]
fn schema_registry_sample_carries_key_and_value_schema_metadata() {
    let event = parse(SCHEMA_REGISTRY);
    assert_eq!(event.event_source, EventSource::Msk);
    let records: Vec<_> = event.records().collect();
    assert_eq!(records.len(), 2);

    let first = records[0];
    assert_eq!(first.key_str().unwrap(), Some("recordKey"));
    assert_eq!(
        first.value_json::<Value>().unwrap(),
        serde_json::json!({"key": "value"})
    );
    assert_eq!(
        first.key_schema_metadata,
        Some(SchemaMetadata {
            data_format: DataFormat::Json,
            schema_id: "key-schema-001".to_owned(),
        })
    );
    assert_eq!(
        first.value_schema_metadata,
        Some(SchemaMetadata {
            data_format: DataFormat::Avro,
            schema_id: "a1b2c3d4-5678-90ab-cdef-1234567890ab".to_owned(),
        })
    );

    let second = records[1];
    assert_eq!(second.offset, 16);
    assert_eq!(second.key_schema_metadata, None);
    assert_eq!(
        second.value_schema_metadata,
        Some(SchemaMetadata {
            data_format: DataFormat::Protobuf,
            schema_id: "42".to_owned(),
        })
    );
    assert_eq!(second.value(), Some(&b"\x08\x01\x12\x05hello"[..]));
    assert!(second.headers().is_empty());
}

#[test]
fn edge_cases_read_field_by_field() {
    let event = parse(EDGE_CASES);
    assert_eq!(event.event_source, EventSource::SelfManagedKafka);
    assert_eq!(event.event_source_arn, None);
    assert_eq!(
        event.bootstrap_server_list(),
        ["broker-1.internal:9092", "broker-2.internal:9093"]
    );
    assert_eq!(event.len(), 5);

    // Groups come in wire order, not sorted; topics with dashes keep them.
    let keys: Vec<&str> = event.records.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "my-topic-name-12",
            "my-topic-name-3",
            "заказы-事件-1",
            "a-0"
        ]
    );

    let group = &event.records["my-topic-name-12"];
    let null_key_tombstone = &group[0];
    assert_eq!(null_key_tombstone.topic, "my-topic-name");
    assert_eq!(null_key_tombstone.partition, 12);
    assert_eq!(
        null_key_tombstone.topic_partition().to_string(),
        "my-topic-name-12"
    );
    assert_eq!(null_key_tombstone.key(), None);
    assert_eq!(null_key_tombstone.value(), None);
    assert_eq!(null_key_tombstone.timestamp, -1);
    assert_eq!(null_key_tombstone.timestamp(), None);
    assert_eq!(
        null_key_tombstone.value_json::<Option<Value>>().unwrap(),
        None
    );

    let headers_record = &group[1];
    assert_eq!(headers_record.key(), None, "absent key");
    assert_eq!(
        headers_record.value(),
        Some(&b""[..]),
        "empty, not a tombstone"
    );
    assert_eq!(
        headers_record.timestamp_type,
        TimestampType::NoTimestampType
    );
    let headers: Vec<(&str, &[u8])> = headers_record
        .headers()
        .iter()
        .map(|h| (h.name.as_str().expect("UTF-8 names"), h.value.as_slice()))
        .collect();
    assert_eq!(
        headers,
        [
            ("negative", &[0x80, 0xff, 0, 1, 0x7f][..]),
            ("unsigned", &[0x80, 200, 0xff, 0, 0x7f][..]),
            ("empty", &[][..]),
            ("nullValue", &[][..]),
            ("dup", &b"1"[..]),
            ("dup", &b"2"[..]),
        ]
    );
    assert_eq!(
        headers_record.header("dup"),
        Some(&b"2"[..]),
        "last header wins"
    );

    let log_append = &event.records["my-topic-name-3"][0];
    assert_eq!(log_append.timestamp_type, TimestampType::LogAppendTime);
    assert_eq!(log_append.offset, i64::MAX);
    assert_eq!(log_append.value(), Some(&[0, 0xff, 0, 1][..]));
    assert!(log_append.headers().is_empty(), "absent headers");
    assert_eq!(
        log_append.key_schema_metadata,
        Some(SchemaMetadata {
            data_format: DataFormat::Protobuf,
            schema_id: "7".to_owned(),
        })
    );

    let unicode = &event.records["заказы-事件-1"][0];
    assert_eq!(unicode.topic, "заказы-事件");
    assert_eq!(unicode.timestamp, 0);
    assert_eq!(
        unicode.timestamp().map(|t| t.timestamp_millis()),
        Some(0),
        "0 is the epoch, not a missing timestamp"
    );
    assert_eq!(unicode.key_str().unwrap(), Some("😀"), "unpadded base64");
    #[derive(serde::Deserialize)]
    struct Text {
        text: String,
    }
    assert_eq!(unicode.value_json::<Text>().unwrap().text, "привет 😀");
    assert_eq!(unicode.header_str("trace-ид-😀").unwrap(), Some("✓"));
    assert_eq!(unicode.header_str("tab\tand\"quote").unwrap(), Some("✓"));

    let null_headers = &event.records["a-0"][0];
    assert!(null_headers.headers().is_empty(), "null headers");
    assert_eq!(null_headers.key_str().unwrap(), Some("key"));
    assert_eq!(null_headers.value_str().unwrap(), Some("value"));
}

/// The writer writes exactly serde_json's bytes (so one round trip covers both), its size
/// estimate is exact, and every fixture reads back as it was, also through `serde_json::Value`.
#[test]
fn every_fixture_round_trips_through_the_writer_which_writes_serde_json_bytes() {
    for (name, json) in ALL {
        let event = parse(json);
        let written = event.to_vec();
        assert_eq!(
            String::from_utf8(written.clone()).unwrap(),
            serde_json::to_string(&event).unwrap(),
            "{name}"
        );
        assert_eq!(event.serialized_len(), written.len(), "{name}");
        assert_eq!(KafkaEvent::from_slice(&written).unwrap(), event, "{name}");
        let via_value: KafkaEvent =
            serde_json::from_value(serde_json::from_slice(json).unwrap()).unwrap();
        assert_eq!(via_value, event, "{name}: through serde_json::Value");
    }
}

#[test]
fn serializing_a_parsed_event_is_a_fixed_point() {
    for (name, json) in ALL {
        let once = parse(json).to_vec();
        let twice = parse(&once).to_vec();
        assert_eq!(once, twice, "{name}");
    }
}

#[test]
fn numbers_stay_numbers_after_a_round_trip() {
    for (name, json) in ALL {
        let out: Value = serde_json::from_slice(&parse(json).to_vec()).unwrap();
        for (key, group) in out["records"].as_object().unwrap() {
            for record in group.as_array().unwrap() {
                for field in ["partition", "offset", "timestamp"] {
                    assert!(
                        record[field].is_i64(),
                        "{name}: {key}.{field} = {}",
                        record[field]
                    );
                }
                for header in record["headers"].as_array().unwrap() {
                    for bytes in header.as_object().unwrap().values() {
                        assert!(
                            bytes
                                .as_array()
                                .unwrap()
                                .iter()
                                .all(|b| b.as_i64().is_some_and(|b| (-128..=127).contains(&b))),
                            "{name}: {key} headers are signed bytes: {bytes}"
                        );
                    }
                }
            }
        }
    }
}

/// For AWS's own samples the output is the input, re-indented: only the non-canonical sample key
/// is respelled.
#[test]
fn aws_samples_are_written_back_as_aws_wrote_them() {
    for (name, json) in [
        ("msk-event.json", MSK),
        ("self-managed-event.json", SELF_MANAGED),
        ("schema-registry-event.json", SCHEMA_REGISTRY),
    ] {
        let mut original: Value = serde_json::from_slice(json).unwrap();
        let key = &mut original["records"]["mytopic-0"][0]["key"];
        if key == SAMPLE_KEY {
            *key = Value::from(SAMPLE_KEY_CANONICAL);
        }
        let written: Value = serde_json::from_slice(&parse(json).to_vec()).unwrap();
        assert_eq!(written, original, "{name}");
    }
}

#[test]
fn group_order_is_kept_on_the_wire() {
    let written = String::from_utf8(parse(EDGE_CASES).to_vec()).unwrap();
    let positions: Vec<usize> = [
        "\"my-topic-name-12\":",
        "\"my-topic-name-3\":",
        "\"заказы-事件-1\":",
        "\"a-0\":",
    ]
    .iter()
    .map(|key| {
        written
            .find(key)
            .unwrap_or_else(|| panic!("{key} in {written}"))
    })
    .collect();
    assert!(positions.is_sorted(), "{positions:?} in {written}");
}

#[test]
fn unknown_fields_are_dropped_on_output() {
    let written = String::from_utf8(parse(EDGE_CASES).to_vec()).unwrap();
    for unknown in [
        "eventSourceVersion",
        "newTopLevelField",
        "unknownRecordField",
        "schemaVersion",
        "extra",
    ] {
        assert!(!written.contains(unknown), "{unknown} in {written}");
    }
}
