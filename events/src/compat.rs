//! Conversions to and from `aws_lambda_events::kafka`, for code migrating from that crate.

use crate::event::{EventSource, KafkaEvent};
use crate::header::Header;
use crate::record::{KafkaRecord, TimestampType};
use aws_lambda_events::encodings::MillisecondTimestamp;
use aws_lambda_events::kafka as aws;
use base64::Engine;
use std::collections::HashMap;

/// An `aws_lambda_events` Kafka event could not be converted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FromAwsEventError {
    /// A key or value is not valid base64.
    #[error("record {topic}-{partition}@{offset}: {field} is not valid base64: {source}")]
    Base64 {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i64,
        /// Offset.
        offset: i64,
        /// `key` or `value`.
        field: &'static str,
        /// Decoder error.
        #[source]
        source: base64::DecodeError,
    },
    /// A field is outside what Kafka allows.
    #[error("record {topic}-{partition}@{offset}: {problem}")]
    Invalid {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i64,
        /// Offset.
        offset: i64,
        /// What is wrong.
        problem: String,
    },
}

impl TryFrom<aws::KafkaEvent> for KafkaEvent {
    type Error = FromAwsEventError;

    /// Converts, decoding base64. `aws_lambda_events` keeps groups in a `HashMap`, so the group
    /// order is made deterministic by sorting keys.
    fn try_from(event: aws::KafkaEvent) -> Result<Self, Self::Error> {
        let mut groups: Vec<_> = event.records.into_iter().collect();
        groups.sort_by(|a, b| a.0.cmp(&b.0));
        let mut records = indexmap::IndexMap::with_capacity(groups.len());
        for (key, list) in groups {
            let converted = list
                .into_iter()
                .map(record_from_aws)
                .collect::<Result<Vec<_>, _>>()?;
            records.insert(key, converted);
        }
        Ok(KafkaEvent {
            event_source: event
                .event_source
                .as_deref()
                .map_or(EventSource::SelfManagedKafka, EventSource::from),
            event_source_arn: event.event_source_arn,
            bootstrap_servers: event.bootstrap_servers,
            records,
        })
    }
}

fn record_from_aws(r: aws::KafkaRecord) -> Result<KafkaRecord, FromAwsEventError> {
    let topic = r.topic.unwrap_or_default();
    let decode = |field: &'static str, s: Option<String>| {
        s.map(|s| crate::base64_serde::decode(s.as_bytes()))
            .transpose()
            .map_err(|source| FromAwsEventError::Base64 {
                topic: topic.clone(),
                partition: r.partition,
                offset: r.offset,
                field,
                source,
            })
    };
    let key = decode("key", r.key)?;
    let value = decode("value", r.value)?;
    let partition = i32::try_from(r.partition).map_err(|_| FromAwsEventError::Invalid {
        topic: topic.clone(),
        partition: r.partition,
        offset: r.offset,
        problem: format!(
            "partition {} does not fit Kafka's 32-bit partition number",
            r.partition
        ),
    })?;
    let timestamp_type = match r.timestamp_type.as_deref() {
        Some("LOG_APPEND_TIME") => TimestampType::LogAppendTime,
        Some("NO_TIMESTAMP_TYPE") => TimestampType::NoTimestampType,
        _ => TimestampType::CreateTime,
    };
    let headers = r
        .headers
        .into_iter()
        .flat_map(|map| {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort();
            entries
        })
        .map(|(name, bytes)| Header {
            name: name.into(),
            value: bytes.into_iter().map(|b| b as u8).collect(),
        })
        .collect();
    Ok(KafkaRecord {
        topic,
        partition,
        offset: r.offset,
        timestamp: r.timestamp.0.timestamp_millis(),
        timestamp_type,
        key,
        value,
        headers,
        key_schema_metadata: None,
        value_schema_metadata: None,
    })
}

impl From<KafkaEvent> for aws::KafkaEvent {
    fn from(event: KafkaEvent) -> Self {
        let records: HashMap<String, Vec<aws::KafkaRecord>> = event
            .records
            .into_iter()
            .map(|(key, list)| (key, list.into_iter().map(record_to_aws).collect()))
            .collect();
        let mut out = aws::KafkaEvent::default();
        out.event_source = Some(event.event_source.as_str().to_owned());
        out.event_source_arn = event.event_source_arn;
        out.bootstrap_servers = event.bootstrap_servers;
        out.records = records;
        out
    }
}

fn record_to_aws(r: KafkaRecord) -> aws::KafkaRecord {
    let encode = |b: Option<Vec<u8>>| b.map(|b| crate::base64_serde::ENCODER.encode(b));
    let timestamp = chrono::DateTime::from_timestamp_millis(r.timestamp).unwrap_or_default();
    let mut out = aws::KafkaRecord::default();
    out.topic = Some(r.topic);
    out.partition = i64::from(r.partition);
    out.offset = r.offset;
    out.timestamp = MillisecondTimestamp(timestamp);
    out.timestamp_type = Some(r.timestamp_type.as_str().to_owned());
    out.key = encode(r.key);
    out.value = encode(r.value);
    out.headers = r
        .headers
        .into_iter()
        .map(|h| {
            HashMap::from([(
                h.name.to_string_lossy().into_owned(),
                h.value.into_iter().map(|b| b as i8).collect(),
            )])
        })
        .collect();
    out
}
