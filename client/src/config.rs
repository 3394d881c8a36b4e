//! [`KafkaClientConfig`]: the brokers, the authentication, and extra librdkafka properties.

use crate::auth::{AuthConfig, is_auth_option};
use crate::context::KafkaClientContext;
use crate::error::{ClientError, ConfigError, invalid};
use rdkafka::ClientConfig;
use rdkafka::config::FromClientConfigAndContext;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// What a Kafka client needs to reach a cluster. In TOML:
///
/// ```toml
/// bootstrap_servers = "b-1.example:9096,b-2.example:9096"
///
/// [auth.tls]                       # system roots, full verification
///
/// [auth.sasl]
/// mechanism = "SCRAM-SHA-512"
/// username = "etl"
/// password = { env = "KAFKA_PASSWORD" }
///
/// [options]                        # any other librdkafka property
/// "linger.ms" = "20"
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaClientConfig {
    /// Comma-separated `host:port` list of bootstrap brokers.
    pub bootstrap_servers: String,
    /// TLS and SASL ([`AuthConfig`]); default: neither.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Extra librdkafka properties, set last (escape hatch). Properties that `auth` manages
    /// (`security.protocol`, `sasl.*`, `ssl.*`) are rejected when `auth` is not empty. Values of
    /// secret-looking keys are redacted in `Debug`.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl fmt::Debug for KafkaClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options: BTreeMap<&str, &str> = self
            .options
            .iter()
            .map(|(key, value)| {
                let shown = if is_secret_option(key) {
                    "<redacted>"
                } else {
                    value.as_str()
                };
                (key.as_str(), shown)
            })
            .collect();
        f.debug_struct("KafkaClientConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("auth", &self.auth)
            .field("options", &options)
            .finish()
    }
}

/// Whether a librdkafka property holds a secret (passwords, private keys, tokens), so its value
/// must never be shown.
pub fn is_secret_option(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "key.pem",
        "token",
        "sasl.oauthbearer.config",
        "jaas",
    ]
    .iter()
    .any(|s| key.contains(s))
}

impl KafkaClientConfig {
    /// Brokers without authentication; add it through [`auth`](Self::auth).
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        KafkaClientConfig {
            bootstrap_servers: bootstrap_servers.into(),
            auth: AuthConfig::default(),
            options: BTreeMap::new(),
        }
    }

    /// Parses TOML (without validating). Errors carry the parser's message and position but
    /// never the offending line, which may hold a secret.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        parse_toml(text, "text")
    }

    /// Reads and parses a TOML file (without validating).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Parse {
            origin: origin.clone(),
            message: format!("cannot read the file: {e}"),
        })?;
        parse_toml(&text, &origin)
    }

    /// Checks every field and that every secret can be read; errors name the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_bootstrap_servers("bootstrap_servers", &self.bootstrap_servers)?;
        self.auth.validate_at("auth")?;
        check_options_leave_auth_alone("options", &self.auth, self.options.keys())
    }

    /// Validates, then sets the brokers, the authentication and the options on `cc`, and returns
    /// the context the client must be created with (it answers MSK IAM token refreshes).
    pub fn apply(&self, cc: &mut ClientConfig) -> Result<KafkaClientContext, ConfigError> {
        validate_bootstrap_servers("bootstrap_servers", &self.bootstrap_servers)?;
        check_options_leave_auth_alone("options", &self.auth, self.options.keys())?;
        let auth = self.auth.resolve_at("auth")?;
        cc.set("bootstrap.servers", &self.bootstrap_servers);
        auth.apply(cc);
        for (key, value) in &self.options {
            cc.set(key, value);
        }
        Ok(KafkaClientContext::new(auth.token_provider().cloned()))
    }

    /// Creates a client (`FutureProducer`, `BaseConsumer`, ...) with these settings plus
    /// `extra` properties (set after the options, e.g. `group.id`).
    ///
    /// ```no_run
    /// use kafka_lambda_client::{KafkaClientConfig, KafkaClientContext};
    /// use rdkafka::producer::FutureProducer;
    ///
    /// let config = KafkaClientConfig::from_toml_str(r#"
    ///     bootstrap_servers = "b-1.example:9098"
    ///     [auth.tls]
    ///     [auth.sasl]
    ///     mechanism = "AWS_MSK_IAM"
    ///     region = "eu-west-1"
    /// "#)?;
    /// let producer: FutureProducer<KafkaClientContext> = config.create(&[("linger.ms", "20")])?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create<T>(&self, extra: &[(&str, &str)]) -> Result<T, ClientError>
    where
        T: FromClientConfigAndContext<KafkaClientContext>,
    {
        let mut cc = ClientConfig::new();
        let context = self.apply(&mut cc)?;
        for (key, value) in extra {
            cc.set(*key, *value);
        }
        Ok(cc
            .create_with_context(context)
            .map_err(redact_config_error)?)
    }
}

fn parse_toml(text: &str, origin: &str) -> Result<KafkaClientConfig, ConfigError> {
    toml::from_str(text).map_err(|e: toml::de::Error| ConfigError::Parse {
        origin: origin.to_owned(),
        message: toml_error_without_source(&e, text),
    })
}

/// A TOML error as `line L, column C: message`, leaving out the quoted source line that the
/// error's `Display` includes (it may be a `password = "..."` line). When the error is on the
/// line of a secret (by [`is_secret_option`] on its key), the values the message quotes in
/// backticks (`invalid type: integer \`12345\``) are left out too.
pub fn toml_error_without_source(error: &toml::de::Error, text: &str) -> String {
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let column = before.len() - line_start + 1;
            let line_text = text[line_start..].lines().next().unwrap_or_default();
            let key = line_text
                .split_once('=')
                .map_or("", |(key, _)| key.trim().trim_matches('"'));
            let message = if is_secret_option(key) {
                without_quoted_values(error.message())
            } else {
                error.message().to_owned()
            };
            format!("line {line}, column {column}: {message}")
        }
        None => error.message().to_owned(),
    }
}

/// `message` with every `` `…` `` span replaced by `(value not shown)`.
fn without_quoted_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut parts = message.split('`');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    let mut inside = true;
    for part in parts {
        if inside {
            out.push_str("(value not shown)");
        } else {
            out.push_str(part);
        }
        inside = !inside;
    }
    out
}

/// `error` with the value of a secret librdkafka property (by [`is_secret_option`]) taken out:
/// librdkafka's refusal of a property (an unknown name, a wrong value) carries the value, in
/// its own field and often in its description.
pub fn redact_config_error(error: rdkafka::error::KafkaError) -> rdkafka::error::KafkaError {
    use rdkafka::error::KafkaError;
    match error {
        KafkaError::ClientConfig(code, description, key, value)
            if is_secret_option(&key) && !value.is_empty() =>
        {
            KafkaError::ClientConfig(
                code,
                description.replace(&value, "<redacted>"),
                key,
                "<redacted>".to_owned(),
            )
        }
        other => other,
    }
}

/// Checks a `host:port[,host:port]` list.
pub fn validate_bootstrap_servers(field: &str, servers: &str) -> Result<(), ConfigError> {
    if servers.split(',').all(|s| s.trim().is_empty()) {
        return Err(invalid(field, "is empty; give at least one host:port"));
    }
    for server in servers.split(',').map(str::trim) {
        let valid = server
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !valid {
            return Err(invalid(
                field,
                format!("has `{server}`, which is not host:port"),
            ));
        }
    }
    Ok(())
}

/// Rejects options that would override what a non-empty `auth` sets.
pub fn check_options_leave_auth_alone<'a>(
    field: &str,
    auth: &AuthConfig,
    keys: impl IntoIterator<Item = &'a String>,
) -> Result<(), ConfigError> {
    if auth.is_empty() {
        return Ok(());
    }
    for key in keys {
        if is_auth_option(key) {
            return Err(invalid(
                format!("{field}.\"{key}\""),
                "is set by the [auth] table; configure it there (or drop [auth] and use options \
                 alone)",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_errors_keep_the_position_but_not_the_line() {
        let text = "bootstrap_servers = \"a:1\"\n[auth.sasl]\nmechanism = \"PLAIN\"\nusername = \"u\"\npassword = \"hunter2-in-file\"\n";
        let error = KafkaClientConfig::from_toml_str(text)
            .unwrap_err()
            .to_string();
        assert!(error.contains("line 2"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn a_secret_of_the_wrong_type_is_not_quoted_but_other_values_are() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Options {
            options: BTreeMap<String, String>,
        }
        let text = "[options]\n\"sasl.password\" = 4242424242\n";
        let error = toml::from_str::<Options>(text).unwrap_err();
        let message = toml_error_without_source(&error, text);
        assert!(message.starts_with("line 2, column"), "{message}");
        assert!(message.contains("(value not shown)"), "{message}");
        assert!(!message.contains("4242424242"), "{message}");

        let text = "[options]\n\"linger.ms\" = 20\n";
        let error = toml::from_str::<Options>(text).unwrap_err();
        assert!(toml_error_without_source(&error, text).contains("`20`"));
    }

    #[test]
    fn librdkafkas_refusal_of_a_secret_property_loses_the_value() {
        use rdkafka::error::KafkaError;
        use rdkafka::types::RDKafkaConfRes;
        let refused = KafkaError::ClientConfig(
            RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN,
            "Invalid value \"s3cr3t\" for property".to_owned(),
            "ssl.key.password".to_owned(),
            "s3cr3t".to_owned(),
        );
        let text = redact_config_error(refused).to_string();
        assert!(text.contains("ssl.key.password"), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");
        let plain = KafkaError::ClientConfig(
            RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
            "Invalid value".to_owned(),
            "linger.ms".to_owned(),
            "abc".to_owned(),
        );
        assert!(redact_config_error(plain).to_string().contains("abc"));
    }
}
