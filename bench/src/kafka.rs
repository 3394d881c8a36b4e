//! The broker side: topics, producing the workload, the baseline consumer, committed offsets.

use crate::workload;
use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A unique name for a topic or group of this run.
pub(crate) fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{prefix}-{}-{:x}",
        std::process::id(),
        nanos & 0xff_ffff_ffff
    )
}

/// Creates `topic` with [`workload::PARTITIONS`] partitions.
pub(crate) async fn create_topic(bootstrap: &str, topic: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let results = admin
        .create_topics(
            &[NewTopic::new(
                topic,
                workload::PARTITIONS,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?;
    for result in results {
        if let Err((name, code)) = result
            && code != RDKafkaErrorCode::TopicAlreadyExists
        {
            anyhow::bail!("cannot create topic {name}: {code}");
        }
    }
    Ok(())
}

/// The sum of the high watermarks of `topic`'s partitions: how many records it holds (the
/// benchmark topics have no transactions and no compaction, so no offset is a gap).
pub(crate) fn total_end_offset(bootstrap: &str, topic: &str) -> anyhow::Result<u64> {
    let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let mut total = 0u64;
    for partition in 0..workload::PARTITIONS {
        let (_, high) = rdkafka::consumer::Consumer::fetch_watermarks(
            &consumer,
            topic,
            partition,
            Duration::from_secs(30),
        )?;
        total += u64::try_from(high).unwrap_or(0);
    }
    Ok(total)
}

/// Counts the records the broker did not take, keeping the first error.
#[derive(Default)]
pub(crate) struct DeliveryErrors {
    failed: AtomicU64,
    first: Mutex<Option<String>>,
}

impl ClientContext for DeliveryErrors {}

impl ProducerContext for DeliveryErrors {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut first) = self.first.lock() {
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

impl DeliveryErrors {
    fn check(&self) -> anyhow::Result<()> {
        let failed = self.failed.load(Ordering::Relaxed);
        if failed > 0 {
            let first = self
                .first
                .lock()
                .ok()
                .and_then(|f| f.clone())
                .unwrap_or_default();
            anyhow::bail!("the broker did not take {failed} records; the first error: {first}");
        }
        Ok(())
    }
}

type Producer0 = BaseProducer<DeliveryErrors>;

fn producer(bootstrap: &str, linger_ms: u32) -> anyhow::Result<Producer0> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", linger_ms.to_string())
        .set("queue.buffering.max.kbytes", "1048576")
        .set("queue.buffering.max.messages", "1000000")
        .set("message.timeout.ms", "300000")
        .create_with_context(DeliveryErrors::default())?)
}

fn record_headers(id: u64) -> OwnedHeaders {
    workload::headers(id)
        .iter()
        .fold(OwnedHeaders::new_with_capacity(2), |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(value.as_slice()),
            })
        })
}

fn send(producer: &Producer0, topic: &str, id: u64) -> anyhow::Result<()> {
    send_keyed(producer, topic, id, &workload::key(id))
}

/// [`send`] with another key.
fn send_keyed(producer: &Producer0, topic: &str, id: u64, key: &[u8]) -> anyhow::Result<()> {
    let value = workload::value(id, now_ms() / 1000);
    let record = BaseRecord::to(topic)
        .partition((id % workload::PARTITIONS as u64) as i32)
        .key(key)
        .payload(&value)
        .headers(record_headers(id))
        .timestamp(now_ms());
    send_record(producer, record)
}

/// Sends `record`, waiting while librdkafka's queue is full.
fn send_record(
    producer: &Producer0,
    mut record: BaseRecord<'_, [u8], Vec<u8>>,
) -> anyhow::Result<()> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

/// Produces records `first..first + count` of the workload as fast as the broker takes them;
/// returns how long it took.
pub(crate) fn produce(
    bootstrap: &str,
    topic: &str,
    first: u64,
    count: u64,
) -> anyhow::Result<Duration> {
    produce_ids(bootstrap, topic, first..first + count, workload::key)
}

/// Produces `count` records with the values `value(id)` (keyed by their id, over the workload's
/// partitions), as fast as the broker takes them; returns how long it took.
pub(crate) fn produce_values(
    bootstrap: &str,
    topic: &str,
    count: u64,
    value: impl Fn(u64) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<Duration> {
    send_all(bootstrap, 0..count, |producer, id| {
        let key = id.to_string();
        let payload = value(id)?;
        let record = BaseRecord::to(topic)
            .partition((id % workload::PARTITIONS as u64) as i32)
            .key(key.as_bytes())
            .payload(&payload);
        send_record(producer, record)
    })
}

/// Sends record `id` of `ids` with `send`, in order, as fast as the broker takes them, then
/// waits for every one to be acknowledged; returns how long it took.
fn send_all(
    bootstrap: &str,
    ids: std::ops::Range<u64>,
    send: impl Fn(&Producer0, u64) -> anyhow::Result<()>,
) -> anyhow::Result<Duration> {
    let producer = producer(bootstrap, 50)?;
    let started = Instant::now();
    for id in ids {
        send(&producer, id)?;
        if id % 1024 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer
        .flush(Duration::from_secs(600))
        .context("flushing the produced records")?;
    producer.context().check()?;
    Ok(started.elapsed())
}

/// Produces records `0..count` of the workload with the keys `key(id)` instead of the
/// workload's; returns how long it took.
pub(crate) fn produce_keyed(
    bootstrap: &str,
    topic: &str,
    count: u64,
    key: impl Fn(u64) -> Vec<u8>,
) -> anyhow::Result<Duration> {
    produce_ids(bootstrap, topic, 0..count, key)
}

/// Produces the workload's records `ids` with the keys `key(id)`, as fast as the broker takes
/// them; returns how long it took.
fn produce_ids(
    bootstrap: &str,
    topic: &str,
    ids: std::ops::Range<u64>,
    key: impl Fn(u64) -> Vec<u8>,
) -> anyhow::Result<Duration> {
    send_all(bootstrap, ids, |producer, id| {
        send_keyed(producer, topic, id, &key(id))
    })
}

/// Produces `rate` records per second for `duration`, each sent at its own moment with its
/// timestamp taken then, and no lingering: records reach the broker when they are produced.
pub(crate) fn produce_paced(
    bootstrap: &str,
    topic: &str,
    rate: u32,
    duration: Duration,
) -> anyhow::Result<u64> {
    let producer = producer(bootstrap, 0)?;
    let interval = Duration::from_secs(1) / rate;
    let started = Instant::now();
    let mut id = 0;
    while started.elapsed() < duration {
        send(&producer, topic, id)?;
        producer.poll(Duration::ZERO);
        id += 1;
        let next = started + interval * id as u32;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    producer.flush(Duration::from_secs(30))?;
    producer.context().check()?;
    Ok(id)
}

/// One consumer run over a topic.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConsumeRun {
    /// Records consumed.
    pub(crate) records: u64,
    /// From the start (subscribe, or process start) to the last record.
    pub(crate) wall: Duration,
    /// From the first record to the last.
    pub(crate) steady: Duration,
    /// Records that arrived after the first one (or first batch): what `steady` covers.
    pub(crate) steady_records: u64,
    /// CPU time the consumer used, when known.
    pub(crate) cpu: Option<Duration>,
}

impl ConsumeRun {
    /// Records per second from the first record to the last.
    pub(crate) fn steady_rate(&self) -> f64 {
        self.steady_records as f64 / self.steady.as_secs_f64()
    }

    /// Records per second including start-up and the group join.
    pub(crate) fn wall_rate(&self) -> f64 {
        self.records as f64 / self.wall.as_secs_f64()
    }
}

/// The plain rdkafka consumer the baselines measure: in a new group (`group_prefix` made
/// unique), reading from the start without committing, with `fetch.wait.max.ms` as given.
fn baseline_consumer(
    bootstrap: &str,
    group_prefix: &str,
    fetch_wait_ms: u64,
) -> anyhow::Result<BaseConsumer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique(group_prefix))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", fetch_wait_ms.to_string())
        .create()?)
}

/// The physical limit: a plain rdkafka consumer in a group that only counts records, with
/// `fetch.wait.max.ms` as given.
pub(crate) fn baseline(
    bootstrap: &str,
    topic: &str,
    records: u64,
    fetch_wait_ms: u64,
    timeout: Duration,
) -> anyhow::Result<ConsumeRun> {
    let consumer = baseline_consumer(bootstrap, "bench-baseline", fetch_wait_ms)?;
    let cpu_before = crate::process::cpu_time(std::process::id());
    let started = Instant::now();
    consumer.subscribe(&[topic])?;
    let mut first = None;
    let mut count = 0u64;
    let mut bytes = 0usize;
    while count < records {
        anyhow::ensure!(
            started.elapsed() < timeout,
            "the baseline consumer read only {count} of {records} records in {timeout:?}"
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                first.get_or_insert_with(Instant::now);
                bytes += message.payload_len();
                count += 1;
            }
            Some(Err(e)) => eprintln!("baseline consumer: {e}"),
            None => {}
        }
    }
    let last = Instant::now();
    std::hint::black_box(bytes);
    let cpu = crate::process::cpu_time(std::process::id())
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    Ok(ConsumeRun {
        records: count,
        wall: last - started,
        steady: last - first.unwrap_or(started),
        steady_records: count - 1,
        cpu,
    })
}

/// The latency floor: a plain rdkafka consumer in its own group, reading `topic` from the start
/// until `records` records arrived or `timeout` passed, with `fetch.wait.max.ms` as given.
/// Returns `(record timestamp, milliseconds from it to the consumer)` per record.
pub(crate) fn baseline_latencies(
    bootstrap: &str,
    topic: &str,
    records: u64,
    fetch_wait_ms: u64,
    timeout: Duration,
) -> anyhow::Result<Vec<(i64, f64)>> {
    let consumer = baseline_consumer(bootstrap, "bench-latency-baseline", fetch_wait_ms)?;
    consumer.subscribe(&[topic])?;
    let started = Instant::now();
    let mut seen = Vec::new();
    while (seen.len() as u64) < records && started.elapsed() < timeout {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
            if let Some(ts) = message.timestamp().to_millis() {
                seen.push((ts, now - ts as f64));
            }
        }
    }
    Ok(seen)
}

/// Sum of the offsets `group` committed on `topic` (0 for partitions without one).
pub(crate) struct CommittedWatch {
    consumer: BaseConsumer,
    partitions: TopicPartitionList,
}

impl CommittedWatch {
    /// Watches `group`'s commits on `topic` (without joining the group).
    pub(crate) fn new(bootstrap: &str, group: &str, topic: &str) -> anyhow::Result<Self> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .create()?;
        let mut partitions = TopicPartitionList::new();
        for partition in 0..workload::PARTITIONS {
            partitions.add_partition(topic, partition);
        }
        Ok(CommittedWatch {
            consumer,
            partitions,
        })
    }

    /// Records committed so far (the topic starts at offset 0).
    pub(crate) fn committed(&self) -> anyhow::Result<i64> {
        let offsets = self
            .consumer
            .committed_offsets(self.partitions.clone(), Duration::from_secs(10))?;
        Ok(offsets
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            })
            .sum())
    }
}
