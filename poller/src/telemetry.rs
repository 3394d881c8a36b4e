//! Telemetry: one named counter, gauge or histogram per thing that happens, exported in the
//! Prometheus text format on `/metrics`, plus `/healthz` (the process is alive) and `/readyz`
//! (every mapping joined its consumer group and the brokers are reachable).
//!
//! Metrics carry the mapping's consumer `group` and `function` as labels; offset lag also its
//! `topic` and `partition`. Offset lag (high watermark minus committed offset) comes from
//! librdkafka's statistics, refreshed every `telemetry.lag_interval_ms`.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Metric names, so dashboards and tests share one spelling.
pub(crate) mod names {
    /// Records taken off partition queues.
    pub(crate) const RECORDS_RECEIVED: &str = "kafka_lambda_records_received_total";
    /// Records dropped by the mapping's filters (committed, not invoked).
    pub(crate) const RECORDS_FILTERED: &str = "kafka_lambda_records_filtered_total";
    /// Records the function processed successfully.
    pub(crate) const RECORDS_DELIVERED: &str = "kafka_lambda_records_delivered_total";
    /// Records given up and skipped (no on-failure destination).
    pub(crate) const RECORDS_FAILED: &str = "kafka_lambda_records_failed_total";
    /// Records written to the on-failure destination.
    pub(crate) const RECORDS_DEAD_LETTERED: &str = "kafka_lambda_records_dead_lettered_total";
    /// Invocations, by `outcome`.
    pub(crate) const INVOCATIONS: &str = "kafka_lambda_invocations_total";
    /// Records per invocation.
    pub(crate) const BATCH_RECORDS: &str = "kafka_lambda_batch_records";
    /// Payload bytes per invocation.
    pub(crate) const BATCH_BYTES: &str = "kafka_lambda_batch_bytes";
    /// Invocation latency in seconds.
    pub(crate) const INVOKE_SECONDS: &str = "kafka_lambda_invoke_duration_seconds";
    /// Retries, by `reason`.
    pub(crate) const RETRIES: &str = "kafka_lambda_retries_total";
    /// Throttled invocations.
    pub(crate) const THROTTLES: &str = "kafka_lambda_throttles_total";
    /// Invocations in flight.
    pub(crate) const IN_FLIGHT: &str = "kafka_lambda_invocations_in_flight";
    /// Rebalance events, by `kind` (`assign`, `revoke`).
    pub(crate) const REBALANCES: &str = "kafka_lambda_rebalances_total";
    /// High watermark minus committed offset, per partition.
    pub(crate) const OFFSET_LAG: &str = "kafka_lambda_offset_lag";
    /// Failed writes to the on-failure destination (each is retried), by `reason`.
    pub(crate) const DEAD_LETTER_WRITE_ERRORS: &str = "kafka_lambda_dead_letter_write_errors_total";
}

/// Why a batch is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryReason {
    /// The function returned an error.
    FunctionError,
    /// The function reported some records as failed.
    PartialFailure,
    /// Lambda throttled the call.
    Throttled,
    /// Service error, network failure or timeout.
    Transient,
    /// Rejected by the service (configuration problem).
    Permanent,
}

/// Metric handles of one mapping, registered once so the hot path only increments.
#[derive(Clone)]
pub(crate) struct MappingMetrics {
    group: String,
    function: String,
    /// Records taken off partition queues.
    pub received: Counter,
    /// Records filtered out.
    pub filtered: Counter,
    /// Records processed by the function.
    pub delivered: Counter,
    /// Records given up and skipped.
    pub failed: Counter,
    /// Records dead-lettered.
    pub dead_lettered: Counter,
    /// Records per invocation.
    pub batch_records: Histogram,
    /// Bytes per invocation.
    pub batch_bytes: Histogram,
    /// Invocation latency.
    pub invoke_seconds: Histogram,
    /// Throttled invocations.
    pub throttles: Counter,
    /// Invocations in flight.
    pub in_flight: Gauge,
    /// Assignments.
    pub assigned: Counter,
    /// Revocations.
    pub revoked: Counter,
    retries: [Counter; 5],
}

/// Why a write to the on-failure destination failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeadLetterWriteError {
    /// The record is larger than the destination topic or its broker accepts.
    TooLarge,
    /// The destination topic does not exist.
    NoTopic,
    /// The principal may not write to it.
    Denied,
    /// Anything else (broker down, timeout): usually passes.
    Other,
}

impl DeadLetterWriteError {
    fn label(self) -> &'static str {
        match self {
            DeadLetterWriteError::TooLarge => "too_large",
            DeadLetterWriteError::NoTopic => "no_topic",
            DeadLetterWriteError::Denied => "denied",
            DeadLetterWriteError::Other => "other",
        }
    }
}

impl MappingMetrics {
    /// Registers the metrics of the mapping with consumer group `group` invoking `function`.
    pub(crate) fn new(group: &str, function: &str) -> Self {
        let labels = [
            ("group", group.to_owned()),
            ("function", function.to_owned()),
        ];
        let retry = |reason: &'static str| counter!(names::RETRIES, "group" => group.to_owned(), "function" => function.to_owned(), "reason" => reason);
        MappingMetrics {
            group: group.to_owned(),
            function: function.to_owned(),
            received: counter!(names::RECORDS_RECEIVED, &labels),
            filtered: counter!(names::RECORDS_FILTERED, &labels),
            delivered: counter!(names::RECORDS_DELIVERED, &labels),
            failed: counter!(names::RECORDS_FAILED, &labels),
            dead_lettered: counter!(names::RECORDS_DEAD_LETTERED, &labels),
            batch_records: histogram!(names::BATCH_RECORDS, &labels),
            batch_bytes: histogram!(names::BATCH_BYTES, &labels),
            invoke_seconds: histogram!(names::INVOKE_SECONDS, &labels),
            throttles: counter!(names::THROTTLES, &labels),
            in_flight: gauge!(names::IN_FLIGHT, &labels),
            assigned: counter!(names::REBALANCES, "group" => group.to_owned(), "function" => function.to_owned(), "kind" => "assign"),
            revoked: counter!(names::REBALANCES, "group" => group.to_owned(), "function" => function.to_owned(), "kind" => "revoke"),
            retries: [
                retry("function_error"),
                retry("partial_failure"),
                retry("throttled"),
                retry("transient"),
                retry("permanent"),
            ],
        }
    }

    /// Counts one retry.
    pub(crate) fn retry(&self, reason: RetryReason) {
        self.retries[reason as usize].increment(1);
    }

    /// Counts one invocation by outcome.
    pub(crate) fn invocation(&self, outcome: &'static str) {
        counter!(names::INVOCATIONS, "group" => self.group.clone(), "function" => self.function.clone(), "outcome" => outcome)
            .increment(1);
    }

    /// Counts one failed write to the on-failure destination.
    pub(crate) fn dead_letter_write_error(&self, reason: DeadLetterWriteError) {
        counter!(names::DEAD_LETTER_WRITE_ERRORS, "group" => self.group.clone(), "function" => self.function.clone(), "reason" => reason.label())
            .increment(1);
    }

    /// Zeroes the offset lag of a partition this mapping no longer owns: its new owner reports
    /// it, and a stale value would count it twice in a sum across pollers (the exporter cannot
    /// drop one series).
    pub(crate) fn clear_lag(&self, topic: &str, partition: i32) {
        self.set_lag(topic, partition, 0);
    }

    /// Sets the offset lag of a partition.
    pub(crate) fn set_lag(&self, topic: &str, partition: i32, lag: i64) {
        gauge!(names::OFFSET_LAG, "group" => self.group.clone(), "topic" => topic.to_owned(), "partition" => partition.to_string())
            .set(lag as f64);
    }
}

/// Readiness of the process: every mapping joined its group and reaches the brokers it needs
/// (`brokers_reachable`), and no partition is stuck on a record its on-failure destination
/// refuses or waits for its schema registry.
#[derive(Debug, Default)]
pub struct Health {
    joined: Vec<AtomicBool>,
    brokers_down: Vec<AtomicBool>,
    stuck: AtomicUsize,
    registry_waits: AtomicUsize,
    worker_died: AtomicBool,
}

/// What a partition counted by [`StuckPartition`] waits for.
#[derive(Debug, Clone, Copy)]
enum Wait {
    /// Its on-failure destination to take a record.
    OnFailure,
    /// Its schema registry to answer.
    SchemaRegistry,
}

impl Health {
    /// Health for `mappings` mappings, none joined yet.
    pub fn new(mappings: usize) -> Self {
        Health {
            joined: (0..mappings).map(|_| AtomicBool::new(false)).collect(),
            brokers_down: (0..mappings).map(|_| AtomicBool::new(false)).collect(),
            stuck: AtomicUsize::new(0),
            registry_waits: AtomicUsize::new(0),
            worker_died: AtomicBool::new(false),
        }
    }

    /// Mapping `index` received an assignment (possibly empty): it is in its group.
    pub fn set_joined(&self, index: usize, joined: bool) {
        if let Some(j) = self.joined.get(index) {
            j.store(joined, Ordering::Relaxed);
        }
    }

    /// Mapping `index` cannot (true) or can again (false) reach the brokers it needs: set on
    /// librdkafka's all-brokers-down error at once, and from every statistics report
    /// (`brokers_reachable`).
    pub fn set_brokers_down(&self, index: usize, down: bool) {
        if let Some(d) = self.brokers_down.get(index) {
            d.store(down, Ordering::Relaxed);
        }
    }

    /// A partition worker died: not ready until the process is restarted.
    pub fn set_worker_died(&self) {
        self.worker_died.store(true, Ordering::Relaxed);
    }

    /// A partition cannot go on until its on-failure destination takes a record; it is counted
    /// as stuck until the returned guard is dropped.
    pub fn stuck_partition(self: &Arc<Self>) -> StuckPartition {
        StuckPartition::new(self, Wait::OnFailure)
    }

    /// A partition cannot go on until its schema registry answers; it is counted as waiting
    /// until the returned guard is dropped.
    pub fn waiting_for_registry(self: &Arc<Self>) -> StuckPartition {
        StuckPartition::new(self, Wait::SchemaRegistry)
    }

    fn counter(&self, wait: Wait) -> &AtomicUsize {
        match wait {
            Wait::OnFailure => &self.stuck,
            Wait::SchemaRegistry => &self.registry_waits,
        }
    }

    /// Why the process is not ready, `None` when it is.
    pub fn not_ready(&self) -> Option<String> {
        let mut why = Vec::new();
        if !self.joined.iter().all(|j| j.load(Ordering::Relaxed)) {
            why.push("a mapping has not joined its consumer group".to_owned());
        }
        if self.brokers_down.iter().any(|d| d.load(Ordering::Relaxed)) {
            why.push("a mapping cannot reach the brokers of its partitions".to_owned());
        }
        if self.worker_died.load(Ordering::Relaxed) {
            why.push("a partition worker stopped unexpectedly (see the log)".to_owned());
        }
        let stuck = self.stuck.load(Ordering::Relaxed);
        if stuck > 0 {
            why.push(format!(
                "{stuck} partition(s) wait for the on_failure destination to take a record (see the log)"
            ));
        }
        let waiting = self.registry_waits.load(Ordering::Relaxed);
        if waiting > 0 {
            why.push(format!(
                "{waiting} partition(s) wait for their schema registry to answer (see the log)"
            ));
        }
        (!why.is_empty()).then(|| why.join("; "))
    }

    /// Whether every mapping is in its group with brokers reachable and no partition is stuck.
    pub fn is_ready(&self) -> bool {
        self.not_ready().is_none()
    }
}

/// A partition counted as stuck by [`Health::stuck_partition`] or
/// [`Health::waiting_for_registry`] while this lives.
#[derive(Debug)]
pub struct StuckPartition(Arc<Health>, Wait);

impl StuckPartition {
    fn new(health: &Arc<Health>, wait: Wait) -> Self {
        health.counter(wait).fetch_add(1, Ordering::Relaxed);
        StuckPartition(health.clone(), wait)
    }
}

impl Drop for StuckPartition {
    fn drop(&mut self) {
        self.0.counter(self.1).fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether a consumer reaches the brokers it needs, by librdkafka's statistics: a connection to
/// some broker is up, and so is the connection to the broker each partition assigned to it is
/// fetched from (its leader). A dead leader keeps its partitions until the cluster elects
/// another and librdkafka's metadata refresh (every second while a partition's broker is down)
/// moves them: the consumer is not ready for that while, and ready again once it fetches from
/// the new leaders, whether or not the dead broker comes back. A partition without a leader is
/// fetched from no broker (-1), as the bootstrap connections are to no node (-1).
pub(crate) fn brokers_reachable(statistics: &rdkafka::Statistics) -> bool {
    // REAUTH is an established connection renewing its SASL session (MSK IAM does it hourly).
    let connected =
        |broker: &&rdkafka::statistics::Broker| matches!(broker.state.as_str(), "UP" | "REAUTH");
    // The group coordinator's "logical" connection carries a real broker's node id, but fetches
    // do not use it: it must not make a dead fetch connection to that node look up.
    let up: std::collections::HashSet<i32> = statistics
        .brokers
        .values()
        .filter(connected)
        .filter(|broker| broker.source != "logical")
        .map(|broker| broker.nodeid)
        .filter(|id| *id >= 0)
        .collect();
    let any_up = statistics.brokers.values().any(|b| connected(&b));
    any_up
        && statistics
            .topics
            .values()
            .flat_map(|topic| topic.partitions.values())
            .filter(|p| p.partition >= 0 && p.desired)
            .all(|p| up.contains(&p.broker))
}

/// Installs the global Prometheus recorder (once per process).
pub fn install_recorder() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    PrometheusBuilder::new()
        .set_buckets(&[
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            60.0, 300.0, 900.0,
        ])?
        .install_recorder()
}

#[derive(Clone)]
struct Endpoints {
    metrics: PrometheusHandle,
    health: Arc<Health>,
}

/// The `/metrics`, `/healthz` and `/readyz` routes.
pub(crate) fn router(metrics: PrometheusHandle, health: Arc<Health>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(e): State<Endpoints>| async move { e.metrics.render() }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|State(e): State<Endpoints>| async move {
                match e.health.not_ready() {
                    None => (StatusCode::OK, "ready\n".to_owned()),
                    Some(why) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("not ready: {why}\n"),
                    ),
                }
            }),
        )
        .with_state(Endpoints { metrics, health })
}

/// Serves the telemetry routes on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: PrometheusHandle,
    health: Arc<Health>,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(metrics, health))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_mapping_joined_and_brokers_are_up() {
        let h = Health::new(2);
        assert!(!h.is_ready());
        h.set_joined(0, true);
        assert!(!h.is_ready());
        h.set_joined(1, true);
        assert!(h.is_ready());
        h.set_brokers_down(1, true);
        assert!(!h.is_ready());
        h.set_brokers_down(1, false);
        assert!(h.is_ready());
        let h = Arc::new(h);
        // A partition waiting makes the poller not ready, for `reason`, until it resumes.
        let not_ready_while = |waiting: StuckPartition, reason: &str| {
            let why = h.not_ready();
            assert!(
                why.as_deref().is_some_and(|why| why.contains(reason)),
                "{why:?}"
            );
            drop(waiting);
            assert!(h.is_ready());
        };
        not_ready_while(h.stuck_partition(), "1 partition(s)");
        not_ready_while(h.waiting_for_registry(), "schema registry");
    }

    fn broker(nodeid: i32, source: &str, state: &str) -> (String, rdkafka::statistics::Broker) {
        let name = format!("127.0.0.1:{}/{source}", 9092 + nodeid);
        let broker = rdkafka::statistics::Broker {
            name: name.clone(),
            nodeid,
            source: source.to_owned(),
            state: state.to_owned(),
            ..Default::default()
        };
        (name, broker)
    }

    /// Statistics of a consumer with `brokers` and partitions (id, assigned, fetched from).
    fn statistics(
        brokers: &[(i32, &str, &str)],
        partitions: &[(i32, bool, i32)],
    ) -> rdkafka::Statistics {
        let partitions = partitions
            .iter()
            .map(|&(partition, desired, broker)| {
                let stats = rdkafka::statistics::Partition {
                    partition,
                    desired,
                    broker,
                    leader: broker,
                    ..Default::default()
                };
                (partition, stats)
            })
            .collect();
        let topic = rdkafka::statistics::Topic {
            topic: "orders".to_owned(),
            partitions,
            ..Default::default()
        };
        rdkafka::Statistics {
            brokers: brokers
                .iter()
                .map(|&(id, source, state)| broker(id, source, state))
                .collect(),
            topics: [("orders".to_owned(), topic)].into_iter().collect(),
            ..Default::default()
        }
    }

    #[test]
    fn brokers_are_reachable_when_every_assigned_partition_is_fetched_over_a_live_connection() {
        let healthy = statistics(
            &[(1, "learned", "UP"), (2, "learned", "UP")],
            &[(-1, false, -1), (0, true, 1), (1, true, 2), (2, false, 3)],
        );
        assert!(brokers_reachable(&healthy), "partition 2 is not assigned");

        let leader_down = statistics(
            &[(1, "learned", "UP"), (2, "learned", "TRY_CONNECT")],
            &[(0, true, 1), (1, true, 2)],
        );
        assert!(!brokers_reachable(&leader_down));

        let moved_to_new_leader = statistics(
            &[(1, "learned", "UP"), (2, "learned", "DOWN")],
            &[(0, true, 1), (1, true, 1)],
        );
        assert!(
            brokers_reachable(&moved_to_new_leader),
            "a dead broker leading nothing assigned does not matter"
        );

        let no_leader = statistics(
            &[(-1, "configured", "UP"), (1, "learned", "UP")],
            &[(0, true, -1)],
        );
        assert!(
            !brokers_reachable(&no_leader),
            "a partition without a leader is fetched from no broker, not the bootstrap one"
        );

        let reauthenticating = statistics(&[(1, "learned", "REAUTH")], &[(0, true, 1)]);
        assert!(brokers_reachable(&reauthenticating));

        let only_the_coordinator = statistics(
            &[
                (1, "learned", "DOWN"),
                (1, "logical", "UP"),
                (2, "learned", "UP"),
            ],
            &[(0, true, 1)],
        );
        assert!(
            !brokers_reachable(&only_the_coordinator),
            "the coordinator's connection to the leader's node fetches nothing"
        );
    }

    #[test]
    fn with_nothing_assigned_one_live_broker_connection_is_enough() {
        let all_down = statistics(
            &[(-1, "configured", "DOWN"), (1, "learned", "CONNECT")],
            &[],
        );
        assert!(!brokers_reachable(&all_down));
        let coordinator_up = statistics(&[(1, "learned", "DOWN"), (1, "logical", "UP")], &[]);
        assert!(brokers_reachable(&coordinator_up));
    }
}
