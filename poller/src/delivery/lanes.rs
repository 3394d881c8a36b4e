//! Delivering a batch whose records belong to several lanes (`ordering = "key"` or `"none"`):
//! one invocation for them all; after a failure, each failed lane goes on alone, concurrently,
//! so that a failing record holds back only its own lane.
//!
//! A partial batch response names records: a named record and the later records *of its lane*
//! are not done, every other record is. A function error names none: every lane is retried on
//! its own (which also narrows the failure down to a lane before any bisecting).

use super::judge::Judged;
use super::plan::{Outcome, Step, Tries, not_run, plan};
use super::{Deliverer, Delivery, Segment, pause, polled};
use crate::batch::{Batch, BatchRecord, encode_part};
use crate::internal_events::{InternalEvent, RecordsDelivered};
use crate::invoke::Invoker;
use bytes::Bytes;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

/// What a lanes delivery reports while it runs, for the worker's look-ahead.
#[derive(Debug)]
pub(crate) enum LaneReport {
    /// These records are finished (delivered, dead-lettered or skipped by policy).
    Done(Vec<i64>),
    /// The lane with this number (as given in `lanes`) has nothing in flight any more.
    Released(usize),
}

impl<I: Invoker> Deliverer<I> {
    /// Delivers `batch` whose record `i` belongs to the lane numbered `lanes[i]`, reporting records
    /// done and lanes released through `report` as they are. Returns once every record is
    /// finished, or the worker is aborted.
    pub(crate) async fn deliver_lanes(
        &self,
        topic: &str,
        partition: i32,
        batch: Batch,
        lanes: &[usize],
        abort: &CancellationToken,
        report: &UnboundedSender<LaneReport>,
    ) -> Delivery {
        let Batch {
            records, payload, ..
        } = batch;
        let source = Bytes::from(payload);
        let send = |r: LaneReport| {
            // The worker outlives its deliveries; a closed channel means it is gone anyway.
            let _ = report.send(r);
        };
        let mut seg = Segment {
            end: records.last().map_or(-1, |r| r.offset),
            records,
            payload: Some(source.clone()),
            tries: Tries::default(),
        };
        // The first invocation, for every lane together; retried as a whole while it does not
        // run the function.
        let judged = loop {
            let payload = seg.payload.clone().unwrap_or_else(|| source.clone());
            let Some(invoked) = self.invoke(&seg, payload, abort).await else {
                return Delivery::Abandoned;
            };
            let judged = self.judge(topic, partition, &seg, invoked);
            match judged.outcome {
                Outcome::NotRun(why) => {
                    let (wait, tries) = not_run(&self.policy, seg.tries, why);
                    seg.tries = tries;
                    if !pause(abort, wait).await {
                        return Delivery::Abandoned;
                    }
                }
                _ => break judged,
            }
        };
        let Judged {
            outcome,
            failure,
            failed_offsets,
        } = judged;
        // Each lane's records, lanes in the order of their first record.
        // (A batch may hold thousands of keys: each is looked up, not searched for.)
        let mut by_lane: Vec<(usize, Vec<BatchRecord>)> = Vec::new();
        let mut index: std::collections::HashMap<usize, usize> = Default::default();
        for (record, lane) in seg.records.into_iter().zip(lanes) {
            let at = *index.entry(*lane).or_insert_with(|| {
                by_lane.push((*lane, Vec::new()));
                by_lane.len() - 1
            });
            by_lane[at].1.push(record);
        }
        let mut failed_lanes = Vec::new();
        let mut done = Vec::new();
        for (lane, records) in by_lane {
            let failed_at = match outcome {
                Outcome::Delivered => None,
                Outcome::RecordFailed { .. } => records
                    .iter()
                    .position(|r| failed_offsets.binary_search(&r.offset).is_ok()),
                _ => Some(0),
            };
            let cut = failed_at.unwrap_or(records.len());
            done.extend(records[..cut].iter().map(|r| r.offset));
            if cut < records.len() {
                failed_lanes.push((lane, records[cut..].to_vec()));
            } else {
                send(LaneReport::Released(lane));
            }
        }
        if !done.is_empty() {
            RecordsDelivered { count: done.len() }.emit(&self.metrics);
            send(LaneReport::Done(done));
        }
        let tries = seg.tries;
        let lane_outcome = match outcome {
            Outcome::RecordFailed { .. } => Outcome::RecordFailed { done: 0 },
            other => other,
        };
        let failure = failure.unwrap_or_else(|| super::unreachable_failure(outcome));
        let alone = failed_lanes.into_iter().map(|(lane, records)| {
            let failure = failure.clone();
            let source = &source;
            async move {
                let delivered = self
                    .deliver_lane(
                        topic,
                        partition,
                        source,
                        records,
                        (tries, lane_outcome, failure),
                        abort,
                        report,
                    )
                    .await;
                if delivered == Delivery::Done {
                    let _ = report.send(LaneReport::Released(lane));
                }
                delivered
            }
        });
        let ended = futures::future::join_all(alone).await;
        if ended.contains(&Delivery::Abandoned) {
            Delivery::Abandoned
        } else {
            Delivery::Done
        }
    }

    /// One failed lane, alone: what the plan says of its failure, then its records delivered as
    /// a batch of their own.
    #[expect(
        clippy::too_many_arguments,
        reason = "the lane's place (topic, partition, source), its records and failure, and the worker's handles"
    )]
    async fn deliver_lane(
        &self,
        topic: &str,
        partition: i32,
        source: &Bytes,
        mut records: Vec<BatchRecord>,
        (tries, outcome, failure): (Tries, Outcome, super::FailureInfo),
        abort: &CancellationToken,
        report: &UnboundedSender<LaneReport>,
    ) -> Delivery {
        let end = records.last().map_or(-1, |r| r.offset);
        let tries = match plan(&self.policy, tries, records.len(), outcome) {
            Step::Done => {
                let _ = report.send(LaneReport::Done(records.iter().map(|r| r.offset).collect()));
                return Delivery::Done;
            }
            Step::Bisect { tries } => tries,
            Step::Retry { wait, tries, .. } => {
                if !pause(abort, wait).await {
                    return Delivery::Abandoned;
                }
                tries
            }
            Step::GiveUp { give_up, tries, .. } => {
                let rest = records.split_off(give_up.min(records.len()));
                let failure = super::FailureInfo {
                    attempts: tries.attempts,
                    ..failure
                };
                let given_up = polled(source, &records);
                if self
                    .give_up(topic, partition, &given_up, &failure, abort)
                    .await
                    == Delivery::Abandoned
                {
                    return Delivery::Abandoned;
                }
                let _ = report.send(LaneReport::Done(records.iter().map(|r| r.offset).collect()));
                records = rest;
                tries
            }
        };
        if records.is_empty() {
            return Delivery::Done;
        }
        let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
        let first = Segment {
            payload: Some(Bytes::from(encode_part(
                &self.header,
                topic,
                partition,
                source,
                &records,
            ))),
            records,
            end,
            tries,
        };
        // `done(o)`: every record of this lane up to `o` is finished.
        let mut reported = 0;
        let mut done = |upto: i64| {
            let now = offsets.partition_point(|o| *o <= upto);
            if now > reported {
                let _ = report.send(LaneReport::Done(offsets[reported..now].to_vec()));
                reported = now;
            }
        };
        self.run_segments(topic, partition, source, first, abort, &mut done)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::tests::{batch, error, ok, shared};
    use crate::invoke::InvokeOutcome;

    /// Runs a lanes delivery of offsets 0..n where record `o` is in lane `lane(o)`; returns
    /// the records reported done in report order and the lanes released.
    async fn run(
        extra: &str,
        n: i64,
        lane: impl Fn(i64) -> usize,
        script: impl Fn(usize, &[i64]) -> InvokeOutcome + Send + Sync + 'static,
    ) -> (Delivery, Vec<i64>, Vec<usize>, Vec<Vec<i64>>) {
        let s = shared(extra, script);
        let lanes: Vec<usize> = (0..n).map(&lane).collect();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let delivery = s
            .deliver_lanes(
                "t",
                0,
                batch(&s, 0..n),
                &lanes,
                &CancellationToken::new(),
                &tx,
            )
            .await;
        drop(tx);
        let (mut done, mut released) = (Vec::new(), Vec::new());
        while let Some(r) = rx.recv().await {
            match r {
                LaneReport::Done(offsets) => done.extend(offsets),
                LaneReport::Released(lane) => released.push(lane),
            }
        }
        released.sort_unstable();
        let calls = s.invoker.calls.lock().unwrap().clone();
        (delivery, done, released, calls)
    }

    /// [`run`] over offsets 0..6 in two lanes (even and odd) where every invocation holding
    /// record 4 fails with a function error; the records done come back sorted.
    async fn run_with_poison_4(extra: &str) -> (Delivery, Vec<i64>, Vec<usize>, Vec<Vec<i64>>) {
        let (delivery, mut done, released, calls) = run(
            extra,
            6,
            |o| (o % 2) as usize,
            |_, offsets| if offsets.contains(&4) { error() } else { ok() },
        )
        .await;
        done.sort_unstable();
        (delivery, done, released, calls)
    }

    #[tokio::test]
    async fn a_delivered_batch_finishes_every_lane_at_once() {
        let (delivery, done, released, calls) = run("", 6, |o| (o % 3) as usize, |_, _| ok()).await;
        assert_eq!(delivery, Delivery::Done);
        assert_eq!(done, [0, 3, 1, 4, 2, 5], "lane by lane");
        assert_eq!(released, [0, 1, 2]);
        assert_eq!(calls.len(), 1);
    }

    #[tokio::test]
    async fn a_failed_record_holds_back_only_the_later_records_of_its_lane() {
        // Lanes: even and odd offsets. Record 2 (even) fails in the first response only.
        let (delivery, done, released, calls) = run(
            "report_batch_item_failures = true",
            6,
            |o| (o % 2) as usize,
            |n, _| match n {
                0 => InvokeOutcome::Success {
                    payload: br#"{"batchItemFailures":[{"itemIdentifier":"t-0-2"}]}"#.to_vec(),
                },
                _ => ok(),
            },
        )
        .await;
        assert_eq!(delivery, Delivery::Done);
        assert_eq!(calls[0], [0, 1, 2, 3, 4, 5]);
        assert_eq!(
            calls[1],
            [2, 4],
            "the even lane from its failed record on, alone"
        );
        let mut sorted = done.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 1, 2, 3, 4, 5]);
        assert!(
            done.iter().position(|o| *o == 3) < done.iter().position(|o| *o == 2),
            "the odd lane is done before the retry: {done:?}"
        );
        assert_eq!(released, [0, 1]);
    }

    #[tokio::test]
    async fn a_function_error_retries_each_lane_alone_and_gives_up_only_the_poison_lane() {
        // Record 4 (lane 0 of 0, 2, 4) always fails; the other lane succeeds alone.
        let (delivery, done, _, calls) = run_with_poison_4("max_retry_attempts = 1").await;
        assert_eq!(delivery, Delivery::Done);
        assert_eq!(
            done,
            [0, 1, 2, 3, 4, 5],
            "given up (skipped) counts as done"
        );
        assert!(calls.contains(&vec![1, 3, 5]), "{calls:?}");
        assert_eq!(
            calls.iter().filter(|c| c.contains(&4)).count(),
            2,
            "the batch once, then lane 0 alone once more (max_retry_attempts = 1): {calls:?}"
        );
    }

    #[tokio::test]
    async fn a_failed_lane_is_bisected_on_its_own_down_to_the_poison_record() {
        let (delivery, done, _, calls) =
            run_with_poison_4("bisect_batch_on_function_error = true\nmax_retry_attempts = 0")
                .await;
        assert_eq!(delivery, Delivery::Done);
        assert_eq!(done, [0, 1, 2, 3, 4, 5]);
        assert!(calls.contains(&vec![4]), "4 invoked alone: {calls:?}");
        assert!(
            calls
                .iter()
                .all(|c| !c.contains(&4) || c.iter().all(|o| o % 2 == 0) || c.len() == 6),
            "after the first batch, 4 is only ever invoked with records of its own lane: {calls:?}"
        );
        assert!(
            calls.contains(&vec![1, 3, 5]),
            "the other lane alone: {calls:?}"
        );
    }

    #[tokio::test]
    async fn record_age_is_checked_per_lane_before_its_retry() {
        // The test batch's records are from 2023: older than any max_record_age_s.
        let (delivery, done, released, calls) = run_with_poison_4("max_record_age_s = 60").await;
        assert_eq!(delivery, Delivery::Done);
        assert_eq!(done, [0, 1, 2, 3, 4, 5], "given up (skipped) once too old");
        assert_eq!(calls.len(), 1, "no lane is invoked again: {calls:?}");
        assert_eq!(released, [0, 1]);
    }
}
