//! Copying a batch to the destination cluster and telling which records made it.

use crate::config::Config;
use kafka_lambda_client::{ClientError, KafkaClientContext};
use kafka_lambda_handler::{
    Batch, Bytes, FailureReason, HandlerError, KafkaBatchResponse, Nullable, Record, RecordFailure,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use std::time::{Duration, Instant};

/// What the function decodes each record's value into: the raw bytes, `None` for a tombstone,
/// which is copied as a tombstone.
pub(crate) type Value = Nullable<Bytes>;

/// How long to wait before trying again to enqueue a record when librdkafka's local queue is
/// full; deliveries drain it in the meantime.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(10);

/// Writes batches to the destination cluster with one idempotent producer, made once per
/// execution environment and shared by its invocations.
pub(crate) struct Dumper {
    producer: FutureProducer<KafkaClientContext>,
    topic: Option<String>,
    preserve_partition: bool,
    delivery_timeout: Duration,
}

impl Dumper {
    /// A producer for `config.destination` with the settings that keep the copy exact:
    /// idempotence (no duplicates from the producer's own retries, order kept per partition),
    /// `acks=all`, and `message.timeout.ms` from `DUMP_DELIVERY_TIMEOUT_MS`. Unless the client
    /// config's options choose another, the partitioner is `murmur2_random`, the one Java
    /// clients use, so a keyed record lands in the partition a Java producer would pick, and
    /// `linger.ms` is 5.
    pub(crate) fn new(config: &Config) -> Result<Self, ClientError> {
        let timeout_ms = config.delivery_timeout.as_millis().to_string();
        let mut extra = vec![
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("message.timeout.ms", timeout_ms.as_str()),
        ];
        // Defaults the client config's options may override: a short linger batches the
        // records of one invocation without delaying its answer.
        for (key, value) in [("partitioner", "murmur2_random"), ("linger.ms", "5")] {
            if !config.destination.options.contains_key(key) {
                extra.push((key, value));
            }
        }
        Ok(Dumper {
            producer: config.destination.create(&extra)?,
            topic: config.topic.clone(),
            preserve_partition: config.preserve_partition,
            delivery_timeout: config.delivery_timeout,
        })
    }

    /// Copies every record of `batch`, partition by partition in offset order, and waits for
    /// the destination to acknowledge them.
    ///
    /// Records of all partitions are in flight at once; the idempotent producer keeps each
    /// destination partition in order. The first record of a source partition that fails
    /// (enqueueing or delivery) is that partition's failure; records after it are not counted
    /// as copied, even when the destination took them, so the retry starts at the failure.
    pub(crate) async fn dump(&self, batch: &Batch<Value>) -> DumpOutcome {
        let mut partitions = Vec::new();
        for (_, records) in batch.partitions() {
            let mut pending = Vec::with_capacity(records.len());
            let mut refused = None;
            for (position, record) in records.iter().enumerate() {
                match self.enqueue(record).await {
                    Ok(delivery) => pending.push((record, delivery)),
                    Err(error) => {
                        tracing::error!(record = %record.id(), %error, "the producer refused the record");
                        refused = Some((failure(record, error), records.len() - position - 1));
                        break;
                    }
                }
            }
            partitions.push((pending, refused));
        }

        let mut outcome = DumpOutcome::default();
        for (pending, refused) in partitions {
            let mut failed = None;
            for (record, delivery) in pending {
                let result = match delivery.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((error, _))) => Err(error),
                    Err(_) => Err(KafkaError::Canceled),
                };
                match (result, &failed) {
                    (Ok(()), None) => outcome.copied += 1,
                    (Ok(()), Some(_)) => outcome.copied_after_failure += 1,
                    (Err(error), None) => {
                        tracing::error!(record = %record.id(), %error, "the record was not delivered");
                        failed = Some(failure(record, error));
                    }
                    (Err(_), Some(_)) => outcome.not_copied += 1,
                }
            }
            match (failed, refused) {
                (Some(failure), Some((_, left))) => {
                    outcome.failures.push(failure);
                    outcome.not_copied += 1 + left;
                }
                (Some(failure), None) => outcome.failures.push(failure),
                (None, Some((failure, left))) => {
                    outcome.failures.push(failure);
                    outcome.not_copied += left;
                }
                (None, None) => {}
            }
        }
        outcome
    }

    /// Hands one record to librdkafka, waiting while its queue is full (at most the delivery
    /// timeout).
    async fn enqueue(&self, record: &Record<Value>) -> Result<DeliveryFuture, KafkaError> {
        let deadline = Instant::now() + self.delivery_timeout;
        loop {
            match self.producer.send_result(self.outgoing(record)) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _))
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(QUEUE_FULL_BACKOFF).await;
                }
                Err((error, _)) => return Err(error),
            }
        }
    }

    /// The record as it is written: same key, value (a tombstone stays one), headers in order,
    /// and timestamp (a record without one gets the producer's clock); the source partition
    /// number when partitions are preserved.
    fn outgoing<'a>(&'a self, record: &'a Record<Value>) -> FutureRecord<'a, [u8], [u8]> {
        let topic = self.topic.as_deref().unwrap_or(record.topic());
        let mut out = FutureRecord::to(topic);
        if let Some(key) = record.key() {
            out = out.key(key);
        }
        if let Some(value) = record.value().as_ref() {
            out = out.payload(&value[..]);
        }
        if !record.headers().is_empty() {
            let headers = record.headers().iter().fold(
                OwnedHeaders::new_with_capacity(record.headers().len()),
                // Names as bytes: a copy keeps a name that is not UTF-8 as it was.
                |headers, header| {
                    kafka_lambda_client::add_raw_header(
                        headers,
                        header.name.as_bytes(),
                        Some(&header.value),
                    )
                },
            );
            out = out.headers(headers);
        }
        if record.raw().timestamp >= 0 {
            out = out.timestamp(record.raw().timestamp);
        }
        if self.preserve_partition {
            out = out.partition(record.partition());
        }
        out
    }
}

fn failure(record: &Record<Value>, error: KafkaError) -> RecordFailure {
    RecordFailure {
        record: record.id(),
        reason: FailureReason::Failed(Box::new(error)),
    }
}

/// What happened to the records of one batch.
#[derive(Debug, Default)]
pub(crate) struct DumpOutcome {
    /// Records acknowledged by the destination and reported as done.
    pub(crate) copied: usize,
    /// Records the destination acknowledged after an earlier record of their partition failed:
    /// they are written again when the batch is retried from the failed record.
    pub(crate) copied_after_failure: usize,
    /// Records not delivered after (or with) their partition's failure, the failure excluded.
    pub(crate) not_copied: usize,
    /// The first failed record of each failed partition, in event order.
    pub(crate) failures: Vec<RecordFailure>,
}

impl DumpOutcome {
    /// The invocation's answer: an empty response when every record was copied; otherwise the
    /// partial batch response naming each failed partition's first failed record when
    /// `report_batch_item_failures`, else an error (Lambda retries the whole batch).
    pub(crate) fn into_response(
        self,
        report_batch_item_failures: bool,
    ) -> Result<KafkaBatchResponse, HandlerError> {
        if self.failures.is_empty() {
            tracing::info!(copied = self.copied, "batch copied");
        } else {
            tracing::warn!(
                copied = self.copied,
                failed_partitions = self.failures.len(),
                copied_after_failure = self.copied_after_failure,
                not_copied = self.not_copied,
                "batch partly copied"
            );
        }
        if self.failures.is_empty() || report_batch_item_failures {
            Ok(KafkaBatchResponse::failed(
                self.failures.iter().map(RecordFailure::item_identifier),
            ))
        } else {
            Err(HandlerError::RecordsFailed(self.failures))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_lambda_client::KafkaClientConfig;
    use kafka_lambda_handler::events::{KafkaRecord, TimestampType};
    use kafka_lambda_handler::{BatchOptions, decode_batch, testing};
    use rdkafka::message::Headers;

    fn dumper(config: Config) -> Dumper {
        Dumper::new(&config).unwrap()
    }

    fn config(bootstrap: &str) -> Config {
        Config {
            destination: KafkaClientConfig::new(bootstrap),
            topic: None,
            preserve_partition: false,
            delivery_timeout: Duration::from_millis(1500),
            report_batch_item_failures: true,
        }
    }

    fn batch(event: testing::TestEvent) -> Batch<Value> {
        decode_batch(event.build(), &BatchOptions::new()).unwrap()
    }

    #[tokio::test]
    async fn outgoing_records_keep_key_value_headers_and_timestamp() {
        let batch = batch(
            testing::event()
                .record(
                    KafkaRecord::new("orders", 3, 7)
                        .with_key("k")
                        .with_value(vec![0, 255])
                        .with_header("a", "1")
                        .with_header("a", "2")
                        .with_timestamp(1_700_000_000_123, TimestampType::CreateTime),
                )
                .tombstone("orders", 3, 8),
        );
        let mut same_partition = config("127.0.0.1:1");
        same_partition.preserve_partition = true;
        same_partition.topic = Some("orders-copy".into());
        for dumper in [dumper(config("127.0.0.1:1")), dumper(same_partition)] {
            let first = dumper.outgoing(&batch.records()[0]);
            assert_eq!(first.key, Some(&b"k"[..]));
            assert_eq!(first.payload, Some(&[0u8, 255][..]));
            assert_eq!(first.timestamp, Some(1_700_000_000_123));
            let headers = first.headers.as_ref().unwrap();
            let headers: Vec<_> = headers.iter().map(|h| (h.key, h.value)).collect();
            assert_eq!(headers, [("a", Some(&b"1"[..])), ("a", Some(&b"2"[..]))]);
            let tombstone = dumper.outgoing(&batch.records()[1]);
            assert_eq!(tombstone.payload, None);
            assert_eq!(tombstone.key, None);
            assert_eq!(
                tombstone.timestamp, None,
                "no timestamp: the producer's clock"
            );
            if dumper.preserve_partition {
                assert_eq!(first.topic, "orders-copy");
                assert_eq!(first.partition, Some(3));
            } else {
                assert_eq!(first.topic, "orders");
                assert_eq!(first.partition, None);
            }
        }
    }

    #[tokio::test]
    async fn an_unreachable_destination_fails_the_first_record_of_each_partition() {
        // Nothing listens on port 1: every delivery times out.
        let dumper = dumper(config("127.0.0.1:1"));
        let batch = batch(
            testing::event()
                .text_record("orders", 0, 10, "a")
                .text_record("orders", 0, 11, "b")
                .text_record("orders", 1, 5, "c"),
        );
        let outcome = dumper.dump(&batch).await;
        assert_eq!(outcome.copied, 0);
        assert_eq!(outcome.not_copied, 1);
        let failed: Vec<_> = outcome
            .failures
            .iter()
            .map(|f| f.record.to_string())
            .collect();
        assert_eq!(failed, ["orders-0@10", "orders-1@5"]);
        assert!(
            outcome.failures[0].to_string().contains("timed out"),
            "{}",
            outcome.failures[0]
        );

        let response = outcome.into_response(true).unwrap();
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            serde_json::json!({"batchItemFailures": [
                {"itemIdentifier": {"partition": "orders-0", "offset": 10}},
                {"itemIdentifier": {"partition": "orders-1", "offset": 5}},
            ]})
        );
    }

    #[test]
    fn without_partial_responses_a_failure_fails_the_invocation() {
        let record = KafkaRecord::new("orders", 0, 4);
        let outcome = DumpOutcome {
            copied: 3,
            failures: vec![RecordFailure {
                record: record.id(),
                reason: FailureReason::Failed(Box::new(KafkaError::Canceled)),
            }],
            ..DumpOutcome::default()
        };
        let error = outcome.into_response(false).unwrap_err();
        assert_eq!(error.error_type(), "KafkaRecordFailed");
        assert!(error.to_string().contains("record orders-0@4"), "{error}");

        let success = DumpOutcome::default().into_response(false).unwrap();
        assert!(success.batch_item_failures.is_empty());
    }
}
