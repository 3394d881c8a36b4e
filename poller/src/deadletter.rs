//! The on-failure destination: a Kafka topic that receives records whose retries or age ran out,
//! with their original key, value and headers plus headers describing the failure.

use crate::batch::PolledRecord;
use crate::telemetry::DeadLetterWriteError;
use kafka_lambda_client::KafkaClientContext;
use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Header names added to a dead-lettered record (all prefixed `kafka-lambda-`).
pub(crate) mod headers {
    /// Topic the record was read from.
    pub(crate) const SOURCE_TOPIC: &str = "kafka-lambda-source-topic";
    /// Its partition.
    pub(crate) const SOURCE_PARTITION: &str = "kafka-lambda-source-partition";
    /// Its offset.
    pub(crate) const SOURCE_OFFSET: &str = "kafka-lambda-source-offset";
    /// Its original timestamp (epoch ms).
    pub(crate) const SOURCE_TIMESTAMP: &str = "kafka-lambda-source-timestamp";
    /// The function that failed.
    pub(crate) const FUNCTION: &str = "kafka-lambda-function";
    /// Error type (`errorType` of the function, or the poller's reason).
    pub(crate) const ERROR_TYPE: &str = "kafka-lambda-error-type";
    /// Error message, at most [`MAX_ERROR_MESSAGE_BYTES`](super::MAX_ERROR_MESSAGE_BYTES).
    pub(crate) const ERROR_MESSAGE: &str = "kafka-lambda-error-message";
    /// Invocation attempts made.
    pub(crate) const ATTEMPTS: &str = "kafka-lambda-attempts";
    /// When the record was given up (epoch ms).
    pub(crate) const FAILED_AT: &str = "kafka-lambda-failed-at";
}

/// The longest `kafka-lambda-error-message` header, in bytes: a function's error message can be
/// as long as its response (6 MB), and every byte of it counts against the destination topic's
/// record size limit. A longer message is cut at a character boundary and ends with
/// [`CUT_MARKER`].
pub(crate) const MAX_ERROR_MESSAGE_BYTES: usize = 4096;

/// Ends an error message that was cut to [`MAX_ERROR_MESSAGE_BYTES`].
pub(crate) const CUT_MARKER: &str = "… [cut]";

/// The largest record librdkafka's consumer accepts by default (its `receive.message.max.bytes`):
/// the dead-letter producer is sized for it, since any record the mapping read may be given up.
const LARGEST_RECORD_BYTES: u64 = 100_000_000;

/// Room for the failure headers on top of the record, when comparing size limits.
const FAILURE_HEADERS_BYTES: u64 = MAX_ERROR_MESSAGE_BYTES as u64 + 4096;

/// `message` cut to at most [`MAX_ERROR_MESSAGE_BYTES`] bytes, marked when cut.
pub(crate) fn bounded_error_message(message: &str) -> std::borrow::Cow<'_, str> {
    if message.len() <= MAX_ERROR_MESSAGE_BYTES {
        return message.into();
    }
    let mut end = MAX_ERROR_MESSAGE_BYTES - CUT_MARKER.len();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT_MARKER}", &message[..end]).into()
}

/// What a failed write to the destination means, and what an operator must do about it when
/// retrying alone will not help.
pub(crate) fn write_problem(
    error: &KafkaError,
    topic: &str,
    bytes: usize,
) -> (DeadLetterWriteError, String) {
    use rdkafka::types::RDKafkaErrorCode as Code;
    match error.rdkafka_error_code() {
        Some(Code::MessageSizeTooLarge | Code::MessageBatchTooLarge) => (
            DeadLetterWriteError::TooLarge,
            format!(
                "the record ({bytes} bytes with its failure headers) is larger than the dead-letter topic {topic} accepts: raise the topic's max.message.bytes (kafka-configs.sh --alter --entity-type topics --entity-name {topic} --add-config max.message.bytes=N) and, if needed, the brokers' message.max.bytes"
            ),
        ),
        Some(Code::UnknownTopicOrPartition | Code::UnknownTopic) => (
            DeadLetterWriteError::NoTopic,
            format!("the dead-letter topic {topic} does not exist: create it"),
        ),
        Some(Code::TopicAuthorizationFailed | Code::ClusterAuthorizationFailed) => (
            DeadLetterWriteError::Denied,
            format!("the principal may not write to the dead-letter topic {topic}"),
        ),
        _ => (
            DeadLetterWriteError::Other,
            "the destination did not acknowledge the record (broker down or slow?)".to_owned(),
        ),
    }
}

/// The `max.message.bytes` of each of `topics`, read with `config`'s cluster and credentials.
pub(crate) async fn max_message_bytes(
    config: &ClientConfig,
    context: KafkaClientContext,
    topics: &[String],
) -> Result<Vec<(String, u64)>, KafkaError> {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    let admin: AdminClient<KafkaClientContext> = config.create_with_context(context)?;
    let specifiers: Vec<ResourceSpecifier<'_>> =
        topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let described = admin.describe_configs(&specifiers, &options).await?;
    let mut limits = Vec::new();
    for (topic, result) in topics.iter().zip(described) {
        let resource = result.map_err(KafkaError::AdminOp)?;
        if let Some(limit) = resource
            .get("max.message.bytes")
            .and_then(|e| e.value.as_deref())
            .and_then(|v| v.parse().ok())
        {
            limits.push((topic.clone(), limit));
        }
    }
    // Dropping an admin client joins librdkafka's threads: not on the runtime.
    tokio::task::spawn_blocking(move || drop(admin));
    Ok(limits)
}

/// Why records are given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FailureInfo {
    /// Error type, e.g. the function's `errorType`, `RecordAgeExceeded`, `RecordTooLarge`.
    pub error_type: String,
    /// Human-readable message.
    pub message: String,
    /// Invocations attempted.
    pub attempts: u32,
}

/// Writes failed records to the destination topic and waits for the broker's acknowledgement.
pub(crate) struct DeadLetterProducer {
    /// Replaced after an authorization error (see [`DeadLetterProducer::send`]).
    producer: Mutex<FutureProducer<KafkaClientContext>>,
    config: ClientConfig,
    context: KafkaClientContext,
    topic: String,
}

impl DeadLetterProducer {
    /// A producer for `topic` with `config` (bootstrap and auth of the destination cluster);
    /// idempotent, `acks=all`. `context` answers MSK IAM token refreshes.
    ///
    /// Its record size limit (`message.max.bytes`) is the largest record the mapping's consumer
    /// can read (`receive.message.max.bytes`, librdkafka's default 100 MB), so that no given-up
    /// record is refused by the producer itself; the destination topic may still refuse it (see
    /// [`max_message_bytes`]). A `message.max.bytes` in `config` is kept.
    pub(crate) fn new(
        mut config: ClientConfig,
        context: KafkaClientContext,
        topic: String,
    ) -> Result<Self, KafkaError> {
        if config.get("message.max.bytes").is_none() {
            let largest = config
                .get("receive.message.max.bytes")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(LARGEST_RECORD_BYTES)
                .clamp(1_000_000, 1_000_000_000);
            config.set("message.max.bytes", largest.to_string());
        }
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
    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    /// Warns when the destination topic takes smaller records than the largest of `sources`
    /// (name and `max.message.bytes`, read from the source cluster): such a record, once given
    /// up, would wait until the destination's limit is raised. Only logs; a limit that cannot be read
    /// (no DescribeConfigs permission, say) is logged at debug.
    pub(crate) async fn warn_if_smaller_than(&self, mapping: &str, sources: &[(String, u64)]) {
        let Some((source, largest)) = sources.iter().max_by_key(|(_, limit)| *limit) else {
            return;
        };
        let topics = [self.topic.clone()];
        match max_message_bytes(&self.config, self.context.clone(), &topics).await {
            Ok(limits) => {
                for (topic, limit) in limits {
                    // Equal limits are the usual case (the broker's default on both) and
                    // only a record within a few KiB of the limit would not fit: no warning.
                    if limit < *largest {
                        tracing::warn!(mapping, topic, limit, source_topic = %source, source_limit = largest,
                            "the dead-letter topic takes records up to max.message.bytes = {limit} bytes, but the source topic {source} holds records up to {largest} bytes: a larger record given up would wait (blocking its partition) until the dead-letter topic's max.message.bytes is raised to at least {}",
                            largest + FAILURE_HEADERS_BYTES);
                    }
                }
            }
            Err(error) => {
                tracing::debug!(mapping, topic = %self.topic, %error, "cannot read the dead-letter topic's max.message.bytes")
            }
        }
    }

    /// The bytes a record takes on the destination with its failure headers (about: what the
    /// broker compares with `max.message.bytes`).
    pub(crate) fn written_size(record: &PolledRecord, failure: &FailureInfo) -> usize {
        let headers: usize = record
            .headers
            .iter()
            .map(|h| h.name.as_bytes().len() + h.value.len())
            .sum();
        record
            .original_key
            .as_ref()
            .or(record.key.as_ref())
            .map_or(0, Vec::len)
            + record
                .original_value
                .as_ref()
                .or(record.value.as_ref())
                .map_or(0, Vec::len)
            + headers
            + bounded_error_message(&failure.message).len()
            + 512
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
    pub(crate) async fn send(
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
        let failed_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
            .to_string();
        let attempts = failure.attempts.to_string();
        let message = bounded_error_message(&failure.message);
        let partition_text = partition.to_string();
        for record in records {
            let offset = record.offset.to_string();
            let timestamp = record.timestamp.to_string();
            let mut hs = OwnedHeaders::new_with_capacity(record.headers.len() + 9);
            for h in &record.headers {
                // The name as read, bytes and all.
                hs = kafka_lambda_client::add_raw_header(hs, h.name.as_bytes(), Some(&h.value));
            }
            for (key, value) in [
                (headers::SOURCE_TOPIC, source_topic),
                (headers::SOURCE_PARTITION, &partition_text),
                (headers::SOURCE_OFFSET, &offset),
                (headers::SOURCE_TIMESTAMP, &timestamp),
                (headers::FUNCTION, function),
                (headers::ERROR_TYPE, &failure.error_type),
                (headers::ERROR_MESSAGE, &message),
                (headers::ATTEMPTS, &attempts),
                (headers::FAILED_AT, &failed_at),
            ] {
                hs = hs.insert(Header {
                    key,
                    value: Some(value.as_bytes()),
                });
            }
            let mut out: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic).headers(hs);
            // The key and value as read, not as schema decoding or the input template made them.
            if let Some(k) = record.original_key.as_ref().or(record.key.as_ref()) {
                out = out.key(k.as_slice());
            }
            if let Some(v) = record.original_value.as_ref().or(record.value.as_ref()) {
                out = out.payload(v.as_slice());
            }
            // One at a time, so the destination keeps the source order even across retries.
            if let Err((error, _)) = producer.send(out, Duration::from_secs(30)).await {
                return Err(self.replace_if_stopped(producer, error));
            }
        }
        Ok(())
    }

    /// The error to return for `error`, which `producer` met: as it is, unless it stopped the
    /// producer for good, in which case the producer is replaced and the code that stopped it
    /// is returned.
    fn replace_if_stopped(
        &self,
        producer: FutureProducer<KafkaClientContext>,
        error: KafkaError,
    ) -> KafkaError {
        let Some((code, reason)) = producer.client().fatal_error() else {
            return error;
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
        KafkaError::MessageProduction(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_error_message_is_cut_at_a_character_boundary_and_marked() {
        assert_eq!(bounded_error_message("short"), "short");
        let exact = "x".repeat(MAX_ERROR_MESSAGE_BYTES);
        assert_eq!(bounded_error_message(&exact), exact);
        let long = "é".repeat(MAX_ERROR_MESSAGE_BYTES);
        let cut = bounded_error_message(&long);
        assert!(cut.len() <= MAX_ERROR_MESSAGE_BYTES, "{}", cut.len());
        assert!(cut.ends_with(CUT_MARKER));
        assert!(cut.trim_end_matches(CUT_MARKER).chars().all(|c| c == 'é'));
    }

    #[test]
    fn refusals_name_what_to_fix() {
        use rdkafka::types::RDKafkaErrorCode as Code;
        let (kind, fix) = write_problem(
            &KafkaError::MessageProduction(Code::MessageSizeTooLarge),
            "dlq",
            2_000_000,
        );
        assert_eq!(kind, DeadLetterWriteError::TooLarge);
        assert!(
            fix.contains("max.message.bytes") && fix.contains("dlq") && fix.contains("2000000"),
            "{fix}"
        );
        let (kind, fix) = write_problem(
            &KafkaError::MessageProduction(Code::UnknownTopicOrPartition),
            "dlq",
            1,
        );
        assert_eq!(kind, DeadLetterWriteError::NoTopic);
        assert!(fix.contains("create it"), "{fix}");
        let (kind, _) = write_problem(
            &KafkaError::MessageProduction(Code::MessageTimedOut),
            "dlq",
            1,
        );
        assert_eq!(kind, DeadLetterWriteError::Other);
    }
}
