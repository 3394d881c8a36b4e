//! Kafka client settings with authentication, shared by the kafka-lambda poller and by Lambda
//! functions that talk to Kafka themselves (for example a function that copies records from
//! its trigger's topic to another topic of the same cluster, with the same credentials).
//!
//! - **TLS** with the system's trusted roots or a CA file, optionally a client certificate
//!   (mTLS); certificate and hostname verification are on unless turned off explicitly, which
//!   is logged at warn.
//! - **SASL/PLAIN** and **SASL/SCRAM-SHA-256/512** with a password read from an environment
//!   variable or a file — never a literal in the config, never a command-line argument.
//! - **Amazon MSK IAM**: SASL/OAUTHBEARER with tokens from `aws-msk-iam-sasl-signer`
//!   (default credential chain, a named profile, or an assumed role), refreshed through
//!   librdkafka's token refresh callback by [`KafkaClientContext`].
//!
//! Secrets never appear in `Debug` output, errors or logs: [`Secret`] and the configuration
//! types redact them, and parse errors leave out the offending line.
//!
//! ```no_run
//! use kafka_lambda_client::{KafkaClientConfig, KafkaClientContext};
//! use rdkafka::producer::{FutureProducer, FutureRecord};
//! use std::time::Duration;
//!
//! # async fn dump() -> Result<(), Box<dyn std::error::Error>> {
//! let config = KafkaClientConfig::from_toml_str(r#"
//!     bootstrap_servers = "b-1.example:9096"
//!     [auth.tls]
//!     [auth.sasl]
//!     mechanism = "SCRAM-SHA-512"
//!     username = "dumper"
//!     password = { env = "KAFKA_PASSWORD" }
//! "#)?;
//! config.validate()?;
//! let producer: FutureProducer<KafkaClientContext> = config.create(&[])?;
//! producer
//!     .send(FutureRecord::to("orders-copy").key("42").payload("{}"), Duration::from_secs(5))
//!     .await
//!     .map_err(|(e, _)| e)?;
//! # Ok(())
//! # }
//! ```

mod auth;
mod config;
mod context;
mod error;
mod msk_iam;
mod secret;
mod tls;

pub use auth::{AuthConfig, ResolvedAuth, SaslConfig, SaslCredentials, is_auth_option};
pub use config::{
    KafkaClientConfig, check_options_leave_auth_alone, is_secret_option, toml_error_without_source,
    validate_bootstrap_servers,
};
pub use context::KafkaClientContext;
pub use error::{ClientError, ConfigError, TokenError};
pub use msk_iam::{
    DEFAULT_TOKEN_TIMEOUT, MskIamConfig, MskIamToken, MskIamTokenProvider, generate_oauth_token,
};
pub use secret::{Secret, SecretSource};
pub use tls::TlsConfig;
