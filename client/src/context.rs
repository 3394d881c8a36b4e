//! A client context that routes librdkafka's logs and errors to `tracing` and answers the
//! OAUTHBEARER token refresh callback for MSK IAM.

use crate::msk_iam::{MskIamTokenProvider, generate_oauth_token};
use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Context for consumers and producers made from a
/// [`KafkaClientConfig`](crate::KafkaClientConfig). Use it with `create_with_context` (or
/// [`KafkaClientConfig::create`](crate::KafkaClientConfig::create)); with MSK IAM it must be this
/// context, or one that delegates [`ClientContext::generate_oauth_token`] the same way.
#[derive(Debug, Clone, Default)]
pub struct KafkaClientContext {
    token_provider: Option<Arc<MskIamTokenProvider>>,
    /// Which client a log line comes from, when a process runs several (the `client` field).
    label: Option<Arc<str>>,
    /// Set once librdkafka asked for an OAUTHBEARER token (shared by the context's clones).
    token_asked: Arc<AtomicBool>,
}

impl KafkaClientContext {
    /// A context answering token refreshes with `token_provider` (none: no OAUTHBEARER).
    pub fn new(token_provider: Option<Arc<MskIamTokenProvider>>) -> Self {
        KafkaClientContext {
            token_provider,
            ..KafkaClientContext::default()
        }
    }

    /// Names the client in the `client` field of every line it logs.
    pub fn labelled(mut self, label: impl Into<Arc<str>>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// The MSK IAM token provider, if any.
    pub fn token_provider(&self) -> Option<&Arc<MskIamTokenProvider>> {
        self.token_provider.as_ref()
    }

    /// Whether librdkafka has asked this context for an OAUTHBEARER token yet. librdkafka asks
    /// only from a poll of the client's queue, and authenticates no connection before it has a
    /// token: a lookup made before that waits for nothing but its timeout.
    pub fn token_asked(&self) -> bool {
        self.token_asked.load(Ordering::Acquire)
    }
}

/// Logs a librdkafka line at a level known at compile time (tracing's callsites are static),
/// with the context's label when it has one.
macro_rules! librdkafka_event {
    ($level:expr, $label:expr, $fac:expr, $message:expr) => {
        match $label {
            Some(label) => {
                tracing::event!(target: "librdkafka", $level, client = %label, facility = $fac, "{}", $message)
            }
            None => tracing::event!(target: "librdkafka", $level, facility = $fac, "{}", $message),
        }
    };
}

impl ClientContext for KafkaClientContext {
    // librdkafka raises the refresh event only when `sasl.mechanism` is OAUTHBEARER.
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let label = self.label.as_deref();
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                librdkafka_event!(tracing::Level::ERROR, label, fac, log_message)
            }
            RDKafkaLogLevel::Warning => {
                librdkafka_event!(tracing::Level::WARN, label, fac, log_message)
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                librdkafka_event!(tracing::Level::INFO, label, fac, log_message)
            }
            RDKafkaLogLevel::Debug => {
                librdkafka_event!(tracing::Level::DEBUG, label, fac, log_message)
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match self.label.as_deref() {
            Some(client) => tracing::warn!(client, %error, "Kafka client error: {reason}"),
            None => tracing::warn!(%error, "Kafka client error: {reason}"),
        }
    }

    fn generate_oauth_token(
        &self,
        _oauthbearer_config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        self.token_asked.store(true, Ordering::Release);
        generate_oauth_token(self.token_provider.as_ref())
    }
}

impl ConsumerContext for KafkaClientContext {}
