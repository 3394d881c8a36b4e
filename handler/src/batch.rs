//! Whole-batch processing: the function receives every decoded record of the event at once.

use crate::decode::DecodeValue;
use crate::error::HandlerError;
use crate::record::Record;
use kafka_lambda_events::{EventSource, KafkaEvent, RecordId, TopicPartition};
use lambda_runtime::Error;
use std::future::Future;
use std::ops::Range;
use tracing::Instrument;

/// How [`decode_batch`], [`process_batch`] and [`run_batch_with`](crate::run_batch_with) treat
/// a batch.
#[derive(Debug, Clone, Default)]
pub struct BatchOptions {
    skip_undecodable: bool,
    #[cfg(feature = "schema-registry")]
    schemas: Option<crate::schema::SchemaSource>,
}

impl BatchOptions {
    /// The defaults: a record that cannot be decoded fails the invocation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where the schemas of registry-written keys and values come from; see
    /// [`ProcessOptions::schemas`](crate::ProcessOptions::schemas). [`process_batch`] fetches
    /// them before decoding; [`decode_batch`], which has no runtime, decodes with those of
    /// [`SchemaSource::prefetch`](crate::schema::SchemaSource::prefetch) only when called in
    /// [`Prefetched::scope`](crate::schema::Prefetched::scope).
    #[cfg(feature = "schema-registry")]
    pub fn schemas(mut self, schemas: crate::schema::SchemaSource) -> Self {
        self.schemas = Some(schemas);
        self
    }

    /// Leave out records whose value cannot be decoded, logging each at `warn`; they are
    /// listed by [`Batch::skipped`] (default: off, the invocation fails naming the record).
    pub fn skip_undecodable(mut self, enabled: bool) -> Self {
        self.skip_undecodable = enabled;
        self
    }
}

/// Every decoded record of one event, in event order: partition by partition, each partition
/// in offset order.
///
/// Iterate over all records with [`Batch::iter`] (or `for record in &batch`), or partition by
/// partition with [`Batch::partitions`].
#[derive(Debug, Clone)]
pub struct Batch<T> {
    records: Vec<Record<T>>,
    partitions: Vec<(TopicPartition, Range<usize>)>,
    skipped: Vec<RecordId>,
    event_source: EventSource,
    event_source_arn: Option<String>,
    bootstrap_servers: Option<String>,
}

impl<T> Batch<T> {
    /// Number of (decoded) records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the batch has no decoded records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The records in event order.
    pub fn records(&self) -> &[Record<T>] {
        &self.records
    }

    /// Iterates over the records in event order.
    pub fn iter(&self) -> std::slice::Iter<'_, Record<T>> {
        self.records.iter()
    }

    /// Takes the records, in event order.
    pub fn into_records(self) -> Vec<Record<T>> {
        self.records
    }

    /// The records grouped by topic-partition, in event order; partitions with no decoded
    /// record are left out.
    pub fn partitions(&self) -> impl Iterator<Item = (&TopicPartition, &[Record<T>])> {
        self.partitions
            .iter()
            .map(|(tp, range)| (tp, &self.records[range.clone()]))
    }

    /// The records left out because they could not be decoded (with
    /// [`BatchOptions::skip_undecodable`]).
    pub fn skipped(&self) -> &[RecordId] {
        &self.skipped
    }

    /// `aws:kafka` (MSK) or `SelfManagedKafka`.
    pub fn event_source(&self) -> &EventSource {
        &self.event_source
    }

    /// ARN of the MSK cluster; `None` for self-managed Kafka.
    pub fn event_source_arn(&self) -> Option<&str> {
        self.event_source_arn.as_deref()
    }

    /// Comma-separated bootstrap brokers of the cluster, when the event names them.
    pub fn bootstrap_servers(&self) -> Option<&str> {
        self.bootstrap_servers.as_deref()
    }
}

impl<T> IntoIterator for Batch<T> {
    type Item = Record<T>;
    type IntoIter = std::vec::IntoIter<Record<T>>;

    fn into_iter(self) -> Self::IntoIter {
        self.records.into_iter()
    }
}

impl<'a, T> IntoIterator for &'a Batch<T> {
    type Item = &'a Record<T>;
    type IntoIter = std::slice::Iter<'a, Record<T>>;

    fn into_iter(self) -> Self::IntoIter {
        self.records.iter()
    }
}

/// Decodes every record of `event` into a [`Batch`], without any runtime.
///
/// Fails with [`HandlerError::Undecodable`] on the first record that does not decode (unless
/// [`BatchOptions::skip_undecodable`]), or [`HandlerError::InvalidEvent`] if the event is
/// inconsistent.
pub fn decode_batch<T: DecodeValue>(
    event: KafkaEvent,
    options: &BatchOptions,
) -> Result<Batch<T>, HandlerError> {
    crate::event::validate(&event)?;
    let mut records = Vec::with_capacity(event.len());
    let mut partitions = Vec::with_capacity(event.records.len());
    let mut skipped = Vec::new();
    for raws in event.records.into_values() {
        let start = records.len();
        let mut topic_partition = None;
        for raw in raws {
            topic_partition.get_or_insert_with(|| raw.topic_partition());
            match Record::<T>::decode(raw) {
                Ok(record) => records.push(record),
                Err(error) if options.skip_undecodable => {
                    tracing::warn!(%error, "skipping undecodable Kafka record");
                    skipped.push(error.record().clone());
                }
                Err(error) => return Err(HandlerError::Undecodable(error)),
            }
        }
        if let Some(tp) = topic_partition
            && records.len() > start
        {
            partitions.push((tp, start..records.len()));
        }
    }
    Ok(Batch {
        records,
        partitions,
        skipped,
        event_source: event.event_source,
        event_source_arn: event.event_source_arn,
        bootstrap_servers: event.bootstrap_servers,
    })
}

/// Decodes `event` ([`decode_batch`]) and calls `f` with the batch, inside a `kafka_batch`
/// span: what [`run_batch`](crate::run_batch) does for each invocation. An error from `f`
/// becomes [`HandlerError::BatchFailed`].
pub async fn process_batch<T, R, F, Fut, E>(
    event: KafkaEvent,
    f: F,
    options: &BatchOptions,
) -> Result<R, HandlerError>
where
    T: DecodeValue,
    F: FnOnce(Batch<T>) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    E: Into<Error>,
{
    let span = tracing::info_span!("kafka_batch", records = event.len());
    async move {
        #[cfg(feature = "schema-registry")]
        let batch = match &options.schemas {
            Some(source) => source
                .prefetch_for_invocation(&event)
                .await?
                .scope(|| decode_batch(event, options)),
            None => decode_batch(event, options),
        };
        #[cfg(not(feature = "schema-registry"))]
        let batch = decode_batch(event, options);
        let batch = batch.inspect_err(|error| {
            tracing::error!(%error, "cannot decode the Kafka batch");
        })?;
        let (records, skipped) = (batch.len(), batch.skipped().len());
        let response = f(batch)
            .await
            .map_err(|e| HandlerError::BatchFailed(e.into()))?;
        tracing::info!(records, skipped, "Kafka batch processed");
        Ok(response)
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Text;
    use crate::testing;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    struct Reading {
        celsius: f64,
    }

    fn readings() -> KafkaEvent {
        testing::msk_event()
            .json_record("temps", 1, 4, &json!({ "celsius": 20.5 }))
            .json_record("temps", 1, 5, &json!({ "celsius": 21.0 }))
            .json_record("temps", 0, 9, &json!({ "celsius": -3.0 }))
            .build()
    }

    #[test]
    fn records_keep_event_order_and_partition_grouping() {
        let batch = decode_batch::<Reading>(readings(), &BatchOptions::new()).unwrap();
        let offsets: Vec<_> = batch.iter().map(Record::offset).collect();
        assert_eq!(offsets, [4, 5, 9]);
        let groups: Vec<_> = batch
            .partitions()
            .map(|(tp, records)| (tp.to_string(), records.len()))
            .collect();
        assert_eq!(
            groups,
            [("temps-1".to_owned(), 2), ("temps-0".to_owned(), 1)]
        );
        assert_eq!(batch.event_source(), &EventSource::Msk);
        assert!(batch.event_source_arn().is_some());
        assert!(batch.skipped().is_empty());
    }

    #[tokio::test]
    async fn the_function_result_is_the_response() {
        let total = process_batch(
            readings(),
            |batch: Batch<Reading>| async move {
                Ok::<_, String>(batch.iter().map(|r| r.value().celsius).sum::<f64>())
            },
            &BatchOptions::new(),
        )
        .await
        .unwrap();
        assert_eq!(total, 38.5);
    }

    #[tokio::test]
    async fn a_function_error_fails_the_batch() {
        let error = process_batch(
            readings(),
            |_: Batch<Reading>| async { Err::<(), _>("database is down") },
            &BatchOptions::new(),
        )
        .await
        .unwrap_err();
        assert_eq!(error.error_type(), "KafkaBatchFailed");
        assert_eq!(
            error.to_string(),
            "the batch function failed: database is down"
        );
    }

    fn with_garbage() -> KafkaEvent {
        testing::event()
            .json_record("temps", 0, 1, &json!({ "celsius": 1.0 }))
            .text_record("temps", 0, 2, "hot")
            .tombstone("temps", 3, 0)
            .build()
    }

    #[tokio::test]
    async fn an_undecodable_record_fails_the_invocation_naming_it() {
        let error = process_batch(
            with_garbage(),
            |_: Batch<Reading>| async { Ok::<_, String>(()) },
            &BatchOptions::new(),
        )
        .await
        .unwrap_err();
        assert_eq!(error.error_type(), "KafkaRecordUndecodable");
        assert!(
            error
                .to_string()
                .starts_with("record temps-0@2: value is not valid JSON"),
            "{error}"
        );
    }

    #[test]
    fn undecodable_records_can_be_skipped() {
        let options = BatchOptions::new().skip_undecodable(true);
        let batch = decode_batch::<Reading>(with_garbage(), &options).unwrap();
        assert_eq!(batch.len(), 1);
        let skipped: Vec<_> = batch.skipped().iter().map(ToString::to_string).collect();
        assert_eq!(skipped, ["temps-0@2", "temps-3@0"]);
        assert_eq!(
            batch.partitions().count(),
            1,
            "temps-3 has no decoded record"
        );
    }

    #[test]
    fn text_batches_take_any_utf8() {
        let event = testing::event()
            .text_record("logs", 0, 0, "plain line")
            .build();
        let batch = decode_batch::<Text>(event, &BatchOptions::new()).unwrap();
        let lines: Vec<String> = batch.into_iter().map(|r| r.into_value().0).collect();
        assert_eq!(lines, ["plain line"]);
    }
}
