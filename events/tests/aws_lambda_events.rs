//! Conversions to and from `aws_lambda_events::kafka`, checked on the AWS samples and the
//! edge-case fixture.
#![cfg(feature = "aws-lambda-events")]

use aws_lambda_events::kafka as aws;
use kafka_lambda_events::{EventSource, FromAwsEventError, KafkaEvent, TimestampType};

const MSK: &[u8] = include_bytes!("../fixtures/msk-event.json");
const SELF_MANAGED: &[u8] = include_bytes!("../fixtures/self-managed-event.json");
const SCHEMA_REGISTRY: &[u8] = include_bytes!("../fixtures/schema-registry-event.json");
const EDGE_CASES: &[u8] = include_bytes!("../fixtures/edge-cases-event.json");

/// The sample's key, respelled canonically (its published form has non-zero trailing bits).
const SAMPLE_KEY_CANONICAL: &str = "abcDEFghiJKLmnoPQRstuVWXyz123w==";

fn ours(json: &[u8]) -> KafkaEvent {
    KafkaEvent::from_slice(json).expect("the fixture parses")
}

fn theirs(json: &[u8]) -> aws::KafkaEvent {
    serde_json::from_slice(json).expect("aws_lambda_events parses the fixture")
}

/// `aws_lambda_events` 1.x reads millisecond timestamps through an `f64` and can lose the last
/// millisecond (`1545084650987` reads as `…986`); the conversion is exact on what it is given.
/// Copies our timestamps onto `converted` after checking they are at most that far off.
fn forgive_aws_timestamp_rounding(converted: &mut KafkaEvent, ours: &KafkaEvent) {
    for (theirs, ours) in converted.records.values_mut().flatten().zip(ours.records()) {
        assert!(
            (theirs.timestamp - ours.timestamp).abs() <= 1,
            "{} vs {}",
            theirs.timestamp,
            ours.timestamp
        );
        theirs.timestamp = ours.timestamp;
    }
}

#[test]
fn the_msk_sample_converts_from_aws_lambda_events_to_what_we_parse() {
    let mut converted = KafkaEvent::try_from(theirs(MSK)).unwrap();
    forgive_aws_timestamp_rounding(&mut converted, &ours(MSK));
    assert_eq!(converted, ours(MSK));
    let record = converted.records().next().unwrap();
    assert_eq!(record.value_str().unwrap(), Some("Hello, this is a test."));
    assert_eq!(record.header("headerKey"), Some(&b"headerValue"[..]));
    assert_eq!(converted.event_source, EventSource::Msk);
}

#[test]
fn the_self_managed_sample_converts_too() {
    let mut converted = KafkaEvent::try_from(theirs(SELF_MANAGED)).unwrap();
    forgive_aws_timestamp_rounding(&mut converted, &ours(SELF_MANAGED));
    assert_eq!(converted, ours(SELF_MANAGED));
}

#[test]
fn the_msk_sample_converts_to_aws_lambda_events_and_back() {
    let event = ours(MSK);
    let converted = aws::KafkaEvent::from(event.clone());
    assert_eq!(converted.event_source.as_deref(), Some("aws:kafka"));
    assert_eq!(converted.event_source_arn, event.event_source_arn);
    assert_eq!(converted.bootstrap_servers, event.bootstrap_servers);
    let record = &converted.records["mytopic-0"][0];
    assert_eq!(record.topic.as_deref(), Some("mytopic"));
    assert_eq!((record.partition, record.offset), (0, 15));
    assert_eq!(record.timestamp.0.timestamp_millis(), 1_545_084_650_987);
    assert_eq!(record.timestamp_type.as_deref(), Some("CREATE_TIME"));
    assert_eq!(record.key.as_deref(), Some(SAMPLE_KEY_CANONICAL));
    assert_eq!(
        record.value.as_deref(),
        Some("SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==")
    );
    assert_eq!(
        record.headers[0]["headerKey"],
        [104, 101, 97, 100, 101, 114, 86, 97, 108, 117, 101]
    );

    assert_eq!(KafkaEvent::try_from(converted).unwrap(), event);
}

/// `aws_lambda_events` writes millisecond timestamps as JSON strings, which AWS never sends; we
/// keep to AWS's wire format and say where the difference is.
#[test]
fn json_written_by_aws_lambda_events_is_rejected_at_the_timestamp() {
    let json = serde_json::to_vec(&aws::KafkaEvent::from(ours(MSK))).unwrap();
    let err = KafkaEvent::from_slice(&json).unwrap_err();
    assert_eq!(err.path(), "records.mytopic-0[0].timestamp", "{err}");
}

#[test]
fn the_edge_cases_survive_a_trip_through_aws_lambda_events_except_what_it_cannot_hold() {
    let event = ours(EDGE_CASES);
    let back = KafkaEvent::try_from(aws::KafkaEvent::from(event.clone())).unwrap();

    // aws_lambda_events keeps groups in a HashMap (the conversion sorts them) and has no schema
    // metadata; everything else comes back.
    let mut expected = event;
    expected.records.sort_keys();
    for record in expected.records.values_mut().flatten() {
        record.key_schema_metadata = None;
        record.value_schema_metadata = None;
    }
    assert_eq!(back, expected);

    let records: Vec<_> = back.records().collect();
    assert!(records.iter().any(|r| r.timestamp == -1));
    assert!(
        records
            .iter()
            .any(|r| r.timestamp_type == TimestampType::NoTimestampType)
    );
    assert!(records.iter().any(|r| r.key.is_none() && r.value.is_none()));
}

#[test]
fn schema_metadata_is_dropped_by_aws_lambda_events() {
    let mut back = KafkaEvent::try_from(theirs(SCHEMA_REGISTRY)).unwrap();
    forgive_aws_timestamp_rounding(&mut back, &ours(SCHEMA_REGISTRY));
    assert!(
        back.records()
            .all(|r| r.key_schema_metadata.is_none() && r.value_schema_metadata.is_none())
    );
    let mut expected = ours(SCHEMA_REGISTRY);
    for record in expected.records.values_mut().flatten() {
        record.key_schema_metadata = None;
        record.value_schema_metadata = None;
    }
    assert_eq!(back, expected);
}

#[test]
fn a_missing_event_source_is_read_as_self_managed() {
    let mut event = theirs(MSK);
    event.event_source = None;
    let converted = KafkaEvent::try_from(event).unwrap();
    assert_eq!(converted.event_source, EventSource::SelfManagedKafka);
}

#[test]
fn bad_base64_in_an_aws_lambda_events_record_names_the_record_and_field() {
    let mut event = theirs(MSK);
    event.records.get_mut("mytopic-0").unwrap()[0].value = Some("not base64!".to_owned());
    let err = KafkaEvent::try_from(event).unwrap_err();
    assert!(
        matches!(
            &err,
            FromAwsEventError::Base64 {
                field: "value",
                offset: 15,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("record mytopic-0@15: value is not valid base64"),
        "{err}"
    );
}

#[test]
fn a_partition_beyond_i32_is_rejected() {
    let mut event = theirs(MSK);
    event.records.get_mut("mytopic-0").unwrap()[0].partition = i64::from(i32::MAX) + 1;
    let err = KafkaEvent::try_from(event).unwrap_err();
    assert!(matches!(err, FromAwsEventError::Invalid { .. }), "{err:?}");
    assert!(err.to_string().contains("32-bit partition"), "{err}");
}
