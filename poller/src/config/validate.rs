//! Checking a [`Config`] and resolving its defaults into the runtime model. Every error names
//! the field (`mapping[0].batch_size`) and what is allowed.

use super::error::ConfigError;
use super::file::{Config, MappingConfig, SYNC_INVOKE_PAYLOAD_LIMIT};
use super::model::{
    Kafka, Lambda, Mapping, Ordering, StartingPosition, Telemetry, ValidatedConfig,
};
use kafka_lambda_client::{TOPIC_NAME_RULE, is_topic_name};
use kafka_lambda_events::EventSource;
use std::fmt;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

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

/// Checks a setting where -1 has a meaning of its own (`minus_one`, e.g. "infinite") and any
/// other value must be within `range`, as in Lambda's event source mappings.
fn check_range_or_minus_one(
    field: String,
    value: i64,
    range: RangeInclusive<i64>,
    minus_one: &str,
) -> Result<(), ConfigError> {
    if value == -1 || range.contains(&value) {
        return Ok(());
    }
    Err(invalid(
        field,
        format!(
            "is {value}; allowed: -1 ({minus_one}) or {}..={}",
            range.start(),
            range.end()
        ),
    ))
}

/// Largest look-ahead per partition (`max_records_in_flight_per_partition`).
const MAX_RECORDS_IN_FLIGHT: usize = 100_000;

/// The default look-ahead per partition: ten batches, but room for at least 1,000 records (so
/// that small batches of many keys can fill `max_concurrency`) and at most 10,000 (so that
/// large batches of large records stay bounded).
fn default_records_in_flight(batch_size: usize) -> usize {
    batch_size.saturating_mul(10).clamp(1_000, 10_000)
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
        let listen = match &self.telemetry.listen {
            None => None,
            Some(listen) => Some(listen.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "telemetry.listen",
                    format!("is `{listen}`; give an address like 127.0.0.1:9464"),
                )
            })?),
        };
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
        let Config {
            kafka,
            lambda,
            shutdown,
            telemetry,
            ..
        } = self;
        Ok(ValidatedConfig {
            kafka: Kafka {
                bootstrap_servers: kafka.bootstrap_servers,
                commit_interval_ms: kafka.commit_interval_ms,
                fetch_wait_max_ms: kafka.fetch_wait_max_ms,
                group_protocol: kafka.group_protocol,
                options: kafka.options,
                auth,
            },
            lambda: Lambda {
                region: lambda.region,
                endpoint_url: lambda.endpoint_url,
                invoke_timeout: lambda.invoke_timeout_s.map(Duration::from_secs),
            },
            telemetry: Telemetry {
                listen,
                lag_interval_ms: telemetry.lag_interval_ms,
            },
            drain_timeout: Duration::from_millis(shutdown.drain_timeout_ms),
            mappings,
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
        let max_records_in_flight_per_partition = self
            .max_records_in_flight_per_partition
            .unwrap_or_else(|| default_records_in_flight(self.batch_size));
        check_range(
            f("max_records_in_flight_per_partition"),
            max_records_in_flight_per_partition,
            1,
            MAX_RECORDS_IN_FLIGHT,
        )?;
        if self.ordering == Ordering::Partition
            && self.max_records_in_flight_per_partition.is_some()
        {
            return Err(invalid(
                f("max_records_in_flight_per_partition"),
                "is only used with ordering = \"key\" or \"none\" (with \"partition\", one batch is in flight per partition)",
            ));
        }
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
        check_range_or_minus_one(
            f("max_retry_attempts"),
            self.max_retry_attempts,
            0..=10_000,
            "infinite",
        )?;
        check_range_or_minus_one(
            f("max_record_age_s"),
            self.max_record_age_s,
            60..=604_800,
            "no limit",
        )?;
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
            ordering: self.ordering,
            max_records_in_flight_per_partition,
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
            schema_registry: self
                .schema_registry
                .as_ref()
                .map(|r| r.validate(&f("schema_registry")))
                .transpose()?,
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

#[cfg(test)]
mod tests;
