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
use kafka_lambda_events::{ItemIdentifier, KafkaBatchResponse};
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
/// the response cannot be trusted. An identifier that cannot be read, or that names a record not
/// in `records`, fails the batch as AWS fails it for streams; the reason quotes the identifier as
/// the function wrote it and lists the forms that are read.
fn failed_offsets(
    response: &[u8],
    topic: &str,
    partition: i32,
    records: &[BatchRecord],
) -> Result<Vec<i64>, String> {
    let parsed = KafkaBatchResponse::from_payload(response).map_err(|e| {
        let quoted = failure_index(e.path())
            .map(|index| format!(" (itemIdentifier {})", written_identifier(response, index)))
            .unwrap_or_default();
        format!(
            "{e}{quoted}; an itemIdentifier is read in these forms: {}",
            ItemIdentifier::ACCEPTED_FORMS
        )
    })?;
    let mut failed = Vec::with_capacity(parsed.batch_item_failures.len());
    for (index, failure) in parsed.batch_item_failures.iter().enumerate() {
        let id = &failure.item_identifier;
        let in_segment = id.topic == topic
            && id.partition == partition
            && records
                .binary_search_by_key(&id.offset, |r| r.offset)
                .is_ok();
        if !in_segment {
            let (first, last) = (
                records.first().map_or(0, |r| r.offset),
                records.last().map_or(0, |r| r.offset),
            );
            return Err(format!(
                "batchItemFailures[{index}].itemIdentifier {} names {id}, which is not a record of this batch ({topic}-{partition}, offsets {first}..={last})",
                written_identifier(response, index)
            ));
        }
        failed.push(id.offset);
    }
    failed.sort_unstable();
    failed.dedup();
    Ok(failed)
}

/// The index `i` of a `batchItemFailures[i]…` path.
fn failure_index(path: &str) -> Option<usize> {
    path.strip_prefix("batchItemFailures[")?
        .split_once(']')?
        .0
        .parse()
        .ok()
}

/// The `index`-th identifier of a response as the function wrote it (compact JSON, cut to a
/// readable length), for error messages.
fn written_identifier(response: &[u8], index: usize) -> String {
    const MAX_CHARS: usize = 200;
    let written = serde_json::from_slice::<serde_json::Value>(response)
        .ok()
        .and_then(|v| {
            v.get("batchItemFailures")?
                .get(index)
                .map(|failure| failure.get("itemIdentifier").unwrap_or(failure).to_string())
        })
        .unwrap_or_else(|| "(unreadable)".to_owned());
    match written.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &written[..cut]),
        None => written,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn records(offsets: std::ops::RangeInclusive<i64>) -> Vec<BatchRecord> {
        offsets
            .map(|offset| BatchRecord {
                offset,
                timestamp: -1,
                json: 0..0,
                original_value: None,
                original_key: None,
            })
            .collect()
    }

    #[test]
    fn the_identifier_powertools_writes_names_a_failed_record() {
        let response =
            br#"{"batchItemFailures":[{"itemIdentifier":{"partition":"orders-0","offset":5}}]}"#;
        assert_eq!(
            failed_offsets(response, "orders", 0, &records(3..=7)),
            Ok(vec![5])
        );
    }

    #[test]
    fn an_identifier_naming_a_record_outside_the_batch_fails_it_quoting_the_identifier() {
        for (response, quoted) in [
            (
                r#"{"batchItemFailures":[{"itemIdentifier":{"partition":"orders-1","offset":5}}]}"#,
                r#"{"offset":5,"partition":"orders-1"}"#,
            ),
            (
                r#"{"batchItemFailures":[{"itemIdentifier":"orders-0-9"}]}"#,
                r#""orders-0-9""#,
            ),
        ] {
            let problem = failed_offsets(response.as_bytes(), "orders", 0, &records(3..=7))
                .expect_err(response);
            assert!(
                problem.contains(quoted) && problem.contains("offsets 3..=7"),
                "{problem}"
            );
        }
    }

    #[test]
    fn an_unreadable_identifier_fails_the_batch_quoting_it_and_naming_the_forms_read() {
        let response = br#"{"batchItemFailures":[{"itemIdentifier":{"partition":"orders-0","offset":5}},{"itemIdentifier":{"partition":0,"offset":5}}]}"#;
        let problem = failed_offsets(response, "orders", 0, &records(3..=7)).unwrap_err();
        assert!(
            problem.contains("batchItemFailures[1].itemIdentifier.partition")
                && problem.contains(r#"(itemIdentifier {"offset":5,"partition":0})"#)
                && problem.contains(ItemIdentifier::ACCEPTED_FORMS),
            "{problem}"
        );
    }
}
