//! One mapping at run time: its consumer, its partition workers, and its orderly shutdown.

use crate::batch::EventHeader;
use crate::config::{Mapping, StartingPosition, ValidatedConfig};
use crate::deadletter::DeadLetterProducer;
use crate::invoke::Invoker;
use crate::partition::{MappingShared, PartitionWorkers, Workers};
use crate::source::{self, MappingConsumer, MappingContext};
use kafka_lambda_client::KafkaClientContext;
use rdkafka::consumer::{CommitMode, Consumer};
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
}

/// Runs a mapping until `shutdown` is cancelled, then drains, commits and leaves the group.
pub async fn run_mapping<I: Invoker>(
    config: Arc<ValidatedConfig>,
    mapping: Mapping,
    invoker: I,
    shutdown: CancellationToken,
) -> Result<(), MappingError> {
    let client_error = |source| MappingError::Client {
        index: mapping.index,
        function: mapping.function.clone(),
        source,
    };
    let shared = Arc::new(MappingShared {
        header: EventHeader {
            source: mapping.event_source.clone(),
            arn: mapping.event_source_arn.clone(),
            bootstrap_servers: config.raw.kafka.bootstrap_servers.clone(),
        },
        in_flight: tokio::sync::Semaphore::new(mapping.max_concurrency),
        invoker,
        consumer: std::sync::OnceLock::new(),
        dead_letter: dead_letter(&config, &mapping).map_err(client_error)?,
        mapping: mapping.clone(),
    });
    let workers = Arc::new(PartitionWorkers::new(
        tokio::runtime::Handle::current(),
        shutdown.child_token(),
    ));
    let context = MappingContext::new(
        &mapping,
        workers.clone(),
        Arc::new(Workers(shared.clone())),
        config.drain_timeout(),
    )
    .with_token_provider(config.auth.token_provider().cloned());
    let consumer: Arc<MappingConsumer> = Arc::new(
        source::client_config(&config, &mapping)
            .create_with_context(context)
            .map_err(client_error)?,
    );
    consumer.context().attach(&consumer);
    let _ = shared.consumer.set(Arc::downgrade(&consumer));

    let drain_timeout = config.drain_timeout();
    // The consumer is polled on a blocking thread: rebalance callbacks run there and may block
    // while partition workers drain, which must not stall the async runtime.
    let runtime = tokio::runtime::Handle::current();
    let driver = tokio::task::spawn_blocking(move || {
        runtime.block_on(drive(consumer, mapping, workers, shutdown, drain_timeout));
    });
    if let Err(e) = driver.await {
        tracing::error!(error = %e, "mapping driver ended abnormally");
    }
    Ok(())
}

/// The on-failure producer: the source cluster's client settings unless another cluster is named.
fn dead_letter(
    config: &ValidatedConfig,
    mapping: &Mapping,
) -> Result<Option<DeadLetterProducer>, KafkaError> {
    let Some(topic) = &mapping.on_failure else {
        return Ok(None);
    };
    let mut client = rdkafka::ClientConfig::new();
    client.set("bootstrap.servers", &config.raw.kafka.bootstrap_servers);
    for (key, value) in &config.raw.kafka.options {
        if !key.starts_with("fetch.") && !key.starts_with("queued.") && key != "auto.offset.reset" {
            client.set(key, value);
        }
    }
    if let Some(servers) = &mapping.on_failure_bootstrap_servers {
        client.set("bootstrap.servers", servers);
    }
    // The destination is written with the source cluster's credentials ([kafka.auth]).
    config.auth.apply(&mut client);
    client.set(
        "client.id",
        format!("kafka-lambda-poller-{}-dlq", mapping.consumer_group),
    );
    let context = KafkaClientContext::new(config.auth.token_provider().cloned());
    DeadLetterProducer::new(client, context, topic.clone()).map(Some)
}

async fn drive(
    consumer: Arc<MappingConsumer>,
    mapping: Mapping,
    workers: Arc<PartitionWorkers>,
    shutdown: CancellationToken,
    drain_timeout: Duration,
) {
    let name = format!("mapping[{}] {}", mapping.index, mapping.function);
    if let (StartingPosition::AtTimestamp, Some(ts)) = (
        mapping.starting_position,
        mapping.starting_position_timestamp_ms,
    ) {
        let mut attempt = 0u32;
        loop {
            match source::commit_start_offsets_at_timestamp(
                &consumer,
                &mapping.topics,
                ts,
                Duration::from_secs(10),
            ) {
                Ok(_) => break,
                Err(e) => {
                    attempt += 1;
                    tracing::error!(mapping = %name, error = %e, attempt,
                        "cannot look up AT_TIMESTAMP start offsets (is the broker reachable and do the topics exist?); retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(2u64.pow(attempt.min(5)))) => {}
                    }
                }
            }
        }
    }
    let topics: Vec<&str> = mapping.topics.iter().map(String::as_str).collect();
    if let Err(e) = consumer.subscribe(&topics) {
        tracing::error!(mapping = %name, error = %e, "cannot subscribe to the topics");
        return;
    }
    tracing::info!(mapping = %name, topics = ?mapping.topics, group = %mapping.consumer_group, "mapping started");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            // Re-poll the main queue periodically: it serves rebalances and client events, and
            // a missed wakeup must not stall the group (see `partition::recv`).
            _ = tokio::time::sleep(crate::partition::REPOLL_INTERVAL) => {}
            msg = consumer.recv() => match msg {
                // Every assigned partition has its own queue, so the main queue only serves
                // rebalances and errors. A record here arrived before its queue was split: rewind
                // the partition so its worker reads it rather than lose it.
                Ok(msg) => {
                    use rdkafka::Message;
                    let (topic, partition, offset) = (msg.topic().to_owned(), msg.partition(), msg.offset());
                    drop(msg);
                    tracing::warn!(mapping = %name, %topic, partition, offset, "record arrived on the main queue; rewinding the partition");
                    if let Err(e) = consumer.seek(&topic, partition, rdkafka::Offset::Offset(offset), Duration::from_secs(5)) {
                        tracing::error!(mapping = %name, %topic, partition, offset, error = %e, "rewind failed");
                    }
                }
                Err(e) => tracing::warn!(mapping = %name, error = %e, "Kafka consumer error"),
            },
        }
    }
    tracing::info!(mapping = %name, partitions = workers.len(), "stopping: draining in-flight batches");
    for join in workers.drain_all(drain_timeout) {
        let _ = join.await;
    }
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => tracing::info!(mapping = %name, "final offsets committed"),
        Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => {
            tracing::warn!(mapping = %name, error = %e, "final commit failed; some records may be delivered again")
        }
    }
    consumer.unsubscribe();
    drop(consumer);
    tracing::info!(mapping = %name, "mapping stopped");
}
