//! The on-failure destination: a Kafka topic that receives records whose retries or age ran out,
//! with their original key, value and headers plus headers describing the failure.

use crate::batch::PolledRecord;
use kafka_lambda_client::KafkaClientContext;
use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Header names added to a dead-lettered record (all prefixed `kafka-lambda-`).
pub mod headers {
    /// Topic the record was read from.
    pub const SOURCE_TOPIC: &str = "kafka-lambda-source-topic";
    /// Its partition.
    pub const SOURCE_PARTITION: &str = "kafka-lambda-source-partition";
    /// Its offset.
    pub const SOURCE_OFFSET: &str = "kafka-lambda-source-offset";
    /// Its original timestamp (epoch ms).
    pub const SOURCE_TIMESTAMP: &str = "kafka-lambda-source-timestamp";
    /// The function that failed.
    pub const FUNCTION: &str = "kafka-lambda-function";
    /// Error type (`errorType` of the function, or the poller's reason).
    pub const ERROR_TYPE: &str = "kafka-lambda-error-type";
    /// Error message.
    pub const ERROR_MESSAGE: &str = "kafka-lambda-error-message";
    /// Invocation attempts made.
    pub const ATTEMPTS: &str = "kafka-lambda-attempts";
    /// When the record was given up (epoch ms).
    pub const FAILED_AT: &str = "kafka-lambda-failed-at";
}

/// Why records are given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureInfo {
    /// Error type, e.g. the function's `errorType`, `RecordAgeExceeded`, `RecordTooLarge`.
    pub error_type: String,
    /// Human-readable message.
    pub message: String,
    /// Invocations attempted.
    pub attempts: u32,
}

/// Writes failed records to the destination topic and waits for the broker's acknowledgement.
pub struct DeadLetterProducer {
    /// Replaced after an authorization error (see [`DeadLetterProducer::send`]).
    producer: Mutex<FutureProducer<KafkaClientContext>>,
    config: ClientConfig,
    context: KafkaClientContext,
    topic: String,
}

impl DeadLetterProducer {
    /// A producer for `topic` with `config` (bootstrap and auth of the destination cluster);
    /// idempotent, `acks=all`. `context` answers MSK IAM token refreshes.
    pub fn new(
        mut config: ClientConfig,
        context: KafkaClientContext,
        topic: String,
    ) -> Result<Self, KafkaError> {
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "30000")
            .set("linger.ms", "5");
        Ok(DeadLetterProducer {
            producer: Mutex::new(config.create_with_context(context.clone())?),
            config,
            context,
            topic,
        })
    }

    /// The destination topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Writes `records` (of `source_topic`/`partition`) in order; returns once every one is
    /// acknowledged, or at the first error (records already written may then be written again).
    ///
    /// An error that stopped the producer for good is returned with the code that stopped it,
    /// not as `Fatal`, and the producer is replaced, so that the next attempt can succeed. The
    /// case in point: a principal that may WRITE no topic is refused the idempotent producer's
    /// producer id (`CLUSTER_AUTHORIZATION_FAILED`), which librdkafka never asks for again; only
    /// a new producer sees a WRITE granted meanwhile. A refused topic alone needs no new one:
    /// librdkafka asks for its metadata again.
    pub async fn send(
        &self,
        source_topic: &str,
        partition: i32,
        function: &str,
        records: &[PolledRecord],
        failure: &FailureInfo,
    ) -> Result<(), KafkaError> {
        let producer = self
            .producer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let sent = self
            .send_with(
                &producer,
                source_topic,
                partition,
                function,
                records,
                failure,
            )
            .await;
        let Err(error) = sent else {
            return Ok(());
        };
        let Some((code, reason)) = producer.client().fatal_error() else {
            return Err(error);
        };
        match self.config.create_with_context(self.context.clone()) {
            Ok(renewed) => {
                // Several workers can fail on the same stopped producer: only the first replaces
                // it; a later one finds a new producer in place already and drops its own.
                let unused = {
                    let mut slot = self.producer.lock().unwrap_or_else(PoisonError::into_inner);
                    if slot.client().native_ptr() == producer.client().native_ptr() {
                        tracing::warn!(topic = %self.topic, %reason, "the on_failure producer stopped on a fatal error; a new one takes over");
                        std::mem::replace(&mut *slot, renewed)
                    } else {
                        renewed
                    }
                };
                // Dropping a producer's last handle flushes for up to 500 ms: not on the runtime.
                tokio::task::spawn_blocking(move || drop((producer, unused)));
            }
            Err(e) => {
                let e = kafka_lambda_client::redact_config_error(e);
                tracing::warn!(topic = %self.topic, error = %e, "cannot create a new on_failure producer; the stopped one is kept")
            }
        }
        Err(KafkaError::MessageProduction(code))
    }

    async fn send_with(
        &self,
        producer: &FutureProducer<KafkaClientContext>,
        source_topic: &str,
        partition: i32,
        function: &str,
        records: &[PolledRecord],
        failure: &FailureInfo,
    ) -> Result<(), KafkaError> {
        let failed_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
            .to_string();
        let attempts = failure.attempts.to_string();
        let partition_text = partition.to_string();
        for record in records {
            let offset = record.offset.to_string();
            let timestamp = record.timestamp.to_string();
            let mut hs = OwnedHeaders::new_with_capacity(record.headers.len() + 9);
            for h in &record.headers {
                hs = hs.insert(Header {
                    key: &h.name,
                    value: Some(&h.value),
                });
            }
            for (key, value) in [
                (headers::SOURCE_TOPIC, source_topic),
                (headers::SOURCE_PARTITION, &partition_text),
                (headers::SOURCE_OFFSET, &offset),
                (headers::SOURCE_TIMESTAMP, &timestamp),
                (headers::FUNCTION, function),
                (headers::ERROR_TYPE, &failure.error_type),
                (headers::ERROR_MESSAGE, &failure.message),
                (headers::ATTEMPTS, &attempts),
                (headers::FAILED_AT, &failed_at),
            ] {
                hs = hs.insert(Header {
                    key,
                    value: Some(value.as_bytes()),
                });
            }
            let mut out: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic).headers(hs);
            if let Some(k) = &record.key {
                out = out.key(k.as_slice());
            }
            // The value as read, not as the input template reshaped it.
            if let Some(v) = record.original_value.as_ref().or(record.value.as_ref()) {
                out = out.payload(v.as_slice());
            }
            // One at a time, so the destination keeps the source order even across retries.
            producer
                .send(out, Duration::from_secs(30))
                .await
                .map_err(|(e, _)| e)?;
        }
        Ok(())
    }
}
