//! A partition's worker, in partition order: it takes records off its partition queue, admits
//! them through the mapping's filters and input template, gathers a batch, has it delivered, and
//! stores its offset — and only then takes more records. One batch in flight per partition keeps
//! offset order; librdkafka's bounded prefetch plus "pull only when ready" is the backpressure.
//!
//! What a worker does with one record (`admit`, `GiveUp`, `recv`) and with an idle
//! partition (`store_skipped_offsets`) does not depend on the order it keeps, so another
//! scheduling policy (per-key order) reuses them beside [`run`].

use crate::access::{AccessDenied, DenialStop, Denied};
use crate::backoff::Backoff;
use crate::batch::{self, BatchBuilder, HeaderScratch, Original, PolledRecord, Rejected};
use crate::config::{Mapping, Ordering};
use crate::consumer::PartitionQueue;
use crate::deadletter::FailureInfo;
use crate::decode::{DecodedPart, DecodedRecord, RecordDecoder};
use crate::delivery::{Deliverer, Delivery};
use crate::filter::RecordView;
use crate::internal_events::{
    InputTemplateFailed, InternalEvent, RecordFiltered, RecordReceived, RecordTooLarge,
    RecordUndecodable, SchemaRegistryUnavailable,
};
use crate::invoke::Invoker;
use crate::offsets::Offsets;
use futures::FutureExt;
use kafka_lambda_events::RecordRef;
use rdkafka::Message;
use rdkafka::consumer::Consumer;
use rdkafka::message::BorrowedMessage;
use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

mod keyed;

/// What every partition worker of a mapping shares.
pub(crate) struct Shared<I> {
    /// The mapping.
    pub mapping: Mapping,
    /// Delivers batches.
    pub deliverer: Deliverer<I>,
    /// Where offsets are stored.
    pub offsets: Arc<Offsets>,
    /// Where a worker reports a topic the principal may not read; that stops the mapping.
    pub access: Arc<DenialStop>,
    /// Decodes keys and values through the mapping's schema registry, when it has one.
    pub decoder: Option<RecordDecoder>,
}

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

/// What a worker does with a record taken off its queue.
enum Taken {
    /// It goes into a batch, as `Rewritten` says.
    Invoke(Rewritten),
    /// It is finished without an invocation (filtered out, or given up): up to this offset.
    Finished(i64),
    /// The worker was aborted while giving it up.
    Aborted,
}

impl Taken {
    /// What became of a record given up: finished up to its offset, or the worker aborted.
    fn given_up(offset: Option<i64>) -> Self {
        offset.map_or(Taken::Aborted, Taken::Finished)
    }
}

/// What the event carries of a record in place of what was read: its parts decoded through
/// the schema registry, its value reshaped by the input template (which wins over the decoded
/// value it was applied to).
#[derive(Debug, Default)]
struct Rewritten {
    /// The key and value decoded, where they were (boxed: most mappings decode nothing, and
    /// `Taken` stays small).
    decoded: Option<Box<DecodedRecord>>,
    /// The value the input template made, if it did.
    reshaped: Option<Vec<u8>>,
}

/// The record as its event carries it, taken off the queue as `msg` and seen as `view` (as read),
/// with what `rewritten` holds in place of the key and value read; those are returned beside
/// it where replaced (a dead letter holds the originals).
fn to_record<'a>(
    msg: &BorrowedMessage<'_>,
    view: &RecordView<'a>,
    rewritten: &'a Rewritten,
) -> (RecordRef<'a>, Original<'a>) {
    let (timestamp, timestamp_type) = batch::timestamp(msg);
    let decoded = rewritten.decoded.as_deref();
    let key = decoded.and_then(|d| d.key.as_ref());
    let value = decoded.and_then(|d| d.value.as_ref());
    let new_value = rewritten
        .reshaped
        .as_deref()
        .or(value.map(DecodedPart::event_bytes));
    let record = RecordRef {
        topic: view.topic,
        partition: view.partition,
        offset: msg.offset(),
        timestamp,
        timestamp_type,
        key: key.map(DecodedPart::event_bytes).or(view.key),
        value: new_value.or(view.value),
        headers: view.headers,
        key_schema_metadata: key.map(|p| &p.metadata),
        value_schema_metadata: value.map(|p| &p.metadata),
    };
    let original = Original {
        key: key.and(view.key),
        value: new_value.and(view.value),
    };
    (record, original)
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
fn admit(m: &Mapping, record: &RecordView<'_>) -> Admitted {
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

/// The partition a worker gives records up for.
struct GiveUp<'a, I> {
    shared: &'a Shared<I>,
    topic: &'a str,
    partition: i32,
    stop: &'a CancellationToken,
    abort: &'a CancellationToken,
}

impl<'a, I> GiveUp<'a, I> {
    /// The worker of `assigned`, aborted by its `control`.
    fn of(assigned: &'a Assigned<I>) -> Self {
        GiveUp {
            shared: &assigned.shared,
            topic: &assigned.topic,
            partition: assigned.partition,
            stop: &assigned.control.stop,
            abort: &assigned.control.abort,
        }
    }
}

impl<I> GiveUp<'_, I> {
    /// What filters and input templates see of `msg`, a record of this partition, with its
    /// headers read into `headers`.
    fn view<'m>(
        &'m self,
        msg: &'m BorrowedMessage<'_>,
        headers: &'m mut HeaderScratch,
    ) -> RecordView<'m> {
        RecordView {
            topic: self.topic,
            partition: self.partition,
            key: msg.key(),
            value: msg.payload(),
            headers: headers.fill(msg),
        }
    }
}

impl<I: Invoker> GiveUp<'_, I> {
    /// Admits a record taken off the queue: decodes it through the schema registry (waiting
    /// while the registry cannot be asked), then applies the filters (to the decoded JSON) and
    /// the input template. A filtered record is finished at once; one that does not decode, or
    /// that the input template does not apply to, is given up here.
    async fn admit(&self, msg: &BorrowedMessage<'_>, view: &RecordView<'_>) -> Taken {
        let metrics = &self.shared.deliverer.metrics;
        let decoded = match &self.shared.decoder {
            None => None,
            Some(decoder) => match self.decode(decoder, msg).await {
                Ok(decoded) => Some(Box::new(decoded)),
                Err(taken) => return taken,
            },
        };
        let parts = decoded.as_deref();
        let seen = RecordView {
            key: DecodedPart::json_of(parts.and_then(|d| d.key.as_ref())).or(view.key),
            value: DecodedPart::json_of(parts.and_then(|d| d.value.as_ref())).or(view.value),
            ..*view
        };
        match admit(&self.shared.mapping, &seen) {
            Admitted::Invoke(reshaped) => Taken::Invoke(Rewritten { decoded, reshaped }),
            Admitted::Filtered => {
                RecordFiltered.emit(metrics);
                Taken::Finished(msg.offset())
            }
            Admitted::Unusable(info) => {
                InputTemplateFailed {
                    offset: msg.offset(),
                    error: &info.message,
                }
                .emit(metrics);
                Taken::given_up(self.record(PolledRecord::from_message(msg), info).await)
            }
        }
    }

    /// Decodes `msg` through the schema registry. While the registry cannot be asked, waits
    /// (backing off as retries do, counted on `/readyz`) and asks again: the record is not at
    /// fault. A record that does not decode is given up with the event source mapping's error
    /// type (`SCHEMA_NOT_FOUND`, `DESERIALIZATION_ERROR`), and `Err` says what became of it.
    async fn decode(
        &self,
        decoder: &RecordDecoder,
        msg: &BorrowedMessage<'_>,
    ) -> Result<DecodedRecord, Taken> {
        let m = &self.shared.mapping;
        let metrics = &self.shared.deliverer.metrics;
        let backoff = Backoff {
            base: m.retry_backoff_base,
            max: m.retry_backoff_max,
        };
        let mut waiting = None;
        let mut attempt = 0;
        loop {
            let error = match decoder.decode(msg.key(), msg.payload()).await {
                Ok(decoded) => return Ok(decoded),
                Err(error) => error,
            };
            let message = error.to_string();
            if !error.must_wait() {
                let error_type = error.error.error_type();
                RecordUndecodable {
                    offset: msg.offset(),
                    error_type,
                    error: &message,
                }
                .emit(metrics);
                let info = FailureInfo {
                    error_type: error_type.to_owned(),
                    message,
                    attempts: 0,
                };
                return Err(Taken::given_up(
                    self.record(PolledRecord::from_message(msg), info).await,
                ));
            }
            waiting.get_or_insert_with(|| self.shared.deliverer.health.waiting_for_registry());
            let wait = backoff.delay(attempt);
            attempt = attempt.saturating_add(1);
            SchemaRegistryUnavailable {
                offset: msg.offset(),
                error: &message,
                retry_in: wait,
            }
            .emit(metrics);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.stop.cancelled() => return Err(Taken::Aborted),
                () = self.abort.cancelled() => return Err(Taken::Aborted),
            }
        }
    }

    /// Gives up one record that can never be invoked (dead-lettered, or skipped and logged);
    /// `Some(offset)` once done, `None` when the worker was aborted first.
    async fn record(&self, record: PolledRecord, info: FailureInfo) -> Option<i64> {
        let offset = record.offset;
        let outcome = self
            .shared
            .deliverer
            .give_up(self.topic, self.partition, &[record], &info, self.abort)
            .await;
        (outcome == Delivery::Done).then_some(offset)
    }

    /// Gives up a record too large for an invocation payload even alone.
    async fn too_large(&self, record: PolledRecord, payload_bytes: usize) -> Option<i64> {
        let limit = self.shared.mapping.max_payload_bytes;
        RecordTooLarge {
            offset: record.offset,
            payload_bytes,
            limit,
        }
        .emit(&self.shared.deliverer.metrics);
        let info = FailureInfo {
            error_type: "RecordTooLarge".to_owned(),
            message: format!(
                "an event with this record alone is {payload_bytes} bytes; max_payload_bytes is {limit}"
            ),
            attempts: 0,
        };
        self.record(record, info).await
    }
}

/// A partition handed to its worker: what a worker loop starts from, besides its queue.
pub(crate) struct Assigned<I> {
    /// The mapping's settings and delivery, shared by its workers.
    pub(crate) shared: Arc<Shared<I>>,
    /// The partition's topic.
    pub(crate) topic: String,
    /// The partition.
    pub(crate) partition: i32,
    /// How the worker is told to stop and tells it has.
    pub(crate) control: WorkerControl,
}

/// Runs the worker of one partition in the mapping's `ordering`.
///
/// The worker is done once this returns: `assigned.control` (with its [`DoneGuard`]) is dropped
/// last, after the loop has dropped the queue.
pub(crate) async fn run<I: Invoker>(assigned: Assigned<I>, queue: PartitionQueue) {
    match assigned.shared.mapping.ordering {
        Ordering::Partition => in_partition_order(&assigned, queue).await,
        Ordering::Key | Ordering::None => keyed::run(&assigned, queue).await,
    }
}

/// The worker loop of one partition: gather a batch, deliver it, store its offset, repeat.
///
/// Records are encoded into the batch's payload straight from librdkafka's buffers; only a
/// record that starts the next batch or is given up before it is in one is copied.
async fn in_partition_order<I: Invoker>(assigned: &Assigned<I>, queue: PartitionQueue) {
    let (shared, topic, partition) = (&assigned.shared, &assigned.topic, assigned.partition);
    let control = &assigned.control;
    let m = &shared.mapping;
    let deliverer = &shared.deliverer;
    let metrics = &deliverer.metrics;
    let give_up = GiveUp::of(assigned);
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
            deliverer.header(),
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
            if let Err(Rejected::TooLarge { payload_bytes }) =
                builder.try_add(&record.as_record_ref(topic, partition), record.original())
            {
                match give_up.too_large(record, payload_bytes).await {
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
                        store_skipped_offsets(&shared.offsets, topic, partition, &mut next_offset, &mut idle_position).await;
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
                    if reading_refused(shared, topic, &e) {
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
            RecordReceived.emit(metrics);
            deadline.get_or_insert_with(|| tokio::time::Instant::now() + m.batching_window);
            let view = give_up.view(&msg, &mut headers);
            let rewritten = match give_up.admit(&msg, &view).await {
                Taken::Invoke(rewritten) => rewritten,
                Taken::Finished(offset) => {
                    covered = Some(offset);
                    continue;
                }
                Taken::Aborted => break 'batches,
            };
            let (record, original) = to_record(&msg, &view, &rewritten);
            match builder.try_add(&record, original) {
                Ok(()) => {}
                Err(Rejected::Full) => {
                    held = Some(PolledRecord::from_ref(&record, original));
                    break;
                }
                Err(Rejected::TooLarge { payload_bytes }) => {
                    let record = PolledRecord::from_ref(&record, original);
                    match give_up.too_large(record, payload_bytes).await {
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
                shared.offsets.store(topic, partition, offset);
            }
            continue;
        }
        let batch = builder.finish_covering(covered);
        let done = |offset| shared.offsets.store(topic, partition, offset);
        let delivered = deliverer
            .deliver(topic, partition, batch, &control.abort, &mut spare, done)
            .await;
        if delivered == Delivery::Abandoned {
            break;
        }
    }
    tracing::debug!(%topic, partition, "partition worker stopped");
    drop(queue);
}

/// Whether a read error is a refusal to read the topic: librdkafka reports a refused fetch
/// once, then keeps asking every second or more, so the mapping is stopped instead (see
/// `DenialStop`), which ends the worker's loop.
fn reading_refused<I>(shared: &Shared<I>, topic: &str, error: &rdkafka::error::KafkaError) -> bool {
    let Some(consumer) = shared.offsets.consumer() else {
        return false;
    };
    if Denied::of_error(error, consumer.client()) != Some(Denied::Topic) {
        return false;
    }
    let m = &shared.mapping;
    let denied = AccessDenied::ReadTopic {
        topic: topic.to_owned(),
        principal: shared.access.principal().clone(),
    };
    shared
        .access
        .report(&format!("mapping[{}] {}", m.index, m.function), denied);
    true
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
async fn store_skipped_offsets(
    offsets: &Offsets,
    topic: &str,
    partition: i32,
    next_offset: &mut i64,
    idle_position: &mut Option<i64>,
) {
    let Some(position) = offsets.position(topic, partition).await else {
        *idle_position = None;
        return;
    };
    let stable = idle_position.replace(position) == Some(position);
    if stable
        && position > *next_offset
        && position > offsets.progress.next(topic, partition).unwrap_or(0)
    {
        *next_offset = position;
        offsets.store(topic, partition, position - 1);
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
