//! Per-record processing: each partition in offset order, stopping at its first failure,
//! partitions concurrently; and the answer to Lambda built from the outcome.

use crate::decode::DecodeValue;
use crate::error::{FailureReason, HandlerError, RecordFailure, error_chain};
use crate::record::Record;
use futures::StreamExt;
use kafka_lambda_events::{KafkaBatchResponse, KafkaEvent, KafkaRecord};
use lambda_runtime::Error;
use std::future::Future;
use std::num::NonZeroUsize;
use tracing::Instrument;

/// Partitions processed at once unless told otherwise: enough to hide the latency of a typical
/// downstream call, few enough not to overwhelm it.
const DEFAULT_MAX_CONCURRENCY: NonZeroUsize = NonZeroUsize::new(8).unwrap();

/// How [`process_records`], [`process_event`] and [`run_records`](crate::run_records) treat a
/// batch.
///
/// ```
/// use kafka_lambda_handler::ProcessOptions;
///
/// let options = ProcessOptions::new()
///     .max_concurrency(4)
///     .report_batch_item_failures(true);
/// ```
#[derive(Debug, Clone)]
pub struct ProcessOptions {
    max_concurrency: NonZeroUsize,
    report_batch_item_failures: bool,
    skip_undecodable: bool,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        ProcessOptions {
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            report_batch_item_failures: false,
            skip_undecodable: false,
        }
    }
}

impl ProcessOptions {
    /// The defaults: 8 partitions at a time, any failure fails the invocation, undecodable
    /// records are failures.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many partitions are processed at the same time (default 8). Records of one
    /// partition are always processed one after the other; `1` processes the whole event
    /// sequentially. `0` is taken as `1`.
    pub fn max_concurrency(mut self, partitions: usize) -> Self {
        self.max_concurrency = NonZeroUsize::new(partitions).unwrap_or(NonZeroUsize::MIN);
        self
    }

    /// Answer with a partial batch response listing the first failed record of each failed
    /// partition, instead of failing the invocation (default: off).
    ///
    /// Turn this on **only** if the trigger has `ReportBatchItemFailures` enabled (the event
    /// source mapping's `FunctionResponseTypes`). Without it, Lambda treats any response as
    /// success and the records reported as failed are lost. With it off, a failure fails the
    /// whole invocation and Lambda retries the batch.
    pub fn report_batch_item_failures(mut self, enabled: bool) -> Self {
        self.report_batch_item_failures = enabled;
        self
    }

    /// Skip records whose value cannot be decoded into the function's input type, logging each
    /// at `warn` and counting it in [`Outcome::skipped`] (default: off, such a record is a
    /// failure of its partition).
    pub fn skip_undecodable(mut self, enabled: bool) -> Self {
        self.skip_undecodable = enabled;
        self
    }
}

/// What happened to the records of one event.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Outcome {
    /// Records the function processed successfully.
    pub processed: usize,
    /// Undecodable records skipped (with [`ProcessOptions::skip_undecodable`]).
    pub skipped: usize,
    /// Records not attempted because an earlier record of their partition failed.
    pub not_processed: usize,
    /// The failure of each failed partition (its first failed record), in event order.
    pub failures: Vec<RecordFailure>,
}

impl Outcome {
    /// Whether every record was processed or skipped.
    pub fn is_success(&self) -> bool {
        self.failures.is_empty()
    }

    /// The partial batch response listing the failed records (empty on success).
    pub fn batch_response(&self) -> KafkaBatchResponse {
        KafkaBatchResponse::failed(self.failures.iter().map(RecordFailure::item_identifier))
    }

    /// The invocation's answer: success with an empty response; on failure the partial batch
    /// response when `report_batch_item_failures`, else [`HandlerError::RecordsFailed`].
    pub fn into_response(
        self,
        report_batch_item_failures: bool,
    ) -> Result<KafkaBatchResponse, HandlerError> {
        if self.is_success() || report_batch_item_failures {
            Ok(self.batch_response())
        } else {
            Err(HandlerError::RecordsFailed(self.failures))
        }
    }
}

/// Processes every record of `event` with `f` and reports what happened, without any runtime.
///
/// Each partition's records are handed to `f` one at a time in offset order; the first record
/// that fails (`f` returns an error, or its value does not decode) stops its partition. Up to
/// [`ProcessOptions::max_concurrency`] partitions are processed at once, all on the calling
/// task. Each record is processed inside a `kafka_record` span carrying `topic`, `partition`
/// and `offset`.
///
/// Fails only if the event is inconsistent ([`HandlerError::InvalidEvent`]).
pub async fn process_records<T, F, Fut, E>(
    event: KafkaEvent,
    f: F,
    options: &ProcessOptions,
) -> Result<Outcome, HandlerError>
where
    T: DecodeValue,
    F: Fn(Record<T>) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Into<Error>,
{
    crate::event::validate(&event)?;
    let total = event.len();
    let f = &f;
    let skip_undecodable = options.skip_undecodable;
    let mut partitions: Vec<(usize, PartitionOutcome)> =
        futures::stream::iter(event.records.into_values().enumerate())
            .map(|(index, records)| async move {
                (index, process_partition(records, f, skip_undecodable).await)
            })
            .buffer_unordered(options.max_concurrency.get())
            .collect()
            .await;
    partitions.sort_unstable_by_key(|(index, _)| *index);

    let mut outcome = Outcome::default();
    for (_, partition) in partitions {
        outcome.processed += partition.processed;
        outcome.skipped += partition.skipped;
        outcome.not_processed += partition.not_processed;
        outcome.failures.extend(partition.failure);
    }
    tracing::info!(
        records = total,
        processed = outcome.processed,
        skipped = outcome.skipped,
        failed = outcome.failures.len(),
        not_processed = outcome.not_processed,
        "Kafka event processed"
    );
    Ok(outcome)
}

/// [`process_records`], then the invocation's answer as [`Outcome::into_response`] gives it for
/// these options: what [`run_records`](crate::run_records) returns to Lambda.
pub async fn process_event<T, F, Fut, E>(
    event: KafkaEvent,
    f: F,
    options: &ProcessOptions,
) -> Result<KafkaBatchResponse, HandlerError>
where
    T: DecodeValue,
    F: Fn(Record<T>) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Into<Error>,
{
    process_records(event, f, options)
        .await?
        .into_response(options.report_batch_item_failures)
}

#[derive(Default)]
struct PartitionOutcome {
    processed: usize,
    skipped: usize,
    not_processed: usize,
    failure: Option<RecordFailure>,
}

async fn process_partition<T, F, Fut, E>(
    records: Vec<KafkaRecord>,
    f: &F,
    skip_undecodable: bool,
) -> PartitionOutcome
where
    T: DecodeValue,
    F: Fn(Record<T>) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Into<Error>,
{
    let mut outcome = PartitionOutcome::default();
    let count = records.len();
    for (position, raw) in records.into_iter().enumerate() {
        let span = tracing::info_span!(
            "kafka_record",
            topic = %raw.topic,
            partition = raw.partition,
            offset = raw.offset,
        );
        match process_one(raw, f, skip_undecodable).instrument(span).await {
            Processed::Done => outcome.processed += 1,
            Processed::Skipped => outcome.skipped += 1,
            Processed::Failed(failure) => {
                outcome.failure = Some(failure);
                outcome.not_processed = count - position - 1;
                break;
            }
        }
    }
    outcome
}

enum Processed {
    Done,
    Skipped,
    Failed(RecordFailure),
}

async fn process_one<T, F, Fut, E>(raw: KafkaRecord, f: &F, skip_undecodable: bool) -> Processed
where
    T: DecodeValue,
    F: Fn(Record<T>) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Into<Error>,
{
    let id = raw.id();
    let record = match Record::<T>::decode(raw) {
        Ok(record) => record,
        Err(error) if skip_undecodable => {
            tracing::warn!(%error, "skipping undecodable Kafka record");
            return Processed::Skipped;
        }
        Err(error) => {
            tracing::error!(%error, "undecodable Kafka record, stopping its partition");
            return Processed::Failed(RecordFailure {
                record: id,
                reason: FailureReason::Undecodable(error),
            });
        }
    };
    match f(record).await {
        Ok(()) => {
            tracing::debug!("Kafka record processed");
            Processed::Done
        }
        Err(error) => {
            let error: Error = error.into();
            tracing::error!(error = %error_chain(&*error), "Kafka record failed, stopping its partition");
            Processed::Failed(RecordFailure {
                record: id,
                reason: FailureReason::Failed(error),
            })
        }
    }
}

#[cfg(test)]
mod tests {
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
            r#"{"batchItemFailures":[{"itemIdentifier":{"topic-partition":"orders-0","offset":11}},{"itemIdentifier":{"topic-partition":"orders-1","offset":20}}]}"#
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
}
