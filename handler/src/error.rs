//! Why an invocation failed, and how that is reported to Lambda.

pub(crate) use kafka_lambda_events::error_chain;
use kafka_lambda_events::{DecodeError, EventParseError, ItemIdentifier, RecordId};
use lambda_runtime::{Diagnostic, Error};
use std::fmt;

/// How many failed records an error message lists before summarising the rest.
const LISTED_FAILURES: usize = 10;

/// An invocation failed. Turned into a [`Diagnostic`] whose `errorType` is one of the
/// `HandlerError::*` constants, so whoever reads the failure (the poller, a dead-letter
/// consumer, an alarm) can tell a poison record from a transient failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// The payload is not a Kafka event, or its records contradict their grouping.
    #[error(transparent)]
    InvalidEvent(#[from] InvalidEvent),
    /// A record's value could not be decoded into the function's input type (batch functions).
    #[error(transparent)]
    Undecodable(#[from] DecodeError),
    /// Records failed and the function does not report partial batch failures (per-record
    /// functions). Holds the first failure of each failed partition, in event order.
    #[error("{}", describe_failures(.0))]
    RecordsFailed(Vec<RecordFailure>),
    /// The batch function returned an error.
    #[error("the batch function failed: {}", error_chain(&**.0))]
    BatchFailed(#[source] Error),
    /// The schema registry could not be asked for the schemas of the event's records (down,
    /// slow, or refusing the function's credentials): retrying the invocation may succeed.
    #[error("{0}")]
    SchemaRegistryUnavailable(String),
}

impl HandlerError {
    /// `errorType` of [`HandlerError::InvalidEvent`].
    pub const EVENT_INVALID: &'static str = "KafkaEventInvalid";
    /// `errorType` when records could not be decoded: [`HandlerError::Undecodable`], and
    /// [`HandlerError::RecordsFailed`] when every failure is a decoding failure. Retrying will
    /// not help.
    pub const RECORD_UNDECODABLE: &'static str = "KafkaRecordUndecodable";
    /// `errorType` of [`HandlerError::RecordsFailed`] when the function failed on at least one
    /// record.
    pub const RECORD_FAILED: &'static str = "KafkaRecordFailed";
    /// `errorType` of [`HandlerError::BatchFailed`].
    pub const BATCH_FAILED: &'static str = "KafkaBatchFailed";
    /// `errorType` of [`HandlerError::SchemaRegistryUnavailable`].
    pub const SCHEMA_REGISTRY_UNAVAILABLE: &'static str = "KafkaSchemaRegistryUnavailable";

    /// The `errorType` reported to Lambda.
    pub fn error_type(&self) -> &'static str {
        match self {
            HandlerError::InvalidEvent(_) => Self::EVENT_INVALID,
            HandlerError::Undecodable(_) => Self::RECORD_UNDECODABLE,
            HandlerError::RecordsFailed(failures)
                if failures.iter().all(RecordFailure::is_undecodable) =>
            {
                Self::RECORD_UNDECODABLE
            }
            HandlerError::RecordsFailed(_) => Self::RECORD_FAILED,
            HandlerError::BatchFailed(_) => Self::BATCH_FAILED,
            HandlerError::SchemaRegistryUnavailable(_) => Self::SCHEMA_REGISTRY_UNAVAILABLE,
        }
    }
}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Diagnostic {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// The payload is not a consistent Kafka event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidEvent {
    /// The payload does not parse as a Kafka event; the message names the offending field.
    #[error(transparent)]
    Parse(#[from] EventParseError),
    /// A record is filed under a `topic-partition` group that is not its own.
    #[error("invalid Kafka event: record {record} is in group `{group}`")]
    Misgrouped {
        /// The group key the record was found under.
        group: String,
        /// The record.
        record: RecordId,
    },
    /// A group's offsets do not increase, so the records cannot be processed in order.
    #[error("invalid Kafka event: in group `{group}`, offset {offset} follows offset {previous}")]
    OutOfOrder {
        /// The group key.
        group: String,
        /// The offset before.
        previous: i64,
        /// The offset that does not increase.
        offset: i64,
    },
}

/// One record that failed; it stopped its partition.
#[derive(Debug)]
pub struct RecordFailure {
    /// The record.
    pub record: RecordId,
    /// Why it failed.
    pub reason: FailureReason,
}

/// Why a record failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum FailureReason {
    /// Its value could not be decoded into the function's input type.
    Undecodable(DecodeError),
    /// The function returned this error for it.
    Failed(Error),
}

impl RecordFailure {
    /// Whether the record failed because its value could not be decoded.
    pub fn is_undecodable(&self) -> bool {
        matches!(self.reason, FailureReason::Undecodable(_))
    }

    /// The record's identifier for a partial batch response.
    pub fn item_identifier(&self) -> ItemIdentifier {
        ItemIdentifier::new(
            self.record.topic.clone(),
            self.record.partition,
            self.record.offset,
        )
    }
}

impl fmt::Display for RecordFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            // A decode error already starts with `record <id>: `.
            FailureReason::Undecodable(e) => write!(f, "{e}"),
            FailureReason::Failed(e) => write!(f, "record {}: {}", self.record, error_chain(&**e)),
        }
    }
}

fn describe_failures(failures: &[RecordFailure]) -> String {
    let mut message = format!(
        "{} Kafka record(s) failed, later records of their partitions were not processed: ",
        failures.len()
    );
    for (i, failure) in failures.iter().take(LISTED_FAILURES).enumerate() {
        if i > 0 {
            message.push_str("; ");
        }
        message.push_str(&failure.to_string());
    }
    if failures.len() > LISTED_FAILURES {
        message.push_str(&format!("; and {} more", failures.len() - LISTED_FAILURES));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_lambda_events::KafkaRecord;

    fn failed(offset: i64, message: &str) -> RecordFailure {
        RecordFailure {
            record: KafkaRecord::new("orders", 0, offset).id(),
            reason: FailureReason::Failed(message.into()),
        }
    }

    fn undecodable(offset: i64) -> RecordFailure {
        let record = KafkaRecord::new("orders", 1, offset).with_value("{");
        let error = record.value_json::<u32>().unwrap_err();
        RecordFailure {
            record: record.id(),
            reason: FailureReason::Undecodable(error),
        }
    }

    #[test]
    fn the_error_type_tells_poison_records_from_failures() {
        let only_poison = HandlerError::RecordsFailed(vec![undecodable(1)]);
        assert_eq!(only_poison.error_type(), "KafkaRecordUndecodable");
        let mixed = HandlerError::RecordsFailed(vec![undecodable(1), failed(2, "boom")]);
        assert_eq!(mixed.error_type(), "KafkaRecordFailed");
    }

    #[test]
    fn the_diagnostic_names_every_failed_record() {
        let error = HandlerError::RecordsFailed(vec![failed(5, "boom"), undecodable(9)]);
        let diagnostic = Diagnostic::from(error);
        assert_eq!(diagnostic.error_type, "KafkaRecordFailed");
        assert!(
            diagnostic.error_message.starts_with(
                "2 Kafka record(s) failed, later records of their partitions were not processed: \
                 record orders-0@5: boom; record orders-1@9: value is not valid JSON"
            ),
            "{}",
            diagnostic.error_message
        );
    }

    #[test]
    fn long_failure_lists_are_summarised() {
        let failures = (0..13).map(|i| failed(i, "x")).collect();
        let message = HandlerError::RecordsFailed(failures).to_string();
        assert!(
            message.contains("record orders-0@9: x; and 3 more"),
            "{message}"
        );
        assert!(!message.contains("orders-0@10"), "{message}");
    }

    #[test]
    fn a_decode_error_chain_does_not_repeat_the_source_its_message_names() {
        let decode = undecodable(3);
        let FailureReason::Undecodable(e) = &decode.reason else {
            unreachable!()
        };
        assert_eq!(error_chain(e), e.to_string());
    }
}
