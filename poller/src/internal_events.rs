//! What happens to records, one struct per thing: [`emit`](InternalEvent::emit) writes its log
//! line and bumps its metric together, so the two never disagree. Events of a partition are
//! emitted inside its worker's span, which carries `function`, `topic` and `partition`; the
//! events carry only what is their own (offsets, counts, errors). Messages are stable: operators
//! search for them.

use crate::invoke::InvokeOutcome;
use crate::telemetry::{DeadLetterWriteError, MappingMetrics, RetryReason};
use std::time::Duration;

/// Something that happened, reported to the log and the metrics.
pub(crate) trait InternalEvent {
    /// Logs the event and counts it in `metrics`.
    fn emit(self, metrics: &MappingMetrics);
}

/// A record was taken off its partition queue.
pub(crate) struct RecordReceived;

impl InternalEvent for RecordReceived {
    fn emit(self, metrics: &MappingMetrics) {
        metrics.received.increment(1);
    }
}

/// A record matched none of the mapping's filters: done without invoking.
pub(crate) struct RecordFiltered;

impl InternalEvent for RecordFiltered {
    fn emit(self, metrics: &MappingMetrics) {
        metrics.filtered.increment(1);
    }
}

/// The input template does not apply to a record: it follows the failure policy.
pub(crate) struct InputTemplateFailed<'a> {
    pub offset: i64,
    pub error: &'a str,
}

impl InternalEvent for InputTemplateFailed<'_> {
    fn emit(self, _: &MappingMetrics) {
        tracing::warn!(
            offset = self.offset,
            error = self.error,
            "the input template does not apply to the record"
        );
    }
}

/// A record's key or value does not decode with its schema (or its schema does not exist): it
/// follows the failure policy with the event source mapping's error type.
pub(crate) struct RecordUndecodable<'a> {
    pub offset: i64,
    pub error_type: &'a str,
    pub error: &'a str,
}

impl InternalEvent for RecordUndecodable<'_> {
    fn emit(self, _: &MappingMetrics) {
        tracing::warn!(
            offset = self.offset,
            error_type = self.error_type,
            error = self.error,
            "the record does not decode through the schema registry"
        );
    }
}

/// The schema registry could not be asked for a record's schema (down, slow, or refusing the
/// poller's credentials): the partition waits and asks again.
pub(crate) struct SchemaRegistryUnavailable<'a> {
    pub offset: i64,
    pub error: &'a str,
    pub retry_in: Duration,
}

impl InternalEvent for SchemaRegistryUnavailable<'_> {
    fn emit(self, _: &MappingMetrics) {
        tracing::warn!(
            offset = self.offset,
            error = self.error,
            retry_in_ms = self.retry_in.as_millis() as u64,
            "the schema registry cannot be asked; the partition waits for it"
        );
    }
}

/// A record is too large for an invocation payload even alone.
pub(crate) struct RecordTooLarge {
    pub offset: i64,
    pub payload_bytes: usize,
    pub limit: usize,
}

impl InternalEvent for RecordTooLarge {
    fn emit(self, _: &MappingMetrics) {
        tracing::error!(
            offset = self.offset,
            payload_bytes = self.payload_bytes,
            limit = self.limit,
            "record is too large for one invocation payload even alone; it cannot be delivered"
        );
    }
}

/// The offsets of a segment of a batch, for the events about it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OffsetRange {
    pub first_offset: i64,
    pub last_offset: i64,
}

/// An invocation returned (whatever its outcome).
pub(crate) struct BatchInvoked<'a> {
    pub offsets: OffsetRange,
    pub records: usize,
    pub bytes: usize,
    /// Invocations of these records before this one that reached the function.
    pub attempt: u32,
    /// Throttles and service failures in a row before this one.
    pub hiccups: u32,
    pub elapsed: Duration,
    pub outcome: &'a InvokeOutcome,
}

impl InternalEvent for BatchInvoked<'_> {
    fn emit(self, metrics: &MappingMetrics) {
        metrics.batch_records.record(self.records as f64);
        metrics.batch_bytes.record(self.bytes as f64);
        metrics.invoke_seconds.record(self.elapsed.as_secs_f64());
        metrics.invocation(self.outcome.kind());
        let OffsetRange {
            first_offset,
            last_offset,
        } = self.offsets;
        tracing::debug!(
            first_offset,
            last_offset,
            records = self.records,
            bytes = self.bytes,
            attempt = self.attempt,
            outcome = self.outcome.kind(),
            elapsed_ms = self.elapsed.as_millis() as u64,
            "batch invoked"
        );
        let attempt = self.hiccups;
        match self.outcome {
            InvokeOutcome::Throttled { message } => {
                metrics.throttles.increment(1);
                metrics.retry(RetryReason::Throttled);
                tracing::warn!(first_offset, attempt, error = %message, "invocation throttled; backing off")
            }
            InvokeOutcome::Transient { message } => {
                metrics.retry(RetryReason::Transient);
                tracing::warn!(first_offset, attempt, error = %message,
                    "invocation failed (service or network); retrying")
            }
            InvokeOutcome::Permanent { message } => {
                metrics.retry(RetryReason::Permanent);
                tracing::error!(first_offset, attempt, error = %message,
                    "invocation rejected; check the function name, permissions and endpoint. Retrying")
            }
            InvokeOutcome::Success { .. } | InvokeOutcome::FunctionError { .. } => {}
        }
    }
}

/// The function finished records.
pub(crate) struct RecordsDelivered {
    pub count: usize,
}

impl InternalEvent for RecordsDelivered {
    fn emit(self, metrics: &MappingMetrics) {
        metrics.delivered.increment(self.count as u64);
    }
}

/// The function returned an error for a segment.
pub(crate) struct FunctionFailed<'a> {
    pub offsets: OffsetRange,
    pub attempt: u32,
    pub error_type: &'a str,
    pub message: &'a str,
}

impl InternalEvent for FunctionFailed<'_> {
    fn emit(self, metrics: &MappingMetrics) {
        metrics.retry(RetryReason::FunctionError);
        tracing::warn!(
            first_offset = self.offsets.first_offset,
            last_offset = self.offsets.last_offset,
            attempt = self.attempt,
            error_type = self.error_type,
            error = %self.message,
            "function returned an error"
        );
    }
}

/// A failed segment is split in two.
pub(crate) struct BatchBisected {
    pub offsets: OffsetRange,
    pub left: usize,
    pub right: usize,
}

impl InternalEvent for BatchBisected {
    fn emit(self, _: &MappingMetrics) {
        tracing::info!(
            first_offset = self.offsets.first_offset,
            last_offset = self.offsets.last_offset,
            left = self.left,
            right = self.right,
            "bisecting the failed batch"
        );
    }
}

/// The function's partial batch response named a record as failed.
pub(crate) struct PartialBatchFailure {
    pub offsets: OffsetRange,
    pub failed_offset: i64,
    pub attempt: u32,
}

impl InternalEvent for PartialBatchFailure {
    fn emit(self, metrics: &MappingMetrics) {
        metrics.retry(RetryReason::PartialFailure);
        tracing::warn!(
            first_offset = self.offsets.first_offset,
            last_offset = self.offsets.last_offset,
            failed_offset = self.failed_offset,
            attempt = self.attempt,
            "function reported a partial batch failure; retrying from the failed record"
        );
    }
}

/// The function's partial batch response cannot be trusted.
pub(crate) struct MalformedBatchResponse<'a> {
    pub offsets: OffsetRange,
    pub attempt: u32,
    pub problem: &'a str,
}

impl InternalEvent for MalformedBatchResponse<'_> {
    fn emit(self, metrics: &MappingMetrics) {
        metrics.retry(RetryReason::FunctionError);
        tracing::error!(
            first_offset = self.offsets.first_offset,
            last_offset = self.offsets.last_offset,
            attempt = self.attempt,
            error = %self.problem,
            "malformed partial batch response; the whole batch counts as failed"
        );
    }
}

/// The function returned `batchItemFailures` while `report_batch_item_failures` is off (emitted
/// once per mapping).
pub(crate) struct ItemFailuresIgnored {
    pub offsets: OffsetRange,
}

impl InternalEvent for ItemFailuresIgnored {
    fn emit(self, _: &MappingMetrics) {
        tracing::warn!(
            first_offset = self.offsets.first_offset,
            last_offset = self.offsets.last_offset,
            "the function returned batchItemFailures, which are ignored because report_batch_item_failures is false: the whole batch counts as delivered (set report_batch_item_failures = true to retry the failed records; logged once per mapping)"
        );
    }
}

/// Why records are given up, for the events about them.
pub(crate) struct GivenUp<'a> {
    pub offsets: OffsetRange,
    pub records: usize,
    pub attempts: u32,
    pub error_type: &'a str,
    pub message: &'a str,
}

/// Records were given up and skipped: no on-failure destination is configured.
pub(crate) struct RecordsSkipped<'a>(pub GivenUp<'a>);

impl InternalEvent for RecordsSkipped<'_> {
    fn emit(self, metrics: &MappingMetrics) {
        let g = self.0;
        metrics.failed.increment(g.records as u64);
        tracing::error!(first_offset = g.offsets.first_offset, last_offset = g.offsets.last_offset,
            records = g.records, attempts = g.attempts, error_type = %g.error_type, error = %g.message,
            "giving up on records (retries or age exhausted) and skipping them: no on_failure destination is configured");
    }
}

/// Records were given up and written to the on-failure destination.
pub(crate) struct RecordsDeadLettered<'a> {
    pub given_up: GivenUp<'a>,
    pub destination: &'a str,
}

impl InternalEvent for RecordsDeadLettered<'_> {
    fn emit(self, metrics: &MappingMetrics) {
        let g = self.given_up;
        metrics.dead_lettered.increment(g.records as u64);
        tracing::warn!(first_offset = g.offsets.first_offset, last_offset = g.offsets.last_offset,
            records = g.records, destination = self.destination, attempts = g.attempts,
            error_type = %g.error_type, "records dead-lettered");
    }
}

/// A write to the on-failure destination failed; the partition waits and retries.
pub(crate) struct DeadLetterWriteFailed<'a> {
    pub offsets: OffsetRange,
    pub destination: &'a str,
    pub attempt: u32,
    pub error: &'a rdkafka::error::KafkaError,
    pub reason: DeadLetterWriteError,
    /// What to do about it.
    pub fix: &'a str,
}

impl InternalEvent for DeadLetterWriteFailed<'_> {
    fn emit(self, metrics: &MappingMetrics) {
        metrics.dead_letter_write_error(self.reason);
        tracing::error!(first_offset = self.offsets.first_offset, last_offset = self.offsets.last_offset,
            destination = self.destination, attempt = self.attempt, error = %self.error,
            "cannot write to the on_failure destination: {}; the partition waits and retries (nothing is committed past the record)", self.fix);
    }
}
