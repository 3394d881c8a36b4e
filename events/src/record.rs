//! One Kafka record as it appears in the event, with decoding helpers.

use crate::error::{DecodeError, Field, RecordId};
use crate::header::{Header, HeaderName};
use crate::topic_partition::TopicPartition;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Which clock a record's timestamp comes from (Kafka's `TimestampType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TimestampType {
    /// Set by the producer.
    #[serde(rename = "CREATE_TIME")]
    CreateTime,
    /// Set by the broker when it appended the record.
    #[serde(rename = "LOG_APPEND_TIME")]
    LogAppendTime,
    /// The record has no timestamp (its `timestamp` is `-1`).
    #[serde(rename = "NO_TIMESTAMP_TYPE")]
    NoTimestampType,
}

impl TimestampType {
    /// The wire name, e.g. `CREATE_TIME`.
    pub fn as_str(self) -> &'static str {
        match self {
            TimestampType::CreateTime => "CREATE_TIME",
            TimestampType::LogAppendTime => "LOG_APPEND_TIME",
            TimestampType::NoTimestampType => "NO_TIMESTAMP_TYPE",
        }
    }
}

/// Serialization format of a key or value registered in a schema registry (`dataFormat`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DataFormat {
    /// Apache Avro: `"AVRO"`.
    Avro,
    /// JSON Schema: `"JSON"`.
    Json,
    /// Protocol Buffers: `"PROTOBUF"`.
    Protobuf,
    /// Any other value, kept verbatim so that a format AWS adds later does not make the whole
    /// event unparseable.
    Other(String),
}

impl DataFormat {
    /// The wire name, e.g. `AVRO`.
    pub fn as_str(&self) -> &str {
        match self {
            DataFormat::Avro => "AVRO",
            DataFormat::Json => "JSON",
            DataFormat::Protobuf => "PROTOBUF",
            DataFormat::Other(s) => s,
        }
    }
}

impl From<&str> for DataFormat {
    fn from(s: &str) -> Self {
        match s {
            "AVRO" => DataFormat::Avro,
            "JSON" => DataFormat::Json,
            "PROTOBUF" => DataFormat::Protobuf,
            other => DataFormat::Other(other.to_owned()),
        }
    }
}

impl Serialize for DataFormat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for DataFormat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(DataFormat::from(s.as_ref()))
    }
}

/// Schema-registry metadata AWS adds to a record when the trigger has a schema registry configured.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaMetadata {
    /// How the payload is serialized.
    pub data_format: DataFormat,
    /// The schema's identifier in the registry.
    pub schema_id: String,
}

/// One Kafka record of an event.
///
/// `key` and `value` hold the bytes decoded from the wire's base64; `None` is a null key or a
/// tombstone value. Absent fields that AWS may omit (`key`, `headers`, schema metadata) parse as
/// empty; unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaRecord {
    /// Topic the record was read from.
    pub topic: String,
    /// Partition within the topic.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// Epoch milliseconds; `-1` when the record has no timestamp.
    pub timestamp: i64,
    /// What the timestamp means.
    pub timestamp_type: TimestampType,
    /// The key bytes (`None`: null key).
    #[serde(
        default,
        with = "crate::base64_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub key: Option<Vec<u8>>,
    /// The value bytes (`None`: a tombstone).
    #[serde(
        default,
        with = "crate::base64_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub value: Option<Vec<u8>>,
    /// Headers in record order.
    #[serde(default, with = "crate::header::list")]
    pub headers: Vec<Header>,
    /// Schema-registry metadata of the key, when a registry is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_schema_metadata: Option<SchemaMetadata>,
    /// Schema-registry metadata of the value, when a registry is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_schema_metadata: Option<SchemaMetadata>,
}

impl KafkaRecord {
    /// A record with no key, value or headers, a `CREATE_TIME` timestamp of `-1`, at the given
    /// coordinates. Use the `with_*` methods to fill it in (typically in tests).
    pub fn new(topic: impl Into<String>, partition: i32, offset: i64) -> Self {
        KafkaRecord {
            topic: topic.into(),
            partition,
            offset,
            timestamp: -1,
            timestamp_type: TimestampType::CreateTime,
            key: None,
            value: None,
            headers: Vec::new(),
            key_schema_metadata: None,
            value_schema_metadata: None,
        }
    }

    /// Sets the key bytes.
    pub fn with_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the value bytes.
    pub fn with_value(mut self, value: impl Into<Vec<u8>>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Sets the value to `value` serialized as JSON.
    pub fn with_json_value<T: Serialize>(self, value: &T) -> Result<Self, serde_json::Error> {
        Ok(self.with_value(serde_json::to_vec(value)?))
    }

    /// Appends a header (a name as text or bytes).
    pub fn with_header(mut self, name: impl Into<HeaderName>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push(Header::new(name, value));
        self
    }

    /// Sets the timestamp (epoch milliseconds) and its type.
    pub fn with_timestamp(mut self, epoch_ms: i64, kind: TimestampType) -> Self {
        self.timestamp = epoch_ms;
        self.timestamp_type = kind;
        self
    }

    /// `topic-partition@offset`, for logs and errors.
    pub fn id(&self) -> RecordId {
        RecordId {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset,
        }
    }

    /// The record's topic and partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.clone(), self.partition)
    }

    /// The key bytes, `None` for a null key.
    pub fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    /// The value bytes, `None` for a tombstone.
    pub fn value(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }

    /// The key as UTF-8 text.
    pub fn key_str(&self) -> Result<Option<&str>, DecodeError> {
        self.key
            .as_deref()
            .map(|b| self.utf8(b, Field::Key))
            .transpose()
    }

    /// The value as UTF-8 text (`None` for a tombstone).
    pub fn value_str(&self) -> Result<Option<&str>, DecodeError> {
        self.value
            .as_deref()
            .map(|b| self.utf8(b, Field::Value))
            .transpose()
    }

    /// The key parsed as JSON. A null key is read as JSON `null`, so `T = Option<_>` accepts it.
    pub fn key_json<T: DeserializeOwned>(&self) -> Result<T, DecodeError> {
        self.json(self.key.as_deref(), Field::Key)
    }

    /// The value parsed as JSON. A tombstone is read as JSON `null`, so `T = Option<_>` accepts
    /// it and any other `T` gets [`DecodeError::Null`].
    pub fn value_json<T: DeserializeOwned>(&self) -> Result<T, DecodeError> {
        self.json(self.value.as_deref(), Field::Value)
    }

    /// The headers in record order.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The value of the last header with this name (Kafka's `lastHeader`).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .rev()
            .find(|h| h.name == name)
            .map(|h| h.value.as_slice())
    }

    /// The value of the last header with this name, as UTF-8 text.
    pub fn header_str(&self, name: &str) -> Result<Option<&str>, DecodeError> {
        self.header(name)
            .map(|b| self.utf8(b, Field::Header(name.to_owned())))
            .transpose()
    }

    /// The timestamp as a UTC time, `None` when the record has none (negative timestamp).
    pub fn timestamp(&self) -> Option<DateTime<Utc>> {
        if self.timestamp < 0 {
            return None;
        }
        DateTime::from_timestamp_millis(self.timestamp)
    }

    fn utf8<'a>(&self, bytes: &'a [u8], field: Field) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(bytes).map_err(|source| DecodeError::Utf8 {
            record: self.id(),
            field,
            source,
        })
    }

    fn json<T: DeserializeOwned>(
        &self,
        bytes: Option<&[u8]>,
        field: Field,
    ) -> Result<T, DecodeError> {
        match bytes {
            Some(b) => serde_json::from_slice(b).map_err(|source| DecodeError::Json {
                record: self.id(),
                field,
                source,
            }),
            None => T::deserialize(serde_json::Value::Null).map_err(|_| DecodeError::Null {
                record: self.id(),
                field,
            }),
        }
    }
}
