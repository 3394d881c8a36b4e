//! Per-record processing: each partition (or, with [`Ordering::Key`], each key of a partition) in
//! offset order, stopping at its first failure, partitions (keys) concurrently; and the answer to
//! Lambda built from the outcome.

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
    ordering: Ordering,
    #[cfg(feature = "schema-registry")]
    schemas: Option<crate::schema::SchemaSource>,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        ProcessOptions {
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            report_batch_item_failures: false,
            skip_undecodable: false,
            ordering: Ordering::Partition,
            #[cfg(feature = "schema-registry")]
            schemas: None,
        }
    }
}

/// Which records of a batch keep their order among themselves ([`ProcessOptions::ordering`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ordering {
    /// Each partition's records one after the other, in offset order; partitions concurrently.
    /// A failed record stops its partition, and is reported as the partition's first failure.
    /// What the native MSK / self-managed Kafka trigger expects, and the poller's
    /// `ordering = "partition"`.
    #[default]
    Partition,
    /// Each key's records (within a partition) one after the other, in offset order; keys
    /// concurrently (records without a key form one key). A failed record stops only its key,
    /// and each failed key's first failed record is reported. Pair it with the poller's
    /// `ordering = "key"`, which retries a reported record with the later records of its key
    /// only. Behind the native trigger (which has no such mode) a reported record means its
    /// whole partition from that offset, so the other keys' later records would run again.
    Key,
}

impl ProcessOptions {
    /// The defaults: 8 partitions at a time, any failure fails the invocation, undecodable
    /// records are failures.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where the schemas of registry-written keys and values come from
    /// ([`Avro`](crate::schema::Avro), [`Protobuf`](crate::schema::Protobuf),
    /// [`JsonSchema`](crate::schema::JsonSchema)): they are fetched before each event's records
    /// are decoded. Default: none.
    #[cfg(feature = "schema-registry")]
    pub fn schemas(mut self, schemas: crate::schema::SchemaSource) -> Self {
        self.schemas = Some(schemas);
        self
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

    /// Which records keep their order: [`Ordering::Partition`] (default) or [`Ordering::Key`];
    /// `max_concurrency` then counts keys processed at once.
    pub fn ordering(mut self, ordering: Ordering) -> Self {
        self.ordering = ordering;
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
    #[cfg(feature = "schema-registry")]
    if let Some(source) = &options.schemas {
        return source
            .prefetch_for_invocation(&event)
            .await?
            .scope_async(process_prefetched(event, f, options))
            .await;
    }
    process_prefetched(event, f, options).await
}

/// [`process_records`] once the event's schemas are at hand.
async fn process_prefetched<T, F, Fut, E>(
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
    // The runs of records processed one after the other: partitions, or keys of partitions.
    let runs: Vec<Vec<KafkaRecord>> = match options.ordering {
        Ordering::Partition => event.records.into_values().collect(),
        Ordering::Key => event.records.into_values().flat_map(by_key).collect(),
    };
    let mut partitions: Vec<(usize, PartitionOutcome)> =
        futures::stream::iter(runs.into_iter().enumerate())
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

/// A partition's records split by key, each key's in offset order, keys in the order of their
/// first record.
fn by_key(records: Vec<KafkaRecord>) -> Vec<Vec<KafkaRecord>> {
    let mut keys: std::collections::HashMap<Option<Vec<u8>>, usize> = Default::default();
    let mut runs: Vec<Vec<KafkaRecord>> = Vec::new();
    for record in records {
        let next = runs.len();
        let run = *keys.entry(record.key.clone()).or_insert(next);
        if run == next {
            runs.push(Vec::new());
        }
        runs[run].push(record);
    }
    runs
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
mod tests;
