//! The configuration file as written: serde structs, `deny_unknown_fields`, defaults. Nothing
//! here is trusted until [`Config::validate`] made a [`ValidatedConfig`](super::ValidatedConfig)
//! of it.

use super::error::ConfigError;
use super::model::{GroupProtocol, Mapping, Ordering, StartingPosition};
use kafka_lambda_client::{AuthConfig, is_secret_option};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

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
    /// Invocations of this mapping in flight at once, 1..=1000. Default 10. With `ordering =
    /// "partition"` one partition never has more than one batch in flight, so this is the
    /// number of partitions invoking at once.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// What order records reach the function in: `"partition"` (default, as the native trigger:
    /// offset order per partition, one batch in flight per partition), `"key"` (offset order per
    /// key within a partition, never two batches with the same key in flight, other keys
    /// concurrently up to `max_concurrency`; records without a key share one lane per
    /// partition) or `"none"` (any order, any concurrency). Offsets are committed up to the
    /// first record of a partition not done, whatever the order.
    #[serde(default)]
    pub ordering: Ordering,
    /// With `ordering = "key"` or `"none"`: the look-ahead of one partition, in offsets from its
    /// first record not done to the last one read, 1..=100000. When it is full the partition is
    /// read no further until that record is done (a stuck key then stops its partition), which
    /// bounds memory and what a crash redelivers: at most this many records per partition. Default 10 × `batch_size`, at least 1,000 and at most 10,000.
    #[serde(default)]
    pub max_records_in_flight_per_partition: Option<usize>,
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
    /// `[mapping.schema_registry]`: decode keys and values written through a schema registry
    /// (Avro, Protobuf, JSON Schema; Confluent-compatible or AWS Glue) before filters, and hand
    /// the function their JSON or their bare data. Default: none (records as read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_registry: Option<super::schema_registry::SchemaRegistryConfig>,
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

    /// The effective configuration as TOML, as `check` prints it: this file with the defaults
    /// that `mappings` (its validated mappings) derived from other fields, and the secrets in
    /// `[kafka.options]` redacted. `[kafka.auth]` holds no secret values, only where they are
    /// read from.
    pub fn to_redacted_toml(&self, mappings: &[Mapping]) -> String {
        let mut written = self.clone();
        for (mapping, resolved) in written.mappings.iter_mut().zip(mappings) {
            mapping.consumer_group = Some(resolved.consumer_group.clone());
        }
        for (key, value) in written.kafka.options.iter_mut() {
            if is_secret_option(key) {
                *value = "<redacted>".to_owned();
            }
        }
        toml::to_string_pretty(&written)
            .unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}
