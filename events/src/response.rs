//! The partial batch response a function returns to report the records it failed to process.
//!
//! ```json
//! {"batchItemFailures":[{"itemIdentifier":{"partition":"orders-0","offset":15}}]}
//! ```
//!
//! That is what AWS's own library writes, and so what [`ItemIdentifier`] writes: Powertools for
//! AWS Lambda (Python) 3.37, `aws_lambda_powertools/utilities/batch/base.py`,
//! `BasePartialBatchProcessor._collect_kafka_failures`, answers a failed Kafka record with
//! `{"itemIdentifier": {"partition": f"{msg.topic}-{msg.partition}", "offset": msg.offset}}`; the
//! key names the topic-partition, as the event's `records` keys do. AWS's Lambda guide
//! ("Configuring error handling controls for Kafka event sources", partial batch response)
//! only says that the function names the failed records and that Lambda retries from them.
//!
//! Reading a response accepts every form in use:
//! - `{"partition": "<topic>-<partition>", "offset": N}` (Powertools; what this crate writes),
//! - `{"topic-partition": "<topic>-<partition>", "offset": N}` (what this crate wrote before it
//!   followed Powertools: functions built with it keep working behind the poller),
//! - the string `"<topic>-<partition>-<offset>"`.
//!
//! The offset may be a JSON number or a numeric string. Anything else is an error naming the
//! field, and a response that cannot be read is a failure of the whole batch, which is AWS's rule
//! for stream sources: an `itemIdentifier` that is empty, `null` or has a wrong key name fails the
//! batch. Only honoured when the trigger has `ReportBatchItemFailures` enabled.

use crate::topic_partition::TopicPartition;
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The function's answer to a Kafka batch: the records that failed. An empty list means every
/// record succeeded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KafkaBatchResponse {
    /// One entry per failed record (normally the first failure of each partition). An absent or
    /// `null` list on input means none failed, as AWS treats it.
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<BatchItemFailure>,
}

impl KafkaBatchResponse {
    /// Reports the given records as failed.
    pub fn failed(items: impl IntoIterator<Item = ItemIdentifier>) -> Self {
        KafkaBatchResponse {
            batch_item_failures: items
                .into_iter()
                .map(|item_identifier| BatchItemFailure { item_identifier })
                .collect(),
        }
    }

    /// Parses a function's response payload. An empty payload or JSON `null` (a function that
    /// returns nothing), `{}` and an absent, `null` or empty `batchItemFailures` all mean success,
    /// as for AWS.
    pub fn from_payload(payload: &[u8]) -> Result<Self, ResponseParseError> {
        let trimmed = payload.trim_ascii();
        if trimmed.is_empty() || trimmed == b"null" {
            return Ok(KafkaBatchResponse::default());
        }
        crate::error::from_slice_with_path(trimmed)
            .map_err(|(path, source)| ResponseParseError { path, source })
    }
}

/// Only a JSON object is a response: a derived `Deserialize` would also take a JSON array as the
/// struct's fields in order, so `[]` would silently report every record as processed.
impl<'de> Deserialize<'de> for KafkaBatchResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(BatchResponseVisitor)
    }
}

struct BatchResponseVisitor;

impl<'de> Visitor<'de> for BatchResponseVisitor {
    type Value = KafkaBatchResponse;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"an object {"batchItemFailures": [...]}"#)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KafkaBatchResponse, A::Error> {
        let mut failures: Option<Vec<BatchItemFailure>> = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "batchItemFailures" {
                if failures.is_some() {
                    return Err(de::Error::duplicate_field("batchItemFailures"));
                }
                // `null` is a success report, like an absent or empty list.
                failures = Some(
                    map.next_value::<Option<Vec<BatchItemFailure>>>()?
                        .unwrap_or_default(),
                );
            } else {
                map.next_value::<de::IgnoredAny>()?;
            }
        }
        Ok(KafkaBatchResponse {
            batch_item_failures: failures.unwrap_or_default(),
        })
    }
}

/// A function response is not a valid partial batch response.
///
/// The message names the JSON path of the offending field, e.g.
/// `batchItemFailures[0].itemIdentifier.offset` for an identifier without an offset.
#[derive(Debug, thiserror::Error)]
#[error("malformed partial batch response at `{path}`: {source}")]
pub struct ResponseParseError {
    path: String,
    #[source]
    source: serde_json::Error,
}

impl ResponseParseError {
    /// The JSON path of the field that failed, or that is missing (`.` when the document itself
    /// is malformed).
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// One failed record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BatchItemFailure {
    /// Which record.
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: ItemIdentifier,
}

/// Identifies a record: written `{"partition": "orders-0", "offset": 15}`, as Powertools writes it;
/// read from that, from `{"topic-partition": "orders-0", "offset": 15}` or from the string
/// `"orders-0-15"` (see the [module](self) documentation).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemIdentifier {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset of the failed record.
    pub offset: i64,
}

impl ItemIdentifier {
    /// The identifier forms a response may use, as error messages list them.
    pub const ACCEPTED_FORMS: &str = r#"{"partition": "<topic>-<partition>", "offset": <n>}, {"topic-partition": "<topic>-<partition>", "offset": <n>} or "<topic>-<partition>-<offset>""#;

    /// Identifies the record at `topic`/`partition`/`offset`.
    pub fn new(topic: impl Into<String>, partition: i32, offset: i64) -> Self {
        ItemIdentifier {
            topic: topic.into(),
            partition,
            offset,
        }
    }

    /// The record's topic-partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.clone(), self.partition)
    }
}

impl fmt::Display for ItemIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.topic, self.partition, self.offset)
    }
}

impl Serialize for ItemIdentifier {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry(
            PARTITION_KEY,
            &format_args!("{}-{}", self.topic, self.partition),
        )?;
        map.serialize_entry("offset", &self.offset)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for ItemIdentifier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ItemIdentifierVisitor)
    }
}

/// The key that names a failed record's topic-partition, as Powertools writes it.
const PARTITION_KEY: &str = "partition";

/// The key this crate wrote before it followed Powertools; still read.
const LEGACY_PARTITION_KEY: &str = "topic-partition";

const ACCEPTED_FORMS: &str = ItemIdentifier::ACCEPTED_FORMS;

struct ItemIdentifierVisitor;

impl<'de> Visitor<'de> for ItemIdentifierVisitor {
    type Value = ItemIdentifier;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(ACCEPTED_FORMS)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<ItemIdentifier, E> {
        let (tp, offset) = s.rsplit_once('-').ok_or_else(|| {
            E::custom(format_args!("`{s}` is not `<topic>-<partition>-<offset>`"))
        })?;
        let offset = parse_offset(offset).map_err(E::custom)?;
        let tp: TopicPartition = tp.parse().map_err(E::custom)?;
        Ok(ItemIdentifier {
            topic: tp.topic,
            partition: tp.partition,
            offset,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ItemIdentifier, A::Error> {
        let mut tp: Option<TopicPartition> = None;
        let mut offset: Option<i64> = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                PARTITION_KEY | LEGACY_PARTITION_KEY => {
                    if tp.is_some() {
                        return Err(de::Error::custom(format_args!(
                            "the record is named twice (`{PARTITION_KEY}` and `{LEGACY_PARTITION_KEY}`); expected {ACCEPTED_FORMS}"
                        )));
                    }
                    tp = Some(map.next_value::<TopicPartitionStr>()?.0);
                }
                "offset" => offset = Some(map.next_value::<Offset>()?.0),
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        let tp = tp.ok_or_else(|| de::Error::missing_field(PARTITION_KEY))?;
        let offset = offset.ok_or_else(|| de::Error::missing_field("offset"))?;
        Ok(ItemIdentifier {
            topic: tp.topic,
            partition: tp.partition,
            offset,
        })
    }
}

fn parse_offset(s: &str) -> Result<i64, String> {
    match s.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(n),
        _ => Err(format!(
            "`{s}` is not a record offset (a non-negative integer)"
        )),
    }
}

/// A `"<topic>-<partition>"` string, parsed while it is read so that an error's path names it.
struct TopicPartitionStr(TopicPartition);

impl<'de> Deserialize<'de> for TopicPartitionStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map(TopicPartitionStr).map_err(de::Error::custom)
    }
}

/// An offset given as a JSON number or a numeric string.
struct Offset(i64);

impl<'de> Deserialize<'de> for Offset {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Offset;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative record offset")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Offset, E> {
                i64::try_from(n)
                    .map(Offset)
                    .map_err(|_| E::custom(format_args!("offset {n} is too large")))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Offset, E> {
                parse_offset(&n.to_string()).map(Offset).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Offset, E> {
                parse_offset(s).map(Offset).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}
