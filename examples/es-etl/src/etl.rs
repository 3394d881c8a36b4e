//! The function: clean a batch with `log-etl`'s cleaning, index the documents with one bulk
//! request, and answer which records must be delivered again.
//!
//! | What happened to a record | Counted as | Delivered again |
//! |---|---|---|
//! | indexed (2xx) | `indexed` | no |
//! | a success log (`returnCode` 0), dropped by the cleaning | `dropped` | no |
//! | not an error log (not JSON, a field missing, a tombstone) | `undecodable`, logged at error | no |
//! | refused for good (4xx but 429, e.g. `mapper_parsing_exception`) | `rejected`, logged at error | no |
//! | refused for now (429, 5xx) | listed in `batchItemFailures` | yes |
//! | the bulk request failed as a whole (no answer, HTTP error) | the invocation fails | the whole batch |

use crate::bulk::{BulkClient, BulkError, Disposition, ItemResult};
use crate::config::{Config, REPORT_FAILURES_VAR};
use crate::document::{BulkDocument, IndexNaming, bulk_body};
use chrono::FixedOffset;
use kafka_lambda_handler::events::ItemIdentifier;
use kafka_lambda_handler::{Batch, KafkaBatchResponse, RecordId};
use log_etl::ErrorLog;
use serde::Serialize;
use std::fmt;

/// How many failed records an error message lists before summarising the rest.
const LISTED_FAILURES: usize = 10;

/// Turns a batch of error logs into bulk documents.
#[derive(Debug, Clone)]
pub(crate) struct Cleaner {
    index: IndexNaming,
    ignore_fields: Vec<String>,
    utc_offset: FixedOffset,
}

/// The documents of one batch, and what was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Prepared {
    /// The documents to index, in event order.
    pub(crate) documents: Vec<BulkDocument>,
    /// Success logs dropped by the cleaning.
    pub(crate) dropped: usize,
    /// Records that are not error logs.
    pub(crate) undecodable: usize,
}

impl Cleaner {
    pub(crate) fn new(config: &Config) -> Self {
        Cleaner {
            index: config.index.clone(),
            ignore_fields: config.ignore_fields.clone(),
            utc_offset: config.utc_offset,
        }
    }

    /// Cleans every record of `batch` (decoded with undecodable records skipped, each of
    /// which is logged here at error).
    pub(crate) fn prepare(&self, batch: &Batch<ErrorLog>) -> Prepared {
        for record in batch.skipped() {
            tracing::error!(
                record = %record,
                "the record is not an error log; it is not indexed and not retried"
            );
        }
        let mut prepared = Prepared {
            documents: Vec::with_capacity(batch.len()),
            dropped: 0,
            undecodable: batch.skipped().len(),
        };
        for record in batch {
            let log = record.value();
            match log_etl::clean(log, self.utc_offset) {
                Some(document) => prepared.documents.push(BulkDocument::new(
                    record.id(),
                    self.index.index_for(log.timestamp),
                    &document,
                    &self.ignore_fields,
                )),
                None => prepared.dropped += 1,
            }
        }
        prepared
    }
}

/// The invocation's answer: the records to deliver again (a partial batch response, read by
/// Lambda and by kafka-lambda-poller when the trigger reports batch item failures) and counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct EsEtlResponse {
    /// `batchItemFailures`: every record refused for now.
    #[serde(flatten)]
    pub(crate) failures: KafkaBatchResponse,
    /// Documents indexed.
    pub(crate) indexed: usize,
    /// Success logs dropped by the cleaning.
    pub(crate) dropped: usize,
    /// Documents refused for good.
    pub(crate) rejected: usize,
    /// Records that are not error logs.
    pub(crate) undecodable: usize,
}

/// Why an invocation fails (and its batch is delivered again).
#[derive(Debug, thiserror::Error)]
pub(crate) enum EtlError {
    /// The bulk request failed as a whole.
    #[error(transparent)]
    Bulk(#[from] BulkError),
    /// Documents were refused for now and partial batch responses are turned off.
    #[error(
        "{} document(s) could not be indexed for now and {REPORT_FAILURES_VAR}=false, so the \
         whole batch is failed: {}",
        .0.len(),
        Listed(.0)
    )]
    Retryable(Vec<(RecordId, ItemResult)>),
}

struct Listed<'a>(&'a [(RecordId, ItemResult)]);

impl fmt::Display for Listed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (record, result)) in self.0.iter().take(LISTED_FAILURES).enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "record {record}: {result}")?;
        }
        if self.0.len() > LISTED_FAILURES {
            write!(f, "; and {} more", self.0.len() - LISTED_FAILURES)?;
        }
        Ok(())
    }
}

/// Reads the bulk results of `prepared`'s documents (in the same order) into the answer.
pub(crate) fn conclude(
    prepared: Prepared,
    results: Vec<ItemResult>,
    report_batch_item_failures: bool,
) -> Result<EsEtlResponse, EtlError> {
    let mut response = EsEtlResponse {
        dropped: prepared.dropped,
        undecodable: prepared.undecodable,
        ..EsEtlResponse::default()
    };
    let mut retry = Vec::new();
    for (document, result) in prepared.documents.into_iter().zip(results) {
        match result.disposition() {
            Disposition::Indexed => response.indexed += 1,
            Disposition::Rejected => {
                tracing::error!(
                    record = %document.record,
                    index = document.index,
                    status = result.status,
                    error = %result,
                    "the cluster refused the document for good; it is not retried"
                );
                response.rejected += 1;
            }
            Disposition::Retry => {
                tracing::warn!(
                    record = %document.record,
                    index = document.index,
                    status = result.status,
                    error = %result,
                    "the cluster refused the document for now; it is delivered again"
                );
                retry.push((document.record, result));
            }
        }
    }
    if !retry.is_empty() && !report_batch_item_failures {
        return Err(EtlError::Retryable(retry));
    }
    response.failures = KafkaBatchResponse::failed(
        retry
            .into_iter()
            .map(|(record, _)| ItemIdentifier::new(record.topic, record.partition, record.offset)),
    );
    Ok(response)
}

/// The whole function, made once per execution environment.
#[derive(Debug, Clone)]
pub(crate) struct EsEtl {
    cleaner: Cleaner,
    client: BulkClient,
    report_batch_item_failures: bool,
}

impl EsEtl {
    pub(crate) fn new(config: &Config) -> Result<Self, BulkError> {
        Ok(EsEtl {
            cleaner: Cleaner::new(config),
            client: BulkClient::new(config)?,
            report_batch_item_failures: config.report_batch_item_failures,
        })
    }

    /// Handles one invocation.
    pub(crate) async fn handle(&self, batch: Batch<ErrorLog>) -> Result<EsEtlResponse, EtlError> {
        let prepared = self.cleaner.prepare(&batch);
        let results = if prepared.documents.is_empty() {
            Vec::new()
        } else {
            let body = bulk_body(&prepared.documents);
            self.client
                .send(body, prepared.documents.len())
                .await
                .inspect_err(|error| tracing::error!(%error, "the bulk request failed"))?
        };
        let response = conclude(prepared, results, self.report_batch_item_failures)?;
        tracing::info!(
            indexed = response.indexed,
            dropped = response.dropped,
            rejected = response.rejected,
            undecodable = response.undecodable,
            retrying = response.failures.batch_item_failures.len(),
            "batch delivered to the cluster"
        );
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::IndexPeriod;
    use kafka_lambda_handler::{BatchOptions, decode_batch, testing};
    use serde_json::json;

    fn cleaner(ignore_fields: &[&str]) -> Cleaner {
        let offset = log_etl::parse_utc_offset("+08:00").unwrap();
        Cleaner {
            index: IndexNaming::new("logs".to_owned(), IndexPeriod::Day, offset),
            ignore_fields: ignore_fields.iter().map(|f| (*f).to_owned()).collect(),
            utc_offset: offset,
        }
    }

    fn log(code: i64, request_id: &str) -> serde_json::Value {
        json!({
            "timestamp": 1_595_944_295,
            "returnCode": code,
            "returnMessage": format!("failed[message {code}][seqId:{request_id}]"),
        })
    }

    fn batch() -> Batch<ErrorLog> {
        let event = testing::event()
            .json_record("error-logs", 0, 10, &log(1, "a"))
            .json_record("error-logs", 0, 11, &log(0, "ok"))
            .text_record("error-logs", 0, 12, "not json")
            .json_record("error-logs", 1, 5, &log(2, "b"))
            .tombstone("error-logs", 1, 6)
            .json_record("error-logs", 1, 7, &log(3, "c"))
            .build();
        decode_batch(event, &BatchOptions::new().skip_undecodable(true)).unwrap()
    }

    fn result(status: u16) -> ItemResult {
        let error = (status >= 300).then(|| crate::bulk::ItemError {
            kind: "some_exception".to_owned(),
            reason: format!("status {status}"),
        });
        ItemResult { status, error }
    }

    #[test]
    fn error_logs_become_documents_successes_and_garbage_are_counted() {
        let prepared = cleaner(&["returnError"]).prepare(&batch());
        assert_eq!(prepared.dropped, 1);
        assert_eq!(prepared.undecodable, 2);
        let summary: Vec<_> = prepared
            .documents
            .iter()
            .map(|d| (d.record.to_string(), d.index.as_str(), d.id.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "error-logs-0@10".to_owned(),
                    "logs-2020.07.28",
                    "error-logs-0-10"
                ),
                (
                    "error-logs-1@5".to_owned(),
                    "logs-2020.07.28",
                    "error-logs-1-5"
                ),
                (
                    "error-logs-1@7".to_owned(),
                    "logs-2020.07.28",
                    "error-logs-1-7"
                ),
            ]
        );
        assert_eq!(
            prepared.documents[0].source,
            r#"{"timestamp":"2020-07-28 21:51:35","returnCode":1,"returnMessage":"message 1","requestId":"a"}"#
        );
    }

    #[test]
    fn retryable_failures_become_the_partial_batch_response() {
        let prepared = cleaner(&[]).prepare(&batch());
        let response =
            conclude(prepared, vec![result(429), result(400), result(503)], true).unwrap();
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            json!({
                "batchItemFailures": [
                    {"itemIdentifier": {"partition": "error-logs-0", "offset": 10}},
                    {"itemIdentifier": {"partition": "error-logs-1", "offset": 7}},
                ],
                "indexed": 0,
                "dropped": 1,
                "rejected": 1,
                "undecodable": 2,
            })
        );
    }

    #[test]
    fn all_indexed_answers_no_failures() {
        let prepared = cleaner(&[]).prepare(&batch());
        let response =
            conclude(prepared, vec![result(201), result(200), result(201)], true).unwrap();
        assert!(response.failures.batch_item_failures.is_empty());
        assert_eq!(response.indexed, 3);
        let text = serde_json::to_string(&response).unwrap();
        assert!(
            KafkaBatchResponse::from_payload(text.as_bytes())
                .unwrap()
                .batch_item_failures
                .is_empty()
        );
    }

    #[test]
    fn without_partial_responses_a_retryable_failure_fails_the_invocation() {
        let prepared = cleaner(&[]).prepare(&batch());
        let error =
            conclude(prepared, vec![result(201), result(429), result(400)], false).unwrap_err();
        assert_eq!(
            error.to_string(),
            "1 document(s) could not be indexed for now and ES_REPORT_BATCH_ITEM_FAILURES=false, \
             so the whole batch is failed: record error-logs-1@5: HTTP 429 some_exception: \
             status 429"
        );
        // Permanent rejections alone do not fail it.
        let prepared = cleaner(&[]).prepare(&batch());
        let response =
            conclude(prepared, vec![result(201), result(400), result(404)], false).unwrap();
        assert_eq!((response.indexed, response.rejected), (1, 2));
    }
}
