#![doc = include_str!("../README.md")]

mod auth;
mod config;
mod context;
mod error;
mod headers;
mod msk_iam;
mod secret;
mod tls;
mod topic;

pub use auth::{AuthConfig, ResolvedAuth, SaslConfig, SaslCredentials, is_auth_option};
pub use config::{
    KafkaClientConfig, check_options_leave_auth_alone, is_secret_option, redact_config_error,
    toml_error_without_source, validate_bootstrap_servers,
};
pub use context::KafkaClientContext;
pub use error::{ClientError, ConfigError, TokenError};
pub use headers::{add_raw_header, raw_headers};
pub use msk_iam::{
    DEFAULT_TOKEN_TIMEOUT, MskIamConfig, MskIamToken, MskIamTokenProvider, generate_oauth_token,
};
pub use secret::{Secret, SecretSource};
pub use tls::TlsConfig;
pub use topic::{TOPIC_NAME_RULE, is_topic_name};
