//! One mapping at run time: wiring its parts together (consumer, workers, deliverer, offsets),
//! driving its consumer, and its orderly shutdown. The decisions about records are below it.

use crate::access::{AccessDenied, DenialStop, Denied, Principal};
use crate::backoff::retry_transient;
use crate::batch::EventHeader;
use crate::config::{Mapping, StartingPosition, ValidatedConfig};
use crate::consumer::{self, ConsumerHandle, MappingConsumer, MappingContext};
use crate::deadletter::DeadLetterProducer;
use crate::decode::RecordDecoder;
use crate::delivery::{Deliverer, Resources};
use crate::invoke::Invoker;
use crate::offsets::{self, Offsets, Progress};
use crate::telemetry::{Health, MappingMetrics};
use crate::worker::{self, Shared};
use crate::workers::{PartitionWorkers, Supervisor};
use kafka_lambda_client::KafkaClientContext;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A mapping failed to start.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    /// The Kafka client could not be created (usually a bad `[kafka.options]` value).
    #[error("mapping[{index}] ({function}): cannot create the Kafka consumer: {source}")]
    Client {
        /// Mapping index.
        index: usize,
        /// Function.
        function: String,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// The schema registry client could not be made (no AWS credentials provider for Glue, a
    /// registry URL or PEM the HTTP client refuses).
    #[error("mapping[{index}] ({function}): cannot set up the schema registry: {problem}")]
    SchemaRegistry {
        /// Mapping index.
        index: usize,
        /// Function.
        function: String,
        /// What is wrong.
        problem: String,
    },
    /// The principal may not read a topic or the group of the mapping: the mapping drained,
    /// committed what was delivered and stopped.
    #[error("mapping[{index}] ({function}): {denied}")]
    AccessDenied {
        /// Mapping index.
        index: usize,
        /// Function.
        function: String,
        /// What is missing and how to grant it.
        denied: AccessDenied,
    },
    /// `--until-caught-up` could not learn where the topics end (a broker that does not answer,
    /// a topic that does not exist), so it cannot tell when it is done.
    #[error(
        "mapping[{index}] ({function}): cannot read the end offsets of {topics:?} for --until-caught-up: {source}"
    )]
    EndOffsets {
        /// Mapping index.
        index: usize,
        /// Function.
        function: String,
        /// The mapping's topics.
        topics: Vec<String>,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// librdkafka refused the subscription to the mapping's topics.
    #[error("mapping[{index}] ({function}): cannot subscribe to {topics:?}: {source}")]
    Subscribe {
        /// Mapping index.
        index: usize,
        /// Function.
        function: String,
        /// The mapping's topics.
        topics: Vec<String>,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// The task that polls the consumer ended abnormally (a panic): the mapping's partitions are
    /// no longer consumed, so the process must not go on as if they were.
    #[error("mapping[{index}] ({function}): the consumer's driver stopped unexpectedly: {reason}")]
    Driver {
        /// Mapping index.
        index: usize,
        /// Function.
        function: String,
        /// The panic's message, or how the task ended.
        reason: String,
    },
    /// A partition worker panicked: its partition was no longer consumed, so the mapping
    /// stopped (committing what was done) for the process to be restarted.
    #[error("mapping[{index}] ({function}): {reason}")]
    WorkerDied {
        /// Mapping index.
        index: usize,
        /// Function.
        function: String,
        /// Which partition, and the panic's message.
        reason: String,
    },
}

/// Why [`drive`] stopped before it was asked to.
enum DriveError {
    /// The end offsets for `--until-caught-up` could not be read.
    EndOffsets(KafkaError),
    /// The subscription was refused.
    Subscribe(KafkaError),
}

/// How a mapping runs.
#[derive(Debug)]
pub struct RunOptions {
    /// Cancelled to stop (SIGINT/SIGTERM).
    pub shutdown: CancellationToken,
    /// Readiness shared with the telemetry endpoint.
    pub health: Arc<Health>,
    /// Stop once every partition reached the end offset it had when the mapping started.
    pub until_caught_up: bool,
}

/// Runs a mapping until `shutdown` is cancelled (or, with `until_caught_up`, until it has
/// processed everything that was in its topics at start), then drains, commits and leaves.
pub async fn run_mapping<I: Invoker>(
    config: Arc<ValidatedConfig>,
    mapping: Mapping,
    invoker: I,
    run: RunOptions,
) -> Result<(), MappingError> {
    let RunOptions {
        shutdown,
        health,
        until_caught_up,
    } = run;
    let metrics = MappingMetrics::new(&mapping.consumer_group, &mapping.function);
    let progress = Arc::new(Progress::default());
    let principal = Principal::of(&consumer::client_config(&config, &mapping));
    let access = Arc::new(DenialStop::new(principal.clone(), shutdown.clone()));
    // librdkafka's refusal of a property quotes its value: a secret's is taken out.
    let client_error = |source| MappingError::Client {
        index: mapping.index,
        function: mapping.function.clone(),
        source: kafka_lambda_client::redact_config_error(source),
    };
    let deliverer = Deliverer::new(
        &mapping,
        Resources {
            header: EventHeader {
                source: mapping.event_source.clone(),
                arn: mapping.event_source_arn.clone(),
                bootstrap_servers: config.kafka.bootstrap_servers.clone(),
            },
            invoker,
            dead_letter: dead_letter(&config, &mapping).map_err(client_error)?,
            metrics: metrics.clone(),
            principal,
            health: health.clone(),
        },
    );
    let handle = ConsumerHandle::default();
    let offsets = Arc::new(Offsets::new(handle.clone(), progress.clone()));
    let decoder = match &mapping.schema_registry {
        None => None,
        Some(settings) => {
            let decoder = RecordDecoder::new(settings).await.map_err(|problem| {
                MappingError::SchemaRegistry {
                    index: mapping.index,
                    function: mapping.function.clone(),
                    problem,
                }
            })?;
            tracing::info!(registry = %decoder.registry(), "records are decoded through the schema registry");
            Some(decoder)
        }
    };
    let shared = Arc::new(Shared {
        mapping: mapping.clone(),
        deliverer,
        offsets: offsets.clone(),
        access: access.clone(),
        decoder,
    });
    check_dead_letter_limit(&config, &shared);
    let supervisor = Arc::new(Supervisor::new(health.clone(), shutdown.clone()));
    let workers = Arc::new(PartitionWorkers::new(
        shared,
        shutdown.child_token(),
        config.drain_timeout,
        supervisor.clone(),
    ));
    let context = MappingContext::new(
        &mapping,
        KafkaClientContext::new(config.kafka.auth.token_provider().cloned()),
        handle,
        workers.clone(),
        metrics,
        health,
    );
    let consumer = consumer::create(&consumer::client_config(&config, &mapping), context)
        .map_err(client_error)?;

    let committer = tokio::spawn(offsets::commit_soon(offsets, shutdown.child_token()));
    let drain_timeout = config.drain_timeout;
    // The consumer is polled on a blocking thread: rebalance callbacks run there and may block
    // while partition workers drain, which must not stall the async runtime.
    let runtime = tokio::runtime::Handle::current();
    let (index, function) = (mapping.index, mapping.function.clone());
    let denials = access.clone();
    let topics = mapping.topics.clone();
    let driver = tokio::task::spawn_blocking(move || {
        let until = until_caught_up.then_some(progress);
        runtime.block_on(drive(
            consumer,
            mapping,
            workers,
            shutdown,
            drain_timeout,
            until,
            &denials,
        ))
    });
    let driven = driver.await;
    committer.abort();
    let driven = driven.map_err(|e| MappingError::Driver {
        index,
        function: function.clone(),
        reason: e.to_string(),
    })?;
    if let Some(reason) = supervisor.died() {
        return Err(MappingError::WorkerDied {
            index,
            function,
            reason: reason.to_owned(),
        });
    }
    if let Some(denied) = access.first() {
        return Err(MappingError::AccessDenied {
            index,
            function,
            denied: denied.clone(),
        });
    }
    driven.map_err(|error| match error {
        DriveError::EndOffsets(source) => MappingError::EndOffsets {
            index,
            function,
            topics,
            source,
        },
        DriveError::Subscribe(source) => MappingError::Subscribe {
            index,
            function,
            topics,
            source,
        },
    })
}

/// Client settings for a producer or admin client of the source cluster: its bootstrap servers,
/// `[kafka.auth]` and the `[kafka.options]` that are not the consumer's own.
fn non_consumer_config(config: &ValidatedConfig) -> rdkafka::ClientConfig {
    let mut client = rdkafka::ClientConfig::new();
    client.set("bootstrap.servers", &config.kafka.bootstrap_servers);
    for (key, value) in &config.kafka.options {
        if !key.starts_with("fetch.") && !key.starts_with("queued.") && key != "auto.offset.reset" {
            client.set(key, value);
        }
    }
    config.kafka.auth.apply(&mut client);
    client
}

/// The on-failure producer: the source cluster's client settings unless another cluster is named.
fn dead_letter(
    config: &ValidatedConfig,
    mapping: &Mapping,
) -> Result<Option<DeadLetterProducer>, KafkaError> {
    let Some(topic) = &mapping.on_failure else {
        return Ok(None);
    };
    // On the source cluster, with its settings and credentials; on another, with that cluster's
    // own (`on_failure_auth`, none by default): a credential never goes to another cluster.
    let (mut client, token_provider) = match &mapping.on_failure_bootstrap_servers {
        None => (
            non_consumer_config(config),
            config.kafka.auth.token_provider().cloned(),
        ),
        Some(servers) => {
            let mut client = rdkafka::ClientConfig::new();
            client.set("bootstrap.servers", servers);
            let auth = mapping.on_failure_auth.clone().unwrap_or_default();
            auth.apply(&mut client);
            (client, auth.token_provider().cloned())
        }
    };
    client.set(
        "client.id",
        format!("kafka-lambda-poller-{}-dlq", mapping.consumer_group),
    );
    let context = KafkaClientContext::new(token_provider);
    DeadLetterProducer::new(client, context, topic.clone()).map(Some)
}

/// In the background: warns when the mapping's dead-letter topic takes smaller records than its
/// source topics hold (see [`DeadLetterProducer::warn_if_smaller_than`]).
fn check_dead_letter_limit<I: Invoker>(config: &ValidatedConfig, shared: &Arc<Shared<I>>) {
    if shared.deliverer.dead_letter().is_none() {
        return;
    }
    let mapping = &shared.mapping;
    let name = format!("mapping[{}] {}", mapping.index, mapping.function);
    let source = non_consumer_config(config);
    let context = KafkaClientContext::new(config.kafka.auth.token_provider().cloned());
    let (shared, topics) = (shared.clone(), mapping.topics.clone());
    tokio::spawn(async move {
        match crate::deadletter::max_message_bytes(&source, context, &topics).await {
            Ok(sources) => {
                if let Some(destination) = shared.deliverer.dead_letter() {
                    destination.warn_if_smaller_than(&name, &sources).await;
                }
            }
            Err(error) => {
                tracing::debug!(mapping = %name, %error, "cannot read the source topics' max.message.bytes")
            }
        }
    });
}

/// How long the final commit waits out a moving coordinator.
const FINAL_COMMIT_BUDGET: Duration = Duration::from_secs(30);

/// Fault injection for the tests of what the process does when its driver panics or its
/// subscription is refused (`driver-panic`, `subscribe-error`): neither can be caused from the
/// outside. Built only with the test-only `fault-injection` feature; unset, it changes nothing.
#[cfg(feature = "fault-injection")]
const FAULT_VARIABLE: &str = "KAFKA_LAMBDA_POLLER_FAULT";

async fn drive<I: Invoker>(
    consumer: Arc<MappingConsumer>,
    mapping: Mapping,
    workers: Arc<PartitionWorkers<I>>,
    shutdown: CancellationToken,
    drain_timeout: Duration,
    until_caught_up: Option<Arc<Progress>>,
    access: &DenialStop,
) -> Result<(), DriveError> {
    let name = format!("mapping[{}] {}", mapping.index, mapping.function);
    // Every lookup below needs an authenticated connection, hence the token first.
    consumer::serve_first_token(&consumer, Duration::from_secs(30)).await;
    if let (StartingPosition::AtTimestamp, Some(ts)) = (
        mapping.starting_position,
        mapping.starting_position_timestamp_ms,
    ) {
        let mut attempt = 0u32;
        loop {
            match retry_transient(
                "looking up AT_TIMESTAMP start offsets",
                offsets::LOOKUP_BUDGET,
                offsets::LOOKUP_TIMEOUT,
                |timeout| {
                    offsets::commit_start_offsets_at_timestamp(
                        &consumer,
                        &mapping.topics,
                        ts,
                        timeout,
                    )
                },
            ) {
                Ok(_) => break,
                Err(e) => {
                    if let Some(denied) = denial(&consumer, &mapping, &e, access.principal()) {
                        access.report(&name, denied);
                        return Ok(());
                    }
                    attempt += 1;
                    tracing::error!(mapping = %name, error = %e, attempt,
                        "cannot look up AT_TIMESTAMP start offsets (is the broker reachable and do the topics exist?); retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(Duration::from_secs(2u64.pow(attempt.min(5)))) => {}
                    }
                }
            }
        }
    }
    // The end offsets are noted before joining the group: a group that is already caught up
    // then never joins, so it never has to leave in the middle of a rebalance.
    let targets = match &until_caught_up {
        Some(_) => match retry_transient(
            "reading the end offsets for --until-caught-up",
            offsets::LOOKUP_BUDGET,
            offsets::LOOKUP_TIMEOUT,
            |timeout| offsets::end_offsets(&consumer, &mapping, timeout),
        ) {
            Ok(t) if t.is_empty() => {
                tracing::info!(mapping = %name, "caught up: every partition is already at its end offset; nothing to do");
                return Ok(());
            }
            Ok(t) => {
                tracing::info!(mapping = %name, partitions = t.len(), "running until caught up with the end offsets noted now");
                Some(t)
            }
            Err(e) => {
                return match denial(&consumer, &mapping, &e, access.principal()) {
                    Some(denied) => {
                        access.report(&name, denied);
                        Ok(())
                    }
                    None => Err(DriveError::EndOffsets(e)),
                };
            }
        },
        None => None,
    };
    #[cfg(feature = "fault-injection")]
    match std::env::var(FAULT_VARIABLE).as_deref() {
        Ok("driver-panic") => panic!("fault injected by {FAULT_VARIABLE}=driver-panic"),
        Ok("subscribe-error") => {
            return Err(DriveError::Subscribe(KafkaError::Subscription(format!(
                "fault injected by {FAULT_VARIABLE}=subscribe-error"
            ))));
        }
        _ => {}
    }
    let topics: Vec<&str> = mapping.topics.iter().map(String::as_str).collect();
    if let Err(e) = consumer.subscribe(&topics) {
        return Err(DriveError::Subscribe(e));
    }
    tracing::info!(mapping = %name, topics = ?mapping.topics, group = %mapping.consumer_group, "mapping started");
    let mut last_error: Option<(String, std::time::Instant)> = None;
    let mut group_progress_read = std::time::Instant::now();
    loop {
        if let (Some(targets), Some(progress)) = (&targets, &until_caught_up) {
            // Partitions another member of the group owns advance only in the group's committed
            // offsets: read them now and then, so that this process ends when the group as a
            // whole has caught up.
            if !progress.reached(targets)
                && group_progress_read.elapsed() >= offsets::GROUP_PROGRESS_INTERVAL
            {
                group_progress_read = std::time::Instant::now();
                offsets::advance_from_group_commits(&consumer, targets, progress).await;
            }
            if progress.reached(targets) {
                tracing::info!(mapping = %name, "caught up: every partition reached its end offset");
                break;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            // Re-poll the main queue periodically: it serves rebalances and client events, and
            // a missed wakeup must not stall the group (see `worker::recv`).
            _ = tokio::time::sleep(worker::REPOLL_INTERVAL) => {}
            msg = consumer.recv() => match msg {
                // Every assigned partition has its own queue, split off before its assignment
                // takes effect (`MappingContext::pre_rebalance`), so the main queue only serves
                // rebalances and errors. Should a record reach it all the same, the partition is
                // rewound so that its worker reads it rather than lose it.
                Ok(msg) => {
                    use rdkafka::Message;
                    let (topic, partition, offset) = (msg.topic().to_owned(), msg.partition(), msg.offset());
                    drop(msg);
                    tracing::warn!(mapping = %name, %topic, partition, offset, "record arrived on the main queue; rewinding the partition");
                    if let Err(e) = consumer.seek(&topic, partition, rdkafka::Offset::Offset(offset), Duration::from_secs(5)) {
                        tracing::error!(mapping = %name, %topic, partition, offset, error = %e, "rewind failed");
                    }
                }
                Err(e) => {
                    // A refused group or topic stops the mapping (see `DenialStop`): the next
                    // turn of the loop sees the shutdown.
                    if let Some(denied) = denial(&consumer, &mapping, &e, access.principal()) {
                        access.report(&name, denied);
                        continue;
                    }
                    // librdkafka repeats a standing error (all brokers down) on every poll: log a
                    // change at once, a repeat at most every 30 s.
                    let text = e.to_string();
                    if last_error.as_ref().is_none_or(|(last, at)| *last != text || at.elapsed() >= Duration::from_secs(30)) {
                        tracing::warn!(mapping = %name, error = %text, "Kafka consumer error");
                        last_error = Some((text, std::time::Instant::now()));
                    }
                }
            },
        }
    }
    tracing::info!(mapping = %name, partitions = workers.len(), "stopping: draining in-flight batches");
    for join in workers.drain_all(drain_timeout) {
        let _ = join.await;
    }
    match consumer::commit_stored(&*consumer, "final commit", FINAL_COMMIT_BUDGET) {
        Ok(()) => tracing::info!(mapping = %name, "final offsets committed"),
        Err(e) => {
            tracing::warn!(mapping = %name, error = %e, "final commit failed; some records may be delivered again")
        }
    }
    leave_group(&consumer, &name).await;
    drop(consumer);
    tracing::info!(mapping = %name, "mapping stopped");
    Ok(())
}

/// The permission a consumer error says the mapping lacks: READ on its group, or READ on a
/// topic. A refused topic is named by its metadata (refused to describe it); when the metadata
/// refuses none (the error came from a fetch, whose topic rdkafka does not pass on), the mapping's
/// topics are named together.
fn denial(
    consumer: &MappingConsumer,
    mapping: &Mapping,
    error: &KafkaError,
    principal: &Principal,
) -> Option<AccessDenied> {
    let topic = match Denied::of_error(error, consumer.client())? {
        Denied::Group => {
            return Some(AccessDenied::ReadGroup {
                group: mapping.consumer_group.clone(),
                principal: principal.clone(),
            });
        }
        Denied::Cluster => return None,
        Denied::Topic => mapping
            .topics
            .iter()
            .find(|topic| {
                consumer
                    .fetch_metadata(Some(topic), Duration::from_secs(5))
                    .is_ok_and(|metadata| {
                        metadata.topics().iter().any(|t| {
                            t.name() == topic.as_str()
                                && t.error().map(rdkafka::types::RDKafkaErrorCode::from)
                                    == Some(
                                        rdkafka::types::RDKafkaErrorCode::TopicAuthorizationFailed,
                                    )
                        })
                    })
            })
            .cloned()
            .unwrap_or_else(|| mapping.topics.join(", ")),
    };
    Some(AccessDenied::ReadTopic {
        topic,
        principal: principal.clone(),
    })
}

/// How long leaving the group may take before the consumer is closed anyway.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Unsubscribes, then keeps serving the consumer's main queue until its assignment is empty.
/// Closing a cooperative-sticky consumer while an assignment is still in progress (a rebalance
/// that began just before shutdown) trips an assertion inside librdkafka
/// (`rd_kafka_cgrp_terminated: assert: !rd_kafka_assignment_in_progress`, librdkafka#4792) and
/// aborts the process; letting the rebalance callbacks run to the end first avoids it.
async fn leave_group(consumer: &MappingConsumer, name: &str) {
    consumer.unsubscribe();
    let deadline = tokio::time::Instant::now() + LEAVE_TIMEOUT;
    // The empty assignment must hold for a moment: an assignment the broker already sent may
    // still arrive (and then be revoked) after the unsubscribe.
    let mut empty_since: Option<tokio::time::Instant> = None;
    while tokio::time::Instant::now() < deadline {
        let empty = consumer
            .assignment()
            .map(|a| a.count() == 0)
            .unwrap_or(true);
        match (empty, empty_since) {
            (true, Some(since)) if since.elapsed() >= Duration::from_millis(200) => return,
            (true, None) => empty_since = Some(tokio::time::Instant::now()),
            (false, _) => empty_since = None,
            _ => {}
        }
        // A record may still come through the main queue: it is not stored, so it is not lost.
        let _ = tokio::time::timeout(Duration::from_millis(50), consumer.recv()).await;
    }
    tracing::warn!(mapping = %name, "the group was not left cleanly within {LEAVE_TIMEOUT:?}; closing the consumer anyway");
}
