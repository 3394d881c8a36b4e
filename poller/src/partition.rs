//! One worker per assigned partition: it gathers a batch, invokes the function until the batch is
//! delivered, stores the offset, and only then takes more records off its partition queue. One
//! batch in flight per partition keeps offset order; librdkafka's bounded prefetch plus "pull only
//! when ready" is the backpressure. A semaphore shared by a mapping's partitions caps concurrent
//! invocations at `max_concurrency`.

use crate::access::{AccessDenied, DenialStop, Denied};
use crate::backoff::Backoff;
use crate::batch::{self, BatchBuilder, EventHeader, HeaderScratch, PolledRecord, Rejected};
use crate::config::Mapping;
use crate::deadletter::{DeadLetterProducer, FailureInfo};
use crate::failure::{self, Delivery};
use crate::filter::RecordView;
use crate::invoke::Invoker;
use crate::source::{MappingConsumer, MappingContext};
use futures::FutureExt;
use kafka_lambda_events::RecordRef;
use rdkafka::Message;
use rdkafka::consumer::Consumer;
use rdkafka::consumer::stream_consumer::StreamPartitionQueue;
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The partition queue type workers read.
pub(crate) type PartitionQueue = StreamPartitionQueue<MappingContext>;

/// Signals on drop that a worker has finished (also when it panicked).
#[derive(Debug)]
pub(crate) struct DoneGuard(pub(crate) SyncSender<()>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        let _ = self.0.try_send(());
    }
}

/// What a worker is told and tells back.
#[derive(Debug)]
pub(crate) struct WorkerControl {
    /// Stop taking new records; finish the batch in flight (its retries, backoff waits and
    /// dead-letter writes included) unless `abort` comes first.
    pub stop: CancellationToken,
    /// Give up the batch in flight now (drain timeout passed); do not store its offset.
    pub abort: CancellationToken,
    /// Dropped when the worker ends.
    #[expect(
        dead_code,
        reason = "never read: dropping it with the worker is the signal"
    )]
    pub done: DoneGuard,
}

/// Starts a worker task for a newly assigned partition.
pub(crate) trait WorkerFactory: Send + Sync {
    /// Spawns the worker on `runtime`.
    fn spawn(
        &self,
        runtime: &tokio::runtime::Handle,
        topic: String,
        partition: i32,
        queue: PartitionQueue,
        control: WorkerControl,
    ) -> JoinHandle<()>;
}

struct WorkerHandle {
    stop: CancellationToken,
    abort: CancellationToken,
    done: Receiver<()>,
    join: JoinHandle<()>,
}

/// The running workers of one mapping, by topic-partition.
pub(crate) struct PartitionWorkers {
    runtime: tokio::runtime::Handle,
    workers: Mutex<HashMap<(String, i32), WorkerHandle>>,
    /// Cancelled at shutdown: workers spawned afterwards stop at once.
    shutdown: CancellationToken,
}

impl PartitionWorkers {
    /// An empty set spawning on `runtime`.
    pub(crate) fn new(runtime: tokio::runtime::Handle, shutdown: CancellationToken) -> Self {
        PartitionWorkers {
            runtime,
            workers: Mutex::new(HashMap::new()),
            shutdown,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, i32), WorkerHandle>> {
        self.workers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts the worker of a newly assigned partition.
    pub(crate) fn start(
        &self,
        factory: &dyn WorkerFactory,
        topic: String,
        partition: i32,
        queue: PartitionQueue,
    ) {
        let stop = self.shutdown.child_token();
        let abort = CancellationToken::new();
        let (tx, done) = sync_channel(1);
        let control = WorkerControl {
            stop: stop.clone(),
            abort: abort.clone(),
            done: DoneGuard(tx),
        };
        let join = factory.spawn(&self.runtime, topic.clone(), partition, queue, control);
        if let Some(old) = self.lock().insert(
            (topic, partition),
            WorkerHandle {
                stop,
                abort,
                done,
                join,
            },
        ) {
            old.abort.cancel();
        }
    }

    /// Stops the workers of `partitions` and waits (blocking the calling thread, which is the
    /// consumer's poll thread during a rebalance) until they finish their batch in flight or
    /// `timeout` passes; stragglers are aborted and their batch will be delivered again.
    pub(crate) fn drain(
        &self,
        partitions: &[(String, i32)],
        timeout: Duration,
    ) -> Vec<JoinHandle<()>> {
        let handles: Vec<_> = {
            let mut map = self.lock();
            partitions
                .iter()
                .filter_map(|key| map.remove(key).map(|h| (key.clone(), h)))
                .collect()
        };
        Self::stop_and_wait(handles, timeout)
    }

    /// Stops and drains every worker (shutdown).
    pub(crate) fn drain_all(&self, timeout: Duration) -> Vec<JoinHandle<()>> {
        let handles: Vec<_> = self.lock().drain().collect();
        Self::stop_and_wait(handles, timeout)
    }

    fn stop_and_wait(
        handles: Vec<((String, i32), WorkerHandle)>,
        timeout: Duration,
    ) -> Vec<JoinHandle<()>> {
        for (_, h) in &handles {
            h.stop.cancel();
        }
        let deadline = Instant::now() + timeout;
        let mut joins = Vec::with_capacity(handles.len());
        for ((topic, partition), h) in handles {
            let left = deadline.saturating_duration_since(Instant::now());
            if h.done.recv_timeout(left).is_err() && !h.join.is_finished() {
                tracing::warn!(%topic, partition, timeout_ms = timeout.as_millis() as u64,
                    "drain timeout passed with a batch in flight; it will be delivered again by the next owner");
                h.abort.cancel();
            }
            joins.push(h.join);
        }
        joins
    }

    /// Number of partitions with a running worker.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// What every worker of a mapping shares.
pub(crate) struct MappingShared<I> {
    /// The mapping.
    pub mapping: Mapping,
    /// The event's top-level fields.
    pub header: EventHeader,
    /// The function.
    pub invoker: I,
    /// Caps concurrent invocations across the mapping's partitions.
    pub in_flight: Semaphore,
    /// The consumer (to store offsets).
    pub consumer: std::sync::OnceLock<std::sync::Weak<MappingConsumer>>,
    /// The on-failure destination, when configured.
    pub dead_letter: Option<DeadLetterProducer>,
    /// Metric handles.
    pub metrics: crate::telemetry::MappingMetrics,
    /// Offsets done per partition (for `--until-caught-up`).
    pub progress: Arc<crate::mapping::Progress>,
    /// Where a worker reports a topic the principal may not read; that stops the mapping.
    pub access: Arc<DenialStop>,
    /// Readiness, which a partition stuck on its on-failure destination turns off.
    pub health: Arc<crate::telemetry::Health>,
    /// The mapping's shutdown: cancelled when a partition worker dies.
    pub stop: CancellationToken,
    /// Why the first partition worker that died did, if one did (see [`Workers`]).
    pub worker_died: std::sync::OnceLock<String>,
    /// Set once a `batchItemFailures` list was ignored (`report_batch_item_failures = false`),
    /// so that the warning is logged once per mapping, not once per batch.
    pub ignored_item_failures_logged: std::sync::atomic::AtomicBool,
    /// Woken when an offset is stored, so that it is committed soon (see [`commit_soon`]).
    pub stored: tokio::sync::Notify,
}

/// Spawns [`run_worker`] tasks for a mapping.
pub(crate) struct Workers<I>(pub Arc<MappingShared<I>>);

impl<I: Invoker> WorkerFactory for Workers<I> {
    fn spawn(
        &self,
        runtime: &tokio::runtime::Handle,
        topic: String,
        partition: i32,
        queue: PartitionQueue,
        control: WorkerControl,
    ) -> JoinHandle<()> {
        let shared = self.0.clone();
        runtime.spawn(async move {
            let span = tracing::info_span!("partition", function = %shared.invoker.function(), %topic, partition);
            let worker = run_worker(shared.clone(), topic.clone(), partition, queue, control)
                .instrument(span);
            supervise(&shared, &topic, partition, worker).await;
        })
    }
}

/// Runs a partition's `worker`. A worker that dies (panics) leaves its partition unconsumed
/// while the group thinks it is owned: the mapping is stopped (what was done is committed, the
/// process exits non-zero and its supervisor restarts it) and `/readyz` turns 503.
pub(crate) async fn supervise<I: Invoker>(
    shared: &MappingShared<I>,
    topic: &str,
    partition: i32,
    worker: impl std::future::Future<Output = ()>,
) {
    let Err(panic) = std::panic::AssertUnwindSafe(worker).catch_unwind().await else {
        return;
    };
    let reason = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    tracing::error!(function = %shared.invoker.function(), %topic, partition, %reason,
        "the partition worker panicked; stopping the mapping (what was delivered is committed) so that the process exits 1 and is restarted");
    shared.health.set_worker_died();
    let _ = shared.worker_died.set(format!(
        "the worker of partition {topic}-{partition} panicked: {reason}"
    ));
    shared.stop.cancel();
}

/// What becomes of a record taken off the queue.
enum Admitted {
    /// Goes into the batch: with the value the input template made of it, if any.
    Invoke(Option<Vec<u8>>),
    /// Matches none of the mapping's filters: done without invoking.
    Filtered,
    /// Cannot be invoked (the input template does not apply): follows the failure policy.
    Unusable(FailureInfo),
}

/// Applies the mapping's filters and input template to a record.
fn admit<I>(shared: &MappingShared<I>, record: &RecordView<'_>) -> Admitted {
    let m = &shared.mapping;
    if !m.filter.is_empty() && !m.filter.matches(record) {
        return Admitted::Filtered;
    }
    if let Some(template) = &m.input_template
        && let Some(value) = record.value
    {
        return match template.apply(value) {
            Ok(reshaped) => Admitted::Invoke(Some(reshaped)),
            Err(e) => Admitted::Unusable(FailureInfo {
                error_type: "InputTemplateError".to_owned(),
                message: e.to_string(),
                attempts: 0,
            }),
        };
    }
    Admitted::Invoke(None)
}

/// Gives up one record that can never be invoked (dead-lettered, or skipped and logged);
/// `Some(offset)` once done, `None` when the worker was told to stop first.
async fn give_up_record<I: Invoker>(
    shared: &MappingShared<I>,
    topic: &str,
    partition: i32,
    record: PolledRecord,
    info: FailureInfo,
    control: &WorkerControl,
    backoff: &Backoff,
) -> Option<i64> {
    let offset = record.offset;
    let outcome =
        failure::give_up(shared, topic, partition, &[record], &info, control, backoff).await;
    (outcome == Delivery::Done).then_some(offset)
}

/// Gives up a record too large for an invocation payload even alone.
async fn give_up_too_large<I: Invoker>(
    shared: &MappingShared<I>,
    topic: &str,
    partition: i32,
    record: PolledRecord,
    payload_bytes: usize,
    control: &WorkerControl,
    backoff: &Backoff,
) -> Option<i64> {
    let limit = shared.mapping.max_payload_bytes;
    tracing::error!(function = %shared.invoker.function(), %topic, partition, offset = record.offset,
        payload_bytes, limit,
        "record is too large for one invocation payload even alone; it cannot be delivered");
    let info = FailureInfo {
        error_type: "RecordTooLarge".to_owned(),
        message: format!(
            "an event with this record alone is {payload_bytes} bytes; max_payload_bytes is {limit}"
        ),
        attempts: 0,
    };
    give_up_record(shared, topic, partition, record, info, control, backoff).await
}

/// The worker loop of one partition: gather a batch, deliver it, store its offset, repeat.
///
/// Records are encoded into the batch's payload straight from librdkafka's buffers; only a
/// record that starts the next batch or is given up before it is in one is copied.
pub(crate) async fn run_worker<I: Invoker>(
    shared: Arc<MappingShared<I>>,
    topic: String,
    partition: i32,
    queue: PartitionQueue,
    control: WorkerControl,
) {
    let m = &shared.mapping;
    let metrics = &shared.metrics;
    let backoff = Backoff {
        base: m.retry_backoff_base,
        max: m.retry_backoff_max,
    };
    // A record taken but not fitting the previous batch; already admitted.
    let mut held: Option<PolledRecord> = None;
    let mut headers = HeaderScratch::default();
    // The payload buffer of the last batch, once the invocation let go of it.
    let mut spare: Option<Vec<u8>> = None;
    // librdkafka can hand a split partition queue records it handed before, around an offset
    // reset: a record below the next expected offset was already taken, so it is dropped, which
    // keeps batches duplicate-free and in offset order.
    let mut next_offset = i64::MIN;
    // The consumer's position at the last idle check (see `store_skipped_offsets`).
    let mut idle_position: Option<i64> = None;
    'batches: loop {
        let mut builder = BatchBuilder::in_buffer(
            &shared.header,
            m.batch_size,
            m.max_payload_bytes,
            spare.take().unwrap_or_default(),
        );
        // Last offset of this batch finished without invoking (filtered or given up).
        let mut covered: Option<i64> = None;
        // The batching window starts with the batch's first record.
        let mut deadline: Option<tokio::time::Instant> = None;
        if let Some(record) = held.take() {
            deadline = Some(tokio::time::Instant::now() + m.batching_window);
            // The batch is empty: the record fits unless it is too large even alone.
            if let Err(Rejected::TooLarge { payload_bytes }) = builder.try_add(
                &record.as_record_ref(&topic, partition),
                record.original_value.as_deref(),
            ) {
                match give_up_too_large(
                    &shared,
                    &topic,
                    partition,
                    record,
                    payload_bytes,
                    &control,
                    &backoff,
                )
                .await
                {
                    Some(offset) => covered = Some(offset),
                    None => break 'batches,
                }
            }
        }
        while !builder.is_full() {
            // Fast path: a record is usually waiting already (a backlog). Taking it directly
            // spares the select below, whose stop and timer futures registered and removed a
            // waiter for every record; the order of the checks is the select's.
            let waiting = if control.stop.is_cancelled() {
                None
            } else {
                queue.recv().now_or_never()
            };
            let msg = match (waiting, deadline) {
                (Some(msg), _) => msg,
                (None, None) => tokio::select! {
                    biased;
                    _ = control.stop.cancelled() => break 'batches,
                    msg = recv(&queue) => msg,
                    _ = tokio::time::sleep(IDLE_GAP_CHECK_INTERVAL) => {
                        store_skipped_offsets(&shared, &topic, partition, &mut next_offset, &mut idle_position).await;
                        continue;
                    }
                },
                (None, Some(_)) if m.batching_window.is_zero() => break,
                (None, Some(at)) => tokio::select! {
                    biased;
                    _ = control.stop.cancelled() => break,
                    msg = recv(&queue) => msg,
                    _ = tokio::time::sleep_until(at) => break,
                },
            };
            let msg = match msg {
                Ok(msg) => msg,
                Err(e) => {
                    // librdkafka reports a refused fetch once, then keeps asking every second or
                    // more: the mapping stops instead (see `DenialStop`), which ends this loop.
                    if let Some(consumer) = shared.consumer.get().and_then(std::sync::Weak::upgrade)
                        && Denied::of_error(&e, consumer.client()) == Some(Denied::Topic)
                    {
                        let denied = AccessDenied::ReadTopic {
                            topic: topic.clone(),
                            principal: shared.access.principal().clone(),
                        };
                        shared
                            .access
                            .report(&format!("mapping[{}] {}", m.index, m.function), denied);
                        continue;
                    }
                    tracing::warn!(%topic, partition, error = %e, "error reading the partition; retrying");
                    if deadline.is_none() {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    break;
                }
            };
            let offset = msg.offset();
            if offset < next_offset {
                tracing::debug!(%topic, partition, offset, next_offset, "dropping a record read twice");
                continue;
            }
            next_offset = offset + 1;
            idle_position = None;
            metrics.received.increment(1);
            deadline.get_or_insert_with(|| tokio::time::Instant::now() + m.batching_window);
            let view = RecordView {
                topic: &topic,
                partition,
                key: msg.key(),
                value: msg.payload(),
                headers: headers.fill(&msg),
            };
            let reshaped = match admit(&shared, &view) {
                Admitted::Invoke(reshaped) => reshaped,
                Admitted::Filtered => {
                    metrics.filtered.increment(1);
                    covered = Some(offset);
                    continue;
                }
                Admitted::Unusable(info) => {
                    tracing::warn!(%topic, partition, offset, error = %info.message,
                        "the input template does not apply to the record");
                    let record = PolledRecord::from_message(&msg);
                    let given_up = give_up_record(
                        &shared, &topic, partition, record, info, &control, &backoff,
                    );
                    match given_up.await {
                        Some(offset) => covered = Some(offset),
                        None => break 'batches,
                    }
                    continue;
                }
            };
            let (timestamp, timestamp_type) = batch::timestamp(&msg);
            let record = RecordRef {
                topic: &topic,
                partition,
                offset,
                timestamp,
                timestamp_type,
                key: view.key,
                value: reshaped.as_deref().or(view.value),
                headers: view.headers,
                key_schema_metadata: None,
                value_schema_metadata: None,
            };
            let original_value = reshaped.as_ref().and(view.value);
            match builder.try_add(&record, original_value) {
                Ok(()) => {}
                Err(Rejected::Full) => {
                    held = Some(PolledRecord::from_ref(&record, original_value));
                    break;
                }
                Err(Rejected::TooLarge { payload_bytes }) => {
                    let record = PolledRecord::from_ref(&record, original_value);
                    match give_up_too_large(
                        &shared,
                        &topic,
                        partition,
                        record,
                        payload_bytes,
                        &control,
                        &backoff,
                    )
                    .await
                    {
                        Some(offset) => covered = Some(offset),
                        None => break 'batches,
                    }
                }
            }
        }
        if control.stop.is_cancelled() {
            // Gathered but not yet invoked: not in flight, so leave it to the next owner.
            break;
        }
        if builder.is_empty() {
            if let Some(offset) = covered {
                store_offset(&shared, &topic, partition, offset);
            }
            continue;
        }
        let batch = builder.finish_covering(covered);
        let done = |offset| store_offset(&shared, &topic, partition, offset);
        if failure::deliver(
            &shared, &topic, partition, batch, &control, &mut spare, done,
        )
        .await
            == Delivery::Abandoned
        {
            break;
        }
    }
    tracing::debug!(%topic, partition, "partition worker stopped");
    drop(queue);
}

/// How often an idle worker checks whether librdkafka moved past offsets that hold no record
/// for it (see [`store_skipped_offsets`]).
const IDLE_GAP_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// Stores the consumer's position of an idle partition when it is past every record the worker
/// took: the offsets in between hold nothing to deliver — transaction markers, records of
/// aborted transactions (read_committed), offsets a compaction removed — and librdkafka never
/// hands them out. Without this, a partition that ends in such offsets would never be committed
/// up to its end: its lag would stay above zero and `--until-caught-up` would never end.
///
/// Called only when the worker holds no record and no batch is in flight, so every record it
/// took (all below `next_offset`) is done; a record waiting in the queue is not consumed yet
/// and lies at or after the position. The position must also be the same at two idle checks in
/// a row (`idle_position`, reset when a record is taken): a record that reached the main queue
/// moves the position past it for the moment between the drive loop taking it and seeking the
/// partition back to it (`mapping::drive`), and that position must never be stored.
/// librdkafka answers the position from its main thread, so it is asked off the runtime.
async fn store_skipped_offsets<I>(
    shared: &MappingShared<I>,
    topic: &str,
    partition: i32,
    next_offset: &mut i64,
    idle_position: &mut Option<i64>,
) {
    let Some(consumer) = shared.consumer.get().and_then(std::sync::Weak::upgrade) else {
        return;
    };
    let Ok(Ok(positions)) = tokio::task::spawn_blocking(move || consumer.position()).await else {
        return;
    };
    let Some(rdkafka::Offset::Offset(position)) = positions
        .find_partition(topic, partition)
        .map(|element| element.offset())
    else {
        *idle_position = None;
        return;
    };
    let stable = idle_position.replace(position) == Some(position);
    if stable
        && position > *next_offset
        && position > shared.progress.next(topic, partition).unwrap_or(0)
    {
        *next_offset = position;
        store_offset(shared, topic, partition, position - 1);
    }
}

/// How often a waiting receive polls its queue again even without a wakeup.
pub(crate) const REPOLL_INTERVAL: Duration = Duration::from_millis(100);

/// Receives from a partition queue. rdkafka wakes a waiting receiver when the queue becomes
/// non-empty, but a wakeup can be missed around rebalances (seen: a partition assigned right
/// after another member left never woke its worker), so the wait re-polls periodically.
/// Dropping a pending `recv` loses nothing: a message is only taken inside a poll that returns it.
async fn recv(
    queue: &PartitionQueue,
) -> rdkafka::error::KafkaResult<rdkafka::message::BorrowedMessage<'_>> {
    // Fast path: a record is usually waiting already; no timer needed.
    if let Some(msg) = queue.recv().now_or_never() {
        return msg;
    }
    loop {
        tokio::select! {
            msg = queue.recv() => return msg,
            _ = tokio::time::sleep(REPOLL_INTERVAL) => {}
        }
    }
}

/// Marks everything up to and including `offset` as done; librdkafka commits it with the next
/// (auto or explicit) commit.
fn store_offset<I>(shared: &MappingShared<I>, topic: &str, partition: i32, offset: i64) {
    let Some(consumer) = shared.consumer.get().and_then(std::sync::Weak::upgrade) else {
        return;
    };
    // `store_offset` stores `offset + 1`: the next record to read.
    match consumer.store_offset(topic, partition, offset) {
        Ok(()) => {
            shared.progress.advance(topic, partition, offset + 1);
            shared.stored.notify_one();
        }
        Err(e) => tracing::warn!(%topic, partition, offset, error = %e,
            "could not store the offset (partition no longer assigned?); the records may be delivered again"),
    }
}
