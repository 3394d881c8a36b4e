//! The function's configuration, read from environment variables (see `README.md`).
//!
//! Everything is read through a lookup function, so the parsing is tested without touching
//! the process environment.

use kafka_lambda_client::{
    AuthConfig, KafkaClientConfig, MskIamConfig, SaslConfig, SaslCredentials, SecretSource,
    TlsConfig,
};
use kafka_lambda_handler::env::{EnvVarError, EnvVars, FromEnv};
use std::path::PathBuf;
use std::time::Duration;

/// How long a record may take to be delivered, retries included, unless
/// `DUMP_DELIVERY_TIMEOUT_MS` says otherwise: well inside the 60 s timeout `template.yaml` gives
/// the function, so a destination that is down is reported as failed records instead of a
/// timed-out invocation. (librdkafka's own default, 300 s, outlasts most Lambda timeouts.)
const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// The variable that names the destination brokers.
pub(crate) const BOOTSTRAP_SERVERS: &str = "DUMP_BOOTSTRAP_SERVERS";
/// The variable that names a TOML file in `kafka-lambda-client`'s format instead of the
/// individual `DUMP_*` connection variables.
pub(crate) const CLIENT_CONFIG_FILE: &str = "DUMP_CLIENT_CONFIG_FILE";
/// The variable holding the SASL password (PLAIN, SCRAM), read by the client crate.
pub(crate) const SASL_PASSWORD: &str = "DUMP_SASL_PASSWORD";
/// The variable holding the password of an encrypted TLS client key.
pub(crate) const TLS_KEY_PASSWORD: &str = "DUMP_TLS_KEY_PASSWORD";

/// Connection variables that `DUMP_CLIENT_CONFIG_FILE` replaces; setting both is refused.
const CONNECTION_VARIABLES: &[&str] = &[
    BOOTSTRAP_SERVERS,
    "DUMP_TLS",
    "DUMP_TLS_CA_FILE",
    "DUMP_TLS_CERT_FILE",
    "DUMP_TLS_KEY_FILE",
    TLS_KEY_PASSWORD,
    "DUMP_SASL_MECHANISM",
    "DUMP_SASL_USERNAME",
    SASL_PASSWORD,
    "DUMP_SASL_PASSWORD_FILE",
    "DUMP_MSK_IAM_REGION",
    "DUMP_MSK_IAM_ROLE_ARN",
    "DUMP_MSK_IAM_ROLE_SESSION_NAME",
];

/// What `topic-dump` does, as the environment describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    /// The destination cluster: brokers, TLS, SASL, extra librdkafka options.
    pub(crate) destination: KafkaClientConfig,
    /// `DUMP_TOPIC`: the destination topic; `None` writes each record to the topic of the same
    /// name as its source topic.
    pub(crate) topic: Option<String>,
    /// `DUMP_PRESERVE_PARTITION`: write each record to the partition number it was read from
    /// (default: the destination's partitioner chooses, by key).
    pub(crate) preserve_partition: bool,
    /// `DUMP_DELIVERY_TIMEOUT_MS`: how long a record may take to be acknowledged by all
    /// in-sync replicas, retries included (librdkafka `message.timeout.ms`).
    pub(crate) delivery_timeout: Duration,
    /// `DUMP_REPORT_BATCH_ITEM_FAILURES`: answer failed records with a partial batch response
    /// (the trigger must have `ReportBatchItemFailures`); default: fail the invocation.
    pub(crate) report_batch_item_failures: bool,
}

/// The environment does not describe a usable configuration. Messages name the variable and
/// never repeat a secret's value.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// A required variable is unset.
    #[error("{name} is not set: {hint}")]
    Missing {
        /// The variable.
        name: &'static str,
        /// What to set it to.
        hint: &'static str,
    },
    /// A variable has a value this function cannot use.
    #[error("{name}={value:?} {problem}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Its value (never a secret's).
        value: String,
        /// What is wrong and what is allowed.
        problem: String,
    },
    /// A variable is not valid Unicode, or not a flag or number in range.
    #[error(transparent)]
    Env(#[from] EnvVarError),
    /// Variables that cannot be combined are set together.
    #[error("{0}")]
    Conflict(String),
    /// The client crate refused the connection settings (it names the field).
    #[error("destination cluster ({origin}): {source}")]
    Client {
        /// Where the settings came from: the `DUMP_*` variables or the file.
        origin: String,
        /// The client crate's error.
        #[source]
        source: kafka_lambda_client::ConfigError,
    },
}

impl FromEnv for Config {
    type Error = ConfigError;

    /// Reads the variables through `env` (the process environment, or fixed values in tests).
    /// Empty values count as unset.
    fn from_vars(env: &EnvVars) -> Result<Self, ConfigError> {
        let var = |name: &'static str| env.get(name);
        let destination = match var(CLIENT_CONFIG_FILE)? {
            Some(path) => {
                let mut set = Vec::new();
                for &name in CONNECTION_VARIABLES {
                    if var(name)?.is_some() {
                        set.push(name);
                    }
                }
                if !set.is_empty() {
                    return Err(ConfigError::Conflict(format!(
                        "{CLIENT_CONFIG_FILE} is set together with {}: give the destination \
                         either in the file or in the variables, not both",
                        set.join(", ")
                    )));
                }
                let origin = format!("{CLIENT_CONFIG_FILE}={path}");
                let config = KafkaClientConfig::from_file(path.as_ref()).map_err(|source| {
                    ConfigError::Client {
                        origin: origin.clone(),
                        source,
                    }
                })?;
                config
                    .validate()
                    .map_err(|source| ConfigError::Client { origin, source })?;
                config
            }
            None => client_config_from_vars(env)?,
        };
        let topic = var("DUMP_TOPIC")?;
        if let Some(topic) = &topic
            && !kafka_lambda_client::is_topic_name(topic)
        {
            return Err(ConfigError::Invalid {
                name: "DUMP_TOPIC",
                value: topic.clone(),
                problem: format!(
                    "is not a Kafka topic name ({})",
                    kafka_lambda_client::TOPIC_NAME_RULE
                ),
            });
        }
        let delivery_timeout = env
            .number(
                "DUMP_DELIVERY_TIMEOUT_MS",
                1..=i32::MAX as u64,
                "milliseconds",
            )?
            .map_or(DEFAULT_DELIVERY_TIMEOUT, Duration::from_millis);
        Ok(Config {
            destination,
            topic,
            preserve_partition: env.flag("DUMP_PRESERVE_PARTITION")?.unwrap_or(false),
            delivery_timeout,
            report_batch_item_failures: env
                .flag("DUMP_REPORT_BATCH_ITEM_FAILURES")?
                .unwrap_or(false),
        })
    }
}

/// The destination from `DUMP_BOOTSTRAP_SERVERS`, `DUMP_TLS*`, `DUMP_SASL*` and
/// `DUMP_MSK_IAM_*`, validated by the client crate (which also reads the secrets).
fn client_config_from_vars(env: &EnvVars) -> Result<KafkaClientConfig, ConfigError> {
    let var = |name: &'static str| env.get(name);
    let bootstrap_servers = var(BOOTSTRAP_SERVERS)?.ok_or(ConfigError::Missing {
        name: BOOTSTRAP_SERVERS,
        hint: "give the destination cluster's brokers as host:port[,host:port] (or name a \
               client config file in DUMP_CLIENT_CONFIG_FILE)",
    })?;
    let sasl = sasl_from_vars(env)?;
    let ca_file = var("DUMP_TLS_CA_FILE")?;
    let cert_file = var("DUMP_TLS_CERT_FILE")?;
    let key_file = var("DUMP_TLS_KEY_FILE")?;
    let tls_files = ca_file.is_some() || cert_file.is_some() || key_file.is_some();
    // MSK IAM runs over TLS only, and any TLS file asks for TLS: both switch it on unless
    // DUMP_TLS says otherwise (then the client crate explains why that cannot work).
    let tls_wanted = env
        .flag("DUMP_TLS")?
        .unwrap_or(tls_files || matches!(sasl, Some(SaslConfig::AwsMskIam(_))));
    let key_password = var(TLS_KEY_PASSWORD)?.map(|_| SecretSource::Env(TLS_KEY_PASSWORD.into()));
    let tls = tls_wanted.then(|| TlsConfig {
        ca_file: ca_file.map(PathBuf::from),
        cert_file: cert_file.map(PathBuf::from),
        key_file: key_file.map(PathBuf::from),
        key_password,
        ..TlsConfig::default()
    });
    let mut config = KafkaClientConfig::new(bootstrap_servers);
    config.auth = AuthConfig { tls, sasl };
    config.validate().map_err(|source| ConfigError::Client {
        origin: "DUMP_* variables".into(),
        source,
    })?;
    Ok(config)
}

fn sasl_from_vars(env: &EnvVars) -> Result<Option<SaslConfig>, ConfigError> {
    let var = |name: &'static str| env.get(name);
    let Some(mechanism) = var("DUMP_SASL_MECHANISM")? else {
        return Ok(None);
    };
    let credentials = || -> Result<SaslCredentials, ConfigError> {
        let username = var("DUMP_SASL_USERNAME")?.ok_or(ConfigError::Missing {
            name: "DUMP_SASL_USERNAME",
            hint: "PLAIN and SCRAM need a username",
        })?;
        let password = match (var(SASL_PASSWORD)?, var("DUMP_SASL_PASSWORD_FILE")?) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Conflict(format!(
                    "{SASL_PASSWORD} and DUMP_SASL_PASSWORD_FILE are both set: give the password \
                     one way"
                )));
            }
            (Some(_), None) => SecretSource::Env(SASL_PASSWORD.into()),
            (None, Some(path)) => SecretSource::File(path.into()),
            (None, None) => {
                return Err(ConfigError::Missing {
                    name: SASL_PASSWORD,
                    hint: "PLAIN and SCRAM need a password: set DUMP_SASL_PASSWORD, or \
                           DUMP_SASL_PASSWORD_FILE to a file holding it",
                });
            }
        };
        Ok(SaslCredentials { username, password })
    };
    let sasl = match mechanism.trim().to_ascii_uppercase().as_str() {
        "PLAIN" => SaslConfig::Plain(credentials()?),
        "SCRAM-SHA-256" => SaslConfig::ScramSha256(credentials()?),
        "SCRAM-SHA-512" => SaslConfig::ScramSha512(credentials()?),
        "AWS_MSK_IAM" => SaslConfig::AwsMskIam(MskIamConfig {
            // Lambda sets AWS_REGION: a destination in the function's own region needs nothing.
            region: var("DUMP_MSK_IAM_REGION")?.or(var("AWS_REGION")?).ok_or(
                ConfigError::Missing {
                    name: "DUMP_MSK_IAM_REGION",
                    hint: "AWS_MSK_IAM signs its token for the cluster's region, and AWS_REGION \
                           is not set either",
                },
            )?,
            profile: None,
            role_arn: var("DUMP_MSK_IAM_ROLE_ARN")?,
            role_session_name: var("DUMP_MSK_IAM_ROLE_SESSION_NAME")?,
        }),
        _ => {
            return Err(ConfigError::Invalid {
                name: "DUMP_SASL_MECHANISM",
                value: mechanism,
                problem: "is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, AWS_MSK_IAM".into(),
            });
        }
    };
    Ok(Some(sasl))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(&EnvVars::from_pairs(vars.iter().copied()))
    }

    /// The message `vars` are refused with.
    fn refusal(vars: &[(&str, &str)]) -> String {
        parse(vars).unwrap_err().to_string()
    }

    #[test]
    fn only_the_brokers_are_required() {
        let config = parse(&[(BOOTSTRAP_SERVERS, "b-1:9092,b-2:9092")]).unwrap();
        assert_eq!(config.destination.bootstrap_servers, "b-1:9092,b-2:9092");
        assert!(config.destination.auth.is_empty());
        assert_eq!(config.topic, None);
        assert!(!config.preserve_partition);
        assert_eq!(config.delivery_timeout, Duration::from_secs(30));
        assert!(!config.report_batch_item_failures);

        let error = refusal(&[]);
        assert!(
            error.starts_with("DUMP_BOOTSTRAP_SERVERS is not set"),
            "{error}"
        );
    }

    #[test]
    fn every_setting_is_read() {
        let config = parse(&[
            (BOOTSTRAP_SERVERS, "b-1:9092"),
            ("DUMP_TOPIC", "orders.copy"),
            ("DUMP_PRESERVE_PARTITION", "TRUE"),
            ("DUMP_DELIVERY_TIMEOUT_MS", "2500"),
            ("DUMP_REPORT_BATCH_ITEM_FAILURES", "true"),
        ])
        .unwrap();
        assert_eq!(config.topic.as_deref(), Some("orders.copy"));
        assert!(config.preserve_partition);
        assert_eq!(config.delivery_timeout, Duration::from_millis(2500));
        assert!(config.report_batch_item_failures);
    }

    #[test]
    fn bad_values_are_named() {
        let cases = [
            (
                "DUMP_PRESERVE_PARTITION",
                "yes",
                "is neither `true` nor `false`",
            ),
            ("DUMP_DELIVERY_TIMEOUT_MS", "0", "milliseconds"),
            ("DUMP_DELIVERY_TIMEOUT_MS", "soon", "milliseconds"),
            ("DUMP_TOPIC", "a topic", "not a Kafka topic name"),
            ("DUMP_SASL_MECHANISM", "GSSAPI", "is not one of PLAIN"),
        ];
        for (name, value, problem) in cases {
            let error = refusal(&[(BOOTSTRAP_SERVERS, "b-1:9092"), (name, value)]);
            assert!(error.starts_with(&format!("{name}=")), "{error}");
            assert!(error.contains(problem), "{error}");
        }
        let error = refusal(&[(BOOTSTRAP_SERVERS, "b-1")]);
        assert!(error.contains("not host:port"), "{error}");
    }

    #[test]
    fn scram_reads_its_password_through_the_client_crate_without_showing_it() {
        // The client crate reads DUMP_SASL_PASSWORD from the real environment, which this test
        // cannot set (no unsafe code): an unset variable must be reported by name.
        let result = parse(&[
            (BOOTSTRAP_SERVERS, "b-1:9096"),
            ("DUMP_SASL_MECHANISM", "scram-sha-512"),
            ("DUMP_SASL_USERNAME", "dumper"),
            (SASL_PASSWORD, "hunter2"),
            ("DUMP_TLS", "true"),
        ]);
        match result {
            Ok(config) => {
                let auth = &config.destination.auth;
                assert!(auth.tls.is_some());
                assert!(
                    matches!(&auth.sasl, Some(SaslConfig::ScramSha512(c)) if c.username == "dumper"
                    && c.password == SecretSource::Env(SASL_PASSWORD.into()))
                );
                assert!(!format!("{config:?}").contains("hunter2"));
            }
            Err(error) => {
                let error = error.to_string();
                assert!(error.contains("DUMP_SASL_PASSWORD"), "{error}");
                assert!(!error.contains("hunter2"), "{error}");
            }
        }

        let error = refusal(&[
            (BOOTSTRAP_SERVERS, "b-1:9096"),
            ("DUMP_SASL_MECHANISM", "SCRAM-SHA-256"),
            ("DUMP_SASL_USERNAME", "dumper"),
        ]);
        assert!(
            error.starts_with("DUMP_SASL_PASSWORD is not set"),
            "{error}"
        );
    }

    #[test]
    fn msk_iam_turns_tls_on_and_takes_the_lambda_region() {
        let config = parse(&[
            (
                BOOTSTRAP_SERVERS,
                "b-1.dest.kafka.eu-west-1.amazonaws.com:9098",
            ),
            ("DUMP_SASL_MECHANISM", "AWS_MSK_IAM"),
            ("AWS_REGION", "eu-west-1"),
            (
                "DUMP_MSK_IAM_ROLE_ARN",
                "arn:aws:iam::123456789012:role/dump-writer",
            ),
        ])
        .unwrap();
        let auth = &config.destination.auth;
        assert_eq!(auth.tls, Some(TlsConfig::default()));
        let Some(SaslConfig::AwsMskIam(iam)) = &auth.sasl else {
            panic!("not MSK IAM: {auth:?}");
        };
        assert_eq!(iam.region, "eu-west-1");
        assert_eq!(
            iam.role_arn.as_deref(),
            Some("arn:aws:iam::123456789012:role/dump-writer")
        );

        let error = refusal(&[
            (BOOTSTRAP_SERVERS, "b-1:9098"),
            ("DUMP_SASL_MECHANISM", "AWS_MSK_IAM"),
            ("AWS_REGION", "eu-west-1"),
            ("DUMP_TLS", "false"),
        ]);
        assert!(error.contains("auth.tls"), "{error}");
    }

    #[test]
    fn a_client_config_file_replaces_the_connection_variables() {
        let dir = std::env::temp_dir().join(format!("topic-dump-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("destination.toml");
        std::fs::write(
            &path,
            "bootstrap_servers = \"dest-1:9092\"\n[options]\n\"linger.ms\" = \"50\"\n",
        )
        .unwrap();
        let path = path.to_str().unwrap();
        let config = parse(&[(CLIENT_CONFIG_FILE, path)]).unwrap();
        assert_eq!(config.destination.bootstrap_servers, "dest-1:9092");
        assert_eq!(config.destination.options["linger.ms"], "50");

        let error = refusal(&[(CLIENT_CONFIG_FILE, path), (BOOTSTRAP_SERVERS, "b:1")]);
        assert!(error.contains("DUMP_BOOTSTRAP_SERVERS"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
