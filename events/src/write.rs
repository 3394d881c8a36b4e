//! Streaming encoder for the Kafka event: the poller writes records one by one straight into the
//! payload buffer (base64 and JSON escaping in place, no intermediate values) and always knows
//! the exact size of the finished payload, so a batch can be closed at the byte limit without
//! serializing twice.

use crate::event::{EventSource, KafkaEvent};
use crate::header::Header;
use crate::json;
use crate::record::{KafkaRecord, SchemaMetadata, TimestampType};
use std::ops::Range;

/// A borrowed view of one record to encode.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Epoch milliseconds, `-1` for none.
    pub timestamp: i64,
    /// What the timestamp means.
    pub timestamp_type: TimestampType,
    /// Key bytes; `None` omits the field (null key).
    pub key: Option<&'a [u8]>,
    /// Value bytes; `None` omits the field (tombstone).
    pub value: Option<&'a [u8]>,
    /// Headers in record order.
    pub headers: &'a [Header],
    /// Schema-registry metadata of the key.
    pub key_schema_metadata: Option<&'a SchemaMetadata>,
    /// Schema-registry metadata of the value.
    pub value_schema_metadata: Option<&'a SchemaMetadata>,
}

impl<'a> From<&'a KafkaRecord> for RecordRef<'a> {
    fn from(r: &'a KafkaRecord) -> Self {
        RecordRef {
            topic: &r.topic,
            partition: r.partition,
            offset: r.offset,
            timestamp: r.timestamp,
            timestamp_type: r.timestamp_type,
            key: r.key.as_deref(),
            value: r.value.as_deref(),
            headers: &r.headers,
            key_schema_metadata: r.key_schema_metadata.as_ref(),
            value_schema_metadata: r.value_schema_metadata.as_ref(),
        }
    }
}

/// The record did not fit under the payload limit; nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("adding the record would make the payload {would_be} bytes, over the limit of {limit}")]
pub struct PayloadFull {
    /// Payload size the record would have produced.
    pub would_be: usize,
    /// The limit that was asked for.
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Group {
    /// No group opened yet.
    None,
    /// A group opened from a record: later records of the same topic-partition join it.
    Partition {
        topic: String,
        partition: i32,
        first: bool,
    },
    /// A group opened with an explicit key (see [`EventWriter::begin_group`]).
    Keyed { first: bool },
}

/// Writes one Kafka event, record by record.
///
/// ```
/// use kafka_lambda_events::{EventSource, EventWriter, KafkaEvent, RecordRef, TimestampType};
///
/// let mut w = EventWriter::new(&EventSource::SelfManagedKafka, None, Some("localhost:9092"));
/// let record = RecordRef {
///     topic: "logs", partition: 0, offset: 7, timestamp: 1_700_000_000_000,
///     timestamp_type: TimestampType::CreateTime, key: None, value: Some(b"{}"),
///     headers: &[], key_schema_metadata: None, value_schema_metadata: None,
/// };
/// w.try_push(&record, 6 * 1024 * 1024)?;
/// let size = w.len();
/// let payload = w.finish();
/// assert_eq!(payload.len(), size);
/// assert_eq!(KafkaEvent::from_slice(&payload)?.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct EventWriter {
    buf: Vec<u8>,
    group: Group,
    records: usize,
    /// Where the last record's JSON object is in `buf` (empty before the first).
    last_record: Range<usize>,
}

impl EventWriter {
    /// Starts an event with its top-level fields.
    pub fn new(source: &EventSource, arn: Option<&str>, bootstrap_servers: Option<&str>) -> Self {
        Self::with_capacity(source, arn, bootstrap_servers, 4096)
    }

    /// Starts an event with a buffer of `capacity` bytes reserved up front.
    pub fn with_capacity(
        source: &EventSource,
        arn: Option<&str>,
        bootstrap_servers: Option<&str>,
        capacity: usize,
    ) -> Self {
        Self::with_buffer(source, arn, bootstrap_servers, Vec::with_capacity(capacity))
    }

    /// Starts an event in `buf`, cleared, keeping its capacity: a buffer of a finished event
    /// that was sent can hold the next one without being allocated (and its pages faulted in)
    /// again.
    pub fn with_buffer(
        source: &EventSource,
        arn: Option<&str>,
        bootstrap_servers: Option<&str>,
        mut buf: Vec<u8>,
    ) -> Self {
        buf.clear();
        buf.extend_from_slice(b"{\"eventSource\":");
        json::write_str(&mut buf, source.as_str());
        if let Some(arn) = arn {
            buf.extend_from_slice(b",\"eventSourceArn\":");
            json::write_str(&mut buf, arn);
        }
        if let Some(servers) = bootstrap_servers {
            buf.extend_from_slice(b",\"bootstrapServers\":");
            json::write_str(&mut buf, servers);
        }
        buf.extend_from_slice(b",\"records\":{");
        EventWriter {
            buf,
            group: Group::None,
            records: 0,
            last_record: 0..0,
        }
    }

    /// Exact size in bytes of the event if it were finished now.
    pub fn len(&self) -> usize {
        self.buf.len() + self.closing().len()
    }

    /// Whether no record has been written.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Number of records written.
    pub fn record_count(&self) -> usize {
        self.records
    }

    /// Appends a record, opening a new `topic-partition` group when it differs from the previous
    /// record's. Records of one partition must be pushed contiguously.
    pub fn push(&mut self, record: &RecordRef<'_>) {
        if !self.continues_group(record.topic, record.partition) {
            self.open_group(record.topic, record.partition);
        }
        self.write_record(record);
    }

    /// Appends a record that an `EventWriter` already encoded: the bytes of a
    /// [`last_record`](Self::last_record) range of another event. Grouping works as in
    /// [`push`](Self::push). Builds an event of some records of an earlier one (a retry of part
    /// of a batch) by copying their JSON instead of encoding them again.
    pub fn push_encoded(&mut self, topic: &str, partition: i32, record_json: &[u8]) {
        if !self.continues_group(topic, partition) {
            self.open_group(topic, partition);
        }
        if !self.take_first() {
            self.buf.push(b',');
        }
        let start = self.buf.len();
        self.buf.extend_from_slice(record_json);
        self.last_record = start..self.buf.len();
        self.records += 1;
    }

    /// Where the JSON object of the last record written is, in the event's bytes: the same range
    /// in [`finish`](Self::finish)'s result. `None` before the first record.
    pub fn last_record(&self) -> Option<Range<usize>> {
        (!self.last_record.is_empty()).then(|| self.last_record.clone())
    }

    fn open_group(&mut self, topic: &str, partition: i32) {
        self.close_group();
        self.buf.push(b'"');
        json::write_str_body(&mut self.buf, topic);
        self.buf.push(b'-');
        json::write_int(&mut self.buf, partition);
        self.buf.extend_from_slice(b"\":[");
        self.group = Group::Partition {
            topic: topic.to_owned(),
            partition,
            first: true,
        };
    }

    /// Whether the next record is the first of its group (and it no longer will be).
    fn take_first(&mut self) -> bool {
        match &mut self.group {
            Group::Partition { first, .. } | Group::Keyed { first } => {
                std::mem::replace(first, false)
            }
            Group::None => false,
        }
    }

    /// Appends a record only if the finished event stays within `limit` bytes; otherwise leaves
    /// the event unchanged and tells the size it would have had.
    pub fn try_push(&mut self, record: &RecordRef<'_>, limit: usize) -> Result<(), PayloadFull> {
        let (len, records, last) = (self.buf.len(), self.records, self.last_record.clone());
        // The group is cloned (with its topic) only when this record opens a new one; within a
        // group only its `first` flag can change. A clone per record was an allocation per record.
        let previous =
            (!self.continues_group(record.topic, record.partition)).then(|| self.group.clone());
        let first = matches!(
            self.group,
            Group::Partition { first: true, .. } | Group::Keyed { first: true }
        );
        self.push(record);
        let would_be = self.len();
        if would_be > limit {
            match previous {
                Some(group) => self.group = group,
                None => {
                    if let Group::Partition { first: f, .. } | Group::Keyed { first: f } =
                        &mut self.group
                    {
                        *f = first;
                    }
                }
            }
            self.records = records;
            self.last_record = last;
            self.buf.truncate(len);
            return Err(PayloadFull { would_be, limit });
        }
        Ok(())
    }

    /// Whether a record of `topic`/`partition` belongs to the group opened last.
    fn continues_group(&self, topic: &str, partition: i32) -> bool {
        matches!(&self.group,
            Group::Partition { topic: t, partition: p, .. } if *p == partition && t == topic)
    }

    /// Opens a group under an explicit key (for re-encoding a parsed event verbatim, whatever
    /// its keys). Follow with [`push_in_group`](Self::push_in_group).
    pub fn begin_group(&mut self, key: &str) {
        self.close_group();
        json::write_str(&mut self.buf, key);
        self.buf.extend_from_slice(b":[");
        self.group = Group::Keyed { first: true };
    }

    /// Appends a record to the group opened by [`begin_group`](Self::begin_group).
    pub fn push_in_group(&mut self, record: &RecordRef<'_>) {
        self.write_record(record);
    }

    /// Finishes the event and returns its JSON bytes.
    pub fn finish(mut self) -> Vec<u8> {
        let closing = self.closing();
        self.buf.extend_from_slice(closing);
        self.buf
    }

    fn closing(&self) -> &'static [u8] {
        match self.group {
            Group::None => b"}}",
            _ => b"]}}",
        }
    }

    fn close_group(&mut self) {
        if self.group != Group::None {
            self.buf.extend_from_slice(b"],");
        }
    }

    fn write_record(&mut self, r: &RecordRef<'_>) {
        let first = match &mut self.group {
            Group::Partition { first, .. } | Group::Keyed { first } => {
                std::mem::replace(first, false)
            }
            Group::None => {
                // A record without a group: open one under the record's own key.
                self.push(r);
                return;
            }
        };
        let buf = &mut self.buf;
        if !first {
            buf.push(b',');
        }
        let start = buf.len();
        buf.extend_from_slice(b"{\"topic\":");
        json::write_str(buf, r.topic);
        buf.extend_from_slice(b",\"partition\":");
        json::write_int(buf, r.partition);
        buf.extend_from_slice(b",\"offset\":");
        json::write_int(buf, r.offset);
        buf.extend_from_slice(b",\"timestamp\":");
        json::write_int(buf, r.timestamp);
        buf.extend_from_slice(b",\"timestampType\":\"");
        buf.extend_from_slice(r.timestamp_type.as_str().as_bytes());
        buf.push(b'"');
        if let Some(key) = r.key {
            buf.extend_from_slice(b",\"key\":");
            json::write_base64(buf, key);
        }
        if let Some(value) = r.value {
            buf.extend_from_slice(b",\"value\":");
            json::write_base64(buf, value);
        }
        buf.extend_from_slice(b",\"headers\":[");
        for (i, h) in r.headers.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            buf.push(b'{');
            h.name.write_json(buf);
            buf.push(b':');
            json::write_java_bytes(buf, &h.value);
            buf.push(b'}');
        }
        buf.push(b']');
        if let Some(m) = r.key_schema_metadata {
            buf.extend_from_slice(b",\"keySchemaMetadata\":");
            write_schema_metadata(buf, m);
        }
        if let Some(m) = r.value_schema_metadata {
            buf.extend_from_slice(b",\"valueSchemaMetadata\":");
            write_schema_metadata(buf, m);
        }
        buf.push(b'}');
        self.last_record = start..self.buf.len();
        self.records += 1;
    }
}

fn write_schema_metadata(buf: &mut Vec<u8>, m: &SchemaMetadata) {
    buf.extend_from_slice(b"{\"dataFormat\":");
    json::write_str(buf, m.data_format.as_str());
    buf.extend_from_slice(b",\"schemaId\":");
    json::write_str(buf, &m.schema_id);
    buf.push(b'}');
}

impl KafkaEvent {
    /// Serializes the event to the exact JSON AWS sends (same bytes as `serde_json::to_vec`).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut writer = EventWriter::new(
            &self.event_source,
            self.event_source_arn.as_deref(),
            self.bootstrap_servers.as_deref(),
        );
        for (key, records) in &self.records {
            writer.begin_group(key);
            for record in records {
                writer.push_in_group(&RecordRef::from(record));
            }
        }
        writer.finish()
    }

    /// Size in bytes of the serialized event: what counts against Lambda's payload limit.
    pub fn serialized_len(&self) -> usize {
        self.to_vec().len()
    }
}
