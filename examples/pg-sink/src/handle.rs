//! One invocation: normalize the batch, apply the invalid-record policy, write the rows.

use crate::config::InvalidRecords;
use crate::normalize::normalize;
use crate::sink::{Row, Sink};
use kafka_lambda_handler::{
    Batch, Bytes, Error, FailureReason, HandlerError, KafkaBatchResponse, Nullable, RecordFailure,
};

/// What the function decodes each record's value into: the raw bytes (`None` for a
/// tombstone); the shapes are told apart here, not by the SDK's decoder.
pub(crate) type Value = Nullable<Bytes>;

/// The batch after normalization: the rows to write and the records that are not ad views.
#[derive(Debug, Default)]
pub(crate) struct Normalized {
    /// Rows to upsert, in event order.
    pub(crate) rows: Vec<Row>,
    /// With [`InvalidRecords::Fail`]: the first invalid record of each partition that has one;
    /// the records after it in that partition are left for the retry.
    pub(crate) failures: Vec<RecordFailure>,
    /// With [`InvalidRecords::Skip`]: how many invalid records were left out.
    pub(crate) skipped: usize,
    /// Records after a partition's failure, not written.
    pub(crate) not_processed: usize,
}

/// Normalizes every record of `batch`, logging each invalid one with its id and the reason.
pub(crate) fn normalize_batch(batch: &Batch<Value>, policy: InvalidRecords) -> Normalized {
    let mut out = Normalized::default();
    for (_, records) in batch.partitions() {
        for (position, record) in records.iter().enumerate() {
            match normalize(record.value().as_ref().map(|v| &v[..])) {
                Ok(view) => out.rows.push(Row {
                    record: record.id(),
                    view,
                }),
                Err(error) => match policy {
                    InvalidRecords::Skip => {
                        tracing::error!(record = %record.id(), %error, "skipping a record that is not an ad view");
                        out.skipped += 1;
                    }
                    InvalidRecords::Fail => {
                        tracing::error!(record = %record.id(), %error, "a record is not an ad view: failing it, which stops its partition");
                        out.failures.push(RecordFailure {
                            record: record.id(),
                            reason: FailureReason::Failed(Box::new(error)),
                        });
                        out.not_processed += records.len() - position - 1;
                        break;
                    }
                },
            }
        }
    }
    out
}

/// Handles one batch: the rows are written first (a database error fails the whole
/// invocation, so the trigger retries the batch), then invalid records are answered as
/// `report_batch_item_failures` says: a partial batch response, or a failed invocation.
pub(crate) async fn handle(
    sink: &Sink,
    batch: Batch<Value>,
    policy: InvalidRecords,
    report_batch_item_failures: bool,
) -> Result<KafkaBatchResponse, Error> {
    let normalized = normalize_batch(&batch, policy);
    let written = sink.write(&normalized.rows).await?;
    tracing::info!(
        records = batch.len(),
        written,
        skipped = normalized.skipped,
        failed = normalized.failures.len(),
        not_processed = normalized.not_processed,
        "batch written"
    );
    if normalized.failures.is_empty() || report_batch_item_failures {
        Ok(KafkaBatchResponse::failed(
            normalized
                .failures
                .iter()
                .map(RecordFailure::item_identifier),
        ))
    } else {
        Err(HandlerError::RecordsFailed(normalized.failures).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_lambda_handler::{BatchOptions, decode_batch, testing};
    use serde_json::json;

    fn batch() -> Batch<Value> {
        let event = testing::event()
            .json_record("views", 0, 1, &json!({"adId":"a1","ts":1_700_000_000_000_i64,"price":"0.25"}))
            .text_record("views", 0, 2, "garbage")
            .json_record("views", 0, 3, &json!({"ad_id":"a3","viewed_at":"2023-11-14T22:13:20Z","price_micros":1}))
            .tombstone("views", 1, 7)
            .json_record("views", 1, 8, &json!({"creative_id":"a8","timestamp_s":1_700_000_000,"price":{"amount":"1","currency":"EUR"}}))
            .json_record("views", 2, 0, &json!({"adId":"a0","ts":1_700_000_000_000_i64,"price":2}))
            .build();
        decode_batch(event, &BatchOptions::new()).unwrap()
    }

    fn offsets(rows: &[Row]) -> Vec<String> {
        rows.iter().map(|r| r.record.to_string()).collect()
    }

    #[test]
    fn by_default_an_invalid_record_fails_and_stops_its_partition() {
        let normalized = normalize_batch(&batch(), InvalidRecords::Fail);
        assert_eq!(offsets(&normalized.rows), ["views-0@1", "views-2@0"]);
        let failed: Vec<_> = normalized
            .failures
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(failed.len(), 2);
        assert!(
            failed[0].starts_with("record views-0@2: the value is not a JSON object"),
            "{}",
            failed[0]
        );
        assert!(
            failed[1].starts_with("record views-1@7: the value is null"),
            "{}",
            failed[1]
        );
        assert_eq!(normalized.not_processed, 2);
        assert_eq!(normalized.skipped, 0);
    }

    #[test]
    fn with_skip_invalid_records_are_left_out() {
        let normalized = normalize_batch(&batch(), InvalidRecords::Skip);
        assert_eq!(
            offsets(&normalized.rows),
            ["views-0@1", "views-0@3", "views-1@8", "views-2@0"]
        );
        assert!(normalized.failures.is_empty());
        assert_eq!(normalized.skipped, 2);
    }
}
