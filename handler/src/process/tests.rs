use super::*;
use crate::decode::{Bytes, Text};
use crate::testing;
use serde::Deserialize;
use serde_json::json;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Debug, Deserialize)]
struct Order {
    id: u32,
}

/// Two partitions of `orders`, offsets 10.. and 20.., three records each.
fn two_partitions() -> KafkaEvent {
    let mut event = testing::event();
    for offset in 10..13 {
        event = event.json_record("orders", 0, offset, &json!({ "id": offset }));
    }
    for offset in 20..23 {
        event = event.json_record("orders", 1, offset, &json!({ "id": offset }));
    }
    event.build()
}

/// Records the offsets seen, failing on `fail_at`.
fn recorder(
    seen: &Mutex<Vec<i64>>,
    fail_at: &'static [i64],
) -> impl Fn(Record<Order>) -> std::future::Ready<Result<(), String>> {
    move |record: Record<Order>| {
        assert_eq!(i64::from(record.value().id), record.offset());
        seen.lock().unwrap().push(record.offset());
        std::future::ready(if fail_at.contains(&record.offset()) {
            Err(format!("cannot ship order {}", record.value().id))
        } else {
            Ok(())
        })
    }
}

#[tokio::test]
async fn records_of_a_partition_are_processed_in_offset_order() {
    let seen = Mutex::new(Vec::new());
    let outcome = process_records(
        two_partitions(),
        recorder(&seen, &[]),
        &ProcessOptions::new(),
    )
    .await
    .unwrap();
    assert!(outcome.is_success());
    assert_eq!(outcome.processed, 6);
    let seen = seen.into_inner().unwrap();
    let p0: Vec<_> = seen.iter().copied().filter(|o| *o < 20).collect();
    let p1: Vec<_> = seen.iter().copied().filter(|o| *o >= 20).collect();
    assert_eq!(p0, [10, 11, 12]);
    assert_eq!(p1, [20, 21, 22]);
}

#[tokio::test]
async fn a_failure_stops_its_partition_while_others_go_on() {
    let seen = Mutex::new(Vec::new());
    let outcome = process_records(
        two_partitions(),
        recorder(&seen, &[11]),
        &ProcessOptions::new(),
    )
    .await
    .unwrap();
    let mut seen = seen.into_inner().unwrap();
    seen.sort_unstable();
    assert_eq!(
        seen,
        [10, 11, 20, 21, 22],
        "offset 12 must not be processed"
    );
    assert_eq!(outcome.processed, 4);
    assert_eq!(outcome.not_processed, 1);
    assert_eq!(outcome.failures.len(), 1);
    assert_eq!(outcome.failures[0].record.to_string(), "orders-0@11");
}

#[tokio::test]
async fn by_default_a_failure_fails_the_invocation_naming_the_records() {
    let seen = Mutex::new(Vec::new());
    let error = process_event(
        two_partitions(),
        recorder(&seen, &[11, 20]),
        &ProcessOptions::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(error.error_type(), "KafkaRecordFailed");
    assert_eq!(
        error.to_string(),
        "2 Kafka record(s) failed, later records of their partitions were not processed: \
         record orders-0@11: cannot ship order 11; record orders-1@20: cannot ship order 20"
    );
}

#[tokio::test]
async fn with_the_opt_in_failures_become_a_partial_batch_response() {
    let seen = Mutex::new(Vec::new());
    let options = ProcessOptions::new().report_batch_item_failures(true);
    let response = process_event(two_partitions(), recorder(&seen, &[11, 20, 21]), &options)
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_string(&response).unwrap(),
        r#"{"batchItemFailures":[{"itemIdentifier":{"partition":"orders-0","offset":11}},{"itemIdentifier":{"partition":"orders-1","offset":20}}]}"#
    );
}

#[tokio::test]
async fn success_answers_an_empty_failure_list() {
    for report in [false, true] {
        let options = ProcessOptions::new().report_batch_item_failures(report);
        let seen = Mutex::new(Vec::new());
        let response = process_event(two_partitions(), recorder(&seen, &[]), &options)
            .await
            .unwrap();
        assert_eq!(
            serde_json::to_string(&response).unwrap(),
            r#"{"batchItemFailures":[]}"#
        );
    }
}

fn with_garbage_at_offset_1() -> KafkaEvent {
    testing::event()
        .json_record("orders", 0, 0, &json!({ "id": 0 }))
        .text_record("orders", 0, 1, "not json")
        .json_record("orders", 0, 2, &json!({ "id": 2 }))
        .build()
}

#[tokio::test]
async fn an_undecodable_record_is_a_failure_by_default() {
    let calls = AtomicUsize::new(0);
    let f = |_: Record<Order>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, String>(()) }
    };
    let error = process_event(with_garbage_at_offset_1(), f, &ProcessOptions::new())
        .await
        .unwrap_err();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "offset 2 must not be processed"
    );
    assert_eq!(error.error_type(), "KafkaRecordUndecodable");
    assert!(
        error
            .to_string()
            .contains("record orders-0@1: value is not valid JSON for the expected type"),
        "{error}"
    );

    let options = ProcessOptions::new().report_batch_item_failures(true);
    let response = process_event(with_garbage_at_offset_1(), f, &options)
        .await
        .unwrap();
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(response.batch_item_failures[0].item_identifier.offset, 1);
}

#[tokio::test]
async fn undecodable_records_can_be_skipped() {
    let seen = Mutex::new(Vec::new());
    let f = |record: Record<Order>| {
        seen.lock().unwrap().push(record.value().id);
        async { Ok::<_, String>(()) }
    };
    let options = ProcessOptions::new().skip_undecodable(true);
    let outcome = process_records(with_garbage_at_offset_1(), f, &options)
        .await
        .unwrap();
    assert!(outcome.is_success());
    assert_eq!((outcome.processed, outcome.skipped), (2, 1));
    assert_eq!(seen.into_inner().unwrap(), [0, 2]);
}

/// Runs `partitions` partitions of slow records and returns the most seen in flight at once.
async fn peak_concurrency(partitions: i32, options: &ProcessOptions) -> usize {
    let mut event = testing::event();
    for partition in 0..partitions {
        for offset in 0..3 {
            event = event.text_record("events", partition, offset, "x");
        }
    }
    let in_flight = AtomicUsize::new(0);
    let peak = AtomicUsize::new(0);
    let f = |_: Record<Text>| {
        let (in_flight, peak) = (&in_flight, &peak);
        async move {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(2)).await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, String>(())
        }
    };
    let outcome = process_records(event.build(), f, options).await.unwrap();
    assert_eq!(outcome.processed, partitions as usize * 3);
    peak.load(Ordering::SeqCst)
}

#[tokio::test]
async fn concurrency_is_bounded_by_max_concurrency() {
    assert_eq!(
        peak_concurrency(10, &ProcessOptions::new().max_concurrency(3)).await,
        3
    );
    assert_eq!(peak_concurrency(10, &ProcessOptions::new()).await, 8);
    assert_eq!(peak_concurrency(4, &ProcessOptions::new()).await, 4);
}

#[tokio::test]
async fn a_concurrency_of_one_is_sequential() {
    assert_eq!(
        peak_concurrency(5, &ProcessOptions::new().max_concurrency(1)).await,
        1
    );
    assert_eq!(
        peak_concurrency(5, &ProcessOptions::new().max_concurrency(0)).await,
        1
    );
}

#[tokio::test]
async fn tombstones_reach_an_option_function_as_none() {
    let event = testing::event()
        .json_record("users", 0, 0, &json!({ "id": 1 }))
        .tombstone("users", 0, 1)
        .build();
    let seen = Mutex::new(Vec::new());
    let f = |record: Record<Option<Order>>| {
        seen.lock()
            .unwrap()
            .push(record.value().as_ref().map(|o| o.id));
        async { Ok::<_, String>(()) }
    };
    let outcome = process_records(event.clone(), f, &ProcessOptions::new())
        .await
        .unwrap();
    assert!(outcome.is_success());
    assert_eq!(seen.into_inner().unwrap(), [Some(1), None]);

    // Without `Option` the tombstone is undecodable.
    let strict = |_: Record<Order>| async { Ok::<_, String>(()) };
    let outcome = process_records(event, strict, &ProcessOptions::new())
        .await
        .unwrap();
    assert_eq!(outcome.failures.len(), 1);
    assert!(outcome.failures[0].is_undecodable());
}

#[tokio::test]
async fn bytes_and_text_values_are_passed_through() {
    let event = testing::event()
        .bytes_record("raw", 0, 0, vec![0xff, 0x00])
        .text_record("raw", 0, 1, "héllo")
        .build();
    let bytes = Mutex::new(Vec::new());
    let f = |record: Record<Bytes>| {
        bytes.lock().unwrap().push(record.into_value().into_inner());
        async { Ok::<_, String>(()) }
    };
    process_records(event.clone(), f, &ProcessOptions::new())
        .await
        .unwrap();
    assert_eq!(
        bytes.into_inner().unwrap(),
        [vec![0xff, 0x00], "héllo".as_bytes().to_vec()]
    );

    let texts = Mutex::new(Vec::new());
    let f = |record: Record<Text>| {
        texts.lock().unwrap().push(record.into_value().into_inner());
        async { Ok::<_, String>(()) }
    };
    let outcome = process_records(event, f, &ProcessOptions::new())
        .await
        .unwrap();
    assert_eq!(outcome.failures.len(), 1, "0xff is not UTF-8");
    assert!(
        outcome.failures[0]
            .to_string()
            .starts_with("record raw-0@0: value is not valid UTF-8"),
        "{}",
        outcome.failures[0]
    );
    assert!(texts.into_inner().unwrap().is_empty());
}

#[tokio::test]
async fn an_inconsistent_event_is_rejected_before_processing() {
    let mut event = two_partitions();
    event.records.get_mut("orders-0").unwrap().reverse();
    let seen = Mutex::new(Vec::new());
    let error = process_event(event, recorder(&seen, &[]), &ProcessOptions::new())
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "KafkaEventInvalid");
    assert!(seen.into_inner().unwrap().is_empty());
}

/// Collects what a `fmt` subscriber writes.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn each_record_is_processed_in_a_span_naming_it() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let event = testing::event()
        .text_record("orders", 3, 41, "a")
        .text_record("orders", 3, 42, "b")
        .build();
    let f = |record: Record<Text>| {
        tracing::info!(value = %record.value(), "user log line");
        async move {
            if record.offset() == 42 {
                Err("rejected")
            } else {
                Ok(())
            }
        }
    };
    process_records(event, f, &ProcessOptions::new())
        .await
        .unwrap();

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("kafka_record{topic=orders partition=3 offset=41}: kafka_lambda_handler::process::tests: user log line value=a"),
        "{logs}"
    );
    assert!(
        logs.contains("kafka_record{topic=orders partition=3 offset=42}: kafka_lambda_handler::process: Kafka record failed, stopping its partition error=rejected"),
        "{logs}"
    );
}

#[tokio::test]
async fn an_empty_event_succeeds() {
    let f = |_: Record<Order>| async { Ok::<_, String>(()) };
    let outcome = process_records(testing::event().build(), f, &ProcessOptions::new())
        .await
        .unwrap();
    assert!(outcome.is_success());
    assert_eq!(outcome.processed, 0);
}

/// One partition of `orders`, offsets 0..6, keyed `a, b, a, b, a, b`.
fn two_keys() -> KafkaEvent {
    let mut event = testing::event();
    for offset in 0..6 {
        let key = if offset % 2 == 0 { "a" } else { "b" };
        event = event.record(
            kafka_lambda_events::KafkaRecord::new("orders", 0, offset)
                .with_key(key)
                .with_value(serde_json::to_vec(&json!({ "id": offset })).unwrap()),
        );
    }
    event.build()
}

#[tokio::test]
async fn by_key_a_failure_stops_only_its_key_and_each_failed_key_is_reported() {
    let seen = Mutex::new(Vec::new());
    let options = ProcessOptions::new()
        .ordering(super::Ordering::Key)
        .max_concurrency(1);
    let outcome = process_records(two_keys(), recorder(&seen, &[2]), &options)
        .await
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [0, 2, 1, 3, 5],
        "key a in order until 2 fails; key b goes on to its end"
    );
    assert_eq!(outcome.processed, 4);
    assert_eq!(outcome.not_processed, 1, "4, after a's failure");
    let failed: Vec<i64> = outcome.failures.iter().map(|f| f.record.offset).collect();
    assert_eq!(failed, [2]);
}

#[tokio::test]
async fn by_partition_the_same_failure_stops_the_whole_partition() {
    let seen = Mutex::new(Vec::new());
    let outcome = process_records(two_keys(), recorder(&seen, &[2]), &ProcessOptions::new())
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), [0, 1, 2]);
    assert_eq!(outcome.not_processed, 3);
}
