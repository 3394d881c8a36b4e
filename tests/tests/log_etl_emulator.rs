//! `examples/log-etl` running under the real Lambda emulator (`cargo lambda watch`), invoked
//! through the emulator's invoke API with the events AWS sends for Kafka triggers.
//!
//! The function writes timestamps at `LOG_ETL_UTC_OFFSET`, `+08:00` unless the services were
//! started with that variable set: these expectations assume the default.

use kafka_lambda_events::{EventSource, KafkaEvent, KafkaRecord, TimestampType};
use kafka_lambda_tests::{Invocation, invoke, repo_root};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

const FUNCTION: &str = "log-etl";
const TOPIC: &str = "error-logs";

/// The error log of the task description, and the document it must become, byte for byte.
const ERROR_LOG: &str = r#"{"version":1,"componentName":"trade","timestamp":1595944295,"eventId":9128499,"returnValue":-1,"returnCode":101103,"returnMessage":"return has no deal return error[错误: 缺少 **c 参数][seqId:u3Becr8iz*]","data":[],"seqId":"x"}"#;
const CLEANED: &str = r#"{"timestamp":"2020-07-28 21:51:35","returnCode":101103,"returnError":"return has no deal return error","returnMessage":"错误: 缺少 **c 参数","requestId":"u3Becr8iz*"}"#;

fn record(partition: i32, offset: i64, value: &str) -> KafkaRecord {
    KafkaRecord::new(TOPIC, partition, offset)
        .with_timestamp(1_595_944_295_412, TimestampType::CreateTime)
        .with_key("trade")
        .with_header("source", "gateway")
        .with_value(value)
}

/// An error log with the given code and message, at 2020-07-28 13:51:35 UTC.
fn error_log(return_code: i64, return_message: &str) -> String {
    json!({
        "version": 1,
        "componentName": "trade",
        "timestamp": 1_595_944_295,
        "eventId": 1,
        "returnValue": -1,
        "returnCode": return_code,
        "returnMessage": return_message,
        "data": [],
    })
    .to_string()
}

/// The event an MSK trigger delivers, serialized as the invocation payload.
fn msk_event(records: impl IntoIterator<Item = KafkaRecord>) -> Vec<u8> {
    kafka_lambda_tests::msk_event("error-logs", "ap-east-1", records)
}

/// Checks that `response` is exactly [`ERROR_LOG`] cleaned: the one document [`CLEANED`].
fn assert_cleaned(response: &Invocation) {
    assert_eq!(response.status, 200, "{response}");
    assert_eq!(
        response.body_text(),
        format!(r#"{{"documents":[{CLEANED}],"dropped":0}}"#)
    );
}

fn document(timestamp: &str, code: i64, error: &str, message: &str, request_id: &str) -> Value {
    json!({
        "timestamp": timestamp,
        "returnCode": code,
        "returnError": error,
        "returnMessage": message,
        "requestId": request_id,
    })
}

fn events_dir() -> PathBuf {
    repo_root().join("examples/log-etl/events")
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", dir.display()))
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "json")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn an_error_log_becomes_exactly_the_cleaned_document() {
    let response = invoke(FUNCTION, msk_event([record(0, 10, ERROR_LOG)]));

    assert_cleaned(&response);
}

#[test]
fn records_with_return_code_zero_are_dropped() {
    let response = invoke(
        FUNCTION,
        msk_event([
            record(0, 1, &error_log(0, "success")),
            record(0, 2, &error_log(5, "first[m1][seqId:r1]")),
            record(0, 3, &error_log(0, "ok[done][seqId:r2]")),
            record(1, 7, &error_log(0, "")),
            record(
                1,
                8,
                &error_log(-1, "negative codes are errors[m2][seqId:r3]"),
            ),
        ]),
    );

    let time = "2020-07-28 21:51:35";
    assert_eq!(
        response.expect_success(),
        json!({
            "documents": [
                document(time, 5, "first", "m1", "r1"),
                document(time, -1, "negative codes are errors", "m2", "r3"),
            ],
            "dropped": 3,
        })
    );
}

#[test]
fn a_batch_of_only_successes_answers_no_documents() {
    let records = (0..3).map(|offset| record(0, offset, &error_log(0, "fine")));

    let output = invoke(FUNCTION, msk_event(records)).expect_success();

    assert_eq!(output, json!({ "documents": [], "dropped": 3 }));
}

#[test]
fn unusual_return_messages_are_cleaned_without_failing() {
    let response = invoke(
        FUNCTION,
        msk_event([
            record(0, 1, &error_log(1, "plain text, no brackets")),
            record(0, 2, &error_log(2, "seq first[seqId:s2][the message]")),
            record(
                0,
                3,
                &error_log(3, "nested[field [amount] is bad][seqId:s3]"),
            ),
            record(0, 4, &error_log(4, "unclosed[runs to the end")),
            record(0, 5, &error_log(5, "")),
            record(0, 6, &error_log(6, "  padded  [ msg ][ seqId: s6 ]")),
        ]),
    );

    let time = "2020-07-28 21:51:35";
    assert_eq!(
        response.expect_success(),
        json!({
            "documents": [
                document(time, 1, "plain text, no brackets", "", ""),
                document(time, 2, "seq first", "the message", "s2"),
                document(time, 3, "nested", "field [amount] is bad", "s3"),
                document(time, 4, "unclosed", "runs to the end", ""),
                document(time, 5, "", "", ""),
                document(time, 6, "padded", "msg", "s6"),
            ],
            "dropped": 0,
        })
    );
}

#[test]
fn the_request_id_falls_back_to_the_seq_id_field() {
    let value = r#"{"timestamp":0,"returnCode":9,"returnMessage":"no request id here","seqId":"from-field"}"#;

    let output = invoke(FUNCTION, msk_event([record(0, 1, value)])).expect_success();

    assert_eq!(
        output["documents"],
        json!([document(
            "1970-01-01 08:00:00",
            9,
            "no request id here",
            "",
            "from-field"
        )])
    );
}

#[test]
fn documents_keep_the_order_of_the_event_across_partitions() {
    let records = [(2, 30), (0, 10), (2, 31), (1, 20), (0, 11)]
        .map(|(partition, offset)| record(partition, offset, &error_log(offset, "e")));

    let output = invoke(FUNCTION, msk_event(records)).expect_success();

    // The event groups records per partition, in the order each partition first appears.
    let codes: Vec<i64> = output["documents"]
        .as_array()
        .expect("a documents array")
        .iter()
        .map(|document| {
            document["returnCode"]
                .as_i64()
                .expect("a numeric returnCode")
        })
        .collect();
    assert_eq!(codes, [30, 31, 10, 11, 20]);
}

#[test]
fn a_self_managed_kafka_event_is_cleaned_the_same_way() {
    let event = KafkaEvent::builder(EventSource::SelfManagedKafka)
        .bootstrap_servers("kafka-1.internal:9092")
        .record(record(0, 10, ERROR_LOG))
        .build();

    let response = invoke(FUNCTION, event.to_vec());

    assert_cleaned(&response);
}

#[test]
fn a_large_batch_is_cleaned_in_one_invocation() {
    let records = (0..2_000).map(|offset| {
        let code = if offset % 4 == 0 { 0 } else { offset };
        record(
            (offset % 3) as i32,
            offset,
            &error_log(code, "bulk[message][seqId:b]"),
        )
    });

    let output = invoke(FUNCTION, msk_event(records)).expect_success();

    assert_eq!(output["dropped"], 500);
    assert_eq!(output["documents"].as_array().map(Vec::len), Some(1_500));
}

#[test]
fn a_record_that_is_not_json_fails_the_invocation_naming_the_record() {
    let response = invoke(
        FUNCTION,
        msk_event([record(2, 40, ERROR_LOG), record(2, 41, "not json at all")]),
    );

    // The emulator answers a function error with HTTP 500 and the runtime's error document
    // (AWS would answer 200 with an X-Amz-Function-Error header).
    let error = response.expect_function_error();
    assert_eq!(error.error_type, "KafkaRecordUndecodable");
    assert!(
        error
            .error_message
            .starts_with("record error-logs-2@41: value is not valid JSON"),
        "{error:?}"
    );
}

#[test]
fn a_record_missing_a_field_fails_the_invocation_naming_the_record_and_field() {
    let response = invoke(
        FUNCTION,
        msk_event([record(0, 5, r#"{"timestamp":1595944295,"returnCode":5}"#)]),
    );

    let error = response.expect_function_error();
    assert_eq!(error.error_type, "KafkaRecordUndecodable");
    assert!(
        error
            .error_message
            .starts_with("record error-logs-0@5: value"),
        "{error:?}"
    );
    assert!(error.error_message.contains("returnMessage"), "{error:?}");
}

#[test]
fn a_tombstone_fails_the_invocation_naming_the_record() {
    let tombstone = KafkaRecord::new(TOPIC, 3, 77).with_key("trade");

    let error = invoke(FUNCTION, msk_event([tombstone])).expect_function_error();

    assert_eq!(error.error_type, "KafkaRecordUndecodable");
    assert!(
        error
            .error_message
            .contains("record error-logs-3@77: value is null"),
        "{error:?}"
    );
}

#[test]
fn the_function_keeps_serving_after_a_failed_invocation() {
    let failed = invoke(FUNCTION, msk_event([record(0, 1, "{")]));
    assert_eq!(failed.status, 500, "{failed}");

    let response = invoke(FUNCTION, msk_event([record(0, 2, ERROR_LOG)]));

    assert_cleaned(&response);
}

#[test]
fn the_sample_events_give_their_expected_responses() {
    let samples = json_files(&events_dir());
    assert!(
        samples.len() >= 2,
        "expected sample events in {}",
        events_dir().display()
    );
    for sample in samples {
        let name = sample.file_name().expect("a file name");
        let expected_path = events_dir().join("expected").join(name);
        let expected: Value = serde_json::from_slice(
            &std::fs::read(&expected_path)
                .unwrap_or_else(|error| panic!("{}: {error}", expected_path.display())),
        )
        .unwrap_or_else(|error| panic!("{}: {error}", expected_path.display()));
        let event = std::fs::read(&sample).expect("a readable sample event");

        let output = invoke(FUNCTION, event).expect_success();

        assert_eq!(output, expected, "{}", sample.display());
    }
}

#[test]
fn the_invalid_sample_events_fail_naming_a_record() {
    let samples = json_files(&events_dir().join("invalid"));
    assert!(!samples.is_empty(), "expected invalid sample events");
    for sample in samples {
        let event = std::fs::read(&sample).expect("a readable sample event");

        let error = invoke(FUNCTION, event).expect_function_error();

        assert_eq!(
            error.error_type,
            "KafkaRecordUndecodable",
            "{}",
            sample.display()
        );
        assert!(
            error.error_message.starts_with("record error-logs-"),
            "{}: {error:?}",
            sample.display()
        );
    }
}
