//! The configuration the poller runs on: checked, defaults resolved, durations as durations,
//! secrets read. Made only by [`Config::validate`](super::Config::validate); nothing of the
//! file's TOML is kept.

use kafka_lambda_client::ResolvedAuth;
use kafka_lambda_events::EventSource;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// A checked configuration, with defaults resolved.
#[derive(Debug, Clone)]
pub struct ValidatedConfig {
    /// The source cluster.
    pub kafka: Kafka,
    /// The Lambda API.
    pub lambda: Lambda,
    /// Metrics and health endpoints.
    pub telemetry: Telemetry,
    /// How long batches in flight may take to finish on revoke and shutdown.
    pub drain_timeout: Duration,
    /// One resolved mapping per `[[mapping]]`.
    pub mappings: Vec<Mapping>,
}

/// `[kafka]`, checked.
#[derive(Debug, Clone)]
pub struct Kafka {
    /// Comma-separated `host:port` list, also the event's `bootstrapServers`.
    pub bootstrap_servers: String,
    /// librdkafka `auto.commit.interval.ms`.
    pub commit_interval_ms: u64,
    /// librdkafka `fetch.wait.max.ms`.
    pub fetch_wait_max_ms: u64,
    /// librdkafka `group.protocol`.
    pub group_protocol: GroupProtocol,
    /// `[kafka.options]`, passed to librdkafka after the poller's own settings.
    pub options: BTreeMap<String, String>,
    /// `[kafka.auth]` with its secrets read (redacted in `Debug`); apply it to every client of
    /// the source cluster.
    pub auth: ResolvedAuth,
}

/// `[lambda]`, checked.
#[derive(Debug, Clone, Default)]
pub struct Lambda {
    /// AWS region; `None`: the standard AWS chain.
    pub region: Option<String>,
    /// Custom endpoint (`http://` or `https://`).
    pub endpoint_url: Option<String>,
    /// Upper bound on one invocation; `None`: the default.
    pub invoke_timeout: Option<Duration>,
}

/// `[telemetry]`, checked.
#[derive(Debug, Clone)]
pub struct Telemetry {
    /// Where `/metrics`, `/healthz` and `/readyz` are served; `None`: nowhere.
    pub listen: Option<SocketAddr>,
    /// librdkafka `statistics.interval.ms` (the lag refresh).
    pub lag_interval_ms: u64,
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
    /// Invocations in flight at once.
    pub max_concurrency: usize,
    /// The order records reach the function in.
    pub ordering: Ordering,
    /// Records of one partition taken but not done, with `ordering` other than `Partition`.
    pub max_records_in_flight_per_partition: usize,
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
    /// Decodes keys and values through a schema registry before filters.
    pub schema_registry: Option<super::schema_registry::SchemaRegistry>,
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

/// The order records reach the function in (`ordering`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ordering {
    /// Offset order per partition, one batch in flight per partition (the native trigger's).
    #[default]
    Partition,
    /// Offset order per key within a partition; other keys concurrently.
    Key,
    /// Any order, any concurrency.
    None,
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
