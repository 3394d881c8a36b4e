//! The commands the function takes and the answers it gives, as JSON.
//!
//! ```json
//! {"action":"create_topic","topic":"orders","partitions":3}
//! {"action":"produce","topic":"orders","records":[
//!    {"key":"o-1","value":{"id":1},"headers":{"source":"web"},"partition":0}]}
//! {"action":"consume","topic":"orders","partition":0,"from_offset":0,"max_records":10,"timeout_ms":1000}
//! ```
//!
//! Keys, values and header values are text by default; with `"format": "base64"` they are
//! base64 in both directions, for binary data. A produced value that is a JSON string is sent
//! as its text, any other JSON value (object, array, number, boolean) as its JSON, `null` (or
//! no value) as a tombstone.

use crate::error::CommandError;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// Most records one `produce` or `consume` handles.
pub(crate) const MAX_RECORDS: usize = 10_000;
/// Longest a `consume` waits for records.
pub(crate) const MAX_CONSUME_TIMEOUT_MS: u64 = 60_000;
/// Most partitions `create_topic` makes.
const MAX_PARTITIONS: i32 = 10_000;

/// One invocation's command.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    /// `create_topic`.
    CreateTopic(CreateTopic),
    /// `produce`.
    Produce(Produce),
    /// `consume`.
    Consume(Consume),
}

impl Command {
    /// Reads a command from the invocation payload; errors name the offending field.
    pub(crate) fn parse(payload: Value) -> Result<Command, CommandError> {
        let Value::Object(mut fields) = payload else {
            return Err(CommandError::Invalid(
                "the payload is not a JSON object; send {\"action\": \"create_topic\" | \
                 \"produce\" | \"consume\", ...}"
                    .to_owned(),
            ));
        };
        let action = match fields.remove("action") {
            Some(Value::String(action)) => action,
            Some(other) => {
                return Err(CommandError::Invalid(format!(
                    "`action` is {other}, not a string; give \"create_topic\", \"produce\" or \
                     \"consume\""
                )));
            }
            None => {
                return Err(CommandError::Invalid(
                    "`action` is missing; give \"create_topic\", \"produce\" or \"consume\""
                        .to_owned(),
                ));
            }
        };
        let fields = Value::Object(fields);
        let command = match action.as_str() {
            "create_topic" => Command::CreateTopic(read(&action, fields)?),
            "produce" => Command::Produce(read(&action, fields)?),
            "consume" => Command::Consume(read(&action, fields)?),
            _ => return Err(CommandError::UnknownAction(action)),
        };
        command.validate()?;
        Ok(command)
    }

    fn validate(&self) -> Result<(), CommandError> {
        let topic = match self {
            Command::CreateTopic(c) => &c.topic,
            Command::Produce(p) => &p.topic,
            Command::Consume(c) => &c.topic,
        };
        if !kafka_lambda_client::is_topic_name(topic) {
            return Err(invalid(format!(
                "`topic` is {topic:?}, not a Kafka topic name ({})",
                kafka_lambda_client::TOPIC_NAME_RULE
            )));
        }
        match self {
            Command::CreateTopic(c) => {
                if !(1..=MAX_PARTITIONS).contains(&c.partitions) {
                    return Err(invalid(format!(
                        "`partitions` is {}; give 1 to {MAX_PARTITIONS}",
                        c.partitions
                    )));
                }
                if let Some(factor) = c.replication_factor
                    && factor < 1
                {
                    return Err(invalid(format!(
                        "`replication_factor` is {factor}; give 1 or more, or leave it out for \
                         the broker's default"
                    )));
                }
            }
            Command::Produce(p) => {
                if p.records.is_empty() || p.records.len() > MAX_RECORDS {
                    return Err(invalid(format!(
                        "`records` has {} records; give 1 to {MAX_RECORDS}",
                        p.records.len()
                    )));
                }
                for (index, record) in p.records.iter().enumerate() {
                    if let Some(partition) = record.partition
                        && partition < 0
                    {
                        return Err(invalid(format!(
                            "`records[{index}].partition` is {partition}; partitions start at 0"
                        )));
                    }
                    // Checked here so that nothing is produced when one record is malformed.
                    record.bytes(p.format, index)?;
                }
            }
            Command::Consume(c) => {
                if c.partition < 0 {
                    return Err(invalid(format!(
                        "`partition` is {}; partitions start at 0",
                        c.partition
                    )));
                }
                if c.from_offset < 0 {
                    return Err(invalid(format!(
                        "`from_offset` is {}; offsets start at 0",
                        c.from_offset
                    )));
                }
                if !(1..=MAX_RECORDS).contains(&c.max_records) {
                    return Err(invalid(format!(
                        "`max_records` is {}; give 1 to {MAX_RECORDS}",
                        c.max_records
                    )));
                }
                if c.timeout_ms > MAX_CONSUME_TIMEOUT_MS {
                    return Err(invalid(format!(
                        "`timeout_ms` is {}; give at most {MAX_CONSUME_TIMEOUT_MS}",
                        c.timeout_ms
                    )));
                }
            }
        }
        Ok(())
    }
}

fn invalid(message: String) -> CommandError {
    CommandError::Invalid(message)
}

/// Deserializes an action's fields, naming the offending one on failure.
fn read<T: DeserializeOwned>(action: &str, fields: Value) -> Result<T, CommandError> {
    serde_path_to_error::deserialize(fields).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if path == "." {
            invalid(format!("{action}: {inner}"))
        } else {
            invalid(format!("{action}: `{path}`: {inner}"))
        }
    })
}

/// How keys, values and header values are written in commands and answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Format {
    /// UTF-8 text (default).
    #[default]
    Text,
    /// Base64 (standard alphabet, padded), for binary data.
    Base64,
}

impl Format {
    fn decode(self, text: &str, field: &str) -> Result<Vec<u8>, CommandError> {
        match self {
            Format::Text => Ok(text.as_bytes().to_vec()),
            Format::Base64 => BASE64
                .decode(text)
                .map_err(|error| invalid(format!("`{field}` is not base64: {error}"))),
        }
    }

    /// `bytes` as this format; `None` when text is asked for and they are not UTF-8.
    pub(crate) fn encode(self, bytes: &[u8]) -> Option<String> {
        match self {
            Format::Text => std::str::from_utf8(bytes).ok().map(str::to_owned),
            Format::Base64 => Some(BASE64.encode(bytes)),
        }
    }
}

/// `create_topic`: makes a topic.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTopic {
    /// The topic.
    pub(crate) topic: String,
    /// How many partitions (default 1).
    #[serde(default = "one")]
    pub(crate) partitions: i32,
    /// Copies of each partition; default: the broker's `default.replication.factor`.
    #[serde(default)]
    pub(crate) replication_factor: Option<i32>,
    /// Topic configuration, e.g. `{"retention.ms": "86400000"}`.
    #[serde(default)]
    pub(crate) config: BTreeMap<String, String>,
}

const fn one() -> i32 {
    1
}

/// `produce`: writes records, in order.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Produce {
    /// The topic.
    pub(crate) topic: String,
    /// The records.
    pub(crate) records: Vec<ProduceRecord>,
    /// How keys, values and header values are written.
    #[serde(default)]
    pub(crate) format: Format,
}

/// One record to produce.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProduceRecord {
    /// The key; none: a null key.
    #[serde(default)]
    pub(crate) key: Option<String>,
    /// The value: a string is sent as its text, other JSON as its JSON, `null` as a tombstone.
    #[serde(default)]
    pub(crate) value: Value,
    /// Headers, `{"name": "value"}` or `[{"name": "value"}, ...]` (repeated names, in order).
    #[serde(default)]
    pub(crate) headers: Headers,
    /// The partition; none: the producer's partitioner chooses (by key).
    #[serde(default)]
    pub(crate) partition: Option<i32>,
    /// The timestamp, epoch milliseconds; none: the time of sending.
    #[serde(default)]
    pub(crate) timestamp: Option<i64>,
}

/// A record's bytes, ready for the producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordBytes {
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) headers: Vec<(String, Option<Vec<u8>>)>,
}

impl ProduceRecord {
    /// The key, value and header bytes, decoded as `format` says.
    pub(crate) fn bytes(&self, format: Format, index: usize) -> Result<RecordBytes, CommandError> {
        let field = |name: &str| format!("records[{index}].{name}");
        let key = self
            .key
            .as_deref()
            .map(|key| format.decode(key, &field("key")))
            .transpose()?;
        let value = match &self.value {
            Value::Null => None,
            Value::String(text) => Some(format.decode(text, &field("value"))?),
            json if format == Format::Text => Some(json.to_string().into_bytes()),
            _ => {
                return Err(invalid(format!(
                    "`{}` must be a base64 string or null with \"format\": \"base64\"",
                    field("value")
                )));
            }
        };
        let mut headers = Vec::with_capacity(self.headers.0.len());
        for (name, header_value) in &self.headers.0 {
            let bytes = header_value
                .as_deref()
                .map(|v| format.decode(v, &field(&format!("headers.{name}"))))
                .transpose()?;
            headers.push((name.clone(), bytes));
        }
        Ok(RecordBytes {
            key,
            value,
            headers,
        })
    }
}

/// Record headers in order, names may repeat; a value may be `null`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Headers(pub(crate) Vec<(String, Option<String>)>);

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeadersVisitor;
        impl<'de> Visitor<'de> for HeadersVisitor {
            type Value = Headers;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "an object {\"name\": \"value\"} or a list [{\"name\": \"value\"}, ...]",
                )
            }
            fn visit_unit<E: de::Error>(self) -> Result<Headers, E> {
                Ok(Headers::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
                let mut headers = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    headers.push(entry);
                }
                Ok(Headers(headers))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Headers, A::Error> {
                let mut headers = Vec::new();
                while let Some(Headers(one)) = seq.next_element::<Headers>()? {
                    if one.len() != 1 {
                        return Err(de::Error::custom(
                            "each header in a list is an object with exactly one name",
                        ));
                    }
                    headers.extend(one);
                }
                Ok(Headers(headers))
            }
        }
        deserializer.deserialize_any(HeadersVisitor)
    }
}

/// `consume`: reads records of one partition from an offset.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Consume {
    /// The topic.
    pub(crate) topic: String,
    /// The partition (default 0).
    #[serde(default)]
    pub(crate) partition: i32,
    /// The first offset to read (default 0); before the partition's first record, reading
    /// starts at that record.
    #[serde(default)]
    pub(crate) from_offset: i64,
    /// Most records to return (default 100).
    #[serde(default = "default_max_records")]
    pub(crate) max_records: usize,
    /// How long to wait for records, in milliseconds (default 5000: a first fetch may have to
    /// connect and authenticate). Reading stops earlier once it reaches the end the partition
    /// had when the command started.
    #[serde(default = "default_consume_timeout_ms")]
    pub(crate) timeout_ms: u64,
    /// How keys, values and header values are written in the answer.
    #[serde(default)]
    pub(crate) format: Format,
}

const fn default_max_records() -> usize {
    100
}

const fn default_consume_timeout_ms() -> u64 {
    5_000
}

/// The answer to `create_topic`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Created {
    /// The topic.
    pub(crate) topic: String,
    /// Its partitions.
    pub(crate) partitions: i32,
}

/// The answer to `produce`: where each record went, in command order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Produced {
    /// The topic.
    pub(crate) topic: String,
    /// One entry per record.
    pub(crate) records: Vec<Delivered>,
}

/// Where one record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Delivered {
    /// The partition.
    pub(crate) partition: i32,
    /// The offset.
    pub(crate) offset: i64,
}

/// The answer to `consume`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Consumed {
    /// The topic.
    pub(crate) topic: String,
    /// The partition.
    pub(crate) partition: i32,
    /// The records read, in offset order.
    pub(crate) records: Vec<ConsumedRecord>,
    /// Where to continue: one past the last record returned, else where reading started.
    pub(crate) next_offset: i64,
    /// The partition's first offset when reading started.
    pub(crate) low_watermark: i64,
    /// One past the partition's last offset when reading started.
    pub(crate) high_watermark: i64,
}

/// One record read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ConsumedRecord {
    /// Its offset.
    pub(crate) offset: i64,
    /// Its key, `null` for none.
    pub(crate) key: Option<String>,
    /// Its value, `null` for a tombstone.
    pub(crate) value: Option<String>,
    /// Its headers in order, `[{"name": "value"}, ...]`.
    pub(crate) headers: Vec<BTreeMap<String, Option<String>>>,
    /// Epoch milliseconds, `null` when the record has none.
    pub(crate) timestamp: Option<i64>,
    /// `create_time` or `log_append_time`, `null` without a timestamp.
    pub(crate) timestamp_type: Option<&'static str>,
}

#[cfg(test)]
mod tests;
