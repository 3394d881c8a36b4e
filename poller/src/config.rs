//! The poller's configuration file (TOML): what to read, what to invoke, how to batch.
//!
//! Field names follow the Lambda event source mapping (`batch_size`, `batching_window_ms`,
//! `starting_position`, ...) so a mapping can be moved between the native trigger and this poller.
//! [`Config::validate`] checks every value and turns the file into a [`ValidatedConfig`]; each
//! error names the field and the allowed range.

use kafka_lambda_client::{
    AuthConfig, ResolvedAuth, TOPIC_NAME_RULE, is_secret_option, is_topic_name,
};
use kafka_lambda_events::EventSource;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// Largest payload of a synchronous (`RequestResponse`) Lambda invocation: 6 MiB.
pub(crate) const SYNC_INVOKE_PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The Kafka cluster every mapping reads from.
    pub kafka: KafkaConfig,
    /// How functions are invoked.
    #[serde(default)]
    pub lambda: LambdaConfig,
    /// Graceful shutdown and rebalance behaviour.
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    /// Metrics and health endpoints.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// One entry per topics → function mapping (`[[mapping]]` tables).
    #[serde(rename = "mapping", default)]
    pub mappings: Vec<MappingConfig>,
}

/// `[kafka]`: the source cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list of bootstrap brokers. Also sent to the function as the
    /// event's `bootstrapServers`.
    pub bootstrap_servers: String,
    /// The periodic commit of stored offsets, in milliseconds (librdkafka
    /// `auto.commit.interval.ms`; default 5000): a backstop, since each batch's offsets are also
    /// committed asynchronously right after it finishes (at most one commit request per 20 ms).
    /// Offsets are only ever stored after their records were delivered, so a commit never runs
    /// ahead of delivery.
    #[serde(default = "default_commit_interval_ms")]
    pub commit_interval_ms: u64,
    /// How long a fetch waits for data on the broker, in milliseconds (librdkafka
    /// `fetch.wait.max.ms`). Default 10: against Apache Kafka 4.4 at 1,000 records/s, a plain
    /// rdkafka consumer and the poller alike see a p99 of ~11 ms from produce to delivery with
    /// 10, ~350 ms with 50 and ~2.4 s with librdkafka's own 500 (BENCHMARKS.md, goal 2); the
    /// price is up to 100 fetch requests a second per broker on an idle topic.
    #[serde(default = "default_fetch_wait_max_ms")]
    pub fetch_wait_max_ms: u64,
    /// The consumer group protocol (librdkafka `group.protocol`): `"classic"` (default; every
    /// broker version, Amazon MSK included; partitions move with the cooperative-sticky
    /// assignor) or `"consumer"` (KIP-848, Apache Kafka 4.0 and later: the broker assigns
    /// partitions and a member joining or leaving no longer stops the others). Every poller of
    /// one consumer group must use the same protocol.
    #[serde(default)]
    pub group_protocol: GroupProtocol,
    /// TLS and SASL (`[kafka.auth.tls]`, `[kafka.auth.sasl]`: PLAIN, SCRAM-SHA-256/512 or
    /// AWS_MSK_IAM), as in [`kafka_lambda_client::AuthConfig`]. Passwords come from
    /// `{ env = "VAR" }` or `{ file = "/path" }`, never from the file itself. Default: neither.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Extra librdkafka properties, passed through verbatim (escape hatch). Values set here win
    /// over the poller's own settings, except the ones delivery guarantees depend on
    /// (`enable.auto.offset.store`, `group.id`), which are rejected.
    ///
    /// Among the poller's own settings, two bound memory on a backlog (librdkafka's defaults
    /// prefetch 64 MB per partition): `queued.max.messages.kbytes` is the record bytes of two
    /// full batches per partition (1.5 × `max_payload_bytes` / 1024, at least 1024; 9216 for
    /// the default 6 MiB) and `fetch.queue.backoff.ms` is 5 (librdkafka: 1000), so a partition
    /// whose small queue a batch has just drained is fetched again at once.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// `[lambda]`: the Lambda API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaConfig {
    /// AWS region; default: the standard AWS chain (`AWS_REGION`, profile, ...).
    #[serde(default)]
    pub region: Option<String>,
    /// Custom endpoint, e.g. `http://127.0.0.1:9000` for `cargo lambda watch`, LocalStack or a VPC
    /// endpoint. Default: the regional Lambda endpoint.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Upper bound on one invocation, in seconds (default 905: Lambda's 15-minute maximum plus a
    /// margin). An invocation that takes longer is treated as a transport failure and retried.
    #[serde(default)]
    pub invoke_timeout_s: Option<u64>,
}

/// `[shutdown]`: draining.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    /// How long the batches in flight may take to finish (their invocations, retries, backoff
    /// waits and dead-letter writes) when partitions are revoked or the process is asked to stop
    /// (SIGINT/SIGTERM), in milliseconds. Default 30000; must be below librdkafka's
    /// `max.poll.interval.ms` (300000 unless set in `[kafka.options]`). After it, the offsets of
    /// finished work are committed and the rest will be delivered again.
    #[serde(default = "default_drain_timeout_ms")]
    pub drain_timeout_ms: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            drain_timeout_ms: default_drain_timeout_ms(),
        }
    }
}

/// `[telemetry]`: Prometheus metrics and health checks over HTTP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Address of the HTTP listener serving `/metrics` (Prometheus text), `/healthz` (process
    /// alive) and `/readyz` (every mapping joined its group, brokers reachable). Default: none
    /// (no listener), e.g. `"127.0.0.1:9464"`.
    #[serde(default)]
    pub listen: Option<String>,
    /// How often per-partition offset lag (high watermark minus committed offset) is refreshed,
    /// in milliseconds (librdkafka `statistics.interval.ms`); 1000..=3600000, default 5000.
    #[serde(default = "default_lag_interval_ms")]
    pub lag_interval_ms: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            listen: None,
            lag_interval_ms: default_lag_interval_ms(),
        }
    }
}

const fn default_lag_interval_ms() -> u64 {
    5_000
}

/// The consumer group protocol of `[kafka] group_protocol`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupProtocol {
    /// The original protocol: members rebalance through the group coordinator's join/sync
    /// rounds; the poller uses the cooperative-sticky assignor, so a rebalance moves only the
    /// partitions that change owner.
    #[default]
    Classic,
    /// KIP-848's protocol: the broker computes the assignment (`group.remote.assignor`) and
    /// hands partitions over one member at a time. Needs a broker that offers it (Apache
    /// Kafka 4.0 or later).
    Consumer,
}

impl GroupProtocol {
    /// The value of librdkafka's `group.protocol`.
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            GroupProtocol::Classic => "classic",
            GroupProtocol::Consumer => "consumer",
        }
    }
}

/// Where a consumer group with no committed offset starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StartingPosition {
    /// The oldest record still in the topic.
    TrimHorizon,
    /// Only records produced after the group first joins.
    Latest,
    /// The first record at or after `starting_position_timestamp`.
    AtTimestamp,
}

/// `[[mapping]]`: topics → one function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    /// Function name, ARN, or `name:alias` / `name:version`.
    pub function: String,
    /// Topics to read (at least one).
    pub topics: Vec<String>,
    /// Consumer group id. Default `kafka-lambda-<function name>`: the name alone, without an
    /// alias or version and out of an ARN (`log-etl:live` and
    /// `arn:aws:lambda:…:function:log-etl:3` both give `kafka-lambda-log-etl`), so moving to
    /// another alias keeps the group and functions behind same-named aliases get groups of their
    /// own; `check` prints the effective one. Run several pollers with the same group to share
    /// the partitions.
    #[serde(default)]
    pub consumer_group: Option<String>,
    /// Where a group with no committed offset starts. Default `TRIM_HORIZON`.
    #[serde(default = "default_starting_position")]
    pub starting_position: StartingPosition,
    /// Epoch seconds for `AT_TIMESTAMP` (required then, rejected otherwise).
    #[serde(default)]
    pub starting_position_timestamp: Option<i64>,
    /// Most records per invocation, 1..=10000. Default 100.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// How long to gather records before invoking, 0..=300000 ms, counted from a batch's first
    /// record. Default 500.
    #[serde(default = "default_batching_window_ms")]
    pub batching_window_ms: u64,
    /// Largest event payload in bytes, measured on the exact serialized event; 1024..=6291456
    /// (6 MiB, the synchronous invocation limit, is the default).
    #[serde(default = "default_max_payload_bytes")]
    pub max_payload_bytes: usize,
    /// Most partitions of this mapping invoking at once, 1..=1000. Default 10. One partition never
    /// has more than one batch in flight.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// `SelfManagedKafka` (default) or `aws:kafka` (MSK; then `event_source_arn` is required).
    #[serde(default = "default_event_source")]
    pub event_source: String,
    /// MSK cluster ARN sent as `eventSourceArn` (MSK mappings only).
    #[serde(default)]
    pub event_source_arn: Option<String>,
    /// Backoff before the first retry of a failed invocation, in ms (1..=60000, default 100);
    /// doubles per attempt with full jitter.
    #[serde(default = "default_retry_backoff_base_ms")]
    pub retry_backoff_base_ms: u64,
    /// Largest backoff between retries, in ms (base..=600000, default 30000).
    #[serde(default = "default_retry_backoff_max_ms")]
    pub retry_backoff_max_ms: u64,
    /// Retries after a function error: -1 (infinite, the default) or 0..=10000. With an
    /// `on_failure` destination, infinite is capped at 10 (as the ESM does).
    #[serde(default = "default_minus_one")]
    pub max_retry_attempts: i64,
    /// Records older than this many seconds are not invoked again after a failure: -1 (no limit,
    /// the default) or 60..=604800.
    #[serde(default = "default_minus_one")]
    pub max_record_age_s: i64,
    /// On a function error, split the batch in two and retry each half, down to the single
    /// failing record. Splitting does not use up retries. Default false.
    #[serde(default)]
    pub bisect_batch_on_function_error: bool,
    /// Honour the function's partial batch response (`batchItemFailures`): records before the
    /// lowest failed offset of the partition are done, the rest is retried. Default false (then
    /// a response is always success, as for the ESM without `ReportBatchItemFailures`).
    #[serde(default)]
    pub report_batch_item_failures: bool,
    /// On-failure destination `kafka://TOPIC`: records that exhaust their retries or age are
    /// written there with failure headers before their offsets are committed. Default: none
    /// (such records are skipped and logged at error).
    #[serde(default)]
    pub on_failure: Option<String>,
    /// Bootstrap servers of the destination's cluster. Default: the source cluster (reached with
    /// `[kafka]`'s settings and credentials).
    #[serde(default)]
    pub on_failure_bootstrap_servers: Option<String>,
    /// Client authentication for the cluster of `on_failure_bootstrap_servers`, in the shape of
    /// `[kafka.auth]` (`[mapping.on_failure_auth.sasl]`, `[mapping.on_failure_auth.tls]`).
    /// Without it that cluster is reached without authentication: the source cluster's
    /// credentials are never sent to another cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure_auth: Option<AuthConfig>,
    /// Event-filtering patterns (the Lambda `FilterCriteria` language, up to 5, ORed) over the
    /// record's `value` (as JSON when it is a JSON object, else as a string) and, beyond the
    /// native trigger, `key`, `headers`, `topic` and `partition`. Records matching none are not
    /// invoked but their offsets are committed in order. Default: none (every record).
    #[serde(default)]
    pub filters: Vec<String>,
    /// Input template reshaping each record's JSON value before invoking, e.g.
    /// `'{"id": "$.eventId", "code": "$.returnCode"}'`. A record it cannot apply to follows the
    /// failure policy (dead-lettered or skipped). Default: none.
    #[serde(default)]
    pub input_template: Option<String>,
}

const fn default_commit_interval_ms() -> u64 {
    5_000
}
const fn default_fetch_wait_max_ms() -> u64 {
    10
}
const fn default_drain_timeout_ms() -> u64 {
    30_000
}
const fn default_starting_position() -> StartingPosition {
    StartingPosition::TrimHorizon
}
const fn default_batch_size() -> usize {
    100
}
const fn default_batching_window_ms() -> u64 {
    500
}
const fn default_max_payload_bytes() -> usize {
    SYNC_INVOKE_PAYLOAD_LIMIT
}
const fn default_max_concurrency() -> usize {
    10
}
fn default_event_source() -> String {
    "SelfManagedKafka".to_owned()
}
const fn default_retry_backoff_base_ms() -> u64 {
    100
}
const fn default_retry_backoff_max_ms() -> u64 {
    30_000
}
const fn default_minus_one() -> i64 {
    -1
}

/// A configuration problem; the message names the field and what is allowed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The path given.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape (unknown fields included).
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The path given.
        path: String,
        /// The parser's message with line and column, without the quoted line (it may hold a
        /// secret).
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid config: `{field}` {problem}")]
    Invalid {
        /// Dotted path of the field, e.g. `mapping[0].batch_size`.
        field: String,
        /// What is wrong and what is allowed.
        problem: String,
    },
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        problem: problem.into(),
    }
}

fn from_client(error: kafka_lambda_client::ConfigError) -> ConfigError {
    invalid(
        error.field().unwrap_or("kafka.auth"),
        error.problem().to_owned(),
    )
}

fn check_range<T: PartialOrd + fmt::Display>(
    field: String,
    value: T,
    min: T,
    max: T,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(invalid(
            field,
            format!("is {value}; allowed: {min}..={max}"),
        ));
    }
    Ok(())
}

/// librdkafka's default `max.poll.interval.ms`.
const LIBRDKAFKA_MAX_POLL_INTERVAL_MS: u64 = 300_000;

/// librdkafka properties the poller owns: overriding them would break at-least-once delivery.
/// `group.protocol` is `[kafka] group_protocol`'s, so that the assignor settings match it.
const RESERVED_OPTIONS: &[&str] = &[
    "enable.auto.offset.store",
    "group.id",
    "enable.auto.commit",
    "group.protocol",
];

impl Config {
    /// Reads and parses a file (without validating it).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let display = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: display.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: display,
            message: kafka_lambda_client::toml_error_without_source(&e, &text),
        })
    }

    /// Reads, parses and validates a file.
    pub fn load(path: &Path) -> Result<ValidatedConfig, ConfigError> {
        Self::from_file(path)?.validate()
    }

    /// Checks every field and resolves defaults.
    pub fn validate(self) -> Result<ValidatedConfig, ConfigError> {
        if self
            .kafka
            .bootstrap_servers
            .split(',')
            .all(|s| s.trim().is_empty())
        {
            return Err(invalid(
                "kafka.bootstrap_servers",
                "is empty; give at least one host:port",
            ));
        }
        for server in self.kafka.bootstrap_servers.split(',').map(str::trim) {
            let port_ok = server
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !port_ok {
                return Err(invalid(
                    "kafka.bootstrap_servers",
                    format!("has `{server}`, which is not host:port"),
                ));
            }
        }
        check_range(
            "kafka.commit_interval_ms".into(),
            self.kafka.commit_interval_ms,
            100,
            3_600_000,
        )?;
        check_range(
            "telemetry.lag_interval_ms".into(),
            self.telemetry.lag_interval_ms,
            1_000,
            3_600_000,
        )?;
        if let Some(listen) = &self.telemetry.listen
            && listen.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(invalid(
                "telemetry.listen",
                format!("is `{listen}`; give an address like 127.0.0.1:9464"),
            ));
        }
        check_range(
            "kafka.fetch_wait_max_ms".into(),
            self.kafka.fetch_wait_max_ms,
            0,
            300_000,
        )?;
        for key in self.kafka.options.keys() {
            if key == "group.protocol" {
                return Err(invalid(
                    format!("kafka.options.\"{key}\""),
                    "is set by `kafka.group_protocol` (\"classic\" or \"consumer\"); use that instead",
                ));
            }
            if RESERVED_OPTIONS.contains(&key.as_str()) {
                return Err(invalid(
                    format!("kafka.options.\"{key}\""),
                    "is managed by the poller (at-least-once delivery depends on it); remove it",
                ));
            }
        }
        kafka_lambda_client::check_options_leave_auth_alone(
            "kafka.options",
            &self.kafka.auth,
            self.kafka.options.keys(),
        )
        .map_err(from_client)?;
        let auth = self
            .kafka
            .auth
            .resolve_at("kafka.auth")
            .map_err(from_client)?;
        check_range(
            "shutdown.drain_timeout_ms".into(),
            self.shutdown.drain_timeout_ms,
            0,
            900_000,
        )?;
        // A revocation drains inside librdkafka's rebalance callback, which blocks the poll
        // loop: a drain as long as max.poll.interval.ms would get the member thrown out of its
        // group mid-drain (its partitions then handed over while batches are still in flight).
        let max_poll_interval = self
            .kafka
            .options
            .get("max.poll.interval.ms")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(LIBRDKAFKA_MAX_POLL_INTERVAL_MS);
        if self.shutdown.drain_timeout_ms >= max_poll_interval {
            return Err(invalid(
                "shutdown.drain_timeout_ms",
                format!(
                    "is {}, not below max.poll.interval.ms ({max_poll_interval}): a revocation drains while the consumer cannot poll, so the group would evict the member mid-drain; lower it, or raise \"max.poll.interval.ms\" in [kafka.options]",
                    self.shutdown.drain_timeout_ms
                ),
            ));
        }
        if let Some(t) = self.lambda.invoke_timeout_s {
            check_range("lambda.invoke_timeout_s".into(), t, 1, 3600)?;
        }
        if let Some(url) = &self.lambda.endpoint_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid(
                "lambda.endpoint_url",
                format!("is `{url}`; it must start with http:// or https://"),
            ));
        }
        if self.mappings.is_empty() {
            return Err(invalid(
                "mapping",
                "is missing; add at least one [[mapping]] table",
            ));
        }
        let mut groups = std::collections::HashSet::new();
        let mut mappings = Vec::with_capacity(self.mappings.len());
        for (i, m) in self.mappings.iter().enumerate() {
            let mapping = m.validate(i, &self.kafka.bootstrap_servers)?;
            if !groups.insert(mapping.consumer_group.clone()) {
                return Err(invalid(
                    format!("mapping[{i}].consumer_group"),
                    format!(
                        "`{}` is used by another mapping; each mapping needs its own group",
                        mapping.consumer_group
                    ),
                ));
            }
            mappings.push(mapping);
        }
        Ok(ValidatedConfig {
            raw: self,
            mappings,
            auth,
        })
    }
}

impl MappingConfig {
    fn validate(&self, i: usize, source_servers: &str) -> Result<Mapping, ConfigError> {
        let f = |name: &str| format!("mapping[{i}].{name}");
        if self.function.trim().is_empty() {
            return Err(invalid(
                f("function"),
                "is empty; give a function name, ARN or name:alias",
            ));
        }
        if self.topics.is_empty() {
            return Err(invalid(f("topics"), "is empty; give at least one topic"));
        }
        for topic in &self.topics {
            if !is_topic_name(topic) {
                return Err(invalid(
                    f("topics"),
                    format!("has `{topic}`, not a Kafka topic name ({TOPIC_NAME_RULE})"),
                ));
            }
        }
        check_range(f("batch_size"), self.batch_size, 1, 10_000)?;
        check_range(f("batching_window_ms"), self.batching_window_ms, 0, 300_000)?;
        check_range(
            f("max_payload_bytes"),
            self.max_payload_bytes,
            1024,
            SYNC_INVOKE_PAYLOAD_LIMIT,
        )?;
        check_range(f("max_concurrency"), self.max_concurrency, 1, 1000)?;
        check_range(
            f("retry_backoff_base_ms"),
            self.retry_backoff_base_ms,
            1,
            60_000,
        )?;
        check_range(
            f("retry_backoff_max_ms"),
            self.retry_backoff_max_ms,
            self.retry_backoff_base_ms,
            600_000,
        )?;
        let start_ts = match (self.starting_position, self.starting_position_timestamp) {
            (StartingPosition::AtTimestamp, Some(ts)) if ts >= 0 => Some(ts),
            (StartingPosition::AtTimestamp, Some(ts)) => {
                return Err(invalid(
                    f("starting_position_timestamp"),
                    format!("is {ts}; give epoch seconds >= 0"),
                ));
            }
            (StartingPosition::AtTimestamp, None) => {
                return Err(invalid(
                    f("starting_position_timestamp"),
                    "is required when starting_position = \"AT_TIMESTAMP\" (epoch seconds)",
                ));
            }
            (_, Some(_)) => {
                return Err(invalid(
                    f("starting_position_timestamp"),
                    "is only allowed with starting_position = \"AT_TIMESTAMP\"",
                ));
            }
            (_, None) => None,
        };
        let event_source = match self.event_source.as_str() {
            "SelfManagedKafka" => EventSource::SelfManagedKafka,
            "aws:kafka" => EventSource::Msk,
            other => {
                return Err(invalid(
                    f("event_source"),
                    format!("is `{other}`; allowed: \"SelfManagedKafka\" or \"aws:kafka\""),
                ));
            }
        };
        match (&event_source, &self.event_source_arn) {
            (EventSource::Msk, None) => {
                return Err(invalid(
                    f("event_source_arn"),
                    "is required for event_source = \"aws:kafka\" (the MSK cluster ARN)",
                ));
            }
            (EventSource::Msk, Some(arn)) if !arn.starts_with("arn:") => {
                return Err(invalid(
                    f("event_source_arn"),
                    format!("is `{arn}`, not an ARN"),
                ));
            }
            (EventSource::SelfManagedKafka, Some(_)) => {
                return Err(invalid(
                    f("event_source_arn"),
                    "is only sent for event_source = \"aws:kafka\" (MSK)",
                ));
            }
            _ => {}
        }
        if self.max_retry_attempts != -1 {
            check_range(f("max_retry_attempts"), self.max_retry_attempts, 0, 10_000).map_err(
                |_| {
                    invalid(
                        f("max_retry_attempts"),
                        format!(
                            "is {}; allowed: -1 (infinite) or 0..=10000",
                            self.max_retry_attempts
                        ),
                    )
                },
            )?;
        }
        if self.max_record_age_s != -1 {
            check_range(f("max_record_age_s"), self.max_record_age_s, 60, 604_800).map_err(
                |_| {
                    invalid(
                        f("max_record_age_s"),
                        format!(
                            "is {}; allowed: -1 (no limit) or 60..=604800",
                            self.max_record_age_s
                        ),
                    )
                },
            )?;
        }
        let on_failure = match &self.on_failure {
            None => None,
            Some(url) => {
                let topic = url.strip_prefix("kafka://").ok_or_else(|| {
                    invalid(
                        f("on_failure"),
                        format!("is `{url}`; give a Kafka topic as kafka://TOPIC"),
                    )
                })?;
                if !is_topic_name(topic) {
                    return Err(invalid(
                        f("on_failure"),
                        format!("has `{topic}`, not a Kafka topic name ({TOPIC_NAME_RULE})"),
                    ));
                }
                let same_cluster = self
                    .on_failure_bootstrap_servers
                    .as_deref()
                    .is_none_or(|servers| same_servers(servers, source_servers));
                if same_cluster && self.topics.iter().any(|t| t == topic) {
                    return Err(invalid(
                        f("on_failure"),
                        format!(
                            "is the source topic `{topic}`; a failed record would be read again forever (use another topic)"
                        ),
                    ));
                }
                Some(topic.to_owned())
            }
        };
        if self.on_failure_bootstrap_servers.is_some() && on_failure.is_none() {
            return Err(invalid(
                f("on_failure_bootstrap_servers"),
                "is only used with on_failure = \"kafka://TOPIC\"",
            ));
        }
        let on_failure_auth = match (&self.on_failure_auth, &self.on_failure_bootstrap_servers) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(invalid(
                    f("on_failure_auth"),
                    "is only used with on_failure_bootstrap_servers (a destination on the source cluster uses [kafka.auth])",
                ));
            }
            (Some(auth), Some(_)) => Some(
                auth.resolve_at(&f("on_failure_auth"))
                    .map_err(from_client)?,
            ),
        };
        let filter = crate::filter::Filter::parse(&self.filters)
            .map_err(|e| invalid(f("filters"), format!("is invalid: {e}")))?;
        let input_template = self
            .input_template
            .as_deref()
            .map(crate::template::InputTemplate::parse)
            .transpose()
            .map_err(|e| invalid(f("input_template"), format!("is invalid: {e}")))?;
        let consumer_group = self
            .consumer_group
            .clone()
            .unwrap_or_else(|| format!("kafka-lambda-{}", function_name(&self.function)));
        if consumer_group.trim().is_empty() {
            return Err(invalid(f("consumer_group"), "is empty"));
        }
        Ok(Mapping {
            index: i,
            function: self.function.clone(),
            topics: self.topics.clone(),
            consumer_group,
            starting_position: self.starting_position,
            starting_position_timestamp_ms: start_ts.map(|s| s.saturating_mul(1000)),
            batch_size: self.batch_size,
            batching_window: Duration::from_millis(self.batching_window_ms),
            max_payload_bytes: self.max_payload_bytes,
            max_concurrency: self.max_concurrency,
            event_source,
            event_source_arn: self.event_source_arn.clone(),
            retry_backoff_base: Duration::from_millis(self.retry_backoff_base_ms),
            retry_backoff_max: Duration::from_millis(self.retry_backoff_max_ms),
            max_retry_attempts: match (self.max_retry_attempts, &on_failure) {
                (-1, Some(_)) => Some(10),
                (-1, None) => None,
                (n, _) => Some(n as u32),
            },
            max_record_age: (self.max_record_age_s > 0)
                .then(|| Duration::from_secs(self.max_record_age_s as u64)),
            bisect_batch_on_function_error: self.bisect_batch_on_function_error,
            report_batch_item_failures: self.report_batch_item_failures,
            on_failure,
            on_failure_bootstrap_servers: self.on_failure_bootstrap_servers.clone(),
            on_failure_auth,
            filter,
            input_template,
        })
    }
}

/// Whether two bootstrap lists name the same brokers (order and spaces aside).
fn same_servers(a: &str, b: &str) -> bool {
    let set = |s: &str| {
        s.split(',')
            .map(|x| x.trim().to_ascii_lowercase())
            .filter(|x| !x.is_empty())
            .collect::<std::collections::BTreeSet<_>>()
    };
    set(a) == set(b)
}

/// A checked configuration, with defaults resolved.
#[derive(Debug, Clone)]
pub struct ValidatedConfig {
    /// The file as written (after defaults), for `check` output.
    pub raw: Config,
    /// One resolved mapping per `[[mapping]]`.
    pub mappings: Vec<Mapping>,
    /// `[kafka.auth]` with its secrets read (redacted in `Debug`); apply it to every client of
    /// the source cluster.
    pub auth: ResolvedAuth,
}

impl ValidatedConfig {
    /// The effective configuration as TOML, with secrets in `[kafka.options]` redacted.
    /// `[kafka.auth]` holds no secret values, only where they are read from.
    pub fn to_redacted_toml(&self) -> String {
        let mut raw = self.raw.clone();
        // Defaults derived from other fields are shown as they take effect.
        for (written, mapping) in raw.mappings.iter_mut().zip(&self.mappings) {
            written.consumer_group = Some(mapping.consumer_group.clone());
        }
        for (key, value) in raw.kafka.options.iter_mut() {
            if is_secret_option(key) {
                *value = "<redacted>".to_owned();
            }
        }
        toml::to_string_pretty(&raw).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }

    /// Drain timeout for revokes and shutdown.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.raw.shutdown.drain_timeout_ms)
    }
}

/// The function's name in any form the Invoke API takes: `name`, `name:qualifier`,
/// `account:function:name[:qualifier]` or `arn:aws:lambda:region:account:function:name[:qualifier]`,
/// without the alias or version, so that a mapping keeps its default consumer group when it moves
/// to another alias or version, and two functions behind aliases of the same name do not share one.
fn function_name(function: &str) -> &str {
    let after_prefix = function
        .split_once(":function:")
        .map_or(function, |(_, rest)| rest);
    after_prefix.split(':').next().unwrap_or(after_prefix)
}

/// One resolved mapping.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// Position in the file (for logs).
    pub index: usize,
    /// Function name, ARN or `name:alias`.
    pub function: String,
    /// Topics read.
    pub topics: Vec<String>,
    /// Consumer group id.
    pub consumer_group: String,
    /// Start position for a group without committed offsets.
    pub starting_position: StartingPosition,
    /// `AT_TIMESTAMP` start, epoch milliseconds.
    pub starting_position_timestamp_ms: Option<i64>,
    /// Most records per invocation.
    pub batch_size: usize,
    /// Gathering window from a batch's first record.
    pub batching_window: Duration,
    /// Payload byte limit.
    pub max_payload_bytes: usize,
    /// Partitions invoking at once.
    pub max_concurrency: usize,
    /// `eventSource` sent.
    pub event_source: EventSource,
    /// `eventSourceArn` sent (MSK).
    pub event_source_arn: Option<String>,
    /// First retry backoff.
    pub retry_backoff_base: Duration,
    /// Backoff cap.
    pub retry_backoff_max: Duration,
    /// Retries after function errors; `None` = infinite.
    pub max_retry_attempts: Option<u32>,
    /// Records older than this are not retried.
    pub max_record_age: Option<Duration>,
    /// Split failing batches.
    pub bisect_batch_on_function_error: bool,
    /// Honour partial batch responses.
    pub report_batch_item_failures: bool,
    /// Dead-letter topic.
    pub on_failure: Option<String>,
    /// Dead-letter cluster, when not the source.
    pub on_failure_bootstrap_servers: Option<String>,
    /// Its authentication, secrets read (none: unauthenticated).
    pub on_failure_auth: Option<ResolvedAuth>,
    /// Which records are invoked (empty: all).
    pub filter: crate::filter::Filter,
    /// Reshapes values before invoking.
    pub input_template: Option<crate::template::InputTemplate>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_group_comes_from_the_function_name_without_alias_or_version() {
        for function in [
            "test-recorder",
            "test-recorder:live",
            "test-recorder:7",
            "123456789012:function:test-recorder",
            "arn:aws:lambda:eu-west-1:123456789012:function:test-recorder",
            "arn:aws:lambda:eu-west-1:123456789012:function:test-recorder:live",
        ] {
            assert_eq!(function_name(function), "test-recorder", "{function}");
        }
    }
}
