//! The function's configuration, read once at start-up from the environment.
//!
//! The cluster is given in one of three ways, exactly one of them:
//!
//! - `KAFKA_BOOTSTRAP_SERVERS`: brokers without authentication (`host:port[,host:port]`);
//! - `KAFKA_CLIENT_CONFIG`: the TOML of `kafka-lambda-client` (brokers, `[auth.tls]`,
//!   `[auth.sasl]` with SCRAM, PLAIN or MSK IAM, `[options]`), as the variable's value;
//! - `KAFKA_CLIENT_CONFIG_FILE`: the path of a file holding that TOML.
//!
//! Secrets are never in the TOML itself: it names them (`password = { env = "..." }` or
//! `{ file = "..." }`), and the client crate reads them at start-up. A variable set to the
//! empty string counts as unset.

use kafka_lambda_client::KafkaClientConfig;
use kafka_lambda_handler::env::{EnvVarError, EnvVars, FromEnv};
use std::time::Duration;

/// Brokers without authentication.
pub(crate) const BOOTSTRAP_SERVERS_VAR: &str = "KAFKA_BOOTSTRAP_SERVERS";
/// The client configuration as TOML text.
pub(crate) const CLIENT_CONFIG_VAR: &str = "KAFKA_CLIENT_CONFIG";
/// The path of a TOML client configuration.
pub(crate) const CLIENT_CONFIG_FILE_VAR: &str = "KAFKA_CLIENT_CONFIG_FILE";
/// How long a broker has to answer, in milliseconds.
pub(crate) const TIMEOUT_VAR: &str = "KAFKA_TIMEOUT_MS";
/// Whether failed commands of a Kafka event are answered as a partial batch response.
pub(crate) const REPORT_FAILURES_VAR: &str = "KAFKA_REPORT_BATCH_ITEM_FAILURES";

/// How long a broker has to answer (metadata, topic creation, a record's delivery) unless
/// `KAFKA_TIMEOUT_MS` says otherwise: well inside the function's 60-second timeout, so an
/// unreachable cluster is reported as such instead of as a timed-out invocation.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Lambda's longest function timeout.
const MAX_TIMEOUT_MS: u64 = 900_000;

/// Settings of the function.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The cluster and how to authenticate.
    pub(crate) client: KafkaClientConfig,
    /// The variable the cluster came from, for messages.
    pub(crate) origin: &'static str,
    /// How long a broker has to answer.
    pub(crate) timeout: Duration,
    /// With a Kafka trigger: answer the first failed command of each partition as a partial
    /// batch failure (default), instead of failing the invocation. Turn it off only when the
    /// trigger lacks `ReportBatchItemFailures`: Lambda would read such an answer as success.
    pub(crate) report_batch_item_failures: bool,
}

/// The configuration is invalid; the function refuses to start. The message starts with the
/// variable's name and never contains a secret.
pub(crate) type ConfigError = EnvVarError;

impl FromEnv for Config {
    type Error = ConfigError;

    /// Reads the configuration through `env` (the process environment, or fixed values in tests).
    fn from_vars(env: &EnvVars) -> Result<Self, ConfigError> {
        let sources = [
            (BOOTSTRAP_SERVERS_VAR, env.get(BOOTSTRAP_SERVERS_VAR)?),
            (CLIENT_CONFIG_VAR, env.get(CLIENT_CONFIG_VAR)?),
            (CLIENT_CONFIG_FILE_VAR, env.get(CLIENT_CONFIG_FILE_VAR)?),
        ];
        let mut given = sources
            .into_iter()
            .filter_map(|(name, value)| Some((name, value?)));
        let (origin, value) = given.next().ok_or_else(|| {
            ConfigError::new(
                BOOTSTRAP_SERVERS_VAR,
                format!(
                    "is not set, and neither is {CLIENT_CONFIG_VAR} nor {CLIENT_CONFIG_FILE_VAR}: \
                     give the brokers (host:port[,host:port]), or a kafka-lambda-client TOML \
                     configuration for a cluster with authentication"
                ),
            )
        })?;
        if let Some((other, _)) = given.next() {
            return Err(ConfigError::new(
                origin,
                format!("and {other} are both set; give the cluster in one of them"),
            ));
        }
        let client = match origin {
            BOOTSTRAP_SERVERS_VAR => KafkaClientConfig::new(value.trim()),
            CLIENT_CONFIG_VAR => KafkaClientConfig::from_toml_str(&value)
                .map_err(|error| ConfigError::new(origin, format!("is invalid: {error}")))?,
            _ => KafkaClientConfig::from_file(value.trim().as_ref())
                .map_err(|error| ConfigError::new(origin, format!("is invalid: {error}")))?,
        };
        client
            .validate()
            .map_err(|error| ConfigError::new(origin, format!("is invalid: {error}")))?;

        let timeout = env
            .number(TIMEOUT_VAR, 1..=MAX_TIMEOUT_MS, "milliseconds")?
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        let report_batch_item_failures = env.flag(REPORT_FAILURES_VAR)?.unwrap_or(true);
        Ok(Config {
            client,
            origin,
            timeout,
            report_batch_item_failures,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(&EnvVars::from_pairs(vars.iter().copied()))
    }

    #[test]
    fn bootstrap_servers_alone_connect_without_authentication() {
        let config = config(&[("KAFKA_BOOTSTRAP_SERVERS", " 127.0.0.1:19092 ")]).unwrap();
        assert_eq!(config.client.bootstrap_servers, "127.0.0.1:19092");
        assert!(config.client.auth.is_empty());
        assert_eq!(config.origin, "KAFKA_BOOTSTRAP_SERVERS");
        assert_eq!(config.timeout, Duration::from_secs(10));
        assert!(config.report_batch_item_failures);
    }

    #[test]
    fn a_client_config_brings_authentication() {
        let toml = r#"
            bootstrap_servers = "b-1.logs.abc123.c2.kafka.eu-west-1.amazonaws.com:9098"
            [auth.tls]
            [auth.sasl]
            mechanism = "AWS_MSK_IAM"
            region = "eu-west-1"
        "#;
        let config = config(&[
            ("KAFKA_CLIENT_CONFIG", toml),
            ("KAFKA_TIMEOUT_MS", "2500"),
            ("KAFKA_REPORT_BATCH_ITEM_FAILURES", " false"),
        ])
        .unwrap();
        assert_eq!(config.client.auth.security_protocol(), Some("SASL_SSL"));
        assert_eq!(config.timeout, Duration::from_millis(2500));
        assert!(!config.report_batch_item_failures);
    }

    #[test]
    fn a_client_config_file_is_read() {
        let path =
            std::env::temp_dir().join(format!("kafka-client-fn-{}.toml", std::process::id()));
        std::fs::write(&path, "bootstrap_servers = \"k1:9092,k2:9092\"\n").unwrap();
        let config = config(&[("KAFKA_CLIENT_CONFIG_FILE", path.to_str().unwrap())]);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(config.unwrap().client.bootstrap_servers, "k1:9092,k2:9092");
    }

    #[test]
    fn invalid_settings_are_clear_errors_naming_the_variable() {
        // (variables, the variable the error names, the start of its message)
        type Case = (
            &'static [(&'static str, &'static str)],
            &'static str,
            &'static str,
        );
        let cases: &[Case] = &[
            (
                &[],
                "KAFKA_BOOTSTRAP_SERVERS",
                "KAFKA_BOOTSTRAP_SERVERS is not set, and neither is KAFKA_CLIENT_CONFIG nor KAFKA_CLIENT_CONFIG_FILE",
            ),
            (
                &[("KAFKA_BOOTSTRAP_SERVERS", "  ")],
                "KAFKA_BOOTSTRAP_SERVERS",
                "KAFKA_BOOTSTRAP_SERVERS is not set",
            ),
            (
                &[("KAFKA_BOOTSTRAP_SERVERS", "localhost")],
                "KAFKA_BOOTSTRAP_SERVERS",
                "KAFKA_BOOTSTRAP_SERVERS is invalid: invalid Kafka client config: `bootstrap_servers` has `localhost`, which is not host:port",
            ),
            (
                &[
                    ("KAFKA_BOOTSTRAP_SERVERS", "k:9092"),
                    ("KAFKA_CLIENT_CONFIG", "bootstrap_servers = \"k:9092\""),
                ],
                "KAFKA_BOOTSTRAP_SERVERS",
                "KAFKA_BOOTSTRAP_SERVERS and KAFKA_CLIENT_CONFIG are both set; give the cluster in one of them",
            ),
            (
                &[(
                    "KAFKA_CLIENT_CONFIG",
                    "bootstrap_servers = \"k:9092\"\n[auth.tls]\n[options]\n\"security.protocol\" = \"plaintext\"\n",
                )],
                "KAFKA_CLIENT_CONFIG",
                "KAFKA_CLIENT_CONFIG is invalid: invalid Kafka client config: \
                 `options.\"security.protocol\"` is set by the [auth] table",
            ),
            (
                &[(
                    "KAFKA_CLIENT_CONFIG",
                    "bootstrap_servers = \"k:9092\"\n[auth.sasl]\nmechanism = \"PLAIN\"\nusername = \"u\"\npassword = \"hunter2\"\n",
                )],
                "KAFKA_CLIENT_CONFIG",
                "KAFKA_CLIENT_CONFIG is invalid: invalid Kafka client config text: line 2, column 1: \
                 a secret (password) is given as a literal value, which is not accepted",
            ),
            (
                &[("KAFKA_CLIENT_CONFIG_FILE", "/nonexistent/kafka.toml")],
                "KAFKA_CLIENT_CONFIG_FILE",
                "KAFKA_CLIENT_CONFIG_FILE is invalid: invalid Kafka client config /nonexistent/kafka.toml: cannot read the file",
            ),
            (
                &[
                    ("KAFKA_BOOTSTRAP_SERVERS", "k:9092"),
                    ("KAFKA_TIMEOUT_MS", "10s"),
                ],
                "KAFKA_TIMEOUT_MS",
                "KAFKA_TIMEOUT_MS=`10s` is not a whole number of milliseconds from 1 to 900000",
            ),
            (
                &[
                    ("KAFKA_BOOTSTRAP_SERVERS", "k:9092"),
                    ("KAFKA_REPORT_BATCH_ITEM_FAILURES", "yes"),
                ],
                "KAFKA_REPORT_BATCH_ITEM_FAILURES",
                "KAFKA_REPORT_BATCH_ITEM_FAILURES=`yes` is neither `true` nor `false`",
            ),
        ];
        for (vars, variable, message) in cases {
            let problem = config(vars).unwrap_err();
            assert_eq!(problem.variable(), *variable, "{vars:?}");
            assert!(
                problem.to_string().starts_with(message),
                "{vars:?}: expected `{message}`, got `{problem}`"
            );
            assert!(!problem.to_string().contains("hunter2"), "{problem}");
        }
    }
}
