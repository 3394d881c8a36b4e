//! Delivering one batch whatever happens: the driver that performs what [`plan`] decides —
//! invocations under the mapping's concurrency limit, backoff waits, bisecting, partial batch
//! responses, record age, and the on-failure destination. [`Deliverer::deliver`] returns only
//! when every record of the batch is delivered, dead-lettered or skipped by policy — or when the
//! worker is aborted (then nothing after the last finished segment is marked done).
//!
//! A batch is worked as a queue of *segments* in offset order: the whole batch first; a failing
//! segment may be split in two (bisect) or cut at a failed record (partial response). Segments
//! finish strictly in order, so "done" offsets only ever advance contiguously.

mod judge;
mod lanes;
mod plan;
#[cfg(test)]
mod tests;

pub(crate) use lanes::LaneReport;

use crate::access::{AccessDenied, Denied, Principal};
use crate::batch::{Batch, BatchRecord, EventHeader, PolledRecord, encode_part};
use crate::config::Mapping;
use crate::deadletter::{DeadLetterProducer, FailureInfo, write_problem};
use crate::internal_events::{
    BatchBisected, BatchInvoked, DeadLetterWriteFailed, GivenUp, InternalEvent, OffsetRange,
    RecordsDeadLettered, RecordsDelivered, RecordsSkipped,
};
use crate::invoke::{InvokeOutcome, Invoker};
use crate::telemetry::{Health, MappingMetrics};
use bytes::Bytes;
use judge::Judged;
use plan::{Outcome, Policy, Step, Tries, plan};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// How a batch's delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Every record is delivered, dead-lettered or skipped by policy.
    Done,
    /// The worker was aborted first; only offsets reported through `done` are done.
    Abandoned,
}

/// What delivering a mapping's batches needs: the function, the policy, the on-failure
/// destination. Shared by the mapping's partition workers.
pub(crate) struct Deliverer<I> {
    policy: Policy,
    report_batch_item_failures: bool,
    /// The event's top-level fields, for re-encoding parts of a batch.
    header: EventHeader,
    /// The function.
    pub invoker: I,
    /// Caps concurrent invocations across the mapping's partitions (`max_concurrency`).
    in_flight: Semaphore,
    /// The on-failure destination, when configured.
    dead_letter: Option<DeadLetterProducer>,
    /// Metric handles.
    pub metrics: MappingMetrics,
    /// Who the mapping authenticates as, to name in an access error.
    principal: Principal,
    /// Readiness, which a partition stuck on its on-failure destination turns off.
    pub health: Arc<Health>,
    /// Set once a `batchItemFailures` list was ignored (`report_batch_item_failures = false`),
    /// so that the warning is logged once per mapping, not once per batch.
    ignored_item_failures_logged: AtomicBool,
}

/// The mapping's resources a [`Deliverer`] is made of.
pub(crate) struct Resources<I> {
    pub header: EventHeader,
    pub invoker: I,
    pub dead_letter: Option<DeadLetterProducer>,
    pub metrics: MappingMetrics,
    pub principal: Principal,
    pub health: Arc<Health>,
}

struct Segment {
    /// The records, their JSON in the batch's payload.
    records: Vec<BatchRecord>,
    /// Last offset this segment covers (its records, plus any filtered or given up already).
    end: i64,
    /// Encoded payload, when already known (the whole batch, or the same records again).
    payload: Option<Bytes>,
    tries: Tries,
}

impl Segment {
    fn offsets(&self) -> OffsetRange {
        OffsetRange {
            first_offset: self.records.first().map_or(-1, |r| r.offset),
            last_offset: self.last_offset(),
        }
    }

    fn last_offset(&self) -> i64 {
        self.records.last().map_or(-1, |r| r.offset)
    }

    /// Takes the first `n` records off as done: returns the last offset they cover.
    fn finish_first(&mut self, n: usize) -> Option<i64> {
        let last = self.records.get(n.checked_sub(1)?)?.offset;
        self.records.drain(..n);
        self.payload = None;
        Some(last)
    }
}

impl<I: Invoker> Deliverer<I> {
    /// The deliverer of `mapping`'s batches.
    pub(crate) fn new(mapping: &Mapping, resources: Resources<I>) -> Self {
        let Resources {
            header,
            invoker,
            dead_letter,
            metrics,
            principal,
            health,
        } = resources;
        Deliverer {
            policy: Policy {
                max_retry_attempts: mapping.max_retry_attempts,
                bisect: mapping.bisect_batch_on_function_error,
                backoff: crate::backoff::Backoff {
                    base: mapping.retry_backoff_base,
                    max: mapping.retry_backoff_max,
                },
                max_record_age: mapping.max_record_age,
            },
            report_batch_item_failures: mapping.report_batch_item_failures,
            header,
            invoker,
            in_flight: Semaphore::new(mapping.max_concurrency),
            dead_letter,
            metrics,
            principal,
            health,
            ignored_item_failures_logged: AtomicBool::new(false),
        }
    }

    /// The on-failure destination, when configured.
    pub(crate) fn dead_letter(&self) -> Option<&DeadLetterProducer> {
        self.dead_letter.as_ref()
    }

    /// The event's top-level fields.
    pub(crate) fn header(&self) -> &EventHeader {
        &self.header
    }

    /// Delivers `batch` of `topic`-`partition`; `done(offset)` is called each time every record
    /// up to `offset` is finished. Once delivered, the batch's payload buffer is handed back
    /// through `spare` (when nothing else holds it any more), for the next batch.
    pub(crate) async fn deliver(
        &self,
        topic: &str,
        partition: i32,
        batch: Batch,
        abort: &CancellationToken,
        spare: &mut Option<Vec<u8>>,
        mut done: impl FnMut(i64),
    ) -> Delivery {
        let Batch {
            records,
            payload,
            end,
        } = batch;
        // The batch's payload, shared with the invocation (no copy), and the source every
        // retried part of it is copied from (no record is encoded twice).
        let source = Bytes::from(payload);
        let first = Segment {
            end,
            records,
            payload: Some(source.clone()),
            tries: Tries::default(),
        };
        if self
            .run_segments(topic, partition, &source, first, abort, &mut done)
            .await
            == Delivery::Abandoned
        {
            return Delivery::Abandoned;
        }
        // Emptied first: converting keeps the capacity, and would otherwise move the bytes.
        *spare = source.try_into_mut().ok().map(|mut buf| {
            buf.clear();
            Vec::from(buf)
        });
        Delivery::Done
    }

    /// Works `first` and the segments it becomes until every record is finished (or the
    /// worker is aborted); `done(offset)` as in [`deliver`](Self::deliver).
    async fn run_segments(
        &self,
        topic: &str,
        partition: i32,
        source: &Bytes,
        first: Segment,
        abort: &CancellationToken,
        done: &mut impl FnMut(i64),
    ) -> Delivery {
        let mut segments = VecDeque::from([first]);
        while let Some(mut seg) = segments.pop_front() {
            if self.policy.checks_age(seg.tries) {
                let now = now_ms();
                let (expired, fresh): (Vec<_>, Vec<_>) = std::mem::take(&mut seg.records)
                    .into_iter()
                    .partition(|r| self.policy.expired(r.timestamp, now));
                if !expired.is_empty() {
                    let max_age = self.policy.max_record_age.unwrap_or_default();
                    let info = FailureInfo {
                        error_type: "RecordAgeExceeded".to_owned(),
                        message: format!(
                            "record older than max_record_age_s = {}",
                            max_age.as_secs()
                        ),
                        attempts: seg.tries.attempts,
                    };
                    let expired = polled(source, &expired);
                    if self.give_up(topic, partition, &expired, &info, abort).await
                        == Delivery::Abandoned
                    {
                        return Delivery::Abandoned;
                    }
                    seg.payload = None;
                }
                seg.records = fresh;
            }
            if seg.records.is_empty() {
                done(seg.end);
                continue;
            }
            let payload = seg.payload.take().unwrap_or_else(|| {
                Bytes::from(encode_part(
                    &self.header,
                    topic,
                    partition,
                    source,
                    &seg.records,
                ))
            });
            let Some(invoked) = self.invoke(&seg, payload.clone(), abort).await else {
                return Delivery::Abandoned;
            };
            let Judged {
                outcome, failure, ..
            } = self.judge(topic, partition, &seg, invoked);
            match plan(&self.policy, seg.tries, seg.records.len(), outcome) {
                Step::Done => {
                    RecordsDelivered {
                        count: seg.records.len(),
                    }
                    .emit(&self.metrics);
                    done(seg.end);
                }
                Step::Bisect { tries } => {
                    let offsets = seg.offsets();
                    let right = seg.records.split_off(seg.records.len() / 2);
                    BatchBisected {
                        offsets,
                        left: seg.records.len(),
                        right: right.len(),
                    }
                    .emit(&self.metrics);
                    let left_end = seg.last_offset();
                    segments.push_front(Segment {
                        records: right,
                        end: seg.end,
                        payload: None,
                        tries,
                    });
                    segments.push_front(Segment {
                        records: seg.records,
                        end: left_end,
                        payload: None,
                        tries,
                    });
                }
                Step::Retry {
                    done: finished,
                    wait,
                    tries,
                } => {
                    self.finish_first(&mut seg, finished, done);
                    if finished == 0 {
                        // The same records: the same payload.
                        seg.payload = Some(payload);
                    }
                    seg.tries = tries;
                    if !pause(abort, wait).await {
                        return Delivery::Abandoned;
                    }
                    segments.push_front(seg);
                }
                Step::GiveUp {
                    done: finished,
                    give_up,
                    tries,
                } => {
                    self.finish_first(&mut seg, finished, done);
                    let rest = seg.records.split_off(give_up.min(seg.records.len()));
                    let failure = FailureInfo {
                        attempts: tries.attempts,
                        ..failure.unwrap_or_else(|| unreachable_failure(outcome))
                    };
                    let given_up = polled(source, &seg.records);
                    if self
                        .give_up(topic, partition, &given_up, &failure, abort)
                        .await
                        == Delivery::Abandoned
                    {
                        return Delivery::Abandoned;
                    }
                    if rest.is_empty() {
                        done(seg.end);
                    } else {
                        done(seg.last_offset());
                        segments.push_front(Segment {
                            records: rest,
                            end: seg.end,
                            payload: None,
                            tries,
                        });
                    }
                }
            }
        }
        Delivery::Done
    }

    /// Marks the segment's first `n` records done (delivered by the function).
    fn finish_first(&self, seg: &mut Segment, n: usize, done: &mut impl FnMut(i64)) {
        if let Some(last) = seg.finish_first(n) {
            RecordsDelivered { count: n }.emit(&self.metrics);
            done(last);
        }
    }

    /// One invocation under the mapping's concurrency limit; `None` when aborted.
    async fn invoke(
        &self,
        seg: &Segment,
        payload: Bytes,
        abort: &CancellationToken,
    ) -> Option<InvokeOutcome> {
        let _permit = tokio::select! {
            biased;
            _ = abort.cancelled() => return None,
            p = self.in_flight.acquire() => p.ok()?,
        };
        let bytes = payload.len();
        self.metrics.in_flight.increment(1.0);
        let started = Instant::now();
        let outcome = tokio::select! {
            biased;
            _ = abort.cancelled() => None,
            o = self.invoker.invoke(payload) => Some(o),
        };
        self.metrics.in_flight.decrement(1.0);
        let outcome = outcome?;
        BatchInvoked {
            offsets: seg.offsets(),
            records: seg.records.len(),
            bytes,
            attempt: seg.tries.attempts,
            hiccups: seg.tries.hiccups,
            elapsed: started.elapsed(),
            outcome: &outcome,
        }
        .emit(&self.metrics);
        Some(outcome)
    }

    /// Gives up records: writes them to the on-failure destination (retrying until the broker
    /// acknowledges: the partition blocks rather than lose them), or skips them with an error
    /// log when no destination is configured.
    pub(crate) async fn give_up(
        &self,
        topic: &str,
        partition: i32,
        records: &[PolledRecord],
        failure: &FailureInfo,
        abort: &CancellationToken,
    ) -> Delivery {
        let offsets = OffsetRange {
            first_offset: records.first().map_or(-1, |r| r.offset),
            last_offset: records.last().map_or(-1, |r| r.offset),
        };
        let given_up = GivenUp {
            offsets,
            records: records.len(),
            attempts: failure.attempts,
            error_type: &failure.error_type,
            message: &failure.message,
        };
        let Some(destination) = &self.dead_letter else {
            RecordsSkipped(given_up).emit(&self.metrics);
            return Delivery::Done;
        };
        let function = self.invoker.function();
        let mut attempt = 0;
        // Held while the partition waits for the destination: `/readyz` reports it.
        let mut stuck = None;
        loop {
            let sent = tokio::select! {
                biased;
                _ = abort.cancelled() => return Delivery::Abandoned,
                sent = destination.send(topic, partition, function, records, failure) => sent,
            };
            let Err(error) = sent else {
                RecordsDeadLettered {
                    given_up,
                    destination: destination.topic(),
                }
                .emit(&self.metrics);
                return Delivery::Done;
            };
            stuck.get_or_insert_with(|| self.health.stuck_partition());
            let bytes = records
                .iter()
                .map(|r| DeadLetterProducer::written_size(r, failure))
                .max()
                .unwrap_or(0);
            let (reason, fix) = write_problem(&error, destination.topic(), bytes);
            let fix = match error.rdkafka_error_code().and_then(Denied::of) {
                Some(_) => AccessDenied::WriteDeadLetter {
                    topic: destination.topic().to_owned(),
                    principal: self.principal.clone(),
                }
                .to_string(),
                None => fix,
            };
            DeadLetterWriteFailed {
                offsets,
                destination: destination.topic(),
                attempt,
                error: &error,
                reason,
                fix: &fix,
            }
            .emit(&self.metrics);
            if !pause(abort, self.policy.backoff.delay(attempt)).await {
                return Delivery::Abandoned;
            }
            attempt += 1;
        }
    }
}

/// A give-up step follows only an outcome that failed, which always comes with its
/// [`FailureInfo`]; should one ever not, the dead letter still says what was decided.
fn unreachable_failure(outcome: Outcome) -> FailureInfo {
    FailureInfo {
        error_type: "GivenUp".to_owned(),
        message: format!("given up after {outcome:?}"),
        attempts: 0,
    }
}

/// Records of the batch read back from `source` (its payload), for the on-failure destination.
fn polled(source: &[u8], records: &[BatchRecord]) -> Vec<PolledRecord> {
    records.iter().map(|r| r.to_polled(source)).collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Waits `delay` unless the worker is aborted first (then `false`). A stopped worker waits on:
/// the drain window covers the batch in flight, backoff waits included.
async fn pause(abort: &CancellationToken, delay: Duration) -> bool {
    tokio::select! {
        biased;
        _ = abort.cancelled() => false,
        _ = tokio::time::sleep(delay) => true,
    }
}
