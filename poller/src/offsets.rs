//! Where a mapping is in its partitions: offsets stored once their records are done, committed
//! soon after, and the lookups that decide where a mapping starts (`AT_TIMESTAMP`) and where it
//! ends (`--until-caught-up`). At-least-once rests on one rule: an offset is stored only when
//! every record up to it is delivered, dead-lettered or skipped by policy.

use crate::config::{Mapping, StartingPosition};
use crate::consumer::{ConsumerHandle, MappingConsumer, committed};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A mapping's offsets: the consumer they are stored in, and the progress they make.
#[derive(Debug)]
pub(crate) struct Offsets {
    consumer: ConsumerHandle,
    /// Offsets done per partition (for `--until-caught-up` and the idle check of workers).
    pub progress: Arc<Progress>,
    /// Woken when an offset is stored, so that it is committed soon (see [`commit_soon`]).
    stored: tokio::sync::Notify,
}

impl Offsets {
    /// Offsets stored in `consumer`'s, with `progress` noted as they are.
    pub(crate) fn new(consumer: ConsumerHandle, progress: Arc<Progress>) -> Self {
        Offsets {
            consumer,
            progress,
            stored: tokio::sync::Notify::new(),
        }
    }

    /// The consumer, unless it is gone (the mapping is stopping).
    pub(crate) fn consumer(&self) -> Option<Arc<MappingConsumer>> {
        self.consumer.get()
    }

    /// Marks everything up to and including `offset` as done; committed soon after.
    pub(crate) fn store(&self, topic: &str, partition: i32, offset: i64) {
        let Some(consumer) = self.consumer.get() else {
            return;
        };
        // `store_offset` stores `offset + 1`: the next record to read.
        match consumer.store_offset(topic, partition, offset) {
            Ok(()) => {
                self.progress.advance(topic, partition, offset + 1);
                self.stored.notify_one();
            }
            Err(e) => tracing::warn!(%topic, partition, offset, error = %e,
                "could not store the offset (partition no longer assigned?); the records may be delivered again"),
        }
    }

    /// The consumer's fetch position in a partition, asked off the runtime (librdkafka answers
    /// it from its main thread); `None` when unknown.
    pub(crate) async fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        let consumer = self.consumer.get()?;
        let positions = tokio::task::spawn_blocking(move || consumer.position())
            .await
            .ok()?
            .ok()?;
        match positions.find_partition(topic, partition)?.offset() {
            Offset::Offset(position) => Some(position),
            _ => None,
        }
    }
}

/// Next offset to process per partition, as stored by the partition workers.
#[derive(Debug, Default)]
pub(crate) struct Progress(std::sync::Mutex<HashMap<(String, i32), i64>>);

impl Progress {
    /// Records that everything before `next` is done on `topic`/`partition`.
    pub(crate) fn advance(&self, topic: &str, partition: i32, next: i64) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = map.entry((topic.to_owned(), partition)).or_insert(next);
        *entry = (*entry).max(next);
    }

    /// The next offset to do on `topic`/`partition`, if any was recorded.
    pub(crate) fn next(&self, topic: &str, partition: i32) -> Option<i64> {
        let map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&(topic.to_owned(), partition)).copied()
    }

    /// Whether every partition of `targets` reached its target next offset.
    pub(crate) fn reached(&self, targets: &HashMap<(String, i32), i64>) -> bool {
        let map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        targets
            .iter()
            .all(|(key, end)| map.get(key).is_some_and(|next| next >= end))
    }
}

/// Commits stored offsets soon after each batch finishes, asynchronously and coalesced: a commit
/// is requested as soon as an offset is stored, then none for [`COMMIT_SPACING`]; offsets stored
/// meanwhile go into the next one. A crash then repeats the batches in flight and those that
/// finished within the spacing, and a busy mapping sends at most one commit request per spacing.
/// librdkafka's periodic commit (`commit_interval_ms`) stays as the backstop; rebalances and
/// shutdown commit synchronously as before.
pub(crate) async fn commit_soon(offsets: Arc<Offsets>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = offsets.stored.notified() => {}
        }
        let Some(consumer) = offsets.consumer.get() else {
            return;
        };
        match consumer.commit_consumer_state(CommitMode::Async) {
            Ok(())
            | Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                tracing::debug!(error = %e, "could not request a commit; the periodic commit will")
            }
        }
        drop(consumer);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(COMMIT_SPACING) => {}
        }
    }
}

/// The least time between two commits [`commit_soon`] requests.
const COMMIT_SPACING: Duration = Duration::from_millis(20);

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

/// For `--until-caught-up`: the high watermark of every partition of the mapping's topics; the
/// group's committed offsets (or where the group starts) count as progress already made.
pub(crate) fn end_offsets(
    consumer: &MappingConsumer,
    mapping: &Mapping,
    timeout: Duration,
) -> Result<HashMap<(String, i32), i64>, KafkaError> {
    let mut targets = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    let mut lows = HashMap::new();
    for topic in &mapping.topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        for t in metadata.topics() {
            // A topic the principal may not describe comes back without partitions: counting it
            // as caught up would end the run having read nothing.
            if let Some(error) = t.error() {
                return Err(KafkaError::MetadataFetch(error.into()));
            }
            for p in t.partitions() {
                let (low, high) = consumer.fetch_watermarks(t.name(), p.id(), timeout)?;
                targets.insert((t.name().to_owned(), p.id()), high);
                lows.insert((t.name().to_owned(), p.id()), (low, high));
                tpl.add_partition(t.name(), p.id());
            }
        }
    }
    let committed = consumer.committed_offsets(tpl, timeout)?;
    let progress = Progress::default();
    for e in committed.elements() {
        let key = (e.topic().to_owned(), e.partition());
        let (low, high) = lows.get(&key).copied().unwrap_or((0, 0));
        let start = match (e.offset(), mapping.starting_position) {
            (Offset::Offset(o), _) => o,
            (_, StartingPosition::TrimHorizon) => low,
            _ => high,
        };
        progress.advance(&key.0, key.1, start);
    }
    // Partitions already at their end need nothing: drop them from the targets.
    targets.retain(|key, end| !progress.reached(&HashMap::from([(key.clone(), *end)])));
    Ok(targets)
}

/// How long a lookup the mapping starts with (end offsets, `AT_TIMESTAMP` start offsets) waits
/// out transient answers before it fails naming the last one: a new cluster creates and loads its
/// offsets topic at the first group lookup, which takes seconds, and a coordinator moves within
/// seconds of a broker restart.
pub(crate) const LOOKUP_BUDGET: Duration = Duration::from_secs(60);

/// The timeout of one try of such a lookup.
pub(crate) const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// How often `--until-caught-up` reads the group's committed offsets.
pub(crate) const GROUP_PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// Counts the group's committed offsets of the partitions still short of their target as
/// progress (a lookup on a blocking thread; a failed one is tried again at the next interval).
pub(crate) async fn advance_from_group_commits(
    consumer: &Arc<MappingConsumer>,
    targets: &HashMap<(String, i32), i64>,
    progress: &Arc<Progress>,
) {
    let mut behind = TopicPartitionList::new();
    for ((topic, partition), end) in targets {
        if progress
            .next(topic, *partition)
            .is_none_or(|next| next < *end)
        {
            behind.add_partition(topic, *partition);
        }
    }
    let consumer = Arc::clone(consumer);
    let committed = tokio::task::spawn_blocking(move || {
        consumer.committed_offsets(behind, Duration::from_secs(5))
    })
    .await;
    match committed {
        Ok(Ok(committed)) => {
            for element in committed.elements() {
                if let Offset::Offset(offset) = element.offset() {
                    progress.advance(element.topic(), element.partition(), offset);
                }
            }
        }
        Ok(Err(error)) => tracing::debug!(%error,
            "cannot read the group's committed offsets yet (a transient answer is read again at the next interval)"),
        Err(_) => {}
    }
}
