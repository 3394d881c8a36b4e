//! Delivering one batch whatever happens: retries with backoff, bisecting, partial batch
//! responses, record age, and the on-failure destination. [`deliver`] returns only when every
//! record of the batch is delivered, dead-lettered or skipped by policy — or when the worker is
//! told to give up (then nothing after the last finished segment is marked done).
//!
//! A batch is worked as a queue of *segments* in offset order: the whole batch first; a failing
//! segment may be split in two (bisect) or cut at the first failed record (partial response).
//! Segments finish strictly in order, so "done" offsets only ever advance contiguously.

use crate::access::{AccessDenied, Denied};
use crate::backoff::Backoff;
use crate::batch::{Batch, BatchRecord, PolledRecord, encode_part};
use crate::deadletter::{DeadLetterProducer, FailureInfo, write_problem};
use crate::invoke::{InvokeOutcome, Invoker};
use crate::partition::{MappingShared, WorkerControl};
use crate::telemetry::RetryReason;
use bytes::Bytes;
use kafka_lambda_events::KafkaBatchResponse;
use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How a batch's delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Every record is delivered, dead-lettered or skipped by policy.
    Done,
    /// The worker was stopped or aborted first; only offsets reported through `done` are done.
    Abandoned,
}

struct Segment {
    /// The records, their JSON in the batch's payload.
    records: Vec<BatchRecord>,
    /// Last offset this segment covers (its records, plus any expired and given up already).
    end: i64,
    /// Encoded payload, when already known (the whole batch, or a segment retried after a
    /// throttle or a transient failure).
    payload: Option<Bytes>,
    /// Function-error retries used.
    retries: u32,
    /// Invocations made for these records.
    attempts: u32,
    /// Throttle/transient failures in a row (drives their backoff only).
    hiccups: u32,
}

impl Segment {
    fn first_offset(&self) -> i64 {
        self.records.first().map_or(-1, |r| r.offset)
    }
    fn last_offset(&self) -> i64 {
        self.records.last().map_or(-1, |r| r.offset)
    }
}

/// Delivers `batch`; `done(offset)` is called each time every record up to `offset` is finished.
/// Once delivered, the batch's payload buffer is handed back through `spare` (when nothing else
/// holds it any more), for the next batch to be written into.
pub(crate) async fn deliver<I: Invoker>(
    shared: &MappingShared<I>,
    topic: &str,
    partition: i32,
    batch: Batch,
    control: &WorkerControl,
    spare: &mut Option<Vec<u8>>,
    mut done: impl FnMut(i64),
) -> Delivery {
    let m = &shared.mapping;
    let function = shared.invoker.function();
    let backoff = Backoff {
        base: m.retry_backoff_base,
        max: m.retry_backoff_max,
    };
    let Batch {
        records,
        payload,
        end,
    } = batch;
    // The batch's payload, shared with the invocation (no copy), and the source every retried
    // part of it is copied from (no record is encoded twice).
    let source = Bytes::from(payload);
    let mut segments = VecDeque::from([Segment {
        end,
        records,
        payload: Some(source.clone()),
        retries: 0,
        attempts: 0,
        hiccups: 0,
    }]);
    while let Some(mut seg) = segments.pop_front() {
        // Checked before every invocation but the first: retries after a function error, and
        // attempts after a throttle or a service failure, however long those go on.
        if (seg.attempts > 0 || seg.hiccups > 0)
            && let Some(max_age) = m.max_record_age
            && seg.records.iter().any(|r| is_older_than(r, max_age))
        {
            let (expired, fresh): (Vec<_>, Vec<_>) = std::mem::take(&mut seg.records)
                .into_iter()
                .partition(|r| is_older_than(r, max_age));
            let info = FailureInfo {
                error_type: "RecordAgeExceeded".to_owned(),
                message: format!("record older than max_record_age_s = {}", max_age.as_secs()),
                attempts: seg.attempts,
            };
            let expired = polled(&source, &expired);
            if give_up(shared, topic, partition, &expired, &info, control, &backoff).await
                == Delivery::Abandoned
            {
                return Delivery::Abandoned;
            }
            seg.records = fresh;
            seg.payload = None;
        }
        if seg.records.is_empty() {
            done(seg.end);
            continue;
        }
        let payload = seg.payload.take().unwrap_or_else(|| {
            Bytes::from(encode_part(
                &shared.header,
                topic,
                partition,
                &source,
                &seg.records,
            ))
        });
        let (first, last) = (seg.first_offset(), seg.last_offset());
        let Some(outcome) = invoke(shared, topic, partition, &seg, payload.clone(), control).await
        else {
            return Delivery::Abandoned;
        };
        seg.attempts += 1;
        // Set when the function named the segment's first record as failed: only that record
        // is given up when its retries run out.
        let mut first_record_failed = false;
        let permanent = matches!(outcome, InvokeOutcome::Permanent { .. });
        let throttled = matches!(outcome, InvokeOutcome::Throttled { .. });
        let metrics = &shared.metrics;
        let failure = match outcome {
            InvokeOutcome::Success { payload: response } if m.report_batch_item_failures => {
                match failed_offset(&response, topic, partition, &seg) {
                    Ok(None) => {
                        metrics.delivered.increment(seg.records.len() as u64);
                        done(seg.end);
                        continue;
                    }
                    Ok(Some(failed)) => {
                        let split = seg.records.partition_point(|r| r.offset < failed);
                        if split > 0 {
                            metrics.delivered.increment(split as u64);
                            done(seg.records[split - 1].offset);
                            // Progress: the budget is per record, and this one failed for
                            // the first time.
                            seg.retries = 0;
                        }
                        first_record_failed = true;
                        metrics.retry(RetryReason::PartialFailure);
                        seg.records.drain(..split);
                        tracing::warn!(
                            function,
                            topic,
                            partition,
                            first_offset = first,
                            last_offset = last,
                            failed_offset = failed,
                            attempt = seg.attempts,
                            "function reported a partial batch failure; retrying from the failed record"
                        );
                        FailureInfo {
                            error_type: "PartialBatchFailure".to_owned(),
                            message: format!(
                                "the function reported record {topic}-{partition}@{failed} as failed"
                            ),
                            attempts: seg.attempts,
                        }
                    }
                    Err(problem) => {
                        tracing::error!(function, topic, partition, first_offset = first, last_offset = last,
                            attempt = seg.attempts, error = %problem,
                            "malformed partial batch response; the whole batch counts as failed");
                        metrics.retry(RetryReason::FunctionError);
                        FailureInfo {
                            error_type: "MalformedBatchResponse".to_owned(),
                            message: problem,
                            attempts: seg.attempts,
                        }
                    }
                }
            }
            InvokeOutcome::Success { payload: response } => {
                if reports_item_failures(&response)
                    && !shared
                        .ignored_item_failures_logged
                        .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::warn!(
                        function,
                        topic,
                        partition,
                        first_offset = first,
                        last_offset = last,
                        "the function returned batchItemFailures, which are ignored because report_batch_item_failures is false: the whole batch counts as delivered (set report_batch_item_failures = true to retry the failed records; logged once per mapping)"
                    );
                }
                metrics.delivered.increment(seg.records.len() as u64);
                done(seg.end);
                continue;
            }
            InvokeOutcome::FunctionError {
                error_type,
                message,
            } => {
                tracing::warn!(function, topic, partition, first_offset = first, last_offset = last,
                    attempt = seg.attempts, error_type, error = %message, "function returned an error");
                metrics.retry(RetryReason::FunctionError);
                if m.bisect_batch_on_function_error && seg.records.len() > 1 {
                    let right = seg.records.split_off(seg.records.len() / 2);
                    tracing::info!(
                        function,
                        topic,
                        partition,
                        first_offset = first,
                        last_offset = last,
                        left = seg.records.len(),
                        right = right.len(),
                        "bisecting the failed batch"
                    );
                    let left_end = seg.records.last().map_or(seg.end, |r| r.offset);
                    segments.push_front(Segment {
                        records: right,
                        payload: None,
                        ..seg
                    });
                    segments.push_front(Segment {
                        records: seg.records,
                        end: left_end,
                        payload: None,
                        ..seg
                    });
                    continue;
                }
                FailureInfo {
                    error_type,
                    message,
                    attempts: seg.attempts,
                }
            }
            InvokeOutcome::Throttled { .. }
            | InvokeOutcome::Transient { .. }
            | InvokeOutcome::Permanent { .. } => {
                // Not the function's fault: back off and try again without using up retries.
                // A permanent rejection needs an operator, so it waits the longest.
                seg.attempts -= 1;
                metrics.retry(match (permanent, throttled) {
                    (true, _) => RetryReason::Permanent,
                    (_, true) => RetryReason::Throttled,
                    _ => RetryReason::Transient,
                });
                let delay = if permanent {
                    backoff.max
                } else {
                    backoff.delay(seg.hiccups)
                };
                seg.hiccups = seg.hiccups.saturating_add(1);
                seg.payload = Some(payload);
                if !pause(control, delay).await {
                    return Delivery::Abandoned;
                }
                segments.push_front(seg);
                continue;
            }
        };
        seg.retries += 1;
        seg.hiccups = 0;
        if m.max_retry_attempts.is_some_and(|max| seg.retries > max) {
            // A partial response names the record that failed: it alone is given up, and the
            // records after it, which the function never finished, are invoked again. A function
            // error names none: the whole segment is given up (bisecting isolates the record).
            let rest = if first_record_failed {
                seg.records.split_off(1)
            } else {
                Vec::new()
            };
            if give_up(
                shared,
                topic,
                partition,
                &polled(&source, &seg.records),
                &failure,
                control,
                &backoff,
            )
            .await
                == Delivery::Abandoned
            {
                return Delivery::Abandoned;
            }
            if rest.is_empty() {
                done(seg.end);
            } else {
                done(seg.last_offset());
                segments.push_front(Segment {
                    records: rest,
                    payload: None,
                    retries: 0,
                    hiccups: 0,
                    ..seg
                });
            }
            continue;
        }
        if !pause(control, backoff.delay(seg.retries - 1)).await {
            return Delivery::Abandoned;
        }
        segments.push_front(seg);
    }
    // Emptied first: converting keeps the capacity, and would otherwise move the bytes.
    *spare = source.try_into_mut().ok().map(|mut buf| {
        buf.clear();
        Vec::from(buf)
    });
    Delivery::Done
}

/// Records of the batch read back from `source` (its payload), for the on-failure destination.
fn polled(source: &[u8], records: &[BatchRecord]) -> Vec<PolledRecord> {
    records.iter().map(|r| r.to_polled(source)).collect()
}

fn is_older_than(record: &BatchRecord, age: Duration) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    record.timestamp >= 0 && now - record.timestamp > age.as_millis() as i64
}

/// Waits `delay` unless the worker is aborted first (then `false`). A stopped worker waits on:
/// the drain window covers the batch in flight, backoff waits included.
async fn pause(control: &WorkerControl, delay: Duration) -> bool {
    tokio::select! {
        biased;
        _ = control.abort.cancelled() => false,
        _ = tokio::time::sleep(delay) => true,
    }
}

/// One invocation under the mapping's concurrency limit; `None` when aborted.
async fn invoke<I: Invoker>(
    shared: &MappingShared<I>,
    topic: &str,
    partition: i32,
    seg: &Segment,
    payload: Bytes,
    control: &WorkerControl,
) -> Option<InvokeOutcome> {
    let _permit = tokio::select! {
        biased;
        _ = control.abort.cancelled() => return None,
        p = shared.in_flight.acquire() => p.ok()?,
    };
    let metrics = &shared.metrics;
    metrics.batch_records.record(seg.records.len() as f64);
    let bytes = payload.len();
    metrics.batch_bytes.record(bytes as f64);
    metrics.in_flight.increment(1.0);
    let started = Instant::now();
    let outcome = tokio::select! {
        biased;
        _ = control.abort.cancelled() => None,
        o = shared.invoker.invoke(payload) => Some(o),
    };
    metrics.in_flight.decrement(1.0);
    let outcome = outcome?;
    metrics
        .invoke_seconds
        .record(started.elapsed().as_secs_f64());
    metrics.invocation(outcome.kind());
    if matches!(outcome, InvokeOutcome::Throttled { .. }) {
        metrics.throttles.increment(1);
    }
    tracing::debug!(
        function = shared.invoker.function(),
        topic,
        partition,
        first_offset = seg.first_offset(),
        last_offset = seg.last_offset(),
        records = seg.records.len(),
        bytes,
        attempt = seg.attempts,
        outcome = outcome.kind(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "batch invoked"
    );
    match &outcome {
        InvokeOutcome::Throttled { message } => {
            tracing::warn!(function = shared.invoker.function(), topic, partition,
            first_offset = seg.first_offset(), attempt = seg.hiccups, error = %message, "invocation throttled; backing off")
        }
        InvokeOutcome::Transient { message } => {
            tracing::warn!(function = shared.invoker.function(), topic, partition,
            first_offset = seg.first_offset(), attempt = seg.hiccups, error = %message,
            "invocation failed (service or network); retrying")
        }
        InvokeOutcome::Permanent { message } => {
            tracing::error!(function = shared.invoker.function(), topic, partition,
            first_offset = seg.first_offset(), attempt = seg.hiccups, error = %message,
            "invocation rejected; check the function name, permissions and endpoint. Retrying")
        }
        _ => {}
    }
    Some(outcome)
}

/// The lowest offset of this segment the function reported as failed, `None` for none, or why the
/// response cannot be trusted.
fn failed_offset(
    response: &[u8],
    topic: &str,
    partition: i32,
    seg: &Segment,
) -> Result<Option<i64>, String> {
    let parsed = KafkaBatchResponse::from_payload(response).map_err(|e| e.to_string())?;
    let mut lowest: Option<i64> = None;
    for failure in &parsed.batch_item_failures {
        let id = &failure.item_identifier;
        let in_segment = id.topic == topic
            && id.partition == partition
            && seg
                .records
                .binary_search_by_key(&id.offset, |r| r.offset)
                .is_ok();
        if !in_segment {
            return Err(format!(
                "batchItemFailures names {id}, which is not a record of this batch"
            ));
        }
        lowest = Some(lowest.map_or(id.offset, |l| l.min(id.offset)));
    }
    Ok(lowest)
}

/// Gives up records: writes them to the on-failure destination (retrying until the broker
/// acknowledges: the partition blocks rather than lose them), or skips them with an error log
/// when no destination is configured.
pub(crate) async fn give_up<I: Invoker>(
    shared: &MappingShared<I>,
    topic: &str,
    partition: i32,
    records: &[PolledRecord],
    failure: &FailureInfo,
    control: &WorkerControl,
    backoff: &Backoff,
) -> Delivery {
    let function = shared.invoker.function();
    let (first, last) = (
        records.first().map_or(-1, |r| r.offset),
        records.last().map_or(-1, |r| r.offset),
    );
    let Some(destination) = &shared.dead_letter else {
        tracing::error!(function, topic, partition, first_offset = first, last_offset = last, records = records.len(),
            attempts = failure.attempts, error_type = %failure.error_type, error = %failure.message,
            "giving up on records (retries or age exhausted) and skipping them: no on_failure destination is configured");
        shared.metrics.failed.increment(records.len() as u64);
        return Delivery::Done;
    };
    let mut attempt = 0;
    // Held while the partition waits for the destination: `/readyz` reports it.
    let mut stuck = None;
    loop {
        let sent = tokio::select! {
            biased;
            _ = control.abort.cancelled() => return Delivery::Abandoned,
            sent = send(destination, topic, partition, function, records, failure) => sent,
        };
        match sent {
            Ok(()) => {
                tracing::warn!(function, topic, partition, first_offset = first, last_offset = last, records = records.len(),
                    destination = destination.topic(), attempts = failure.attempts, error_type = %failure.error_type,
                    "records dead-lettered");
                shared.metrics.dead_lettered.increment(records.len() as u64);
                return Delivery::Done;
            }
            Err(e) => {
                stuck.get_or_insert_with(|| shared.health.stuck_partition());
                let bytes = records
                    .iter()
                    .map(|r| DeadLetterProducer::written_size(r, failure))
                    .max()
                    .unwrap_or(0);
                let (kind, fix) = write_problem(&e, destination.topic(), bytes);
                shared.metrics.dead_letter_write_error(kind);
                let fix = match e.rdkafka_error_code().and_then(Denied::of) {
                    Some(_) => AccessDenied::WriteDeadLetter {
                        topic: destination.topic().to_owned(),
                        principal: shared.access.principal().clone(),
                    }
                    .to_string(),
                    None => fix,
                };
                tracing::error!(function, topic, partition, first_offset = first, last_offset = last,
                    destination = destination.topic(), attempt, error = %e,
                    "cannot write to the on_failure destination: {fix}; the partition waits and retries (nothing is committed past the record)");
                if !pause(control, backoff.delay(attempt)).await {
                    return Delivery::Abandoned;
                }
                attempt += 1;
            }
        }
    }
}

async fn send(
    destination: &DeadLetterProducer,
    topic: &str,
    partition: i32,
    function: &str,
    records: &[PolledRecord],
    failure: &FailureInfo,
) -> Result<(), rdkafka::error::KafkaError> {
    destination
        .send(topic, partition, function, records, failure)
        .await
}

/// Whether a function's response is a partial batch response naming at least one record.
fn reports_item_failures(response: &[u8]) -> bool {
    // Most responses are small and say nothing of failures: look before parsing.
    const KEY: &[u8] = b"batchItemFailures";
    if !response.windows(KEY.len()).any(|window| window == KEY) {
        return false;
    }
    serde_json::from_slice::<serde_json::Value>(response).is_ok_and(|value| {
        value
            .get("batchItemFailures")
            .and_then(serde_json::Value::as_array)
            .is_some_and(|failures| !failures.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, EventHeader};
    use crate::config::{Config, Mapping};
    use crate::mapping::Progress;
    use crate::partition::DoneGuard;
    use kafka_lambda_events::{EventSource, KafkaEvent, TimestampType};
    use std::sync::{Arc, Mutex};

    type Script = dyn Fn(usize, &[i64]) -> InvokeOutcome + Send + Sync;

    /// An invoker whose outcome is decided by the call number and the offsets in the payload.
    struct Scripted {
        script: Box<Script>,
        calls: Mutex<Vec<Vec<i64>>>,
    }

    impl Invoker for Scripted {
        async fn invoke(&self, payload: Bytes) -> InvokeOutcome {
            let offsets: Vec<i64> = KafkaEvent::from_slice(&payload)
                .unwrap()
                .records()
                .map(|r| r.offset)
                .collect();
            let n = {
                let mut calls = self.calls.lock().unwrap();
                calls.push(offsets.clone());
                calls.len() - 1
            };
            (self.script)(n, &offsets)
        }
        fn function(&self) -> &str {
            "scripted"
        }
    }

    fn mapping(extra: &str) -> Mapping {
        let backoff = if extra.contains("retry_backoff") {
            ""
        } else {
            "retry_backoff_base_ms = 1\nretry_backoff_max_ms = 2"
        };
        let text = format!(
            "[kafka]\nbootstrap_servers = \"k:9092\"\n[[mapping]]\nfunction = \"f\"\ntopics = [\"t\"]\n{backoff}\n{extra}\n"
        );
        let config: Config = toml::from_str(&text).unwrap();
        config.validate().unwrap().mappings.remove(0)
    }

    fn shared(
        extra: &str,
        script: impl Fn(usize, &[i64]) -> InvokeOutcome + Send + Sync + 'static,
    ) -> MappingShared<Scripted> {
        let mapping = mapping(extra);
        MappingShared {
            header: EventHeader {
                source: EventSource::SelfManagedKafka,
                arn: None,
                bootstrap_servers: "k:9092".into(),
            },
            invoker: Scripted {
                script: Box::new(script),
                calls: Mutex::new(Vec::new()),
            },
            in_flight: tokio::sync::Semaphore::new(1),
            consumer: std::sync::OnceLock::new(),
            dead_letter: None,
            metrics: crate::telemetry::MappingMetrics::new("g", "f"),
            progress: Arc::new(Progress::default()),
            ignored_item_failures_logged: std::sync::atomic::AtomicBool::new(false),
            stored: tokio::sync::Notify::new(),
            health: Arc::new(crate::telemetry::Health::new(1)),
            stop: CancellationToken::new(),
            worker_died: std::sync::OnceLock::new(),
            access: Arc::new(crate::access::DenialStop::new(
                crate::access::Principal::Anonymous,
                tokio_util::sync::CancellationToken::new(),
            )),
            mapping,
        }
    }

    fn batch(shared: &MappingShared<Scripted>, offsets: std::ops::Range<i64>) -> Batch {
        let mut b = BatchBuilder::new(&shared.header, 10_000, 1 << 20);
        for offset in offsets {
            let record = PolledRecord {
                offset,
                timestamp: 1_700_000_000_000,
                timestamp_type: TimestampType::CreateTime,
                key: None,
                value: Some(format!("{{\"n\":{offset}}}").into_bytes()),
                headers: Vec::new(),
                original_value: None,
            };
            b.try_add(&record.as_record_ref("t", 0), None).unwrap();
        }
        b.finish()
    }

    fn control() -> WorkerControl {
        let (tx, _rx) = std::sync::mpsc::sync_channel(1);
        WorkerControl {
            stop: CancellationToken::new(),
            abort: CancellationToken::new(),
            done: DoneGuard(tx),
        }
    }

    use tokio_util::sync::CancellationToken;

    fn error() -> InvokeOutcome {
        InvokeOutcome::FunctionError {
            error_type: "Boom".into(),
            message: "boom".into(),
        }
    }

    fn ok() -> InvokeOutcome {
        InvokeOutcome::Success {
            payload: Vec::new(),
        }
    }

    async fn run(
        shared: &MappingShared<Scripted>,
        offsets: std::ops::Range<i64>,
    ) -> (Delivery, Vec<i64>) {
        let mut done = Vec::new();
        let delivery = deliver(
            shared,
            "t",
            0,
            batch(shared, offsets),
            &control(),
            &mut None,
            |o| done.push(o),
        )
        .await;
        (delivery, done)
    }

    #[tokio::test]
    async fn throttles_and_transient_failures_do_not_use_up_the_retry_budget() {
        let s = shared("max_retry_attempts = 1", |n, _| match n {
            0 => InvokeOutcome::Throttled {
                message: "slow down".into(),
            },
            1 => InvokeOutcome::Transient {
                message: "503".into(),
            },
            2 => InvokeOutcome::Throttled {
                message: "slow down".into(),
            },
            3 => error(),
            _ => ok(),
        });
        let (delivery, done) = run(&s, 0..4).await;
        assert_eq!(delivery, Delivery::Done);
        assert_eq!(done, [3]);
        assert_eq!(
            s.invoker.calls.lock().unwrap().len(),
            5,
            "3 hiccups + 1 error + the retry that succeeded"
        );
    }

    #[tokio::test]
    async fn record_age_is_checked_while_the_invocation_is_throttled() {
        // The test batch's records are from 2023: older than any max_record_age_s.
        let s = shared("max_record_age_s = 60", |_, _| InvokeOutcome::Throttled {
            message: "slow down".into(),
        });
        let (delivery, done) = run(&s, 0..2).await;
        assert_eq!(delivery, Delivery::Done);
        assert_eq!(done, [1], "given up (skipped) once too old");
        assert_eq!(s.invoker.calls.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn exhausted_retries_without_a_destination_skip_the_batch_and_finish_it() {
        let s = shared("max_retry_attempts = 2", |_, _| error());
        let (delivery, done) = run(&s, 10..13).await;
        assert_eq!(delivery, Delivery::Done);
        assert_eq!(done, [12]);
        assert_eq!(
            s.invoker.calls.lock().unwrap().len(),
            3,
            "1 invocation + 2 retries"
        );
    }

    #[tokio::test]
    async fn bisection_isolates_the_poison_record_and_delivers_the_rest_in_order() {
        let s = shared(
            "max_retry_attempts = 0\nbisect_batch_on_function_error = true",
            |_, offsets| {
                if offsets.contains(&5) { error() } else { ok() }
            },
        );
        let (delivery, done) = run(&s, 0..8).await;
        assert_eq!(delivery, Delivery::Done);
        assert_eq!(
            done,
            [3, 4, 5, 7],
            "segments finish in order; 5 is given up (skipped) alone"
        );
        let calls = s.invoker.calls.lock().unwrap().clone();
        assert_eq!(calls.last().unwrap(), &[6, 7]);
        assert!(
            calls.contains(&vec![5]),
            "the poison record was invoked alone: {calls:?}"
        );
        let delivered: Vec<i64> = calls
            .iter()
            .filter(|c| !c.contains(&5))
            .flatten()
            .copied()
            .collect();
        assert_eq!(delivered, [0, 1, 2, 3, 4, 6, 7]);
    }

    #[tokio::test]
    async fn a_partial_response_finishes_the_records_before_the_failure_and_retries_the_rest() {
        let s = shared("report_batch_item_failures = true", |n, _| {
            match n {
            0 => InvokeOutcome::Success {
                payload: br#"{"batchItemFailures":[{"itemIdentifier":"t-0-3"},{"itemIdentifier":{"topic-partition":"t-0","offset":5}}]}"#.to_vec(),
            },
            _ => ok(),
        }
        });
        let (delivery, done) = run(&s, 0..6).await;
        assert_eq!(delivery, Delivery::Done);
        assert_eq!(
            done,
            [2, 5],
            "0..=2 done after the first call, the rest after the retry"
        );
        assert_eq!(
            s.invoker.calls.lock().unwrap()[1],
            [3, 4, 5],
            "retried from the lowest failed offset"
        );
    }

    /// A response naming every record of `poison` present in the invoked batch as failed.
    fn failing(poison: &'static [i64]) -> impl Fn(usize, &[i64]) -> InvokeOutcome {
        move |_, offsets| {
            let failures: Vec<String> = offsets
                .iter()
                .filter(|o| poison.contains(o))
                .map(|o| format!(r#"{{"itemIdentifier":"t-0-{o}"}}"#))
                .collect();
            InvokeOutcome::Success {
                payload: format!(r#"{{"batchItemFailures":[{}]}}"#, failures.join(","))
                    .into_bytes(),
            }
        }
    }

    #[tokio::test]
    async fn a_record_failed_in_partial_responses_is_given_up_alone_and_the_rest_invoked_again() {
        let s = shared(
            "report_batch_item_failures = true\nmax_retry_attempts = 1",
            failing(&[3]),
        );
        let (delivery, done) = run(&s, 0..10).await;
        assert_eq!(delivery, Delivery::Done);
        assert_eq!(done, [2, 3, 9], "0..=2, then 3 given up, then 4..=9");
        let calls = s.invoker.calls.lock().unwrap().clone();
        let expected: [Vec<i64>; 3] = [(0..10).collect(), (3..10).collect(), (4..10).collect()];
        assert_eq!(
            calls, expected,
            "the rest after the given-up record is invoked again"
        );
    }

    #[tokio::test]
    async fn each_failed_record_has_its_own_retry_budget() {
        let s = shared(
            "report_batch_item_failures = true\nmax_retry_attempts = 1",
            failing(&[3, 6]),
        );
        let (delivery, done) = run(&s, 0..10).await;
        assert_eq!(delivery, Delivery::Done);
        assert_eq!(done, [2, 3, 5, 6, 9]);
        let calls = s.invoker.calls.lock().unwrap().clone();
        let firsts: Vec<i64> = calls.iter().map(|c| c[0]).collect();
        assert_eq!(
            firsts,
            [0, 3, 4, 6, 7],
            "3 and 6 each get one retry: progress to 6 resets the budget"
        );
    }

    #[tokio::test]
    async fn a_response_naming_a_record_outside_the_batch_fails_the_whole_batch() {
        let s = shared(
            "report_batch_item_failures = true\nmax_retry_attempts = 0",
            |_, _| InvokeOutcome::Success {
                payload: br#"{"batchItemFailures":[{"itemIdentifier":"other-0-1"}]}"#.to_vec(),
            },
        );
        let (delivery, done) = run(&s, 0..3).await;
        assert_eq!(delivery, Delivery::Done);
        assert_eq!(done, [2], "given up (skipped: no destination) as a whole");
        assert_eq!(s.invoker.calls.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_partition_worker_that_panics_stops_the_mapping_and_turns_readiness_off() {
        let s = shared("", |_, _| ok());
        s.health.set_joined(0, true);
        assert!(s.health.is_ready());
        crate::partition::supervise(&s, "t", 4, async { panic!("boom at offset 7") }).await;
        assert!(s.stop.is_cancelled(), "the mapping is stopped");
        assert_eq!(
            s.worker_died.get().map(String::as_str),
            Some("the worker of partition t-4 panicked: boom at offset 7")
        );
        assert!(
            s.health
                .not_ready()
                .is_some_and(|why| why.contains("partition worker stopped"))
        );
    }

    #[tokio::test]
    async fn a_partition_worker_that_ends_normally_stops_nothing() {
        let s = shared("", |_, _| ok());
        crate::partition::supervise(&s, "t", 4, async {}).await;
        assert!(!s.stop.is_cancelled());
        assert!(s.worker_died.get().is_none());
    }

    #[tokio::test]
    async fn a_stop_lets_the_batch_in_flight_finish_its_backoff_and_retry() {
        let s = shared("", |n, _| if n == 0 { error() } else { ok() });
        let control = control();
        control.stop.cancel();
        let mut done = Vec::new();
        let delivery = deliver(&s, "t", 0, batch(&s, 0..3), &control, &mut None, |o| {
            done.push(o)
        })
        .await;
        assert_eq!(delivery, Delivery::Done);
        assert_eq!(done, [2]);
        assert_eq!(s.invoker.calls.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn an_abort_during_backoff_abandons_without_marking_anything_done() {
        let s = shared(
            "retry_backoff_base_ms = 60000\nretry_backoff_max_ms = 60000",
            |_, _| error(),
        );
        let control = control();
        control.abort.cancel();
        let mut done = Vec::new();
        let delivery = deliver(&s, "t", 0, batch(&s, 0..3), &control, &mut None, |o| {
            done.push(o)
        })
        .await;
        assert_eq!(delivery, Delivery::Abandoned);
        assert!(done.is_empty());
    }
}
