//! A mapping's rdkafka consumer: its librdkafka settings, and a thin context that hands each
//! assigned partition's queue to the mapping's [`Assignments`] and tells it before partitions
//! are revoked. Logging and MSK IAM tokens are the client crate's [`KafkaClientContext`]'s.
//!
//! The context reaches the consumer through a [`ConsumerHandle`] bound right after the consumer
//! is created ([`create`]): rdkafka builds a consumer around a context that must exist first,
//! and a partition queue is split off only through an `Arc` of that consumer.

use crate::config::{GroupProtocol, Mapping, StartingPosition, ValidatedConfig};
use crate::telemetry::{Health, MappingMetrics};
use kafka_lambda_client::KafkaClientContext;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::stream_consumer::StreamPartitionQueue;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

/// The consumer type every mapping uses.
pub(crate) type MappingConsumer = StreamConsumer<MappingContext>;

/// librdkafka settings for a mapping. The poller's own choices and `[kafka.auth]` come first;
/// `[kafka.options]` can override them (except the reserved ones and, when `[kafka.auth]` is
/// set, the `security.protocol`/`sasl.*`/`ssl.*` ones, rejected at validation).
pub(crate) fn client_config(config: &ValidatedConfig, mapping: &Mapping) -> ClientConfig {
    let kafka = &config.kafka;
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
            config.telemetry.lag_interval_ms.to_string(),
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
    config.kafka.auth.apply(&mut cc);
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

/// The partition queue a worker reads.
pub(crate) type PartitionQueue = StreamPartitionQueue<MappingContext>;

/// What the mapping does when its assignment changes. Called on the thread that polls the
/// consumer, in the middle of a rebalance.
pub(crate) trait Assignments: Send + Sync {
    /// A partition was assigned; `queue` was split off before fetching started, so every
    /// record of the partition arrives on it.
    fn assigned(&self, topic: String, partition: i32, queue: PartitionQueue);
    /// `partitions` are about to be revoked: returns once their batches in flight are finished
    /// (or given up after the drain timeout), so that what they stored is committed while the
    /// partitions are still this member's.
    fn revoking(&self, partitions: &[(String, i32)]);
}

/// The mapping's consumer, for those created before it (see the module's documentation).
#[derive(Debug, Clone, Default)]
pub(crate) struct ConsumerHandle(Arc<OnceLock<Weak<MappingConsumer>>>);

impl ConsumerHandle {
    /// The consumer, unless it is not created yet or already dropped.
    pub(crate) fn get(&self) -> Option<Arc<MappingConsumer>> {
        self.0.get().and_then(Weak::upgrade)
    }
}

/// Creates the consumer with `context` and binds the context's handle to it.
pub(crate) fn create(
    config: &ClientConfig,
    context: MappingContext,
) -> Result<Arc<MappingConsumer>, KafkaError> {
    let handle = context.handle.clone();
    let consumer: Arc<MappingConsumer> = Arc::new(config.create_with_context(context)?);
    let _ = handle.0.set(Arc::downgrade(&consumer));
    Ok(consumer)
}

/// Context of a mapping's consumer.
pub(crate) struct MappingContext {
    /// `mapping[i] function`, for log lines.
    name: String,
    client: KafkaClientContext,
    handle: ConsumerHandle,
    assignments: Arc<dyn Assignments>,
    /// Queues split before an assignment takes effect, for its workers (see `pre_rebalance`).
    split: Mutex<HashMap<(String, i32), PartitionQueue>>,
    index: usize,
    metrics: MappingMetrics,
    health: Arc<Health>,
}

impl MappingContext {
    /// A context reporting assignment changes to `assignments`, through `handle`'s consumer.
    pub(crate) fn new(
        mapping: &Mapping,
        client: KafkaClientContext,
        handle: ConsumerHandle,
        assignments: Arc<dyn Assignments>,
        metrics: MappingMetrics,
        health: Arc<Health>,
    ) -> Self {
        let name = format!("mapping[{}] {}", mapping.index, mapping.function);
        MappingContext {
            client: client.labelled(name.as_str()),
            name,
            handle,
            assignments,
            split: Mutex::default(),
            index: mapping.index,
            metrics,
            health,
        }
    }
}

impl ClientContext for MappingContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = KafkaClientContext::ENABLE_REFRESH_OAUTH_TOKEN;

    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.client.log(level, fac, log_message);
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
        self.client.error(error, reason);
    }

    fn generate_oauth_token(
        &self,
        oauthbearer_config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        self.client.generate_oauth_token(oauthbearer_config)
    }
}

impl ConsumerContext for MappingContext {
    fn pre_rebalance(&self, base: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Each partition's queue is split off before librdkafka starts fetching it: split after,
        // the records of its first fetch could reach the main queue, ahead of those the worker
        // reads from its own queue, and be skipped.
        if let Rebalance::Assign(tpl) = rebalance
            && let Some(consumer) = self.handle.get()
        {
            let mut split = self.split.lock().unwrap_or_else(PoisonError::into_inner);
            for (topic, partition) in partitions(tpl) {
                if let Some(queue) = consumer.split_partition_queue(&topic, partition) {
                    split.insert((topic, partition), queue);
                }
            }
        }
        if let Rebalance::Revoke(tpl) = rebalance {
            self.metrics.revoked.increment(1);
            let revoked = partitions(tpl);
            tracing::info!(mapping = %self.name, partitions = ?revoked, "partitions revoked: draining in-flight batches");
            for (topic, partition) in &revoked {
                self.metrics.clear_lag(topic, *partition);
            }
            self.assignments.revoking(&revoked);
            // Commit what the drained workers stored while the partitions are still ours.
            if let Err(e) = commit_stored(base, "commit on revoke", REVOKE_COMMIT_BUDGET) {
                tracing::warn!(mapping = %self.name, error = %e, "commit on revoke failed; the next owner may redeliver some records")
            }
        }
    }

    fn post_rebalance(&self, _base: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.metrics.assigned.increment(1);
                self.health.set_joined(self.index, true);
                let assigned = partitions(tpl);
                tracing::info!(mapping = %self.name, partitions = ?assigned, "partitions assigned");
                let Some(consumer) = self.handle.get() else {
                    tracing::error!(mapping = %self.name, "consumer gone during assignment");
                    return;
                };
                let mut split =
                    std::mem::take(&mut *self.split.lock().unwrap_or_else(PoisonError::into_inner));
                for (topic, partition) in assigned {
                    let queue = split
                        .remove(&(topic.clone(), partition))
                        .or_else(|| consumer.split_partition_queue(&topic, partition));
                    match queue {
                        Some(queue) => self.assignments.assigned(topic, partition, queue),
                        None => {
                            tracing::error!(mapping = %self.name, %topic, partition, "could not split the partition queue; partition not consumed")
                        }
                    }
                }
            }
            Rebalance::Error(e) => {
                tracing::warn!(mapping = %self.name, error = %e, "rebalance error")
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
                tracing::debug!(mapping = %self.name, offsets = ?committed(offsets), "offsets committed")
            }
            Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                tracing::warn!(mapping = %self.name, error = %e, "offset commit failed; will retry at the next commit")
            }
        }
    }
}

/// How long a commit on revoke waits out a moving coordinator: the rebalance waits for it.
const REVOKE_COMMIT_BUDGET: Duration = Duration::from_secs(10);

/// Commits the offsets stored in `consumer` synchronously, waiting out transient answers (a
/// coordinator moving or loading) within `budget`. "No offset stored" is a success: every batch
/// was committed as it finished.
pub(crate) fn commit_stored<C: ConsumerContext>(
    consumer: &impl Consumer<C>,
    what: &str,
    budget: Duration,
) -> Result<(), KafkaError> {
    crate::backoff::retry_transient(what, budget, budget, |_| {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => Ok(()),
            other => other,
        }
    })
}

fn partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

pub(crate) fn committed(tpl: &TopicPartitionList) -> Vec<String> {
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
    if context.client.token_provider().is_none() {
        return;
    }
    let asked = || context.client.token_asked();
    let deadline = tokio::time::Instant::now() + limit;
    while !asked() && tokio::time::Instant::now() < deadline {
        tokio::select! {
            received = consumer.recv() => match received {
                Ok(message) => {
                    // Not subscribed yet: nothing can be fetched, and nothing is lost by this.
                    tracing::debug!(mapping = %context.name, topic = message.topic(),
                        "unexpected record before subscribing; it is fetched again later")
                }
                Err(e) => tracing::debug!(mapping = %context.name, error = %e, "while waiting for the first MSK IAM token"),
            },
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    if !asked() {
        tracing::warn!(mapping = %context.name, "librdkafka has not asked for an MSK IAM token yet; going on");
    }
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
