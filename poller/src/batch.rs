//! Batches: records of one partition gathered up to `batch_size` records or the payload byte
//! limit, encoded straight from librdkafka's buffers into the event payload as they arrive.
//!
//! A batch keeps, per record, only what the poller decides on (offset, timestamp) and where the
//! record's JSON object is in the payload: a retry of part of a batch copies those bytes into a
//! new event ([`encode_part`]) instead of encoding the records again, and no record is
//! copied out of librdkafka on the way.

use kafka_lambda_events::{
    EventSource, EventWriter, Header, KafkaRecord, RecordRef, SchemaMetadata, TimestampType,
};
use rdkafka::Message;
use rdkafka::message::BorrowedMessage;
use std::ops::Range;

/// One record taken off a partition queue, owned. Only records that leave the fast path are
/// copied into one: the record that starts the next batch, and a record given up before it is
/// in a batch (too large, or the input template does not apply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PolledRecord {
    /// Offset.
    pub offset: i64,
    /// Epoch milliseconds, `-1` when the record has none.
    pub timestamp: i64,
    /// What the timestamp means.
    pub timestamp_type: TimestampType,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes (`None`: tombstone).
    pub value: Option<Vec<u8>>,
    /// Headers in record order (a null header value becomes empty).
    pub headers: Vec<Header>,
    /// The value as read from Kafka when the event carries another one in `value` (decoded
    /// through the schema registry, or reshaped by the input template); the on-failure
    /// destination receives this one, so a dead letter is the original record.
    pub original_value: Option<Vec<u8>>,
    /// The key as read from Kafka when the event carries another one (decoded through the
    /// schema registry), for the on-failure destination as `original_value`.
    pub original_key: Option<Vec<u8>>,
    /// The key's schema metadata, when it was decoded through the schema registry.
    pub key_schema_metadata: Option<SchemaMetadata>,
    /// The value's schema metadata, when it was decoded through the schema registry.
    pub value_schema_metadata: Option<SchemaMetadata>,
}

/// A record's key and value as read from Kafka, where its event carries something else (schema
/// decoding, the input template); `None` where the event carries the part as read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Original<'a> {
    /// The key as read.
    pub key: Option<&'a [u8]>,
    /// The value as read.
    pub value: Option<&'a [u8]>,
}

impl PolledRecord {
    /// Copies a message out of librdkafka's buffer.
    pub(crate) fn from_message(msg: &BorrowedMessage<'_>) -> Self {
        let (timestamp, timestamp_type) = timestamp(msg);
        let headers = kafka_lambda_client::raw_headers(msg)
            .map(|(name, value)| Header::new(name, value.unwrap_or_default()))
            .collect();
        PolledRecord {
            offset: msg.offset(),
            timestamp,
            timestamp_type,
            key: msg.key().map(<[u8]>::to_vec),
            value: msg.payload().map(<[u8]>::to_vec),
            headers,
            original_value: None,
            original_key: None,
            key_schema_metadata: None,
            value_schema_metadata: None,
        }
    }

    /// Copies a record that was about to be written (the inverse of
    /// [`as_record_ref`](Self::as_record_ref)): its key, value and headers are already read
    /// out of the message, the key and value perhaps made of the `original` ones.
    pub(crate) fn from_ref(record: &RecordRef<'_>, original: Original<'_>) -> Self {
        PolledRecord {
            offset: record.offset,
            timestamp: record.timestamp,
            timestamp_type: record.timestamp_type,
            key: record.key.map(<[u8]>::to_vec),
            value: record.value.map(<[u8]>::to_vec),
            headers: record.headers.to_vec(),
            original_value: original.value.map(<[u8]>::to_vec),
            original_key: original.key.map(<[u8]>::to_vec),
            key_schema_metadata: record.key_schema_metadata.cloned(),
            value_schema_metadata: record.value_schema_metadata.cloned(),
        }
    }

    /// The key and value as read, where the event carries others.
    pub(crate) fn original(&self) -> Original<'_> {
        Original {
            key: self.original_key.as_deref(),
            value: self.original_value.as_deref(),
        }
    }

    /// A view for the event writer.
    pub(crate) fn as_record_ref<'a>(&'a self, topic: &'a str, partition: i32) -> RecordRef<'a> {
        RecordRef {
            topic,
            partition,
            offset: self.offset,
            timestamp: self.timestamp,
            timestamp_type: self.timestamp_type,
            key: self.key.as_deref(),
            value: self.value.as_deref(),
            headers: &self.headers,
            key_schema_metadata: self.key_schema_metadata.as_ref(),
            value_schema_metadata: self.value_schema_metadata.as_ref(),
        }
    }
}

/// A message's timestamp in the event's terms: epoch milliseconds (`-1` for none) and its type.
pub(crate) fn timestamp(msg: &BorrowedMessage<'_>) -> (i64, TimestampType) {
    match msg.timestamp() {
        rdkafka::Timestamp::CreateTime(t) => (t, TimestampType::CreateTime),
        rdkafka::Timestamp::LogAppendTime(t) => (t, TimestampType::LogAppendTime),
        rdkafka::Timestamp::NotAvailable => (-1, TimestampType::NoTimestampType),
    }
}

/// The headers of the message being looked at, in buffers reused from one message to the next:
/// once they have grown to the usual header sizes, reading a message's headers allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct HeaderScratch {
    headers: Vec<Header>,
    len: usize,
}

impl HeaderScratch {
    /// Copies `msg`'s headers in (a null value becomes empty) and returns them.
    pub(crate) fn fill(&mut self, msg: &BorrowedMessage<'_>) -> &[Header] {
        self.len = 0;
        // Names as bytes: a name that is not UTF-8 is carried, not a panic.
        for (name, value) in kafka_lambda_client::raw_headers(msg) {
            let value = value.unwrap_or_default();
            match self.headers.get_mut(self.len) {
                Some(slot) => {
                    slot.name.set_bytes(name);
                    slot.value.clear();
                    slot.value.extend_from_slice(value);
                }
                None => self.headers.push(Header::new(name, value)),
            }
            self.len += 1;
        }
        self.get()
    }

    /// The headers of the last [`fill`](Self::fill).
    pub(crate) fn get(&self) -> &[Header] {
        &self.headers[..self.len]
    }
}

/// The event's top-level fields, the same for every batch of a mapping.
#[derive(Debug, Clone)]
pub(crate) struct EventHeader {
    /// `eventSource`.
    pub source: EventSource,
    /// `eventSourceArn` (MSK).
    pub arn: Option<String>,
    /// `bootstrapServers`.
    pub bootstrap_servers: String,
}

impl EventHeader {
    /// An empty event with these top-level fields and `capacity` bytes reserved.
    pub(crate) fn writer(&self, capacity: usize) -> EventWriter {
        self.writer_in(Vec::with_capacity(capacity))
    }

    /// An empty event with these top-level fields, written into `buf` (cleared).
    pub(crate) fn writer_in(&self, buf: Vec<u8>) -> EventWriter {
        EventWriter::with_buffer(
            &self.source,
            self.arn.as_deref(),
            Some(&self.bootstrap_servers),
            buf,
        )
    }
}

/// Room reserved past the payload limit: a record is written before the writer knows it does
/// not fit (then it is cut off again), and without the room the buffer would be reallocated
/// (copying the whole payload) at the end of every full batch. Only a record larger than this
/// still makes the buffer grow.
const OVERFLOW_ROOM: usize = 64 * 1024;

/// Why a record was not added to a batch; the batch is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// The batch is full (by count or bytes); the record starts the next batch.
    Full,
    /// The record alone exceeds the payload limit: it can never be delivered as is.
    TooLarge {
        /// Size of an event holding just this record.
        payload_bytes: usize,
    },
}

/// One record of a batch: what the poller decides on, and where its JSON is in the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BatchRecord {
    /// Offset.
    pub offset: i64,
    /// Epoch milliseconds, `-1` when the record has none.
    pub timestamp: i64,
    /// The record's JSON object in [`Batch::payload`].
    pub json: Range<usize>,
    /// The value as read, where the event carries another (see [`PolledRecord::original_value`]).
    pub original_value: Option<Box<[u8]>>,
    /// The key as read, where the event carries another (see [`PolledRecord::original_key`]).
    pub original_key: Option<Box<[u8]>>,
}

impl BatchRecord {
    /// The record read back from its JSON in `payload` (the batch's), for the rare paths that
    /// need its key, value and headers again (the on-failure destination).
    pub(crate) fn to_polled(&self, payload: &[u8]) -> PolledRecord {
        // The poller wrote these bytes with `EventWriter`, whose output always parses (the
        // events crate's round-trip property tests).
        let r: KafkaRecord = serde_json::from_slice(&payload[self.json.clone()])
            .expect("a record's JSON written by EventWriter parses");
        PolledRecord {
            offset: r.offset,
            timestamp: r.timestamp,
            timestamp_type: r.timestamp_type,
            key: r.key,
            value: r.value,
            headers: r.headers,
            original_value: self.original_value.as_deref().map(<[u8]>::to_vec),
            original_key: self.original_key.as_deref().map(<[u8]>::to_vec),
            key_schema_metadata: r.key_schema_metadata,
            value_schema_metadata: r.value_schema_metadata,
        }
    }
}

/// Gathers a batch of one partition and encodes it as it goes.
#[derive(Debug)]
pub(crate) struct BatchBuilder {
    max_records: usize,
    max_bytes: usize,
    writer: EventWriter,
    records: Vec<BatchRecord>,
}

impl BatchBuilder {
    /// An empty batch with the given limits.
    #[cfg(test)]
    pub(crate) fn new(header: &EventHeader, max_records: usize, max_bytes: usize) -> Self {
        Self::in_buffer(header, max_records, max_bytes, Vec::new())
    }

    /// An empty batch whose payload buffer grows as records are added: for the many small
    /// batches in flight at once of `ordering = "key"`, where reserving `max_bytes` for each
    /// would hold that much memory per batch in flight.
    pub(crate) fn growing(header: &EventHeader, max_records: usize, max_bytes: usize) -> Self {
        BatchBuilder {
            max_records,
            max_bytes,
            writer: header.writer_in(Vec::new()),
            records: Vec::new(),
        }
    }

    /// An empty batch whose payload is written into `buf` (the buffer of an earlier batch,
    /// reused).
    pub(crate) fn in_buffer(
        header: &EventHeader,
        max_records: usize,
        max_bytes: usize,
        mut buf: Vec<u8>,
    ) -> Self {
        // The whole payload limit at once: growing by doubling would copy the payload again and
        // touch fresh pages each time; the pages of the reservation a small batch never reaches
        // are never touched, so they cost no memory.
        buf.clear();
        buf.reserve(max_bytes + OVERFLOW_ROOM);
        BatchBuilder {
            max_records,
            max_bytes,
            writer: header.writer_in(buf),
            records: Vec::new(),
        }
    }

    /// Adds a record of this batch's partition if it fits (its `topic` and `partition` are the
    /// batch's). Nothing of the record is kept but its JSON in the payload. An empty batch
    /// never answers [`Rejected::Full`]: a record that does not fit it is
    /// [`Rejected::TooLarge`]. `original` holds the key and value as read where the event
    /// carries others: kept for the on-failure destination.
    pub(crate) fn try_add(
        &mut self,
        record: &RecordRef<'_>,
        original: Original<'_>,
    ) -> Result<(), Rejected> {
        if self.records.len() >= self.max_records {
            return Err(Rejected::Full);
        }
        match self.writer.try_push(record, self.max_bytes) {
            Ok(()) => {
                self.records.push(BatchRecord {
                    offset: record.offset,
                    timestamp: record.timestamp,
                    json: self.writer.last_record().unwrap_or_default(),
                    original_value: original.value.map(Box::from),
                    original_key: original.key.map(Box::from),
                });
                Ok(())
            }
            Err(full) if self.records.is_empty() => Err(Rejected::TooLarge {
                payload_bytes: full.would_be,
            }),
            Err(_) => Err(Rejected::Full),
        }
    }

    /// Whether the batch holds `max_records` records.
    pub(crate) fn is_full(&self) -> bool {
        self.records.len() >= self.max_records
    }

    /// Whether the batch has no records.
    pub(crate) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The finished batch.
    #[cfg(test)]
    pub(crate) fn finish(self) -> Batch {
        self.finish_covering(None)
    }

    /// The finished batch, also covering offsets up to `covered` that were finished without
    /// being invoked (filtered out, or given up) while it was gathered.
    pub(crate) fn finish_covering(self, covered: Option<i64>) -> Batch {
        let last = self.records.last().map_or(-1, |r| r.offset);
        Batch {
            payload: self.writer.finish(),
            records: self.records,
            end: covered.map_or(last, |c| c.max(last)),
        }
    }
}

/// A batch ready to invoke: its records (in offset order) and the exact payload.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    /// The records, in offset order.
    pub records: Vec<BatchRecord>,
    /// The serialized Kafka event.
    pub payload: Vec<u8>,
    /// Last offset the batch covers: its last record, or a later record that was filtered out
    /// or given up while the batch was gathered. Delivering the batch finishes everything up to it.
    pub end: i64,
}

/// An event of some records of a batch (of `topic`/`partition`), by copying their JSON out of
/// the batch's `payload`: byte for byte what encoding the same records again would give.
pub(crate) fn encode_part(
    header: &EventHeader,
    topic: &str,
    partition: i32,
    payload: &[u8],
    records: &[BatchRecord],
) -> Vec<u8> {
    let top = header.arn.as_ref().map_or(0, String::len) + header.bootstrap_servers.len();
    let size = records.iter().map(|r| r.json.len() + 1).sum::<usize>();
    let mut writer = header.writer(size + top + topic.len() + 128);
    for r in records {
        writer.push_encoded(topic, partition, &payload[r.json.clone()]);
    }
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_lambda_events::KafkaEvent;

    fn header() -> EventHeader {
        EventHeader {
            source: EventSource::SelfManagedKafka,
            arn: None,
            bootstrap_servers: "k:9092".into(),
        }
    }

    fn record(offset: i64, size: usize) -> PolledRecord {
        PolledRecord {
            offset,
            timestamp: 1_700_000_000_000 + offset,
            timestamp_type: TimestampType::CreateTime,
            key: Some(format!("k{offset}").into_bytes()),
            value: Some(vec![b'x'; size]),
            headers: vec![Header::new("h", vec![0xff, 1])],
            original_value: None,
            original_key: None,
            key_schema_metadata: None,
            value_schema_metadata: None,
        }
    }

    #[test]
    fn a_batch_closes_at_the_record_count() {
        let h = header();
        let mut b = BatchBuilder::new(&h, 2, 1 << 20);
        b.try_add(&record(0, 10).as_record_ref("t", 3), Original::default())
            .unwrap();
        b.try_add(&record(1, 10).as_record_ref("t", 3), Original::default())
            .unwrap();
        assert!(b.is_full());
        assert_eq!(
            b.try_add(&record(2, 10).as_record_ref("t", 3), Original::default()),
            Err(Rejected::Full)
        );
        let batch = b.finish();
        let event = KafkaEvent::from_slice(&batch.payload).unwrap();
        assert_eq!(event.records.keys().collect::<Vec<_>>(), ["t-3"]);
        assert_eq!(
            event.records().map(|r| r.offset).collect::<Vec<_>>(),
            [0, 1]
        );
        assert_eq!(event.bootstrap_servers.as_deref(), Some("k:9092"));
    }

    #[test]
    fn a_batch_closes_at_the_byte_limit_and_never_exceeds_it() {
        let h = header();
        let limit = 2_000;
        let mut b = BatchBuilder::new(&h, 10_000, limit);
        let mut offset = 0;
        let rejected = loop {
            match b.try_add(
                &record(offset, 300).as_record_ref("t", 0),
                Original::default(),
            ) {
                Ok(()) => offset += 1,
                Err(r) => break r,
            }
        };
        assert_eq!(rejected, Rejected::Full);
        let batch = b.finish();
        assert!(batch.payload.len() <= limit, "{}", batch.payload.len());
        assert!(
            batch.payload.len() > limit - 600,
            "batch closed too early: {}",
            batch.payload.len()
        );
        assert_eq!(
            KafkaEvent::from_slice(&batch.payload).unwrap().len(),
            offset as usize
        );
    }

    #[test]
    fn a_record_larger_than_the_limit_is_reported_not_looped_on() {
        let h = header();
        let mut b = BatchBuilder::new(&h, 100, 1_024);
        match b.try_add(&record(7, 5_000).as_record_ref("t", 0), Original::default()) {
            Err(Rejected::TooLarge { payload_bytes }) => {
                assert!(payload_bytes > 1_024);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert!(b.is_empty());
    }

    #[test]
    fn a_part_of_a_batch_is_the_event_of_its_records_and_reads_back_as_them() {
        let h = header();
        let records: Vec<PolledRecord> = (10..16).map(|o| record(o, 50 + o as usize)).collect();
        let mut b = BatchBuilder::new(&h, 100, 1 << 20);
        for r in &records {
            b.try_add(&r.as_record_ref("t", 1), Original::default())
                .unwrap();
        }
        let batch = b.finish();
        let part = &batch.records[2..5];
        let mut direct = h.writer(0);
        for r in &records[2..5] {
            direct.push(&r.as_record_ref("t", 1));
        }
        assert_eq!(
            encode_part(&h, "t", 1, &batch.payload, part),
            direct.finish()
        );
        for (b, r) in batch.records.iter().zip(&records) {
            assert_eq!((b.offset, b.timestamp), (r.offset, r.timestamp));
            assert_eq!(&b.to_polled(&batch.payload), r);
            assert_eq!(
                &PolledRecord::from_ref(&r.as_record_ref("t", 1), Original::default()),
                r
            );
        }
    }

    #[test]
    fn a_batch_written_into_a_used_buffer_is_the_same_batch() {
        let h = header();
        let r = record(3, 20);
        let mut fresh = BatchBuilder::new(&h, 10, 1 << 20);
        fresh
            .try_add(&r.as_record_ref("t", 0), Original::default())
            .unwrap();
        let used = b"stale bytes of an earlier payload".repeat(100);
        let mut reused = BatchBuilder::in_buffer(&h, 10, 1 << 20, used);
        reused
            .try_add(&r.as_record_ref("t", 0), Original::default())
            .unwrap();
        let (fresh, reused) = (fresh.finish(), reused.finish());
        assert_eq!(fresh.payload, reused.payload);
        assert_eq!(fresh.records, reused.records);
    }
}
