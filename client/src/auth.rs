//! `[auth]`: how a client proves who it is and checks who it talks to — TLS (with an optional
//! client certificate) and SASL (PLAIN, SCRAM or Amazon MSK IAM). The security protocol follows
//! from which tables are present.

use crate::error::{ConfigError, invalid, join};
use crate::msk_iam::{MskIamConfig, MskIamTokenProvider};
use crate::secret::{Secret, SecretSource};
use crate::tls::TlsConfig;
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// Authentication and encryption. Both tables are optional:
///
/// | `tls` | `sasl` | `security.protocol` |
/// |-------|--------|---------------------|
/// | –     | –      | left to librdkafka (`PLAINTEXT`, or what `options` says) |
/// | yes   | –      | `SSL` |
/// | –     | yes    | `SASL_PLAINTEXT` |
/// | yes   | yes    | `SASL_SSL` |
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// TLS to the brokers (`[auth.tls]`; an empty table = system roots, full verification).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// SASL authentication (`[auth.sasl]`, chosen by `mechanism`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<SaslConfig>,
}

/// `[auth.sasl]`: the mechanism and its settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mechanism")]
pub enum SaslConfig {
    /// `mechanism = "PLAIN"`: username and password, sent as they are (use it with TLS only).
    #[serde(rename = "PLAIN")]
    Plain(SaslCredentials),
    /// `mechanism = "SCRAM-SHA-256"`: challenge-response; the password never crosses the wire.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256(SaslCredentials),
    /// `mechanism = "SCRAM-SHA-512"`: as SCRAM-SHA-256 with SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512(SaslCredentials),
    /// `mechanism = "AWS_MSK_IAM"`: Amazon MSK IAM access control (SASL/OAUTHBEARER with a
    /// SigV4-signed token). Requires `[auth.tls]`.
    #[serde(rename = "AWS_MSK_IAM")]
    AwsMskIam(MskIamConfig),
}

/// Username and password for PLAIN and SCRAM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaslCredentials {
    /// The SASL username (`sasl.username`).
    pub username: String,
    /// The password (`sasl.password`), from `{ env = "VAR" }` or `{ file = "/path" }`; a literal
    /// is rejected.
    pub password: SecretSource,
}

impl SaslConfig {
    /// The librdkafka `sasl.mechanism` value.
    pub fn librdkafka_mechanism(&self) -> &'static str {
        match self {
            SaslConfig::Plain(_) => "PLAIN",
            SaslConfig::ScramSha256(_) => "SCRAM-SHA-256",
            SaslConfig::ScramSha512(_) => "SCRAM-SHA-512",
            SaslConfig::AwsMskIam(_) => "OAUTHBEARER",
        }
    }
}

/// librdkafka properties that [`AuthConfig`] sets when it is not empty: setting them in
/// `options` too would silently change what `auth` says.
pub fn is_auth_option(key: &str) -> bool {
    key == "security.protocol"
        || key.starts_with("sasl.")
        || key.starts_with("ssl.")
        || key.starts_with("ssl_")
        || key == "enable.ssl.certificate.verification"
}

impl AuthConfig {
    /// Whether neither TLS nor SASL is configured.
    pub fn is_empty(&self) -> bool {
        self.tls.is_none() && self.sasl.is_none()
    }

    /// The `security.protocol` these settings need, if any.
    pub fn security_protocol(&self) -> Option<&'static str> {
        match (&self.tls, &self.sasl) {
            (None, None) => None,
            (Some(_), None) => Some("SSL"),
            (None, Some(_)) => Some("SASL_PLAINTEXT"),
            (Some(_), Some(_)) => Some("SASL_SSL"),
        }
    }

    /// Checks the table found at `path` (e.g. `kafka.auth`) and reads its secrets, without
    /// keeping them.
    pub fn validate_at(&self, path: &str) -> Result<(), ConfigError> {
        self.resolve_at(path).map(drop)
    }

    /// Checks the table found at `path` and reads its secrets (each error names the field).
    /// The result applies the settings to any number of clients.
    pub fn resolve_at(&self, path: &str) -> Result<ResolvedAuth, ConfigError> {
        let key_password = match &self.tls {
            Some(tls) => tls.resolve(&join(path, "tls"))?,
            None => None,
        };
        let sasl_path = join(path, "sasl");
        let (password, token_provider) = match &self.sasl {
            None => (None, None),
            Some(
                SaslConfig::Plain(credentials)
                | SaslConfig::ScramSha256(credentials)
                | SaslConfig::ScramSha512(credentials),
            ) => {
                if credentials.username.is_empty() {
                    return Err(invalid(join(&sasl_path, "username"), "is empty"));
                }
                let password = credentials
                    .password
                    .read()
                    .map_err(|problem| invalid(join(&sasl_path, "password"), problem))?;
                (Some(password), None)
            }
            Some(SaslConfig::AwsMskIam(iam)) => {
                iam.validate(&sasl_path)?;
                if self.tls.is_none() {
                    return Err(invalid(
                        join(path, "tls"),
                        "is missing; MSK IAM authentication only runs over TLS (add an empty \
                         [auth.tls] table for the system's trusted roots)",
                    ));
                }
                (None, Some(Arc::new(MskIamTokenProvider::new(iam))))
            }
        };
        Ok(ResolvedAuth {
            config: self.clone(),
            password,
            key_password,
            token_provider,
        })
    }
}

/// [`AuthConfig`] with its secrets read and, for MSK IAM, its token provider. `Debug` redacts
/// the secrets. Clones share the token provider.
#[derive(Clone, Default)]
pub struct ResolvedAuth {
    config: AuthConfig,
    password: Option<Secret>,
    key_password: Option<Secret>,
    token_provider: Option<Arc<MskIamTokenProvider>>,
}

impl fmt::Debug for ResolvedAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedAuth")
            .field("config", &self.config)
            .field("password", &self.password)
            .field("key_password", &self.key_password)
            .field("token_provider", &self.token_provider)
            .finish()
    }
}

impl ResolvedAuth {
    /// A resolved configuration with the MSK IAM token provider replaced (e.g. one with
    /// injected credentials, see [`MskIamTokenProvider::with_credentials_provider`]).
    pub fn with_token_provider(mut self, provider: Arc<MskIamTokenProvider>) -> Self {
        self.token_provider = Some(provider);
        self
    }

    /// The settings as written.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// The MSK IAM token provider, when the mechanism is `AWS_MSK_IAM`. A client context must
    /// hand librdkafka's refresh callback to it ([`crate::generate_oauth_token`]); the
    /// [`KafkaClientContext`](crate::KafkaClientContext) does.
    pub fn token_provider(&self) -> Option<&Arc<MskIamTokenProvider>> {
        self.token_provider.as_ref()
    }

    /// Sets `security.protocol`, the `ssl.*` and the `sasl.*` properties. Disabled verification
    /// and PLAIN without TLS are logged at warn.
    pub fn apply(&self, cc: &mut ClientConfig) {
        let Some(protocol) = self.config.security_protocol() else {
            return;
        };
        cc.set("security.protocol", protocol);
        if let Some(tls) = &self.config.tls {
            tls.apply(cc, self.key_password.as_ref());
        }
        let Some(sasl) = &self.config.sasl else {
            return;
        };
        cc.set("sasl.mechanism", sasl.librdkafka_mechanism());
        match sasl {
            SaslConfig::Plain(credentials)
            | SaslConfig::ScramSha256(credentials)
            | SaslConfig::ScramSha512(credentials) => {
                if matches!(sasl, SaslConfig::Plain(_)) && self.config.tls.is_none() {
                    tracing::warn!(
                        "SASL/PLAIN without TLS: the password crosses the network in clear text; \
                         add [auth.tls]"
                    );
                }
                cc.set("sasl.username", &credentials.username);
                if let Some(password) = &self.password {
                    cc.set("sasl.password", password.expose());
                }
            }
            SaslConfig::AwsMskIam(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_security_protocol_follows_from_the_tables_present() {
        let sasl = Some(SaslConfig::ScramSha512(SaslCredentials {
            username: "u".into(),
            password: SecretSource::Env("X".into()),
        }));
        let tls = Some(TlsConfig::default());
        let protocol = |tls: &Option<TlsConfig>, sasl: &Option<SaslConfig>| {
            AuthConfig {
                tls: tls.clone(),
                sasl: sasl.clone(),
            }
            .security_protocol()
        };
        assert_eq!(protocol(&None, &None), None);
        assert_eq!(protocol(&tls, &None), Some("SSL"));
        assert_eq!(protocol(&None, &sasl), Some("SASL_PLAINTEXT"));
        assert_eq!(protocol(&tls, &sasl), Some("SASL_SSL"));
    }
}
