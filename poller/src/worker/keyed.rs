//! A partition's worker out of offset order (`ordering = "key"` or `"none"`): records are taken
//! into the partition's [`Window`] as long as it has room, batches are made of the waiting
//! records whose lane has nothing in flight, and several batches of the partition are delivered
//! at once (up to the mapping's `max_concurrency`, shared by its partitions). The committed
//! offset follows the window's committable one: the first record not done holds it back.

use super::{
    Assigned, GiveUp, IDLE_GAP_CHECK_INTERVAL, Taken, reading_refused, recv, store_skipped_offsets,
    to_record,
};
use crate::batch::{Batch, BatchBuilder, HeaderScratch, PolledRecord, Rejected};
use crate::config::Ordering;
use crate::consumer::PartitionQueue;
use crate::delivery::{Deliverer, Delivery, LaneReport};
use crate::internal_events::{InternalEvent, RecordReceived};
use crate::invoke::Invoker;
use crate::window::{Lane, Lanes, Offered, Window};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use rdkafka::Message;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The worker loop of one partition read by key (or in no order).
pub(super) async fn run<I: Invoker>(assigned: &Assigned<I>, queue: PartitionQueue) {
    let (shared, topic, partition) = (&assigned.shared, &assigned.topic, assigned.partition);
    let lanes = Lanes::new(shared.mapping.ordering == Ordering::Key);
    let m = &shared.mapping;
    let deliverer = &shared.deliverer;
    let metrics = &deliverer.metrics;
    let give_up = GiveUp::of(assigned);
    let mut window = Window::default();
    let mut headers = HeaderScratch::default();
    // As in partition order: records below it were taken already, and are dropped.
    let mut next_offset = i64::MIN;
    let mut idle_position: Option<i64> = None;
    let mut stored: Option<i64> = None;
    // Lanes of the batches in flight, by the number their delivery reports them by.
    let mut numbered: HashMap<usize, Lane> = HashMap::new();
    let mut next_number = 0usize;
    let (report, mut reports) = unbounded_channel::<LaneReport>();
    let mut deliveries = FuturesUnordered::new();
    // The batching window of the records waiting now.
    let mut deadline: Option<Instant> = None;
    let mut stopping = false;
    'work: loop {
        // Batches, while records wait in free lanes and a batch is due: as many records ready
        // as a batch takes, or its window over. Counting records whose lane is busy would cut
        // a full batch into many small ones, each holding an invocation for a few records.
        while !stopping && window.has_ready() {
            let at = *deadline.get_or_insert_with(|| Instant::now() + m.batching_window);
            let due = window.ready() >= m.batch_size || Instant::now() >= at;
            if !due {
                break;
            }
            let mut builder =
                BatchBuilder::growing(deliverer.header(), m.batch_size, m.max_payload_bytes);
            let mut too_large = HashMap::new();
            let (taken, refused) = window.next_batch(|r| {
                match builder.try_add(&r.as_record_ref(topic, partition), r.original()) {
                    Ok(()) => Offered::Taken,
                    Err(Rejected::Full) => Offered::Full,
                    Err(Rejected::TooLarge { payload_bytes }) => {
                        too_large.insert(r.offset, payload_bytes);
                        Offered::Refused
                    }
                }
            });
            for record in refused {
                let offset = record.offset;
                let lane = lanes.of(record.key.as_deref(), offset);
                let bytes = too_large.get(&offset).copied().unwrap_or_default();
                if give_up.too_large(record, bytes).await.is_none() {
                    break 'work;
                }
                window.done([offset]);
                window.release(lane);
            }
            if taken.is_empty() {
                continue;
            }
            let mut numbers: HashMap<Lane, usize> = HashMap::new();
            let lane_numbers: Vec<usize> = taken
                .iter()
                .map(|(lane, _)| {
                    *numbers.entry(*lane).or_insert_with(|| {
                        let n = next_number;
                        next_number += 1;
                        numbered.insert(n, *lane);
                        n
                    })
                })
                .collect();
            deliveries.push(deliver(
                deliverer,
                topic,
                partition,
                builder.finish_covering(None),
                lane_numbers,
                &assigned.control.abort,
                report.clone(),
            ));
            deadline = None;
        }
        if stopping || !window.has_ready() {
            // No batch to make: no window to wait for (its timer would fire at once, forever).
            deadline = None;
        }
        if let Some(committable) = window.committable()
            && stored.is_none_or(|s| committable > s)
        {
            shared.offsets.store(topic, partition, committable);
            stored = Some(committable);
        }
        if stopping && deliveries.is_empty() {
            // Records still waiting were in no batch: the partition's next owner reads them.
            break;
        }
        let room = !stopping && window.len() < m.max_records_in_flight_per_partition;
        let idle = !stopping && window.len() == 0 && deliveries.is_empty();
        tokio::select! {
            biased;
            _ = assigned.control.stop.cancelled(), if !stopping => stopping = true,
            Some(r) = reports.recv() => match r {
                LaneReport::Done(offsets) => window.done(offsets),
                LaneReport::Released(n) => {
                    if let Some(lane) = numbered.remove(&n) {
                        window.release(lane);
                    }
                }
            },
            Some(delivered) = deliveries.next(), if !deliveries.is_empty() => {
                if delivered == Delivery::Abandoned {
                    break 'work;
                }
            }
            first = recv(&queue), if room => {
                let mut received = Some(first);
                while let Some(msg) = received.take() {
                    let msg = match msg {
                        Ok(msg) => msg,
                        Err(e) => {
                            if !reading_refused(shared, topic, &e) {
                                tracing::warn!(error = %e, "error reading the partition; retrying");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                            break;
                        }
                    };
                    let offset = msg.offset();
                    if offset >= next_offset {
                        next_offset = offset + 1;
                        idle_position = None;
                        RecordReceived.emit(metrics);
                        let view = give_up.view(&msg, &mut headers);
                        match give_up.admit(&msg, &view).await {
                            Taken::Finished(offset) => window.skip(offset),
                            Taken::Aborted => break 'work,
                            Taken::Invoke(rewritten) => {
                                let (record, original) = to_record(&msg, &view, &rewritten);
                                let record = PolledRecord::from_ref(&record, original);
                                window.take(record, lanes.of(view.key, offset));
                            }
                        }
                    }
                    // A backlog: take what is waiting already, while there is room.
                    if window.len() < m.max_records_in_flight_per_partition
                        && !assigned.control.stop.is_cancelled()
                    {
                        received = queue.recv().now_or_never();
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {}
            _ = tokio::time::sleep(IDLE_GAP_CHECK_INTERVAL), if idle => {
                let before = next_offset;
                store_skipped_offsets(&shared.offsets, topic, partition, &mut next_offset, &mut idle_position).await;
                if next_offset != before {
                    window.skip(next_offset - 1);
                    stored = Some(next_offset - 1);
                }
            }
        }
    }
    tracing::debug!("partition worker stopped");
    drop(deliveries);
    drop(queue);
}

/// One batch of several lanes, delivered; its progress goes to `report`.
async fn deliver<I: Invoker>(
    deliverer: &Deliverer<I>,
    topic: &str,
    partition: i32,
    batch: Batch,
    lanes: Vec<usize>,
    abort: &CancellationToken,
    report: UnboundedSender<LaneReport>,
) -> Delivery {
    deliverer
        .deliver_lanes(topic, partition, batch, &lanes, abort, &report)
        .await
}
