//! From cleaned documents to the body of a `_bulk` request: index names, document ids, the
//! source line without the ignored fields, and the NDJSON body.
//!
//! Each document is two lines, an action and the source, and the body ends with a line break
//! (the bulk API refuses a body without it):
//!
//! ```text
//! {"index":{"_index":"error-logs-2020.07.28","_id":"error-logs-0-100"}}
//! {"timestamp":"2020-07-28 21:51:35","returnCode":101103,"returnError":"...","returnMessage":"...","requestId":"u3Becr8iz*"}
//! ```

use chrono::{DateTime, FixedOffset, Utc};
use kafka_lambda_handler::RecordId;
use log_etl::CleanDocument;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::fmt;

/// The top-level fields of a cleaned document, in output order: what `ES_LOG_IGNORE_WORDS` can
/// name. A unit test keeps it in step with `log_etl::CleanDocument`.
pub(crate) const DOCUMENT_FIELDS: &[&str] = &[
    "timestamp",
    "returnCode",
    "returnError",
    "returnMessage",
    "requestId",
];

/// One index per day or per hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexPeriod {
    /// `<prefix>-2020.07.28`.
    Day,
    /// `<prefix>-2020.07.28.21`.
    Hour,
}

/// How a document's index is named: the prefix and the date (or hour) of the log entry, in the
/// offset its cleaned timestamp is written in, so a document sits in the index of the day its
/// `timestamp` field shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexNaming {
    prefix: String,
    period: IndexPeriod,
    utc_offset: FixedOffset,
}

impl IndexNaming {
    pub(crate) fn new(prefix: String, period: IndexPeriod, utc_offset: FixedOffset) -> Self {
        IndexNaming {
            prefix,
            period,
            utc_offset,
        }
    }

    /// The index of a log entry written at `at`.
    pub(crate) fn index_for(&self, at: DateTime<Utc>) -> String {
        let format = match self.period {
            IndexPeriod::Day => "%Y.%m.%d",
            IndexPeriod::Hour => "%Y.%m.%d.%H",
        };
        format!(
            "{}-{}",
            self.prefix,
            at.with_timezone(&self.utc_offset).format(format)
        )
    }
}

/// A document ready for the bulk body, and the record it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BulkDocument {
    /// The Kafka record.
    pub(crate) record: RecordId,
    /// The index it goes to.
    pub(crate) index: String,
    /// Its `_id`: `<topic>-<partition>-<offset>`, so a record delivered again (a retried
    /// batch) overwrites its own document instead of adding a duplicate.
    pub(crate) id: String,
    /// The source line: the cleaned document as JSON, ignored fields left out.
    pub(crate) source: String,
}

impl BulkDocument {
    /// The bulk document for `record`'s cleaned `document`.
    pub(crate) fn new(
        record: RecordId,
        index: String,
        document: &CleanDocument,
        ignore_fields: &[String],
    ) -> Self {
        let id = format!("{}-{}-{}", record.topic, record.partition, record.offset);
        BulkDocument {
            record,
            index,
            id,
            source: source_line(document, ignore_fields),
        }
    }
}

/// The body of a bulk request indexing `documents`, in order.
pub(crate) fn bulk_body(documents: &[BulkDocument]) -> Vec<u8> {
    let mut body = Vec::new();
    for document in documents {
        let action = Action {
            index: Target {
                index: &document.index,
                id: &document.id,
            },
        };
        // Serializing two borrowed strings into a Vec cannot fail.
        serde_json::to_writer(&mut body, &action).unwrap_or_default();
        body.push(b'\n');
        body.extend_from_slice(document.source.as_bytes());
        body.push(b'\n');
    }
    body
}

/// `{"index":{"_index":"...","_id":"..."}}`, fields in that order.
#[derive(Serialize)]
struct Action<'a> {
    index: Target<'a>,
}

#[derive(Serialize)]
struct Target<'a> {
    #[serde(rename = "_index")]
    index: &'a str,
    #[serde(rename = "_id")]
    id: &'a str,
}

/// The document as one line of JSON, its fields in their usual order, without the fields named
/// in `ignore_fields`.
pub(crate) fn source_line(document: &CleanDocument, ignore_fields: &[String]) -> String {
    // A document is plain strings and numbers: serializing it cannot fail, and neither can
    // reading the object back.
    let json = serde_json::to_string(document).unwrap_or_default();
    if ignore_fields.is_empty() {
        return json;
    }
    let Ok(Members(members)) = serde_json::from_str::<Members>(&json) else {
        return json;
    };
    let mut line = String::with_capacity(json.len());
    line.push('{');
    for (name, value) in members
        .iter()
        .filter(|(name, _)| !ignore_fields.contains(name))
    {
        if line.len() > 1 {
            line.push(',');
        }
        line.push_str(&serde_json::to_string(name).unwrap_or_default());
        line.push(':');
        line.push_str(value.get());
    }
    line.push('}');
    line
}

/// A JSON object's members in document order (a `serde_json::Map` would sort them).
struct Members(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    members.push(entry);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_lambda_handler::KafkaRecord;

    fn document() -> CleanDocument {
        CleanDocument {
            timestamp: "2020-07-28 21:51:35".to_owned(),
            return_code: 101_103,
            return_error: "return has no deal return error".to_owned(),
            return_message: "错误: 缺少 **c 参数 \"quoted\"".to_owned(),
            request_id: "u3Becr8iz*".to_owned(),
        }
    }

    fn beijing() -> FixedOffset {
        log_etl::parse_utc_offset("+08:00").unwrap()
    }

    #[test]
    fn document_fields_are_those_of_a_cleaned_document_in_order() {
        let Members(members) =
            serde_json::from_str(&serde_json::to_string(&document()).unwrap()).unwrap();
        let names: Vec<_> = members.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, DOCUMENT_FIELDS);
    }

    #[test]
    fn indices_are_daily_or_hourly_in_the_documents_offset() {
        // 2020-07-28 13:51:35 UTC, 21:51:35 in Beijing.
        let at = DateTime::from_timestamp(1_595_944_295, 0).unwrap();
        let daily = IndexNaming::new("logs".to_owned(), IndexPeriod::Day, beijing());
        let hourly = IndexNaming::new("logs".to_owned(), IndexPeriod::Hour, beijing());
        assert_eq!(daily.index_for(at), "logs-2020.07.28");
        assert_eq!(hourly.index_for(at), "logs-2020.07.28.21");
        // Past 16:00 UTC it is the next day in Beijing.
        let late = DateTime::from_timestamp(1_595_944_295 + 3 * 3600, 0).unwrap();
        assert_eq!(daily.index_for(late), "logs-2020.07.29");
        assert_eq!(hourly.index_for(late), "logs-2020.07.29.00");
        let utc = IndexNaming::new(
            "logs".to_owned(),
            IndexPeriod::Hour,
            FixedOffset::east_opt(0).unwrap(),
        );
        assert_eq!(utc.index_for(late), "logs-2020.07.28.16");
    }

    #[test]
    fn without_ignored_fields_the_source_is_the_cleaned_document() {
        assert_eq!(
            source_line(&document(), &[]),
            serde_json::to_string(&document()).unwrap()
        );
    }

    #[test]
    fn ignored_fields_are_left_out_and_the_order_kept() {
        let ignore = [
            "requestId".to_owned(),
            "returnError".to_owned(),
            "name".to_owned(),
        ];
        assert_eq!(
            source_line(&document(), &ignore),
            r#"{"timestamp":"2020-07-28 21:51:35","returnCode":101103,"returnMessage":"错误: 缺少 **c 参数 \"quoted\""}"#
        );
        let all: Vec<String> = DOCUMENT_FIELDS.iter().map(|f| (*f).to_owned()).collect();
        assert_eq!(source_line(&document(), &all), "{}");
    }

    #[test]
    fn the_bulk_body_is_an_action_and_a_source_line_per_document() {
        let record = |partition, offset| KafkaRecord::new("error-logs", partition, offset).id();
        let documents = [
            BulkDocument::new(
                record(0, 100),
                "logs-2020.07.28".to_owned(),
                &document(),
                &[],
            ),
            BulkDocument::new(
                record(3, 7),
                "logs-2020.07.29".to_owned(),
                &document(),
                &[
                    "timestamp".to_owned(),
                    "returnMessage".to_owned(),
                    "returnError".to_owned(),
                ],
            ),
        ];
        let body = String::from_utf8(bulk_body(&documents)).unwrap();
        let expected = [
            r#"{"index":{"_index":"logs-2020.07.28","_id":"error-logs-0-100"}}"#,
            r#"{"timestamp":"2020-07-28 21:51:35","returnCode":101103,"returnError":"return has no deal return error","returnMessage":"错误: 缺少 **c 参数 \"quoted\"","requestId":"u3Becr8iz*"}"#,
            r#"{"index":{"_index":"logs-2020.07.29","_id":"error-logs-3-7"}}"#,
            r#"{"returnCode":101103,"requestId":"u3Becr8iz*"}"#,
            "",
        ]
        .join("\n");
        assert_eq!(body, expected);
        assert!(body.ends_with('\n'));
        for line in body.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
        assert!(bulk_body(&[]).is_empty());
    }
}
