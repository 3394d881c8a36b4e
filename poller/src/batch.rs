//! Batches: records of one partition gathered up to `batch_size` records or the payload byte
//! limit, encoded straight into the event payload as they arrive.

use kafka_lambda_events::{EventSource, EventWriter, Header, RecordRef, TimestampType};
use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Headers};

/// One record taken off a partition queue (owned, so a batch can be retried or split).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolledRecord {
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
}

impl PolledRecord {
    /// Copies a message out of librdkafka's buffer.
    pub fn from_message(msg: &BorrowedMessage<'_>) -> Self {
        let (timestamp, timestamp_type) = match msg.timestamp() {
            rdkafka::Timestamp::CreateTime(t) => (t, TimestampType::CreateTime),
            rdkafka::Timestamp::LogAppendTime(t) => (t, TimestampType::LogAppendTime),
            rdkafka::Timestamp::NotAvailable => (-1, TimestampType::NoTimestampType),
        };
        let headers = msg
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| Header::new(h.key, h.value.unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        PolledRecord {
            offset: msg.offset(),
            timestamp,
            timestamp_type,
            key: msg.key().map(<[u8]>::to_vec),
            value: msg.payload().map(<[u8]>::to_vec),
            headers,
        }
    }

    /// A view for the event writer.
    pub fn as_record_ref<'a>(&'a self, topic: &'a str, partition: i32) -> RecordRef<'a> {
        RecordRef {
            topic,
            partition,
            offset: self.offset,
            timestamp: self.timestamp,
            timestamp_type: self.timestamp_type,
            key: self.key.as_deref(),
            value: self.value.as_deref(),
            headers: &self.headers,
            key_schema_metadata: None,
            value_schema_metadata: None,
        }
    }
}

/// The event's top-level fields, the same for every batch of a mapping.
#[derive(Debug, Clone)]
pub struct EventHeader {
    /// `eventSource`.
    pub source: EventSource,
    /// `eventSourceArn` (MSK).
    pub arn: Option<String>,
    /// `bootstrapServers`.
    pub bootstrap_servers: String,
}

/// Why a record was not added to a batch.
#[derive(Debug)]
pub enum Rejected {
    /// The batch is full (by count or bytes); the record starts the next batch.
    Full(PolledRecord),
    /// The record alone exceeds the payload limit: it can never be delivered as is.
    TooLarge {
        /// The record.
        record: PolledRecord,
        /// Size of an event holding just this record.
        payload_bytes: usize,
    },
}

/// Gathers a batch of one partition and encodes it as it goes.
#[derive(Debug)]
pub struct BatchBuilder<'a> {
    topic: &'a str,
    partition: i32,
    max_records: usize,
    max_bytes: usize,
    writer: EventWriter,
    records: Vec<PolledRecord>,
}

impl<'a> BatchBuilder<'a> {
    /// An empty batch for `topic`/`partition` with the given limits.
    pub fn new(
        header: &EventHeader,
        topic: &'a str,
        partition: i32,
        max_records: usize,
        max_bytes: usize,
    ) -> Self {
        BatchBuilder {
            topic,
            partition,
            max_records,
            max_bytes,
            writer: EventWriter::with_capacity(
                &header.source,
                header.arn.as_deref(),
                Some(&header.bootstrap_servers),
                max_bytes.min(64 * 1024),
            ),
            records: Vec::new(),
        }
    }

    /// Adds a record if it fits.
    pub fn try_add(&mut self, record: PolledRecord) -> Result<(), Rejected> {
        if self.records.len() >= self.max_records {
            return Err(Rejected::Full(record));
        }
        match self.writer.try_push(
            &record.as_record_ref(self.topic, self.partition),
            self.max_bytes,
        ) {
            Ok(()) => {
                self.records.push(record);
                Ok(())
            }
            Err(full) if self.records.is_empty() => Err(Rejected::TooLarge {
                record,
                payload_bytes: full.would_be,
            }),
            Err(_) => Err(Rejected::Full(record)),
        }
    }

    /// Whether the batch holds `max_records` records.
    pub fn is_full(&self) -> bool {
        self.records.len() >= self.max_records
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the batch has no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The finished batch.
    pub fn finish(self) -> Batch {
        self.finish_covering(None)
    }

    /// The finished batch, also covering offsets up to `covered` that were finished without
    /// being invoked (filtered out, or given up) while it was gathered.
    pub fn finish_covering(self, covered: Option<i64>) -> Batch {
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
pub struct Batch {
    /// The records, in offset order.
    pub records: Vec<PolledRecord>,
    /// The serialized Kafka event.
    pub payload: Vec<u8>,
    /// Last offset the batch covers: its last record, or a later record that was filtered out
    /// or given up while the batch was gathered. Delivering the batch finishes everything up to it.
    pub end: i64,
}

impl Batch {
    /// First offset in the batch.
    pub fn first_offset(&self) -> i64 {
        self.records.first().map_or(-1, |r| r.offset)
    }

    /// Last offset in the batch.
    pub fn last_offset(&self) -> i64 {
        self.records.last().map_or(-1, |r| r.offset)
    }
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
        }
    }

    #[test]
    fn a_batch_closes_at_the_record_count() {
        let h = header();
        let mut b = BatchBuilder::new(&h, "t", 3, 2, 1 << 20);
        b.try_add(record(0, 10)).unwrap();
        b.try_add(record(1, 10)).unwrap();
        assert!(b.is_full());
        assert!(matches!(b.try_add(record(2, 10)), Err(Rejected::Full(r)) if r.offset == 2));
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
        let mut b = BatchBuilder::new(&h, "t", 0, 10_000, limit);
        let mut offset = 0;
        let rejected = loop {
            match b.try_add(record(offset, 300)) {
                Ok(()) => offset += 1,
                Err(r) => break r,
            }
        };
        assert!(matches!(rejected, Rejected::Full(ref r) if r.offset == offset));
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
        let mut b = BatchBuilder::new(&h, "t", 0, 100, 1_024);
        match b.try_add(record(7, 5_000)) {
            Err(Rejected::TooLarge {
                record,
                payload_bytes,
            }) => {
                assert_eq!(record.offset, 7);
                assert!(payload_bytes > 1_024);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert!(b.is_empty());
    }
}
