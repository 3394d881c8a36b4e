//! Why a command failed. Each kind has its own `errorType` in the Lambda error document, so a
//! caller can tell a mistake in its command (fix it) from an unreachable cluster (retry later).

use kafka_lambda_handler::Diagnostic;
use std::time::Duration;

/// A command failed; nothing was done unless the message says otherwise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CommandError {
    /// The payload is not a command: not an object, a field missing or of the wrong type.
    #[error("invalid command: {0}")]
    Invalid(String),
    /// `action` names no action.
    #[error("unknown action `{0}`; the actions are create_topic, produce and consume")]
    UnknownAction(String),
    /// The topic does not exist (produce, consume).
    #[error("topic `{0}` does not exist; create it first (action create_topic)")]
    TopicNotFound(String),
    /// The topic exists but not the partition.
    #[error("topic `{topic}` has no partition {partition}; its partitions are 0 to {}", .partitions - 1)]
    PartitionNotFound {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: i32,
        /// How many partitions the topic has.
        partitions: i32,
    },
    /// `create_topic` of a topic that exists.
    #[error("topic `{0}` already exists")]
    TopicExists(String),
    /// No broker answered in time.
    #[error(
        "no Kafka broker answered within {} ms (brokers {servers}; KAFKA_TIMEOUT_MS sets the \
         limit): {detail}",
        .timeout.as_millis()
    )]
    BrokerUnreachable {
        /// The bootstrap brokers.
        servers: String,
        /// How long they had.
        timeout: Duration,
        /// What librdkafka reported.
        detail: String,
    },
    /// Records could not be produced; the others were.
    #[error(
        "{} of {count} record(s) could not be produced to `{topic}` (the others were): {}",
        .failed.len(),
        .failed.iter().map(|(index, error)| format!("records[{index}]: {error}")).collect::<Vec<_>>().join("; ")
    )]
    ProduceFailed {
        /// The topic.
        topic: String,
        /// How many records the command had.
        count: usize,
        /// Each failed record's position in `records`, and why it failed.
        failed: Vec<(usize, String)>,
    },
    /// A consumed key, value or header is not UTF-8 and the command asked for text.
    #[error(
        "record {topic}-{partition}@{offset}: the {field} is not UTF-8 text; consume with \
         \"format\": \"base64\""
    )]
    NotText {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The record's offset.
        offset: i64,
        /// `key`, `value` or `header <name>`.
        field: String,
    },
    /// The command cannot be carried out with this configuration.
    #[error("{0}")]
    Unsupported(String),
    /// Any other failure reported by Kafka.
    #[error("{operation} failed: {detail}")]
    Kafka {
        /// What was being done.
        operation: String,
        /// What librdkafka or the broker reported.
        detail: String,
    },
}

impl CommandError {
    /// The `errorType` reported to Lambda.
    pub(crate) fn error_type(&self) -> &'static str {
        match self {
            CommandError::Invalid(_) => "InvalidCommand",
            CommandError::UnknownAction(_) => "UnknownAction",
            CommandError::TopicNotFound(_) => "TopicNotFound",
            CommandError::PartitionNotFound { .. } => "PartitionNotFound",
            CommandError::TopicExists(_) => "TopicAlreadyExists",
            CommandError::BrokerUnreachable { .. } => "KafkaBrokerUnreachable",
            CommandError::ProduceFailed { .. } => "KafkaProduceFailed",
            CommandError::NotText { .. } => "RecordNotText",
            CommandError::Unsupported(_) => "Unsupported",
            CommandError::Kafka { .. } => "KafkaError",
        }
    }
}

impl From<CommandError> for Diagnostic {
    fn from(error: CommandError) -> Diagnostic {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_is_wrong_and_what_to_do() {
        let cases = [
            (
                CommandError::UnknownAction("delete_topic".into()),
                "UnknownAction",
                "unknown action `delete_topic`; the actions are create_topic, produce and consume",
            ),
            (
                CommandError::PartitionNotFound {
                    topic: "orders".into(),
                    partition: 3,
                    partitions: 2,
                },
                "PartitionNotFound",
                "topic `orders` has no partition 3; its partitions are 0 to 1",
            ),
            (
                CommandError::BrokerUnreachable {
                    servers: "127.0.0.1:1".into(),
                    timeout: Duration::from_millis(1500),
                    detail: "Meta data fetch error: OperationTimedOut (Local: Timed out)".into(),
                },
                "KafkaBrokerUnreachable",
                "no Kafka broker answered within 1500 ms (brokers 127.0.0.1:1; KAFKA_TIMEOUT_MS \
                 sets the limit): Meta data fetch error: OperationTimedOut (Local: Timed out)",
            ),
            (
                CommandError::ProduceFailed {
                    topic: "orders".into(),
                    count: 3,
                    failed: vec![(1, "Message production error: MessageSizeTooLarge".into())],
                },
                "KafkaProduceFailed",
                "1 of 3 record(s) could not be produced to `orders` (the others were): \
                 records[1]: Message production error: MessageSizeTooLarge",
            ),
        ];
        for (error, error_type, message) in cases {
            let diagnostic = Diagnostic::from(error);
            assert_eq!(diagnostic.error_type, error_type);
            assert_eq!(diagnostic.error_message, message);
        }
    }
}
