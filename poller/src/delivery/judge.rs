//! What an invocation's result means: a success, a partial batch response naming records (or
//! one that cannot be trusted), a function error, or an invocation that did not run the
//! function — reported as it is judged.

use super::plan::{NotRun, Outcome};
use super::{Deliverer, Segment};
use crate::batch::BatchRecord;
use crate::deadletter::FailureInfo;
use crate::internal_events::{
    FunctionFailed, InternalEvent, ItemFailuresIgnored, MalformedBatchResponse, PartialBatchFailure,
};
use crate::invoke::{InvokeOutcome, Invoker};
use kafka_lambda_events::KafkaBatchResponse;
use std::sync::atomic::Ordering;

impl<I: Invoker> Deliverer<I> {
    /// What an invocation's result means for the plan, reported as it is judged.
    pub(super) fn judge(
        &self,
        topic: &str,
        partition: i32,
        seg: &Segment,
        invoked: InvokeOutcome,
    ) -> Judged {
        let offsets = seg.offsets();
        let attempt = seg.tries.attempts + 1;
        let failed = |error_type: &str, message: String| FailureInfo {
            error_type: error_type.to_owned(),
            message,
            attempts: attempt,
        };
        match invoked {
            InvokeOutcome::Success { payload } if self.report_batch_item_failures => {
                match failed_offsets(&payload, topic, partition, &seg.records) {
                    Ok(failed_offsets) if failed_offsets.is_empty() => Judged::delivered(),
                    Ok(failed_offsets) => {
                        let failed_offset = failed_offsets[0];
                        PartialBatchFailure {
                            offsets,
                            failed_offset,
                            attempt,
                        }
                        .emit(&self.metrics);
                        let done = seg.records.partition_point(|r| r.offset < failed_offset);
                        let info = failed(
                            "PartialBatchFailure",
                            format!(
                                "the function reported record {topic}-{partition}@{failed_offset} as failed"
                            ),
                        );
                        Judged {
                            outcome: Outcome::RecordFailed { done },
                            failure: Some(info),
                            failed_offsets,
                        }
                    }
                    Err(problem) => {
                        MalformedBatchResponse {
                            offsets,
                            attempt,
                            problem: &problem,
                        }
                        .emit(&self.metrics);
                        let info = failed("MalformedBatchResponse", problem);
                        Judged::failed(Outcome::UnreadableResponse, info)
                    }
                }
            }
            InvokeOutcome::Success { payload } => {
                if reports_item_failures(&payload)
                    && !self
                        .ignored_item_failures_logged
                        .swap(true, Ordering::Relaxed)
                {
                    ItemFailuresIgnored { offsets }.emit(&self.metrics);
                }
                Judged::delivered()
            }
            InvokeOutcome::FunctionError {
                error_type,
                message,
            } => {
                FunctionFailed {
                    offsets,
                    attempt,
                    error_type: &error_type,
                    message: &message,
                }
                .emit(&self.metrics);
                Judged::failed(Outcome::FunctionError, failed(&error_type, message))
            }
            InvokeOutcome::Throttled { .. } => Judged::not_run(NotRun::Throttled),
            InvokeOutcome::Transient { .. } => Judged::not_run(NotRun::Transient),
            InvokeOutcome::Permanent { .. } => Judged::not_run(NotRun::Permanent),
        }
    }
}

/// An invocation's result, judged.
pub(super) struct Judged {
    /// What it means for the plan.
    pub(super) outcome: Outcome,
    /// What a dead letter would say of it (`None` when nothing failed).
    pub(super) failure: Option<FailureInfo>,
    /// The offsets a partial batch response named as failed, in order.
    pub(super) failed_offsets: Vec<i64>,
}

impl Judged {
    fn delivered() -> Self {
        Judged {
            outcome: Outcome::Delivered,
            failure: None,
            failed_offsets: Vec::new(),
        }
    }

    fn failed(outcome: Outcome, failure: FailureInfo) -> Self {
        Judged {
            outcome,
            failure: Some(failure),
            failed_offsets: Vec::new(),
        }
    }

    fn not_run(why: NotRun) -> Self {
        Judged {
            outcome: Outcome::NotRun(why),
            failure: None,
            failed_offsets: Vec::new(),
        }
    }
}

/// The offsets of `records` the function reported as failed, in order (none: all done), or why
/// the response cannot be trusted.
fn failed_offsets(
    response: &[u8],
    topic: &str,
    partition: i32,
    records: &[BatchRecord],
) -> Result<Vec<i64>, String> {
    let parsed = KafkaBatchResponse::from_payload(response).map_err(|e| e.to_string())?;
    let mut failed = Vec::with_capacity(parsed.batch_item_failures.len());
    for failure in &parsed.batch_item_failures {
        let id = &failure.item_identifier;
        let in_segment = id.topic == topic
            && id.partition == partition
            && records
                .binary_search_by_key(&id.offset, |r| r.offset)
                .is_ok();
        if !in_segment {
            return Err(format!(
                "batchItemFailures names {id}, which is not a record of this batch"
            ));
        }
        failed.push(id.offset);
    }
    failed.sort_unstable();
    failed.dedup();
    Ok(failed)
}

/// Whether a function's response is a partial batch response naming at least one record.
fn reports_item_failures(response: &[u8]) -> bool {
    // Most responses are small and say nothing of failures: look before parsing.
    const KEY: &[u8] = b"batchItemFailures";
    if !response.windows(KEY.len()).any(|window| window == KEY) {
        return false;
    }
    serde_json::from_slice::<serde_json::Value>(response).is_ok_and(|value| {
        value
            .get("batchItemFailures")
            .and_then(serde_json::Value::as_array)
            .is_some_and(|failures| !failures.is_empty())
    })
}
