//! `[mapping.schema_registry]`: the schema registry whose records a mapping decodes, as written
//! in the file and as validated. It mirrors the event source mapping's `SchemaRegistryConfig`
//! (`SchemaRegistryURI`, `EventRecordFormat`, `SchemaValidationConfigs`, `AccessConfigs`), with
//! secrets read from the environment or files as `[kafka.auth]` reads them.

use super::error::ConfigError;
use kafka_lambda_client::SecretSource;
use kafka_lambda_schema::ConfluentAuth;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// `[mapping.schema_registry]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaRegistryConfig {
    /// A Confluent-compatible registry's URL (`https://registry:8081`, Apicurio's
    /// `…/apis/ccompat/v7`), or an AWS Glue registry's ARN
    /// (`arn:aws:glue:REGION:ACCOUNT:registry/NAME`).
    pub uri: String,
    /// What the function receives: `"JSON"` (default; the decoded key or value as JSON text) or
    /// `"SOURCE"` (the data as serialized, without the registry's header).
    #[serde(default)]
    pub event_record_format: EventRecordFormat,
    /// Which parts of a record are decoded and validated: `["VALUE"]` (default), `["KEY"]` or
    /// `["KEY", "VALUE"]`. The others are passed on as read.
    #[serde(default = "default_schema_validation")]
    pub schema_validation: Vec<SchemaAttribute>,
    /// Basic authentication's user (Confluent-compatible registries); needs `password`.
    #[serde(default)]
    pub username: Option<String>,
    /// Basic authentication's password: `{ env = "VAR" }` or `{ file = "/path" }`.
    #[serde(default)]
    pub password: Option<SecretSource>,
    /// A bearer token (`Authorization: Bearer`): `{ env = "VAR" }` or `{ file = "/path" }`.
    #[serde(default)]
    pub bearer_token: Option<SecretSource>,
    /// PEM file of the client certificate (chain) for mutual TLS; needs `client_key`.
    #[serde(default)]
    pub client_certificate: Option<PathBuf>,
    /// PEM file of the client certificate's private key (PKCS#8, or PKCS#1 RSA).
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// PEM file of the CA certificates that signed the registry's certificate, trusted instead
    /// of the system's roots.
    #[serde(default)]
    pub server_root_ca: Option<PathBuf>,
    /// AWS Glue's endpoint URL, instead of `https://glue.REGION.amazonaws.com` (a VPC endpoint,
    /// or a local stand-in in tests).
    #[serde(default)]
    pub glue_endpoint: Option<String>,
    /// How long one request to the registry may take, 100..=120000 ms. Default 10000.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Compiled schemas kept, 1..=100000. Default 1000; each is fetched once.
    #[serde(default = "default_max_cached_schemas")]
    pub max_cached_schemas: usize,
}

/// `event_record_format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventRecordFormat {
    /// The decoded datum as JSON text.
    #[default]
    #[serde(rename = "JSON")]
    Json,
    /// The serialized data without the registry header.
    #[serde(rename = "SOURCE")]
    Source,
}

/// An entry of `schema_validation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SchemaAttribute {
    /// The record's key.
    #[serde(rename = "KEY")]
    Key,
    /// The record's value.
    #[serde(rename = "VALUE")]
    Value,
}

fn default_schema_validation() -> Vec<SchemaAttribute> {
    vec![SchemaAttribute::Value]
}
const fn default_request_timeout_ms() -> u64 {
    10_000
}
const fn default_max_cached_schemas() -> usize {
    1000
}

/// Which registry, resolved.
#[derive(Debug, Clone)]
pub enum RegistryTarget {
    /// A Confluent-compatible registry.
    Confluent {
        /// Its base URL.
        url: String,
        /// How to authenticate, secrets and PEMs read.
        auth: ConfluentAuth,
    },
    /// AWS Glue, authenticated with the process's AWS credentials.
    Glue {
        /// The registry ARN.
        arn: String,
        /// The endpoint, when not the region's.
        endpoint: Option<String>,
    },
}

/// `[mapping.schema_registry]`, validated.
#[derive(Debug, Clone)]
pub struct SchemaRegistry {
    /// The registry.
    pub target: RegistryTarget,
    /// What the function receives.
    pub event_record_format: EventRecordFormat,
    /// Whether keys are decoded.
    pub key: bool,
    /// Whether values are decoded.
    pub value: bool,
    /// One request's time limit.
    pub request_timeout: Duration,
    /// Compiled schemas kept.
    pub max_cached_schemas: usize,
}

impl SchemaRegistryConfig {
    /// Checks the table at `at` (e.g. `mapping[0].schema_registry`) and reads its secrets and
    /// PEM files.
    pub(crate) fn validate(&self, at: &str) -> Result<SchemaRegistry, ConfigError> {
        let f = |field: &str| format!("{at}.{field}");
        let invalid = |field: String, problem: &str| ConfigError::Invalid {
            field,
            problem: problem.to_owned(),
        };
        if self.schema_validation.is_empty() {
            return Err(invalid(
                f("schema_validation"),
                "is empty; list what is decoded: [\"VALUE\"], [\"KEY\"] or [\"KEY\", \"VALUE\"]",
            ));
        }
        if !(100..=120_000).contains(&self.request_timeout_ms) {
            return Err(invalid(
                f("request_timeout_ms"),
                &format!("is {}; allowed: 100..=120000", self.request_timeout_ms),
            ));
        }
        if !(1..=100_000).contains(&self.max_cached_schemas) {
            return Err(invalid(
                f("max_cached_schemas"),
                &format!("is {}; allowed: 1..=100000", self.max_cached_schemas),
            ));
        }
        let uri = self.uri.trim();
        let target = if uri.starts_with("arn:") {
            self.glue_target(uri, &f)?
        } else if uri.starts_with("http://") || uri.starts_with("https://") {
            self.confluent_target(uri, &f)?
        } else {
            return Err(invalid(
                f("uri"),
                &format!(
                    "is `{uri}`: give a Confluent-compatible registry's http(s) URL or an AWS Glue registry ARN (arn:aws:glue:REGION:ACCOUNT:registry/NAME)"
                ),
            ));
        };
        Ok(SchemaRegistry {
            target,
            event_record_format: self.event_record_format,
            key: self.schema_validation.contains(&SchemaAttribute::Key),
            value: self.schema_validation.contains(&SchemaAttribute::Value),
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            max_cached_schemas: self.max_cached_schemas,
        })
    }

    fn glue_target(
        &self,
        arn: &str,
        f: &dyn Fn(&str) -> String,
    ) -> Result<RegistryTarget, ConfigError> {
        kafka_lambda_schema::registry::glue_registry_region(arn).map_err(|_| {
            ConfigError::Invalid {
                field: f("uri"),
                problem: format!(
                    "is `{arn}`, not an AWS Glue registry ARN (arn:aws:glue:REGION:ACCOUNT:registry/NAME)"
                ),
            }
        })?;
        let given: Vec<&str> = [
            ("username", self.username.is_some()),
            ("password", self.password.is_some()),
            ("bearer_token", self.bearer_token.is_some()),
            ("client_certificate", self.client_certificate.is_some()),
            ("client_key", self.client_key.is_some()),
            ("server_root_ca", self.server_root_ca.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        if let Some(first) = given.first() {
            return Err(ConfigError::Invalid {
                field: f(first),
                problem: "is not used with AWS Glue, which is reached with the poller's AWS credentials (the role needs glue:GetSchemaVersion)".to_owned(),
            });
        }
        if let Some(e) = &self.glue_endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                field: f("glue_endpoint"),
                problem: format!("is `{e}`, not an http(s) URL"),
            });
        }
        Ok(RegistryTarget::Glue {
            arn: arn.to_owned(),
            endpoint: self.glue_endpoint.clone(),
        })
    }

    fn confluent_target(
        &self,
        url: &str,
        f: &dyn Fn(&str) -> String,
    ) -> Result<RegistryTarget, ConfigError> {
        let invalid = |field: &str, problem: String| ConfigError::Invalid {
            field: f(field),
            problem,
        };
        if self.glue_endpoint.is_some() {
            return Err(invalid(
                "glue_endpoint",
                "is only used with an AWS Glue registry ARN as uri".to_owned(),
            ));
        }
        let basic = match both_or_neither(
            ("username", &self.username),
            ("password", &self.password),
            f,
        )? {
            None => None,
            Some((user, password)) => {
                let secret = password
                    .read()
                    .map_err(|problem| invalid("password", problem))?;
                Some((user.clone(), secret.expose().to_owned()))
            }
        };
        let bearer = self
            .bearer_token
            .as_ref()
            .map(|s| s.read().map_err(|problem| invalid("bearer_token", problem)))
            .transpose()?
            .map(|s| s.expose().to_owned());
        if basic.is_some() && bearer.is_some() {
            return Err(invalid(
                "bearer_token",
                "and username/password are both given: choose one way to authenticate".to_owned(),
            ));
        }
        let read_pem = |field: &str, path: &PathBuf| {
            std::fs::read(path).map_err(|e| {
                invalid(
                    field,
                    format!("names `{}`, which cannot be read: {e}", path.display()),
                )
            })
        };
        let client_identity_pem = match both_or_neither(
            ("client_certificate", &self.client_certificate),
            ("client_key", &self.client_key),
            f,
        )? {
            None => None,
            Some((cert, key)) => {
                let mut pem = read_pem("client_certificate", cert)?;
                pem.push(b'\n');
                pem.extend(read_pem("client_key", key)?);
                Some(pem)
            }
        };
        let server_ca_pem = self
            .server_root_ca
            .as_ref()
            .map(|p| read_pem("server_root_ca", p))
            .transpose()?;
        let auth = ConfluentAuth {
            basic,
            bearer,
            client_identity_pem,
            server_ca_pem,
        };
        // Build a client once now, so that a PEM that does not parse is a config error.
        kafka_lambda_schema::ConfluentRegistry::new(url, auth.clone(), Duration::from_secs(1))
            .map_err(|problem| invalid("uri", problem))?;
        Ok(RegistryTarget::Confluent {
            url: url.trim_end_matches('/').to_owned(),
            auth,
        })
    }
}

/// Two settings that go together: both given, or neither (`None`). One without the other is
/// refused at the missing one's field (`f` makes a setting's name its field): "is missing:
/// <the other> needs it".
fn both_or_neither<'a, A, B>(
    (first, a): (&str, &'a Option<A>),
    (second, b): (&str, &'a Option<B>),
    f: &dyn Fn(&str) -> String,
) -> Result<Option<(&'a A, &'a B)>, ConfigError> {
    let missing = |field: &str, needed_by: &str| ConfigError::Invalid {
        field: f(field),
        problem: format!("is missing: {needed_by} needs it"),
    };
    match (a, b) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(missing(second, first)),
        (None, Some(_)) => Err(missing(first, second)),
        (Some(a), Some(b)) => Ok(Some((a, b))),
    }
}
