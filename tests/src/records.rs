//! Records written to and read back from topics with plain rdkafka clients, as a test's
//! producers and its independent check of what a topic holds.

use crate::{group_name, services};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders, ToBytes};
use rdkafka::producer::{BaseProducer, BaseRecord, FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Produces `count` records to each of `partitions` partitions of `topic` on the shared broker,
/// as producers usually do (batches of many records, lz4-compressed, after a 5 ms linger), with
/// key `key-<partition>-<index>` and headers `index` (the index) and `binary` (bytes 0, 200,
/// 255); `value` gets (partition, index). Returns what was written, (partition, offset) → value.
///
/// # Panics
///
/// When a record is not acknowledged.
pub fn produce(
    topic: &str,
    partitions: i32,
    count: usize,
    value: impl Fn(i32, usize) -> String,
) -> BTreeMap<(i32, i64), String> {
    produce_compressed(topic, partitions, count, "lz4", value)
}

/// [`produce`] with librdkafka's `compression.codec` = `codec` (`none`, `gzip`, `snappy`,
/// `lz4`, `zstd`).
///
/// # Panics
///
/// As [`produce`].
pub fn produce_compressed(
    topic: &str,
    partitions: i32,
    count: usize,
    codec: &str,
    value: impl Fn(i32, usize) -> String,
) -> BTreeMap<(i32, i64), String> {
    let records = (0..partitions).flat_map(|p| {
        let value = &value;
        (0..count).map(move |i| {
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "index",
                    value: Some(i.to_string().as_bytes()),
                })
                .insert(Header {
                    key: "binary",
                    value: Some(&[0u8, 200, 255][..]),
                });
            (p, format!("key-{p}-{i}"), value(p, i), Some(headers))
        })
    });
    produce_to(
        services().kafka_bootstrap_servers(),
        &[
            ("linger.ms", "5"),
            ("compression.codec", codec),
            ("message.timeout.ms", "30000"),
        ],
        topic,
        records,
    )
}

/// Sends `records` (partition, key, value, headers) to `topic` at `bootstrap` with one producer
/// of `settings`, all in flight together and batched as any producer does, and waits for every
/// delivery report; returns what was written, (partition, offset) → value.
///
/// # Panics
///
/// When a record cannot be enqueued or is not acknowledged.
pub fn produce_to(
    bootstrap: &str,
    settings: &[(&str, &str)],
    topic: &str,
    records: impl IntoIterator<Item = (i32, String, String, Option<OwnedHeaders>)>,
) -> BTreeMap<(i32, i64), String> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    for (key, value) in settings {
        config.set(*key, *value);
    }
    let producer: FutureProducer = config.create().expect("producer");
    block_on(async {
        let mut pending = Vec::new();
        for (partition, key, value, headers) in records {
            let mut record = FutureRecord::to(topic)
                .partition(partition)
                .key(&key)
                .payload(&value);
            if let Some(headers) = headers {
                record = record.headers(headers);
            }
            let delivery = producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("enqueue a record");
            pending.push(async move { (delivery.await, value) });
        }
        let mut written = BTreeMap::new();
        for (delivery, value) in futures::future::join_all(pending).await {
            let delivery = delivery
                .expect("delivery report")
                .unwrap_or_else(|(e, _)| panic!("produce to {topic} failed: {e}"));
            written.insert((delivery.partition, delivery.offset), value);
        }
        written
    })
}

/// Sends `records` one at a time with a producer of `settings` (beside the shared broker's
/// bootstrap servers), each acknowledged before the next; returns their offsets.
///
/// # Panics
///
/// When a record is not acknowledged within 30 s.
pub fn send_each<'a>(
    settings: &[(&str, &str)],
    records: impl IntoIterator<Item = FutureRecord<'a, str, [u8]>>,
) -> Vec<i64> {
    let producer: FutureProducer = shared_broker_client(settings).create().expect("producer");
    records
        .into_iter()
        .map(|record| {
            let topic = record.topic.to_owned();
            block_on(producer.send(record, Duration::from_secs(30)))
                .unwrap_or_else(|(e, _)| panic!("produce to {topic} failed: {e}"))
                .offset
        })
        .collect()
}

/// Produces one record with key `k`, an optional timestamp (epoch ms) and headers; returns its
/// offset.
///
/// # Panics
///
/// As [`send_each`].
pub fn produce_one(
    topic: &str,
    partition: i32,
    value: &str,
    timestamp: Option<i64>,
    headers: &[(&str, &str)],
) -> i64 {
    let mut hs = OwnedHeaders::new();
    for (k, v) in headers {
        hs = hs.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    let mut record = FutureRecord::to(topic)
        .partition(partition)
        .key("k")
        .payload(value.as_bytes())
        .headers(hs);
    if let Some(ts) = timestamp {
        record = record.timestamp(ts);
    }
    send_each(&[], [record])[0]
}

/// Sends `records` with one producer of `settings` (beside the shared broker's bootstrap
/// servers), batched as any producer does, and waits until every one is acknowledged.
///
/// # Panics
///
/// When a record cannot be enqueued, or they are not all acknowledged within 30 s.
pub fn produce_all<'a, K, P>(
    settings: &[(&str, &str)],
    records: impl IntoIterator<Item = BaseRecord<'a, K, P>>,
) where
    K: ToBytes + ?Sized + 'a,
    P: ToBytes + ?Sized + 'a,
{
    let producer: BaseProducer = shared_broker_client(settings).create().expect("a producer");
    for record in records {
        producer
            .send(record)
            .map_err(|(error, _)| error)
            .expect("enqueue a record");
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("every record is acknowledged");
}

/// A client configuration for the shared broker's PLAINTEXT listener with `settings`.
fn shared_broker_client(settings: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", services().kafka_bootstrap_servers());
    for (key, value) in settings {
        config.set(*key, *value);
    }
    config
}

/// Runs `future` to its end on a runtime of its own (rdkafka's futures need tokio's timer).
fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// A record read back from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRecord {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key; `None` for a null key.
    pub key: Option<Vec<u8>>,
    /// Its value; `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    /// Its timestamp, epoch milliseconds.
    pub timestamp: Option<i64>,
    /// Its headers as written: names as bytes (any bytes), values possibly null.
    pub raw_headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl ReadRecord {
    /// The headers, names read lossily as text and a null value as empty.
    pub fn headers(&self) -> Vec<(String, Vec<u8>)> {
        self.raw_headers
            .iter()
            .map(|(name, value)| {
                (
                    String::from_utf8_lossy(name).into_owned(),
                    value.clone().unwrap_or_default(),
                )
            })
            .collect()
    }

    /// The headers' names, as bytes.
    pub fn header_names(&self) -> Vec<Vec<u8>> {
        self.raw_headers
            .iter()
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The value of the last header called `name`, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.raw_headers
            .iter()
            .rev()
            .find(|(n, _)| n == name.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v.as_deref().unwrap_or_default()).into_owned())
    }
}

/// Reads every record of `topic` on the shared broker (all partitions, from the start) until
/// `expected` were read or `timeout` passed.
pub fn read_topic(topic: &str, expected: usize, timeout: Duration) -> Vec<ReadRecord> {
    read_topic_from(
        services().kafka_bootstrap_servers(),
        topic,
        expected,
        timeout,
    )
}

/// [`read_topic`] on another broker.
pub fn read_topic_from(
    bootstrap: &str,
    topic: &str,
    expected: usize,
    timeout: Duration,
) -> Vec<ReadRecord> {
    TopicReader {
        timeout,
        ..TopicReader::new(bootstrap)
    }
    .read(topic, expected)
}

/// Reads a topic from its start with a plain consumer of its own group, outside any test's
/// group: how a test checks what a topic holds. [`TopicReader::new`] reads every partition of a
/// topic for at most 60 s; set the fields for more.
#[derive(Debug, Clone)]
pub struct TopicReader<'a> {
    /// The brokers, `host:port[,host:port]`.
    pub bootstrap: &'a str,
    /// More client settings (`security.protocol`, SASL, …).
    pub settings: &'a [(&'a str, &'a str)],
    /// Reads this partition only, else every partition.
    pub partition: Option<i32>,
    /// Stops reading after this long, however many records were read.
    pub timeout: Duration,
    /// Goes on reading this long once the records expected are there, so that a record written
    /// more often than it should shows (within the timeout).
    pub linger: Duration,
}

impl<'a> TopicReader<'a> {
    /// A reader of the brokers at `bootstrap`, of every partition, that gives up after 60 s.
    pub fn new(bootstrap: &'a str) -> TopicReader<'a> {
        TopicReader {
            bootstrap,
            settings: &[],
            partition: None,
            timeout: Duration::from_secs(60),
            linger: Duration::ZERO,
        }
    }

    /// The records of `topic`, in the order they were read: offset order within a partition.
    ///
    /// # Panics
    ///
    /// When no consumer can be made, the topic's metadata cannot be read, or a partition cannot
    /// be assigned.
    pub fn read(&self, topic: &str, expected: usize) -> Vec<ReadRecord> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", self.bootstrap)
            .set("group.id", group_name("reader"))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10");
        for (key, value) in self.settings {
            config.set(*key, *value);
        }
        let consumer: BaseConsumer = config.create().expect("a consumer");
        let mut assignment = TopicPartitionList::new();
        let partitions = match self.partition {
            Some(partition) => vec![partition],
            None => consumer
                .fetch_metadata(Some(topic), Duration::from_secs(10))
                .expect("topic metadata")
                .topics()
                .iter()
                .flat_map(|t| t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>())
                .collect(),
        };
        for partition in partitions {
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .expect("an assignment");
        }
        consumer.assign(&assignment).expect("assign");
        let start = Instant::now();
        let mut complete_at = None;
        let mut out = Vec::new();
        while start.elapsed() < self.timeout {
            if out.len() >= expected {
                let at = *complete_at.get_or_insert_with(Instant::now);
                if at.elapsed() >= self.linger {
                    break;
                }
            }
            let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            out.push(ReadRecord {
                partition: message.partition(),
                offset: message.offset(),
                key: message.key().map(<[u8]>::to_vec),
                value: message.payload().map(<[u8]>::to_vec),
                timestamp: message.timestamp().to_millis(),
                raw_headers: kafka_lambda_client::raw_headers(&message)
                    .map(|(name, value)| (name.to_vec(), value.map(<[u8]>::to_vec)))
                    .collect(),
            });
        }
        out
    }
}
