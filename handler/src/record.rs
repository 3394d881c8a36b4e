//! [`Record<T>`]: one Kafka record with its value decoded.

use crate::decode::DecodeValue;
use chrono::{DateTime, Utc};
use kafka_lambda_events::{DecodeError, Header, KafkaRecord, RecordId, TopicPartition};
use serde::de::DeserializeOwned;

/// One Kafka record whose value has been decoded into `T` (see [`DecodeValue`]), with the
/// record's coordinates, key, headers and timestamp.
///
/// The original record stays available through [`Record::raw`].
#[derive(Debug, Clone, PartialEq)]
pub struct Record<T> {
    value: T,
    raw: KafkaRecord,
}

impl<T> Record<T> {
    /// Pairs an already decoded value with its record (handy in unit tests of a function).
    pub fn new(value: T, raw: KafkaRecord) -> Self {
        Record { value, raw }
    }

    /// Decodes the value of `raw` into `T`.
    pub fn decode(raw: KafkaRecord) -> Result<Self, DecodeError>
    where
        T: DecodeValue,
    {
        let value = T::decode_value(&raw)?;
        Ok(Record { value, raw })
    }

    /// The decoded value.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The decoded value, mutably.
    pub fn value_mut(&mut self) -> &mut T {
        &mut self.value
    }

    /// Takes the decoded value, dropping the record.
    pub fn into_value(self) -> T {
        self.value
    }

    /// Splits into the decoded value and the original record.
    pub fn into_parts(self) -> (T, KafkaRecord) {
        (self.value, self.raw)
    }

    /// The topic the record was read from.
    pub fn topic(&self) -> &str {
        &self.raw.topic
    }

    /// The partition within the topic.
    pub fn partition(&self) -> i32 {
        self.raw.partition
    }

    /// The offset within the partition.
    pub fn offset(&self) -> i64 {
        self.raw.offset
    }

    /// The record's topic and partition.
    pub fn topic_partition(&self) -> TopicPartition {
        self.raw.topic_partition()
    }

    /// `topic-partition@offset`, for logs and errors.
    pub fn id(&self) -> RecordId {
        self.raw.id()
    }

    /// The key bytes, `None` for a null key.
    pub fn key(&self) -> Option<&[u8]> {
        self.raw.key()
    }

    /// The key as UTF-8 text, `None` for a null key.
    pub fn key_str(&self) -> Result<Option<&str>, DecodeError> {
        self.raw.key_str()
    }

    /// The key parsed as JSON; a null key reads as JSON `null`.
    pub fn key_json<K: DeserializeOwned>(&self) -> Result<K, DecodeError> {
        self.raw.key_json()
    }

    /// The headers in record order.
    pub fn headers(&self) -> &[Header] {
        self.raw.headers()
    }

    /// The value of the last header with this name (Kafka's `lastHeader`).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.raw.header(name)
    }

    /// The value of the last header with this name, as UTF-8 text.
    pub fn header_str(&self, name: &str) -> Result<Option<&str>, DecodeError> {
        self.raw.header_str(name)
    }

    /// The record's timestamp, `None` when it has none.
    pub fn timestamp(&self) -> Option<DateTime<Utc>> {
        self.raw.timestamp()
    }

    /// The record as it came in the event (value bytes included).
    pub fn raw(&self) -> &KafkaRecord {
        &self.raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Text;
    use kafka_lambda_events::TimestampType;

    #[test]
    fn accessors_read_the_underlying_record() {
        let raw = KafkaRecord::new("orders", 3, 42)
            .with_key("order-7")
            .with_value("hello")
            .with_header("source", "web")
            .with_header("source", "api")
            .with_timestamp(1_595_944_295_000, TimestampType::CreateTime);
        let record = Record::<Text>::decode(raw.clone()).unwrap();

        assert_eq!(&**record.value(), "hello");
        assert_eq!(record.topic(), "orders");
        assert_eq!(record.partition(), 3);
        assert_eq!(record.offset(), 42);
        assert_eq!(record.id().to_string(), "orders-3@42");
        assert_eq!(record.topic_partition().to_string(), "orders-3");
        assert_eq!(record.key(), Some(&b"order-7"[..]));
        assert_eq!(record.key_str().unwrap(), Some("order-7"));
        assert_eq!(record.headers().len(), 2);
        assert_eq!(record.header("source"), Some(&b"api"[..]));
        assert_eq!(record.header_str("missing").unwrap(), None);
        assert_eq!(
            record.timestamp().unwrap().to_rfc3339(),
            "2020-07-28T13:51:35+00:00"
        );
        assert_eq!(record.raw(), &raw);
        assert_eq!(record.into_value().into_inner(), "hello");
    }
}
