//! A client context that routes librdkafka's logs and errors to `tracing` and answers the
//! OAUTHBEARER token refresh callback for MSK IAM.

use crate::msk_iam::{MskIamTokenProvider, generate_oauth_token};
use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use std::sync::Arc;

/// Context for consumers and producers made from a
/// [`KafkaClientConfig`](crate::KafkaClientConfig). Use it with `create_with_context` (or
/// [`KafkaClientConfig::create`](crate::KafkaClientConfig::create)); with MSK IAM it must be this
/// context, or one that delegates [`ClientContext::generate_oauth_token`] the same way.
#[derive(Debug, Clone, Default)]
pub struct KafkaClientContext {
    token_provider: Option<Arc<MskIamTokenProvider>>,
}

impl KafkaClientContext {
    /// A context answering token refreshes with `token_provider` (none: no OAUTHBEARER).
    pub fn new(token_provider: Option<Arc<MskIamTokenProvider>>) -> Self {
        KafkaClientContext { token_provider }
    }

    /// The MSK IAM token provider, if any.
    pub fn token_provider(&self) -> Option<&Arc<MskIamTokenProvider>> {
        self.token_provider.as_ref()
    }
}

impl ClientContext for KafkaClientContext {
    // librdkafka raises the refresh event only when `sasl.mechanism` is OAUTHBEARER.
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", facility = fac, "{log_message}")
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, "Kafka client error: {reason}");
    }

    fn generate_oauth_token(
        &self,
        _oauthbearer_config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        generate_oauth_token(self.token_provider.as_ref())
    }
}

impl ConsumerContext for KafkaClientContext {}
