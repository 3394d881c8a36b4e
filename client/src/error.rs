//! Errors of this crate. None of them ever carries a secret: problems with a secret name where
//! it was to be read from, not what was read.

use rdkafka::error::KafkaError;

/// A configuration problem. The message names the field (as a dotted path, e.g.
/// `auth.sasl.password`) and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A value is missing, out of range, inconsistent, or names a secret or file that cannot be
    /// read.
    #[error("invalid Kafka client config: `{field}` {problem}")]
    Invalid {
        /// Dotted path of the field.
        field: String,
        /// What is wrong and what is allowed.
        problem: String,
    },
    /// The text is not TOML of the expected shape. Only the parser's message and position are
    /// kept, never the offending line, which may hold a secret.
    #[error("invalid Kafka client config {origin}: {message}")]
    Parse {
        /// Where the text came from (a path, or `text`).
        origin: String,
        /// What the parser expected, with line and column.
        message: String,
    },
}

impl ConfigError {
    /// The dotted path of the offending field, when the error is about one field.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { field, .. } => Some(field),
            ConfigError::Parse { .. } => None,
        }
    }

    /// What is wrong, without the field name or any prefix.
    pub fn problem(&self) -> &str {
        match self {
            ConfigError::Invalid { problem, .. } => problem,
            ConfigError::Parse { message, .. } => message,
        }
    }
}

/// A Kafka client could not be made from a [`KafkaClientConfig`](crate::KafkaClientConfig).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The configuration is invalid or a secret cannot be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// librdkafka refused the settings.
    #[error("cannot create the Kafka client: {0}")]
    Kafka(#[from] KafkaError),
}

/// An MSK IAM token could not be made. Reported to librdkafka, which logs it, reports it through
/// the client's error callback and asks again 10 seconds later.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    /// No AWS credentials could be found or obtained (credential chain, profile or role).
    #[error("MSK IAM: cannot obtain AWS credentials: {0}")]
    Credentials(String),
    /// The credentials were obtained but signing failed.
    #[error("MSK IAM: cannot sign the authentication token: {0}")]
    Sign(String),
    /// Obtaining credentials and signing took longer than allowed.
    #[error("MSK IAM: no token within {0:?} (is the credential source reachable?)")]
    Timeout(std::time::Duration),
    /// The signer's background thread could not be started or has stopped.
    #[error("MSK IAM: the token signer is not running: {0}")]
    Signer(String),
}

pub(crate) fn invalid(field: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        problem: problem.into(),
    }
}

/// `path.name`, or `name` at the root.
pub(crate) fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}
