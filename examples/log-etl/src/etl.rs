//! The business logic: turn raw error-log records into clean documents.
//!
//! An input record value looks like
//!
//! ```json
//! {"version":1,"componentName":"trade","timestamp":1595944295,"eventId":9128499,
//!  "returnValue":-1,"returnCode":101103,
//!  "returnMessage":"return has no deal return error[错误: 缺少 **c 参数][seqId:u3Becr8iz*]",
//!  "data":[],"seqId":"u3Becr8iz*"}
//! ```
//!
//! Records with `returnCode` 0 (success) are dropped; the others become
//!
//! ```json
//! {"timestamp":"2020-07-28 21:51:35","returnCode":101103,
//!  "returnError":"return has no deal return error","returnMessage":"错误: 缺少 **c 参数",
//!  "requestId":"u3Becr8iz*"}
//! ```

use chrono::{DateTime, FixedOffset, Utc};
use kafka_lambda_handler::Batch;
use serde::{Deserialize, Deserializer, Serialize};
use std::convert::Infallible;
use std::fmt;

/// How cleaned timestamps are written.
const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// The prefix of the bracket group that carries the request id.
const REQUEST_ID_PREFIX: &str = "seqId:";

/// One raw error-log entry: the fields the cleaning uses. Other fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorLog {
    /// When the error happened, epoch seconds on the wire.
    #[serde(deserialize_with = "epoch_seconds")]
    pub timestamp: DateTime<Utc>,
    /// `0` for success, anything else is an error.
    pub return_code: i64,
    /// `error text[message][seqId:request id]`.
    pub return_message: String,
    /// The request id, when the producer also sends it as a field.
    #[serde(default)]
    pub seq_id: Option<String>,
}

/// The cleaned document. Field order is the output order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanDocument {
    /// `%Y-%m-%d %H:%M:%S` in the configured offset.
    pub timestamp: String,
    /// The input's `returnCode`.
    pub return_code: i64,
    /// The error text before the first `[`.
    pub return_error: String,
    /// The first bracket group that is not `[seqId:...]`.
    pub return_message: String,
    /// From `[seqId:...]`, else the input's `seqId` field, else empty.
    pub request_id: String,
}

impl fmt::Display for CleanDocument {
    /// The document as JSON, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&json)
    }
}

/// The invocation's response: the cleaned documents and how many records were dropped.
/// (It has no `batchItemFailures`, so it also reads as "no failures" as a partial batch
/// response.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EtlResponse {
    /// Cleaned documents, in event order.
    pub documents: Vec<CleanDocument>,
    /// Records dropped because they report success.
    pub dropped: usize,
}

/// Cleans one entry; `None` when it reports success (`returnCode` 0) and is dropped.
pub fn clean(log: &ErrorLog, utc_offset: FixedOffset) -> Option<CleanDocument> {
    if log.return_code == 0 {
        return None;
    }
    let parts = ReturnMessage::parse(&log.return_message);
    let request_id = parts
        .request_id
        .or(log.seq_id.as_deref())
        .unwrap_or_default();
    Some(CleanDocument {
        timestamp: log
            .timestamp
            .with_timezone(&utc_offset)
            .format(TIMESTAMP_FORMAT)
            .to_string(),
        return_code: log.return_code,
        return_error: parts.error.to_owned(),
        return_message: parts.message.unwrap_or_default().to_owned(),
        request_id: request_id.to_owned(),
    })
}

/// Cleans a batch, logging each document at `info`.
pub fn clean_batch(batch: &Batch<ErrorLog>, utc_offset: FixedOffset) -> EtlResponse {
    let mut response = EtlResponse {
        documents: Vec::with_capacity(batch.len()),
        dropped: 0,
    };
    for record in batch {
        match clean(record.value(), utc_offset) {
            Some(document) => {
                tracing::info!(record = %record.id(), %document, "cleaned error log");
                response.documents.push(document);
            }
            None => response.dropped += 1,
        }
    }
    response
}

/// The function: what `main` runs for each invocation.
pub async fn handle(
    batch: Batch<ErrorLog>,
    utc_offset: FixedOffset,
) -> Result<EtlResponse, Infallible> {
    Ok(clean_batch(&batch, utc_offset))
}

/// The parts of a `returnMessage`.
///
/// - `error`: the text before the first `[` (all of it when there is no `[`), trimmed.
/// - `message`: the first top-level `[...]` group that is not `[seqId:...]`, trimmed; brackets
///   nested inside it are kept (`[a [b] c]` gives `a [b] c`), and a group left unclosed runs
///   to the end of the text.
/// - `request_id`: the first `[seqId:...]` group, trimmed.
///
/// Text between or after groups is ignored. Every input gives a result; nothing panics.
#[derive(Debug, PartialEq, Eq)]
struct ReturnMessage<'a> {
    error: &'a str,
    message: Option<&'a str>,
    request_id: Option<&'a str>,
}

impl<'a> ReturnMessage<'a> {
    fn parse(text: &'a str) -> Self {
        let (error, groups) = text.split_at(text.find('[').unwrap_or(text.len()));
        let mut parts = ReturnMessage {
            error: error.trim(),
            message: None,
            request_id: None,
        };
        for group in bracket_groups(groups) {
            match group.trim_start().strip_prefix(REQUEST_ID_PREFIX) {
                Some(id) => {
                    parts.request_id.get_or_insert(id.trim());
                }
                None => {
                    parts.message.get_or_insert(group.trim());
                }
            }
        }
        parts
    }
}

/// The contents of the top-level `[...]` groups of `text`.
fn bracket_groups(text: &str) -> Vec<&str> {
    let mut groups = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    // `[` and `]` are ASCII, so their byte positions are char boundaries.
    for (i, byte) in text.bytes().enumerate() {
        match byte {
            b'[' => {
                if depth == 0 {
                    start = i + 1;
                }
                depth += 1;
            }
            b']' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    groups.push(&text[start..i]);
                }
            }
            _ => {}
        }
    }
    if depth > 0 {
        groups.push(&text[start..]);
    }
    groups
}

/// Epoch seconds as a UTC time; out-of-range values are a decoding error naming the value.
fn epoch_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    let seconds = i64::deserialize(deserializer)?;
    DateTime::from_timestamp(seconds, 0).ok_or_else(|| {
        serde::de::Error::custom(format_args!(
            "timestamp {seconds} is out of range for epoch seconds"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_lambda_handler::events::KafkaEvent;
    use kafka_lambda_handler::{BatchOptions, HandlerError, process_batch, testing};
    use serde_json::{Value, json};

    const SAMPLE: &str = r#"{"version":1,"componentName":"trade","timestamp":1595944295,"eventId":9128499,"returnValue":-1,"returnCode":101103,"returnMessage":"return has no deal return error[错误: 缺少 **c 参数][seqId:u3Becr8iz*]","data":[],"seqId":"..."}"#;

    fn beijing() -> FixedOffset {
        crate::config::parse_utc_offset("+08:00").unwrap()
    }

    fn log(return_code: i64, return_message: &str) -> ErrorLog {
        ErrorLog {
            timestamp: DateTime::from_timestamp(1_595_944_295, 0).unwrap(),
            return_code,
            return_message: return_message.to_owned(),
            seq_id: None,
        }
    }

    #[test]
    fn the_sample_is_cleaned_exactly() {
        let log: ErrorLog = serde_json::from_str(SAMPLE).unwrap();
        let document = clean(&log, beijing()).unwrap();
        assert_eq!(
            serde_json::to_string(&document).unwrap(),
            r#"{"timestamp":"2020-07-28 21:51:35","returnCode":101103,"returnError":"return has no deal return error","returnMessage":"错误: 缺少 **c 参数","requestId":"u3Becr8iz*"}"#
        );
        assert_eq!(
            document.to_string(),
            serde_json::to_string(&document).unwrap()
        );
    }

    #[test]
    fn successes_are_dropped() {
        assert_eq!(clean(&log(0, "ok[done][seqId:x]"), beijing()), None);
        assert!(clean(&log(-1, "negative codes are errors"), beijing()).is_some());
    }

    #[test]
    fn timestamps_follow_the_configured_offset() {
        let at = |offset: &str| {
            let offset = crate::config::parse_utc_offset(offset).unwrap();
            clean(&log(1, "e"), offset).unwrap().timestamp
        };
        assert_eq!(at("+08:00"), "2020-07-28 21:51:35");
        assert_eq!(at("+00:00"), "2020-07-28 13:51:35");
        assert_eq!(at("-05:30"), "2020-07-28 08:21:35");
        assert_eq!(at("+14:00"), "2020-07-29 03:51:35");
    }

    fn parts(text: &str) -> (&str, Option<&str>, Option<&str>) {
        let p = ReturnMessage::parse(text);
        (p.error, p.message, p.request_id)
    }

    #[test]
    fn return_messages_without_the_usual_shape_still_parse() {
        let cases = [
            ("plain error text", ("plain error text", None, None)),
            ("", ("", None, None)),
            (
                "  padded  [ msg ][ seqId: id1 ]",
                ("padded", Some("msg"), Some("id1")),
            ),
            ("no message[seqId:abc]", ("no message", None, Some("abc"))),
            (
                "seq first[seqId:abc][the message]",
                ("seq first", Some("the message"), Some("abc")),
            ),
            ("[only a message]", ("", Some("only a message"), None)),
            (
                "unclosed[message runs to the end",
                ("unclosed", Some("message runs to the end"), None),
            ),
            (
                "nested[field [amount] is bad][seqId:n1]",
                ("nested", Some("field [amount] is bad"), Some("n1")),
            ),
            (
                "stray ] bracket[msg]",
                ("stray ] bracket", Some("msg"), None),
            ),
            (
                "two[first][second][seqId:a][seqId:b]",
                ("two", Some("first"), Some("a")),
            ),
            ("empty[][seqId:]", ("empty", Some(""), Some(""))),
            (
                "text after[msg] is ignored",
                ("text after", Some("msg"), None),
            ),
            (
                "seqid is case sensitive[seqid:x]",
                ("seqid is case sensitive", Some("seqid:x"), None),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parts(text), expected, "{text:?}");
        }
    }

    #[test]
    fn the_request_id_falls_back_to_the_seq_id_field() {
        let mut entry = log(7, "no brackets at all");
        entry.seq_id = Some("from-field".to_owned());
        let document = clean(&entry, beijing()).unwrap();
        assert_eq!(document.request_id, "from-field");
        assert_eq!(document.return_error, "no brackets at all");
        assert_eq!(document.return_message, "");

        entry.return_message = "e[m][seqId:from-message]".to_owned();
        assert_eq!(clean(&entry, beijing()).unwrap().request_id, "from-message");
    }

    #[test]
    fn no_return_message_panics() {
        let alphabet = ['[', ']', 'a', ' ', 'é', ':'];
        let mut text = String::new();
        // Every string of up to 6 characters over the alphabet: 55,986 inputs.
        fn visit(text: &mut String, alphabet: &[char], depth: usize) {
            let _ = ReturnMessage::parse(text);
            let _ = ReturnMessage::parse(&format!("{text}seqId:{text}"));
            if depth == 0 {
                return;
            }
            for &c in alphabet {
                text.push(c);
                visit(text, alphabet, depth - 1);
                text.pop();
            }
        }
        visit(&mut text, &alphabet, 6);
    }

    async fn run(event: KafkaEvent) -> Result<EtlResponse, HandlerError> {
        process_batch(
            event,
            |batch| handle(batch, beijing()),
            &BatchOptions::new(),
        )
        .await
    }

    #[tokio::test]
    async fn a_batch_answers_documents_and_the_dropped_count() {
        let event = testing::event()
            .text_record("error-logs", 0, 10, SAMPLE)
            .json_record(
                "error-logs",
                0,
                11,
                &json!({"timestamp": 1595944300, "returnCode": 0, "returnMessage": "ok"}),
            )
            .build();
        let response = serde_json::to_value(run(event).await.unwrap()).unwrap();
        assert_eq!(
            response,
            json!({
                "documents": [{
                    "timestamp": "2020-07-28 21:51:35",
                    "returnCode": 101103,
                    "returnError": "return has no deal return error",
                    "returnMessage": "错误: 缺少 **c 参数",
                    "requestId": "u3Becr8iz*"
                }],
                "dropped": 1
            })
        );
        // Read by the poller as a partial batch response: no failures.
        let as_batch_response =
            kafka_lambda_handler::KafkaBatchResponse::from_payload(response.to_string().as_bytes())
                .unwrap();
        assert!(as_batch_response.batch_item_failures.is_empty());
    }

    #[tokio::test]
    async fn a_record_that_is_not_an_error_log_fails_the_invocation_naming_it() {
        let cases = [
            ("not json at all", "expected ident"),
            (
                r#"{"timestamp":1,"returnCode":5}"#,
                "missing field `returnMessage`",
            ),
            (
                r#"{"timestamp":"yesterday","returnCode":5,"returnMessage":"x"}"#,
                "invalid type",
            ),
            (
                r#"{"timestamp":99999999999999999,"returnCode":5,"returnMessage":"x"}"#,
                "timestamp 99999999999999999 is out of range",
            ),
        ];
        for (value, reason) in cases {
            let event = testing::event()
                .text_record("error-logs", 2, 40, SAMPLE)
                .text_record("error-logs", 2, 41, value)
                .build();
            let error = run(event).await.unwrap_err();
            assert_eq!(error.error_type(), "KafkaRecordUndecodable");
            let message = error.to_string();
            assert!(
                message.starts_with("record error-logs-2@41: value"),
                "{message}"
            );
            assert!(message.contains(reason), "{message}");
        }
        let event = testing::event().tombstone("error-logs", 0, 1).build();
        let message = run(event).await.unwrap_err().to_string();
        assert!(
            message.contains("record error-logs-0@1: value is null"),
            "{message}"
        );
    }

    /// The sample events of `events/` give the responses in `events/expected/`; the event in
    /// `events/invalid/` fails.
    #[tokio::test]
    async fn sample_events_give_the_expected_responses() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
        let read = |path: &str| std::fs::read(dir.join(path)).unwrap();
        for name in ["msk.json", "edge-cases.json"] {
            let event = KafkaEvent::from_slice(&read(name)).unwrap();
            let expected: Value =
                serde_json::from_slice(&read(&format!("expected/{name}"))).unwrap();
            let response = serde_json::to_value(run(event).await.unwrap()).unwrap();
            assert_eq!(response, expected, "{name}");
        }

        let invalid = KafkaEvent::from_slice(&read("invalid/not-json-record.json")).unwrap();
        let error = run(invalid).await.unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("record error-logs-0@202: value is not valid JSON"),
            "{error}"
        );
    }
}
