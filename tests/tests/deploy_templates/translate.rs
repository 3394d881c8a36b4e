//! One vocabulary: an event source mapping's properties as a poller `[[mapping]]`, checked by
//! `kafka-lambda-poller check`.

use crate::cloudformation::scalar_text;
use kafka_lambda_tests::{output_text, poller_check};
use serde_json::Value;
use std::fmt;

/// The password the translated SCRAM configurations read from the environment; `check` reads
/// it (and never prints it).
const SASL_PASSWORD_VARIABLE: &str = "KAFKA_SASL_PASSWORD";

/// Trigger properties with no `[[mapping]]` field by design, and why. The translation skips
/// exactly these; any other property it does not know fails it.
pub(crate) const NO_POLLER_EQUIVALENT: &[(&str, &str)] = &[
    (
        "ProvisionedPollerConfig",
        "sizes Lambda's own event pollers; the poller scales by running more tasks of \
         infra/poller-service.yaml (MinTasks/MaxTasks) in the same consumer group",
    ),
    (
        "Enabled",
        "pauses an ESM in place; a poller runs exactly the mappings in its file, so a disabled \
         mapping is one left out of it",
    ),
];

/// `SourceAccessConfigurations` entries with no poller equivalent by design, and why.
const ACCESS_TYPES_WITHOUT_EQUIVALENT: &[(&str, &str)] = &[
    (
        "VPC_SUBNET",
        "places Lambda's pollers in the brokers' network; the poller is placed there by its own \
         deployment (SubnetIds of infra/poller-service.yaml)",
    ),
    (
        "VPC_SECURITY_GROUP",
        "as VPC_SUBNET: SecurityGroupIds of infra/poller-service.yaml",
    ),
];

/// Trigger properties whose poller field is not there yet: (property, poller key, state). The
/// translation produces the key, shows it, and leaves it out of the file `check` reads;
/// `poller_rejects_the_pending_fields_until_they_land` fails once the poller accepts the key,
/// which is the moment to remove the entry here.
pub(crate) const PENDING_IN_POLLER: &[(&str, &str, &str)] = &[];

/// A value in the poller's TOML.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Toml {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<String>),
    /// A secret read from this environment variable: `{ env = "NAME" }`.
    EnvSecret(&'static str),
}

impl fmt::Display for Toml {
    /// TOML syntax; JSON's string escapes are valid TOML basic-string escapes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quote = |s: &str| serde_json::to_string(s).map_err(|_| fmt::Error);
        match self {
            Toml::Str(s) => f.write_str(&quote(s)?),
            Toml::Int(i) => write!(f, "{i}"),
            Toml::Bool(b) => write!(f, "{b}"),
            Toml::List(items) => {
                let items: Result<Vec<String>, fmt::Error> =
                    items.iter().map(|s| quote(s)).collect();
                write!(f, "[{}]", items?.join(", "))
            }
            Toml::EnvSecret(name) => write!(f, "{{ env = {} }}", quote(name)?),
        }
    }
}

/// A whole poller configuration for one translated trigger.
#[derive(Debug, Default)]
pub(crate) struct PollerConfig {
    kafka: Vec<(&'static str, Toml)>,
    tls: bool,
    sasl: Vec<(&'static str, Toml)>,
    /// Environment variables `check` needs (the SASL password).
    env: Vec<(&'static str, &'static str)>,
    mapping: Vec<(&'static str, Toml)>,
    /// Translated, but not understood by the poller yet ([`PENDING_IN_POLLER`]).
    pub(crate) pending: Vec<(&'static str, Toml)>,
}

impl PollerConfig {
    fn to_toml(&self) -> String {
        let table = |header: &str, entries: &[(&str, Toml)]| {
            let mut text = format!("{header}\n");
            for (key, value) in entries {
                text.push_str(&format!("{key} = {value}\n"));
            }
            text
        };
        let mut text = table("[kafka]", &self.kafka);
        if self.tls {
            text.push_str("\n[kafka.auth.tls]\n");
        }
        if !self.sasl.is_empty() {
            text.push('\n');
            text.push_str(&table("[kafka.auth.sasl]", &self.sasl));
        }
        text.push('\n');
        text.push_str(&table("[[mapping]]", &self.mapping));
        text
    }

    /// Runs `kafka-lambda-poller check` on this configuration; the effective configuration it
    /// prints, or its error.
    pub(crate) fn check(&self) -> Result<String, String> {
        check_config(&self.to_toml(), &self.env)
    }

    /// Every translated value must be in the effective configuration as translated (a default
    /// or a unit conversion going wrong shows here).
    pub(crate) fn assert_reported_by(&self, effective: &str, context: &str) {
        for (key, value) in &self.mapping {
            let line = format!("{key} = {value}");
            assert!(
                effective
                    .lines()
                    .any(|l| l == line || same_string_list(l, &line)),
                "{context}: `check` does not report `{line}`:\n{effective}\nfrom:\n{}",
                self.to_toml()
            );
        }
    }
}

/// Translates one `MSK` / `SelfManagedKafka` event (resolved properties) into a poller
/// configuration; refuses any property it does not know.
pub(crate) fn translate(
    function: &str,
    kind: &str,
    properties: &Value,
) -> Result<PollerConfig, String> {
    let properties = properties
        .as_object()
        .ok_or_else(|| format!("{kind} properties are not a map: {properties}"))?;
    let mut config = PollerConfig::default();
    config
        .mapping
        .push(("function", Toml::Str(function.to_owned())));
    let mut msk_region = None;
    for (key, value) in properties {
        let int = || as_i64(value).ok_or_else(|| format!("{key}: not an integer: {value}"));
        let mut set = |poller_key: &'static str, v: Toml| config.mapping.push((poller_key, v));
        match (kind, key.as_str()) {
            (_, "Topics") => set("topics", Toml::List(strings(key, value)?)),
            ("MSK", "Stream") => {
                let arn = value.as_str().ok_or("Stream: not an ARN")?;
                set("event_source", Toml::Str("aws:kafka".into()));
                set("event_source_arn", Toml::Str(arn.to_owned()));
                msk_region = Some(arn.split(':').nth(3).unwrap_or_default().to_owned());
            }
            ("SelfManagedKafka", "KafkaBootstrapServers") => config.kafka.push((
                "bootstrap_servers",
                Toml::Str(strings(key, value)?.join(",")),
            )),
            (_, "ConsumerGroupId") => {
                set("consumer_group", Toml::Str(scalar_text(value)));
            }
            (_, "StartingPosition") => set("starting_position", Toml::Str(scalar_text(value))),
            (_, "StartingPositionTimestamp") => {
                set("starting_position_timestamp", Toml::Int(int()?));
            }
            (_, "BatchSize") => set("batch_size", Toml::Int(int()?)),
            (_, "MaximumBatchingWindowInSeconds") => {
                set("batching_window_ms", Toml::Int(int()? * 1000));
            }
            (_, "MaximumRetryAttempts") => set("max_retry_attempts", Toml::Int(int()?)),
            (_, "MaximumRecordAgeInSeconds") => set("max_record_age_s", Toml::Int(int()?)),
            (_, "BisectBatchOnFunctionError") => {
                let bisect = match value {
                    Value::Bool(b) => *b,
                    Value::String(s) if s == "true" || s == "false" => s == "true",
                    other => return Err(format!("{key}: not a boolean: {other}")),
                };
                set("bisect_batch_on_function_error", Toml::Bool(bisect));
            }
            (_, "FunctionResponseTypes") => {
                for response_type in strings(key, value)? {
                    if response_type != "ReportBatchItemFailures" {
                        return Err(format!("{key}: `{response_type}` has no poller equivalent"));
                    }
                    set("report_batch_item_failures", Toml::Bool(true));
                }
            }
            (_, "DestinationConfig") => {
                let on_failure = value
                    .get("OnFailure")
                    .and_then(Value::as_object)
                    .ok_or("DestinationConfig has no OnFailure")?;
                for (field, v) in on_failure {
                    match field.as_str() {
                        // SAM's hint for the policies it generates, not part of the ESM.
                        "Type" => {}
                        "Destination" => {
                            let destination = scalar_text(v);
                            if !destination.starts_with("kafka://") {
                                return Err(format!(
                                    "DestinationConfig.OnFailure.Destination `{destination}`: the \
                                     poller writes failed records to a Kafka topic \
                                     (kafka://TOPIC) only"
                                ));
                            }
                            set("on_failure", Toml::Str(destination));
                        }
                        other => {
                            return Err(format!("DestinationConfig.OnFailure.{other} is unknown"));
                        }
                    }
                }
            }
            (_, "FilterCriteria") => {
                let patterns = value
                    .get("Filters")
                    .and_then(Value::as_array)
                    .ok_or("FilterCriteria has no Filters list")?
                    .iter()
                    .map(|filter| {
                        filter["Pattern"]
                            .as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| format!("FilterCriteria: no Pattern in {filter}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let entry = ("filters", Toml::List(patterns));
                if PENDING_IN_POLLER
                    .iter()
                    .any(|(p, _, _)| *p == "FilterCriteria")
                {
                    config.pending.push(entry);
                } else {
                    config.mapping.push(entry);
                }
            }
            (_, "SourceAccessConfigurations") => {
                for access in value
                    .as_array()
                    .ok_or("SourceAccessConfigurations: not a list")?
                {
                    let access_type = access["Type"].as_str().unwrap_or_default();
                    let mechanism = match access_type {
                        "SASL_SCRAM_512_AUTH" => "SCRAM-SHA-512",
                        "SASL_SCRAM_256_AUTH" => "SCRAM-SHA-256",
                        "BASIC_AUTH" => "PLAIN",
                        t if ACCESS_TYPES_WITHOUT_EQUIVALENT.iter().any(|(a, _)| *a == t) => {
                            continue;
                        }
                        other => {
                            return Err(format!(
                                "SourceAccessConfigurations type `{other}` has no translation to \
                                 the poller's [kafka.auth]: add it to translate()"
                            ));
                        }
                    };
                    // The secret's username and password: the poller reads the password from
                    // the environment (ECS injects it from the same secret); the username is
                    // written into the file.
                    config.tls = true;
                    config.sasl = vec![
                        ("mechanism", Toml::Str(mechanism.into())),
                        ("username", Toml::Str("log-etl".into())),
                        ("password", Toml::EnvSecret(SASL_PASSWORD_VARIABLE)),
                    ];
                    config
                        .env
                        .push((SASL_PASSWORD_VARIABLE, "not-a-real-password"));
                }
            }
            (_, other) if NO_POLLER_EQUIVALENT.iter().any(|(p, _)| *p == other) => {}
            (_, other) => {
                return Err(format!(
                    "{kind} property `{other}` has no translation to the poller's [[mapping]]: \
                     add it to translate() or, if it cannot have a poller equivalent, to \
                     NO_POLLER_EQUIVALENT with the reason"
                ));
            }
        }
    }
    if let Some(region) = msk_region {
        // Lambda finds an MSK cluster's brokers from its ARN; the poller is given them
        // (aws kafka get-bootstrap-brokers, port 9098 for IAM), a value only a deployment knows.
        config.kafka.push((
            "bootstrap_servers",
            Toml::Str(format!(
                "b-1.error-logs.example.c2.kafka.{region}.amazonaws.com:9098"
            )),
        ));
        if config.sasl.is_empty() {
            // An MSK trigger without SourceAccessConfigurations authenticates with IAM.
            config.tls = true;
            config.sasl = vec![
                ("mechanism", Toml::Str("AWS_MSK_IAM".into())),
                ("region", Toml::Str(region)),
            ];
        }
    }
    Ok(config)
}

fn strings(key: &str, value: &Value) -> Result<Vec<String>, String> {
    value
        .as_array()
        .ok_or_else(|| format!("{key}: not a list: {value}"))?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("{key}: not a string: {v}"))
        })
        .collect()
}

fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Writes `config` to a temporary file and runs `kafka-lambda-poller check` on it with `env`.
/// The effective configuration it prints, or its error message.
pub(crate) fn check_config(config: &str, env: &[(&str, &str)]) -> Result<String, String> {
    let output = poller_check(config, env);
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{}\nconfiguration:\n{config}",
            output_text(&output)
        ))
    }
}

/// Whether two `key = [strings]` TOML lines hold the same key and strings, whichever quoting
/// each uses (`check` prints strings holding `"` as literal `'...'` strings).
fn same_string_list(a: &str, b: &str) -> bool {
    fn parse(line: &str) -> Option<(&str, Vec<String>)> {
        let (key, rest) = line.split_once(" = ")?;
        let mut items = Vec::new();
        let mut rest = rest.trim().strip_prefix('[')?.strip_suffix(']')?.trim();
        while !rest.is_empty() {
            if let Some(literal) = rest.strip_prefix('\'') {
                let end = literal.find('\'')?;
                items.push(literal[..end].to_owned());
                rest = &literal[end + 1..];
            } else {
                let mut de = serde_json::Deserializer::from_str(rest).into_iter::<String>();
                items.push(de.next()?.ok()?);
                rest = &rest[de.byte_offset()..];
            }
            rest = rest.trim_start().trim_start_matches(',').trim_start();
        }
        Some((key, items))
    }
    matches!((parse(a), parse(b)), (Some(x), Some(y)) if x == y)
}
