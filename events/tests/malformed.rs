//! Malformed input: every rejection is a typed error that names the field at fault, never a
//! panic; decoding helpers name the record and field; partial batch responses are checked as
//! strictly as events, with the empty answers AWS accepts treated as success.

use kafka_lambda_events::{
    DecodeError, EventParseError, Field, ItemIdentifier, KafkaBatchResponse, KafkaEvent,
    KafkaRecord, RecordId, ResponseParseError,
};
use serde_json::{Value, json};
use std::error::Error as _;

const MSK: &[u8] = include_bytes!("../fixtures/msk-event.json");

/// A valid event with one record at `records.mytopic-0[0]`.
fn valid() -> Value {
    json!({
        "eventSource": "aws:kafka",
        "eventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/c/1",
        "bootstrapServers": "b-1:9092",
        "records": {
            "mytopic-0": [{
                "topic": "mytopic",
                "partition": 0,
                "offset": 15,
                "timestamp": 1545084650987_i64,
                "timestampType": "CREATE_TIME",
                "key": "a2V5",
                "value": "SGVsbG8=",
                "headers": [{ "headerKey": [104, 101] }],
                "valueSchemaMetadata": { "dataFormat": "AVRO", "schemaId": "1" }
            }]
        }
    })
}

/// The valid event, changed by `edit`.
fn edited(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut event = valid();
    edit(&mut event);
    serde_json::to_vec(&event).expect("a JSON value serializes")
}

fn record(event: &mut Value) -> &mut serde_json::Map<String, Value> {
    event["records"]["mytopic-0"][0]
        .as_object_mut()
        .expect("the record is an object")
}

/// Parses `json`, which must fail, and returns the error.
fn parse_err(json: &[u8]) -> EventParseError {
    match KafkaEvent::from_slice(json) {
        Ok(event) => panic!("accepted {}: {event:?}", String::from_utf8_lossy(json)),
        Err(e) => e,
    }
}

/// Asserts that parsing fails at `path` with a message containing `message`, and that the
/// Display of the error carries both.
#[track_caller]
fn assert_rejected(json: &[u8], path: &str, message: &str) {
    let err = parse_err(json);
    let shown = err.to_string();
    assert_eq!(err.path(), path, "{shown}");
    assert!(shown.contains(&format!("`{path}`")), "{shown}");
    assert!(shown.contains(message), "expected {message:?} in {shown}");
    assert!(
        err.source()
            .is_some_and(|s| s.downcast_ref::<serde_json::Error>().is_some()),
        "the serde_json error is the source"
    );
}

#[test]
fn the_valid_event_used_below_parses() {
    let event = KafkaEvent::from_slice(&edited(|_| {})).unwrap();
    assert_eq!(event.len(), 1);
}

#[test]
fn bad_base64_names_the_value_or_key() {
    for bad in ["not base64!", "SGVsbG8=!", "a", "ab=c", "SGVs bG8="] {
        assert_rejected(
            &edited(|e| {
                record(e).insert("value".into(), json!(bad));
            }),
            "records.mytopic-0[0].value",
            "invalid base64",
        );
        assert_rejected(
            &edited(|e| {
                record(e).insert("key".into(), json!(bad));
            }),
            "records.mytopic-0[0].key",
            "invalid base64",
        );
    }
}

#[test]
fn wrong_types_name_the_field() {
    let cases: [(&str, Value, &str); 12] = [
        ("offset", json!("15"), "expected i64"),
        ("offset", json!(15.5), "expected i64"),
        ("partition", json!(0.5), "expected i32"),
        ("partition", json!(2_147_483_648_i64), "expected i32"),
        ("timestamp", json!("1545084650987"), "expected i64"),
        (
            "timestampType",
            json!("WHENEVER"),
            "unknown variant `WHENEVER`",
        ),
        ("timestampType", json!(0), "expected value"),
        ("topic", json!(7), "invalid type"),
        (
            "key",
            json!(5),
            "invalid type: integer `5`, expected a base64 string",
        ),
        ("value", json!(["SGVsbG8="]), "expected a base64 string"),
        ("headers", json!({ "headerKey": [1] }), "invalid type: map"),
        ("valueSchemaMetadata", json!("AVRO"), "invalid type"),
    ];
    for (field, value, message) in cases {
        assert_rejected(
            &edited(|e| {
                record(e).insert(field.into(), value.clone());
            }),
            &format!("records.mytopic-0[0].{field}"),
            message,
        );
    }
}

#[test]
fn wrong_shapes_of_the_envelope_name_the_field() {
    assert_rejected(
        &edited(|e| e["records"] = json!([])),
        "records",
        "invalid type: sequence, expected a map",
    );
    assert_rejected(
        &edited(|e| e["records"]["mytopic-0"] = json!({})),
        "records.mytopic-0",
        "invalid type: map, expected a sequence",
    );
    assert_rejected(
        &edited(|e| e["records"]["mytopic-0"][0] = json!("record")),
        "records.mytopic-0[0]",
        "invalid type: string",
    );
    assert_rejected(
        &edited(|e| e["eventSource"] = json!(1)),
        "eventSource",
        "invalid type: integer `1`",
    );
    assert_rejected(
        &edited(|e| e["bootstrapServers"] = json!(["b-1:9092"])),
        "bootstrapServers",
        "invalid type: sequence",
    );
    assert_rejected(
        &edited(|e| e["records"]["mytopic-0"][0]["valueSchemaMetadata"]["dataFormat"] = json!(1)),
        "records.mytopic-0[0].valueSchemaMetadata.dataFormat",
        "invalid type: integer `1`",
    );
}

#[test]
fn missing_required_fields_are_named_in_the_path() {
    for field in ["topic", "partition", "offset", "timestamp", "timestampType"] {
        assert_rejected(
            &edited(|e| {
                record(e).remove(field);
            }),
            &format!("records.mytopic-0[0].{field}"),
            &format!("missing field `{field}`"),
        );
    }
    for field in ["eventSource", "records"] {
        assert_rejected(
            &edited(|e| {
                e.as_object_mut().unwrap().remove(field);
            }),
            field,
            &format!("missing field `{field}`"),
        );
    }
    assert_rejected(
        &edited(|e| {
            e["records"]["mytopic-0"][0]["valueSchemaMetadata"]
                .as_object_mut()
                .unwrap()
                .remove("schemaId");
        }),
        "records.mytopic-0[0].valueSchemaMetadata.schemaId",
        "missing field `schemaId`",
    );
}

#[test]
fn optional_fields_may_be_absent_or_null() {
    for field in [
        "key",
        "value",
        "headers",
        "keySchemaMetadata",
        "valueSchemaMetadata",
    ] {
        for absent in [false, true] {
            let json = edited(|e| {
                if absent {
                    record(e).remove(field);
                } else {
                    record(e).insert(field.into(), Value::Null);
                }
            });
            let event = KafkaEvent::from_slice(&json)
                .unwrap_or_else(|e| panic!("{field} (absent: {absent}): {e}"));
            assert_eq!(event.len(), 1);
        }
    }
    for field in ["eventSourceArn", "bootstrapServers"] {
        let json = edited(|e| {
            e.as_object_mut().unwrap().remove(field);
        });
        assert!(KafkaEvent::from_slice(&json).is_ok(), "{field}");
    }
}

#[test]
fn header_bytes_out_of_range_name_the_header() {
    for (bytes, at, message) in [
        (json!([1, 300]), "[1]", "header byte 300 is out of range"),
        (json!([-129]), "[0]", "header byte -129 is out of range"),
        (json!([0, 0, 256]), "[2]", "header byte 256 is out of range"),
        (json!([1.5]), "[0]", "invalid type: floating point `1.5`"),
        (json!(["h"]), "[0]", "invalid type: string"),
        (json!("aGVhZGVy"), "", "expected a list of bytes"),
        (json!({ "0": 1 }), "", "expected a list of bytes"),
    ] {
        assert_rejected(
            &edited(|e| {
                record(e).insert("headers".into(), json!([{ "headerKey": bytes }]));
            }),
            &format!("records.mytopic-0[0].headers[0].headerKey{at}"),
            message,
        );
    }
    assert_rejected(
        &edited(|e| {
            record(e).insert("headers".into(), json!([{ "a": [1] }, "not an object"]));
        }),
        "records.mytopic-0[0].headers[1]",
        "expected a header object",
    );
}

#[test]
fn header_bytes_at_the_edges_of_both_ranges_are_accepted() {
    let json = edited(|e| {
        record(e).insert(
            "headers".into(),
            json!([{ "signed": [-128, -1, 0, 127] }, { "unsigned": [128, 255] }]),
        );
    });
    let event = KafkaEvent::from_slice(&json).unwrap();
    let record = event.records().next().unwrap();
    assert_eq!(record.header("signed"), Some(&[0x80, 0xff, 0, 0x7f][..]));
    assert_eq!(record.header("unsigned"), Some(&[0x80, 0xff][..]));
}

#[test]
fn unknown_enum_values_that_aws_may_add_do_not_break_parsing() {
    let json = edited(|e| {
        e["eventSource"] = json!("aws:kafka:v2");
        e["records"]["mytopic-0"][0]["valueSchemaMetadata"]["dataFormat"] = json!("JSON_SR");
    });
    let event = KafkaEvent::from_slice(&json).unwrap();
    assert_eq!(event.event_source.as_str(), "aws:kafka:v2");
    let metadata = event
        .records()
        .next()
        .unwrap()
        .value_schema_metadata
        .clone();
    assert_eq!(metadata.unwrap().data_format.as_str(), "JSON_SR");
    // And they are written back verbatim.
    assert_eq!(KafkaEvent::from_slice(&event.to_vec()).unwrap(), event);
}

#[test]
fn documents_that_are_not_a_complete_json_object_fail_at_the_root() {
    let mut trailing = MSK.to_vec();
    trailing.extend_from_slice(b" {}");
    for (json, message) in [
        (&trailing[..], "trailing characters"),
        (b"hello".as_slice(), "expected value"),
        (b"".as_slice(), "EOF while parsing"),
        (b"   ".as_slice(), "EOF while parsing"),
        (b"null".as_slice(), "invalid type: null"),
        (b"\"aws:kafka\"".as_slice(), "invalid type: string"),
        (b"\xff\xfe{}".as_slice(), "expected value"),
    ] {
        assert_rejected(json, ".", message);
    }
}

#[test]
fn every_truncation_of_a_sample_is_rejected_as_eof() {
    let end = MSK.trim_ascii_end().len();
    for cut in 0..end {
        let err = parse_err(&MSK[..cut]);
        let source = err
            .source()
            .and_then(|s| s.downcast_ref::<serde_json::Error>())
            .unwrap();
        assert!(source.is_eof(), "cut at {cut}: {err}");
    }
}

#[test]
fn arbitrary_corruptions_of_a_sample_never_panic() {
    // Overwrite each byte of the sample with a few troublesome bytes in turn.
    for i in 0..MSK.len() {
        for b in [b'"', b'\\', b'}', b'-', b'0', 0xff] {
            let mut json = MSK.to_vec();
            json[i] = b;
            if let Ok(event) = KafkaEvent::from_slice(&json) {
                assert_eq!(KafkaEvent::from_slice(&event.to_vec()).unwrap(), event);
            }
        }
    }
}

fn decoded_record() -> KafkaRecord {
    KafkaRecord::new("orders", 3, 42)
        .with_key(vec![0xff, 0xfe])
        .with_value(vec![b'a', 0xc3])
        .with_header("trace", vec![0x80])
}

/// A text accessor's result, the field it must blame and the start of its message.
type Utf8Case<'a> = (Result<Option<&'a str>, DecodeError>, Field, &'static str);

#[test]
fn invalid_utf8_names_the_record_and_the_field() {
    let record = decoded_record();
    let id = RecordId {
        topic: "orders".into(),
        partition: 3,
        offset: 42,
    };
    let cases: [Utf8Case<'_>; 3] = [
        (
            record.value_str(),
            Field::Value,
            "record orders-3@42: value is not valid UTF-8",
        ),
        (
            record.key_str(),
            Field::Key,
            "record orders-3@42: key is not valid UTF-8",
        ),
        (
            record.header_str("trace"),
            Field::Header("trace".into()),
            "record orders-3@42: header `trace` is not valid UTF-8",
        ),
    ];
    for (result, expected_field, message) in cases {
        let err = result.unwrap_err();
        assert!(err.to_string().starts_with(message), "{err}");
        assert_eq!(err.record(), &id);
        match &err {
            DecodeError::Utf8 { field, source, .. } => {
                assert_eq!(field, &expected_field);
                assert!(err.source().is_some());
                assert_eq!(
                    source.valid_up_to(),
                    usize::from(expected_field == Field::Value)
                );
            }
            other => panic!("expected Utf8, got {other:?}"),
        }
    }
    assert_eq!(record.header_str("absent").unwrap(), None);
}

#[test]
fn json_of_the_wrong_shape_is_a_json_error_naming_the_record() {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Order {
        id: u64,
    }
    let record = KafkaRecord::new("orders", 0, 7).with_value(br#"{"id":"forty-two"}"#.to_vec());
    let err = record.value_json::<Order>().unwrap_err();
    assert!(matches!(err, DecodeError::Json { .. }), "{err:?}");
    assert_eq!(err.field(), &Field::Value);
    assert!(
        err.to_string()
            .starts_with("record orders-0@7: value is not valid JSON"),
        "{err}"
    );
    assert!(err.source().is_some());

    let not_json = KafkaRecord::new("orders", 0, 8).with_key(b"{".to_vec());
    let err = not_json.key_json::<Value>().unwrap_err();
    assert!(matches!(err, DecodeError::Json { .. }), "{err:?}");
    assert_eq!(err.field(), &Field::Key);
}

#[test]
fn a_tombstone_is_null_for_required_types_and_none_for_options() {
    let tombstone = KafkaRecord::new("orders", 1, 9);
    // `serde_json::Value` accepts `null`: it is the one required type a tombstone satisfies.
    assert_eq!(tombstone.value_json::<Value>().unwrap(), Value::Null);
    let err = tombstone
        .value_json::<std::collections::HashMap<String, u32>>()
        .unwrap_err();
    assert!(
        matches!(&err, DecodeError::Null { field: Field::Value, record } if record.offset == 9),
        "{err:?}"
    );
    assert!(err.to_string().contains("tombstone"), "{err}");
    assert_eq!(tombstone.value_json::<Option<u32>>().unwrap(), None);
    assert_eq!(tombstone.value_str().unwrap(), None);

    let err = tombstone.key_json::<String>().unwrap_err();
    assert!(matches!(err, DecodeError::Null { .. }), "{err:?}");
    assert_eq!(err.field(), &Field::Key);
    assert_eq!(tombstone.key_json::<Option<String>>().unwrap(), None);
}

/// Parses a response payload, which must fail, and returns the error.
fn response_err(payload: &str) -> ResponseParseError {
    match KafkaBatchResponse::from_payload(payload.as_bytes()) {
        Ok(response) => panic!("accepted {payload}: {response:?}"),
        Err(e) => e,
    }
}

#[track_caller]
fn assert_response_rejected(payload: &str, path: &str, message: &str) {
    let err = response_err(payload);
    let shown = err.to_string();
    assert_eq!(err.path(), path, "{payload}: {shown}");
    assert!(shown.contains(&format!("`{path}`")), "{shown}");
    assert!(shown.contains(message), "expected {message:?} in {shown}");
}

fn with_identifier(identifier: Value) -> String {
    json!({ "batchItemFailures": [{ "itemIdentifier": { "partition": "t-0", "offset": 1 } }, { "itemIdentifier": identifier }] })
        .to_string()
}

const SECOND_ID: &str = "batchItemFailures[1].itemIdentifier";

#[test]
fn bad_identifier_strings_are_rejected_with_the_path() {
    for (identifier, message) in [
        ("t-0", "`t` is not `<topic>-<partition>`"),
        ("t-x-5", "`t-x` is not `<topic>-<partition>`"),
        ("-0-5", "`-0` is not `<topic>-<partition>`"),
        ("t-0-abc", "`abc` is not a record offset"),
        ("t-0-", "`` is not a record offset"),
        ("t-0-1.5", "`1.5` is not a record offset"),
        ("t-0-99999999999999999999", "is not a record offset"),
        ("t-0--1", "`t-0-` is not `<topic>-<partition>`"),
        ("t-99999999999-1", "is not `<topic>-<partition>`"),
        ("orders", "`orders` is not `<topic>-<partition>-<offset>`"),
        ("", "`` is not `<topic>-<partition>-<offset>`"),
    ] {
        assert_response_rejected(&with_identifier(json!(identifier)), SECOND_ID, message);
    }
}

#[test]
fn bad_identifier_objects_are_rejected_with_the_path() {
    let offset = format!("{SECOND_ID}.offset");
    let partition = format!("{SECOND_ID}.partition");
    let topic_partition = format!("{SECOND_ID}.topic-partition");
    for (identifier, path, message) in [
        (
            json!({ "topic-partition": "t-0", "offset": -1 }),
            &offset,
            "`-1` is not a record offset",
        ),
        (
            json!({ "topic-partition": "t-0", "offset": "-1" }),
            &offset,
            "`-1` is not a record offset",
        ),
        (
            json!({ "topic-partition": "t-0", "offset": 1.5 }),
            &offset,
            "invalid type: floating point",
        ),
        (
            json!({ "topic-partition": "t-0", "offset": null }),
            &offset,
            "invalid type: null",
        ),
        (
            json!({ "topic-partition": "t-0", "offset": 9_223_372_036_854_775_808_u64 }),
            &offset,
            "is too large",
        ),
        (
            json!({ "topic-partition": "t-0" }),
            &offset,
            "missing field `offset`",
        ),
        (
            json!({ "offset": 1 }),
            &partition,
            "missing field `partition`",
        ),
        (
            json!({ "partition": "t", "offset": 1 }),
            &partition,
            "`t` is not",
        ),
        (
            json!({ "partition": 0, "offset": 1 }),
            &partition,
            "invalid type: integer",
        ),
        (
            json!({ "partition": "t-0", "topic-partition": "t-0", "offset": 1 }),
            &SECOND_ID.to_owned(),
            "the record is named twice",
        ),
        (
            json!({ "topic-partition": "t", "offset": 1 }),
            &topic_partition,
            "`t` is not",
        ),
        (
            json!({ "topic-partition": 0, "offset": 1 }),
            &topic_partition,
            "invalid type: integer",
        ),
        (json!(null), &SECOND_ID.to_owned(), "invalid type: null"),
        (json!(15), &SECOND_ID.to_owned(), "invalid type: integer"),
    ] {
        assert_response_rejected(&with_identifier(identifier), path, message);
    }
}

/// Powertools for AWS Lambda (Python) 3.37 writes a failed Kafka record as
/// `{"partition": "<topic>-<partition>", "offset": N}`; this crate wrote `topic-partition` before
/// it followed Powertools; the string form is the third in use. All three name the same record.
#[test]
fn every_identifier_form_in_use_is_read_as_the_same_record() {
    for identifier in [
        json!({ "partition": "my-topic-2", "offset": 15 }),
        json!({ "topic-partition": "my-topic-2", "offset": 15 }),
        json!("my-topic-2-15"),
    ] {
        let response =
            KafkaBatchResponse::from_payload(with_identifier(identifier.clone()).as_bytes())
                .unwrap_or_else(|e| panic!("{identifier}: {e}"));
        assert_eq!(
            response.batch_item_failures[1].item_identifier,
            ItemIdentifier::new("my-topic", 2, 15),
            "{identifier}"
        );
    }
}

/// The identifier this crate writes is the one Powertools writes.
#[test]
fn identifiers_are_written_as_powertools_writes_them() {
    let written = serde_json::to_value(KafkaBatchResponse::failed([ItemIdentifier::new(
        "orders", 0, 5,
    )]))
    .unwrap();
    assert_eq!(
        written,
        json!({"batchItemFailures": [{"itemIdentifier": {"partition": "orders-0", "offset": 5}}]})
    );
}

#[test]
fn identifiers_accept_numeric_string_offsets_and_ignore_unknown_fields() {
    let response = KafkaBatchResponse::from_payload(
        with_identifier(json!({ "topic-partition": "my-topic-2", "offset": "15", "extra": [1] }))
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        response.batch_item_failures[1].item_identifier,
        ItemIdentifier::new("my-topic", 2, 15)
    );
}

#[test]
fn malformed_response_envelopes_are_rejected_with_the_path() {
    for (payload, path, message) in [
        (
            r#"{"batchItemFailures":"t-0-1"}"#,
            "batchItemFailures",
            "invalid type: string",
        ),
        (
            r#"{"batchItemFailures":{}}"#,
            "batchItemFailures",
            "invalid type: map",
        ),
        (
            r#"{"batchItemFailures":[{}]}"#,
            "batchItemFailures[0].itemIdentifier",
            "missing field `itemIdentifier`",
        ),
        (
            r#"{"batchItemFailures":[null]}"#,
            "batchItemFailures[0]",
            "invalid type: null",
        ),
        (
            r#"{"batchItemFailures":[],"batchItemFailures":[]}"#,
            ".",
            "duplicate field `batchItemFailures`",
        ),
        ("[]", ".", "invalid type: sequence"),
        (
            r#"[[{"itemIdentifier":"t-0-1"}]]"#,
            ".",
            "invalid type: sequence",
        ),
        (r#""ok""#, ".", "invalid type: string"),
        ("200", ".", "invalid type: integer"),
        ("true", ".", "invalid type: boolean"),
        (r#"{"batchItemFailures":[]} x"#, ".", "trailing characters"),
        (
            r#"{"batchItemFailures":["#,
            "batchItemFailures",
            "EOF while parsing",
        ),
        ("not json", ".", "expected ident"),
    ] {
        assert_response_rejected(payload, path, message);
    }
}

#[test]
fn empty_answers_mean_every_record_succeeded() {
    for payload in [
        "",
        "  \n",
        "null",
        " null ",
        "{}",
        r#"{"batchItemFailures":null}"#,
        r#"{"batchItemFailures":[]}"#,
        r#"{"statusCode":200,"body":"ok"}"#,
    ] {
        let response = KafkaBatchResponse::from_payload(payload.as_bytes())
            .unwrap_or_else(|e| panic!("{payload:?}: {e}"));
        assert_eq!(response, KafkaBatchResponse::default(), "{payload:?}");
    }
}
