//! The rdkafka consumer of one mapping and its context: librdkafka settings, logs routed to
//! `tracing`, and rebalance handling that hands each assigned partition to its own worker and
//! drains those workers before a partition is revoked.

use crate::config::{GroupProtocol, Mapping, StartingPosition, ValidatedConfig};
use crate::partition::{PartitionWorkers, WorkerFactory};
use crate::telemetry::{Health, MappingMetrics};
use kafka_lambda_client::MskIamTokenProvider;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

/// The consumer type every mapping uses.
pub(crate) type MappingConsumer = StreamConsumer<MappingContext>;

/// librdkafka settings for a mapping. The poller's own choices and `[kafka.auth]` come first;
/// `[kafka.options]` can override them (except the reserved ones and, when `[kafka.auth]` is
/// set, the `security.protocol`/`sasl.*`/`ssl.*` ones, rejected at validation).
pub(crate) fn client_config(config: &ValidatedConfig, mapping: &Mapping) -> ClientConfig {
    let kafka = &config.raw.kafka;
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("group.id", &mapping.consumer_group)
        .set(
            "client.id",
            format!("kafka-lambda-poller-{}", mapping.consumer_group),
        )
        .set("group.protocol", kafka.group_protocol.as_librdkafka())
        // At-least-once: librdkafka commits periodically, but only offsets we stored, and we
        // store an offset only after its record (and all before it) was delivered.
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.commit.interval.ms",
            kafka.commit_interval_ms.to_string(),
        )
        .set("fetch.wait.max.ms", kafka.fetch_wait_max_ms.to_string())
        // Each worker reads its own partition queue, so this bounds the prefetch per partition:
        // librdkafka's default (64 MB per partition) is what a backlog fills at once, while a
        // worker gathers one batch at a time (BENCHMARKS.md, memory).
        .set(
            "queued.max.messages.kbytes",
            queued_max_kbytes(mapping).to_string(),
        )
        // Ask again within 5 ms when a partition queue drains below the limit (librdkafka's
        // default, 1 s, idles a partition whose small queue a batch has just emptied).
        .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS.to_string())
        // Statistics carry the per-partition consumer lag the metrics export.
        .set(
            "statistics.interval.ms",
            config.raw.telemetry.lag_interval_ms.to_string(),
        )
        .set(
            "auto.offset.reset",
            match mapping.starting_position {
                StartingPosition::TrimHorizon => "earliest",
                // AT_TIMESTAMP commits its start offsets before joining (see
                // `commit_start_offsets_at_timestamp`); partitions added later start at the end.
                StartingPosition::Latest | StartingPosition::AtTimestamp => "latest",
            },
        )
        .set_log_level(RDKafkaLogLevel::Info);
    // Under the classic protocol the members assign partitions themselves: cooperative-sticky
    // moves only the partitions that change owner. Under KIP-848's the broker assigns, and
    // librdkafka refuses a client-side assignor.
    if kafka.group_protocol == GroupProtocol::Classic {
        cc.set("partition.assignment.strategy", "cooperative-sticky");
    }
    config.auth.apply(&mut cc);
    for (key, value) in &kafka.options {
        cc.set(key, value);
    }
    // librdkafka drops the lines of its `debug` contexts below its own log level: asking for
    // them through `[kafka.options] debug` must also let them through.
    if kafka.options.contains_key("debug") {
        cc.set_log_level(RDKafkaLogLevel::Debug);
    }
    cc
}

/// Smallest prefetch per partition queue, in KiB (librdkafka's `queued.max.messages.kbytes`).
pub(crate) const MIN_QUEUED_KBYTES: usize = 1024;

/// librdkafka `fetch.queue.backoff.ms` set by the poller (librdkafka's default: 1000).
pub(crate) const FETCH_QUEUE_BACKOFF_MS: u64 = 5;

/// The prefetch limit of one partition queue, in KiB: the record bytes of two full batches
/// (base64 makes the payload 4/3 of its records, so 2 × 3/4 of `max_payload_bytes`), at least
/// [`MIN_QUEUED_KBYTES`]; 9,216 KiB for the default 6 MiB payload limit. With room for only
/// one batch, a worker that has just taken a batch waits for the next fetches before it can
/// fill another (the throughput this costs is in BENCHMARKS.md).
pub(crate) fn queued_max_kbytes(mapping: &Mapping) -> usize {
    (mapping.max_payload_bytes / 1024 * 3 / 2).max(MIN_QUEUED_KBYTES)
}

/// Context of a mapping's consumer.
pub(crate) struct MappingContext {
    mapping: String,
    consumer: OnceLock<Weak<MappingConsumer>>,
    workers: Arc<PartitionWorkers>,
    factory: Arc<dyn WorkerFactory>,
    drain_timeout: Duration,
    token_provider: Option<Arc<MskIamTokenProvider>>,
    /// Set once librdkafka asked for an OAUTHBEARER token (see [`serve_first_token`]).
    token_asked: std::sync::atomic::AtomicBool,
    /// Queues split before an assignment takes effect, for its workers (see `pre_rebalance`).
    split: std::sync::Mutex<
        std::collections::HashMap<(String, i32), crate::partition::PartitionQueue>,
    >,
    index: usize,
    metrics: MappingMetrics,
    health: Arc<Health>,
}

impl MappingContext {
    /// A context that starts workers with `factory` and drains them within `drain_timeout`.
    pub(crate) fn new(
        mapping: &Mapping,
        workers: Arc<PartitionWorkers>,
        factory: Arc<dyn WorkerFactory>,
        drain_timeout: Duration,
    ) -> Self {
        MappingContext {
            mapping: format!("mapping[{}] {}", mapping.index, mapping.function),
            consumer: OnceLock::new(),
            workers,
            factory,
            drain_timeout,
            token_provider: None,
            token_asked: std::sync::atomic::AtomicBool::new(false),
            split: std::sync::Mutex::default(),
            index: mapping.index,
            metrics: MappingMetrics::new(&mapping.consumer_group, &mapping.function),
            health: Arc::new(Health::new(mapping.index + 1)),
        }
    }

    /// Reports readiness and metrics through `health` and `metrics`.
    pub(crate) fn with_telemetry(mut self, metrics: MappingMetrics, health: Arc<Health>) -> Self {
        self.metrics = metrics;
        self.health = health;
        self
    }

    /// Answers librdkafka's OAUTHBEARER token refreshes with `provider` (MSK IAM).
    pub(crate) fn with_token_provider(
        mut self,
        provider: Option<Arc<MskIamTokenProvider>>,
    ) -> Self {
        self.token_provider = provider;
        self
    }

    /// Gives the context a handle on its own consumer (needed to split partition queues).
    pub(crate) fn attach(&self, consumer: &Arc<MappingConsumer>) {
        let _ = self.consumer.set(Arc::downgrade(consumer));
    }
}

impl ClientContext for MappingContext {
    // librdkafka raises the refresh event only when `sasl.mechanism` is OAUTHBEARER.
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let mapping = &self.mapping;
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", %mapping, facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", %mapping, facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", %mapping, facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", %mapping, facility = fac, "{log_message}")
            }
        }
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        let reachable = crate::telemetry::brokers_reachable(&statistics);
        self.health.set_brokers_down(self.index, !reachable);
        for topic in statistics.topics.values() {
            // Only the partitions assigned now: librdkafka keeps reporting a revoked one.
            for p in topic.partitions.values() {
                if p.partition >= 0 && p.desired && p.consumer_lag >= 0 {
                    self.metrics
                        .set_lag(&topic.topic, p.partition, p.consumer_lag);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(
            error.rdkafka_error_code(),
            Some(rdkafka::types::RDKafkaErrorCode::AllBrokersDown)
        ) {
            self.health.set_brokers_down(self.index, true);
        }
        tracing::warn!(mapping = %self.mapping, %error, "Kafka client error: {reason}");
    }

    fn generate_oauth_token(
        &self,
        _oauthbearer_config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        self.token_asked
            .store(true, std::sync::atomic::Ordering::Release);
        kafka_lambda_client::generate_oauth_token(self.token_provider.as_ref())
    }
}

impl ConsumerContext for MappingContext {
    fn pre_rebalance(&self, base: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Each partition's queue is split off before librdkafka starts fetching it: split after,
        // the records of its first fetch could reach the main queue, ahead of those the worker
        // reads from its own queue, and be skipped.
        if let Rebalance::Assign(tpl) = rebalance
            && let Some(consumer) = self.consumer.get().and_then(Weak::upgrade)
        {
            let mut split = self
                .split
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (topic, partition) in partitions(tpl) {
                if let Some(queue) = consumer.split_partition_queue(&topic, partition) {
                    split.insert((topic, partition), queue);
                }
            }
        }
        if let Rebalance::Revoke(tpl) = rebalance {
            self.metrics.revoked.increment(1);
            let revoked = partitions(tpl);
            tracing::info!(mapping = %self.mapping, partitions = ?revoked, "partitions revoked: draining in-flight batches");
            for (topic, partition) in &revoked {
                self.metrics.clear_lag(topic, *partition);
            }
            self.workers.drain(&revoked, self.drain_timeout);
            // Commit what the drained workers stored while the partitions are still ours.
            match base.commit_consumer_state(CommitMode::Sync) {
                Ok(())
                | Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => {
                    tracing::warn!(mapping = %self.mapping, error = %e, "commit on revoke failed; the next owner may redeliver some records")
                }
            }
        }
    }

    fn post_rebalance(&self, _base: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.metrics.assigned.increment(1);
                self.health.set_joined(self.index, true);
                let assigned = partitions(tpl);
                tracing::info!(mapping = %self.mapping, partitions = ?assigned, "partitions assigned");
                let Some(consumer) = self.consumer.get().and_then(Weak::upgrade) else {
                    tracing::error!(mapping = %self.mapping, "consumer gone during assignment");
                    return;
                };
                let mut split = std::mem::take(
                    &mut *self
                        .split
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                );
                for (topic, partition) in assigned {
                    let queue = split
                        .remove(&(topic.clone(), partition))
                        .or_else(|| consumer.split_partition_queue(&topic, partition));
                    match queue {
                        Some(queue) => self.workers.start(&*self.factory, topic, partition, queue),
                        None => {
                            tracing::error!(mapping = %self.mapping, %topic, partition, "could not split the partition queue; partition not consumed")
                        }
                    }
                }
            }
            Rebalance::Error(e) => {
                tracing::warn!(mapping = %self.mapping, error = %e, "rebalance error")
            }
            Rebalance::Revoke(_) => {}
        }
    }

    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        offsets: &TopicPartitionList,
    ) {
        match result {
            Ok(()) => {
                tracing::debug!(mapping = %self.mapping, offsets = ?committed(offsets), "offsets committed")
            }
            Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                tracing::warn!(mapping = %self.mapping, error = %e, "offset commit failed; will retry at the next commit")
            }
        }
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

fn committed(tpl: &TopicPartitionList) -> Vec<String> {
    tpl.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some(format!("{}-{}:{o}", e.topic(), e.partition())),
            _ => None,
        })
        .collect()
}

/// With MSK IAM: serves the consumer's queue until librdkafka has asked for its first token
/// (or `limit` passes). librdkafka raises the OAUTHBEARER refresh only through the queue a poll
/// serves, and authenticates no connection before it has a token: a metadata, committed-offset or
/// offsets-for-times lookup made before the first poll waits for nothing but its timeout. Called
/// before subscribing, when no record can arrive; does nothing without MSK IAM.
pub(crate) async fn serve_first_token(consumer: &MappingConsumer, limit: Duration) {
    let context = consumer.context();
    if context.token_provider.is_none() {
        return;
    }
    let asked = || {
        context
            .token_asked
            .load(std::sync::atomic::Ordering::Acquire)
    };
    let deadline = tokio::time::Instant::now() + limit;
    while !asked() && tokio::time::Instant::now() < deadline {
        tokio::select! {
            received = consumer.recv() => match received {
                Ok(message) => {
                    // Not subscribed yet: nothing can be fetched, and nothing is lost by this.
                    tracing::debug!(mapping = %context.mapping, topic = message.topic(),
                        "unexpected record before subscribing; it is fetched again later")
                }
                Err(e) => tracing::debug!(mapping = %context.mapping, error = %e, "while waiting for the first MSK IAM token"),
            },
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    if !asked() {
        tracing::warn!(mapping = %context.mapping, "librdkafka has not asked for an MSK IAM token yet; going on");
    }
}

/// For `AT_TIMESTAMP`: before the group first joins, commits for every partition without a
/// committed offset the first offset at or after the timestamp (or the end of the partition when
/// no record is that recent). Partitions with a committed offset are left alone.
pub(crate) fn commit_start_offsets_at_timestamp(
    consumer: &MappingConsumer,
    topics: &[String],
    timestamp_ms: i64,
    timeout: Duration,
) -> Result<usize, KafkaError> {
    let mut all = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        for t in metadata.topics() {
            for p in t.partitions() {
                all.add_partition(t.name(), p.id());
            }
        }
    }
    let current = consumer.committed_offsets(all, timeout)?;
    let mut lookup = TopicPartitionList::new();
    for e in current.elements() {
        if !matches!(e.offset(), Offset::Offset(_)) {
            lookup.add_partition_offset(e.topic(), e.partition(), Offset::Offset(timestamp_ms))?;
        }
    }
    if lookup.count() == 0 {
        return Ok(0);
    }
    let found = consumer.offsets_for_times(lookup, timeout)?;
    let mut start = TopicPartitionList::new();
    for e in found.elements() {
        // The lookup as a whole can succeed while a partition failed (no leader, say): that
        // partition keeps an error and the offset it was asked with, the timestamp itself. Only
        // a partition that answered "none" (`End`) has no record this recent.
        e.error().inspect_err(|error| {
            tracing::warn!(topic = e.topic(), partition = e.partition(), %error,
                "no AT_TIMESTAMP start offset for this partition yet")
        })?;
        let offset = match e.offset() {
            Offset::Offset(o) => o,
            Offset::End => {
                consumer
                    .fetch_watermarks(e.topic(), e.partition(), timeout)?
                    .1
            }
            // No answer for the partition: looked up again with the others.
            _ => {
                return Err(KafkaError::OffsetFetch(
                    rdkafka::types::RDKafkaErrorCode::Fail,
                ));
            }
        };
        start.add_partition_offset(e.topic(), e.partition(), Offset::Offset(offset))?;
    }
    consumer.commit(&start, CommitMode::Sync)?;
    tracing::info!(offsets = ?committed(&start), "AT_TIMESTAMP start offsets committed");
    Ok(start.count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn config(extra: &str) -> ValidatedConfig {
        let text = format!(
            "[kafka]\nbootstrap_servers = \"k:9092\"\n{extra}\n[[mapping]]\nfunction = \"f\"\ntopics = [\"t\"]\n"
        );
        toml::from_str::<Config>(&text).unwrap().validate().unwrap()
    }

    #[test]
    fn the_prefetch_is_bounded_by_default() {
        let c = config("");
        let cc = client_config(&c, &c.mappings[0]);
        assert_eq!(cc.get("queued.max.messages.kbytes"), Some("9216"));
        assert_eq!(cc.get("fetch.queue.backoff.ms"), Some("5"));
    }

    #[test]
    fn kafka_options_override_the_prefetch_defaults() {
        let c = config(
            "[kafka.options]\n\"queued.max.messages.kbytes\" = \"65536\"\n\"fetch.queue.backoff.ms\" = \"1000\"",
        );
        let cc = client_config(&c, &c.mappings[0]);
        assert_eq!(cc.get("queued.max.messages.kbytes"), Some("65536"));
        assert_eq!(cc.get("fetch.queue.backoff.ms"), Some("1000"));
    }

    #[test]
    fn the_classic_protocol_assigns_cooperative_sticky_and_kip_848_leaves_it_to_the_broker() {
        let classic = config("");
        let cc = client_config(&classic, &classic.mappings[0]);
        assert_eq!(cc.get("group.protocol"), Some("classic"));
        assert_eq!(
            cc.get("partition.assignment.strategy"),
            Some("cooperative-sticky")
        );

        let consumer = config("group_protocol = \"consumer\"");
        let cc = client_config(&consumer, &consumer.mappings[0]);
        assert_eq!(cc.get("group.protocol"), Some("consumer"));
        assert_eq!(cc.get("partition.assignment.strategy"), None);
    }

    #[test]
    fn an_unknown_group_protocol_is_rejected_naming_the_choices() {
        let text = "[kafka]\nbootstrap_servers = \"k:9092\"\ngroup_protocol = \"eager\"\n\
                    [[mapping]]\nfunction = \"f\"\ntopics = [\"t\"]\n";
        let error = toml::from_str::<Config>(text).unwrap_err().to_string();
        assert!(
            error.contains("classic") && error.contains("consumer"),
            "{error}"
        );
    }

    #[test]
    fn group_protocol_is_not_an_option_to_pass_through() {
        let text = "[kafka]\nbootstrap_servers = \"k:9092\"\n[kafka.options]\n\"group.protocol\" = \"consumer\"\n\
                    [[mapping]]\nfunction = \"f\"\ntopics = [\"t\"]\n";
        let error = toml::from_str::<Config>(text)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(error.contains("group.protocol"), "{error}");
    }

    #[test]
    fn debug_contexts_raise_librdkafkas_log_level_so_their_lines_reach_the_log() {
        // RDKafkaLogLevel has no PartialEq: compared as syslog levels.
        let quiet = config("");
        let level = client_config(&quiet, &quiet.mappings[0]).log_level;
        assert_eq!(level as i32, RDKafkaLogLevel::Info as i32);
        let debug = config("[kafka.options]\n\"debug\" = \"security,broker\"");
        let level = client_config(&debug, &debug.mappings[0]).log_level;
        assert_eq!(level as i32, RDKafkaLogLevel::Debug as i32);
    }
}
