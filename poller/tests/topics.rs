//! Topics as the real Apache Kafka broker writes them, through the real poller binary to the
//! `test-recorder` function in `cargo lambda watch`: batches compressed with every codec,
//! transactions (aborted records are never invoked; commit markers leave offset gaps), a
//! compacted topic (cleaned offsets leave gaps), and a topic created with 64 partitions.

// Test helpers outside #[test] functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used)]

use kafka_lambda_tests::{
    Poller, committed_offset, create_topic_on, group_name, new_topic, produce, produce_compressed,
    reconcile, recorder_config, seen_offsets, services, topic_name, unique_name, wait_for_seen,
    watermarks,
};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{
    BaseRecord, DefaultProducerContext, FutureProducer, FutureRecord, Producer, ThreadedProducer,
};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn batches_compressed_with_every_codec_arrive_byte_for_byte_in_order() {
    let topic = new_topic("codecs", 2);
    let mut produced = BTreeMap::new();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        produced.extend(produce_compressed(&topic, 2, 200, codec, |p, i| {
            format!(
                r#"{{"codec":"{codec}","partition":{p},"index":{i},"pad":"{}"}}"#,
                "ab".repeat(i % 40)
            )
        }));
    }
    let mut poller = Poller::start(
        &topic,
        &recorder_config(&topic, &group_name("codecs"), "batch_size = 33"),
    );
    wait_for_seen(TIMEOUT, "every record is delivered", &topic, produced.len());
    assert_eq!(
        reconcile(&topic, &produced),
        0,
        "no record is delivered twice"
    );
    poller.terminate_cleanly(Duration::from_secs(30));
}

#[test]
fn aborted_transactions_are_never_invoked_and_until_caught_up_ends_past_the_markers() {
    let topic = new_topic("transactions", 2);
    let producer = transactional_producer(&topic);
    let mut committed = BTreeMap::new();
    let mut aborted = BTreeSet::new();
    // Committed, aborted, committed, then aborted last: the partitions end in an abort marker.
    for (round, commit) in [true, false, true, false].into_iter().enumerate() {
        let written = in_transaction(&producer, &topic, 2, 15, commit, |p, i| {
            format!(r#"{{"round":{round},"partition":{p},"index":{i}}}"#)
        });
        if commit {
            committed.extend(written);
        } else {
            aborted.extend(written.into_keys());
        }
    }
    let group = group_name("transactions");
    let config = recorder_config(&topic, &group, "batch_size = 7");
    let mut poller = Poller::start_with(&topic, &config, &["--until-caught-up"]);
    let status = poller.wait(TIMEOUT);
    assert_eq!(status.code(), Some(0), "log:\n{}", poller.log());
    assert_eq!(reconcile(&topic, &committed), 0);
    let invoked_aborted: Vec<_> = seen_offsets(&topic)
        .intersection(&aborted)
        .copied()
        .collect();
    assert!(
        invoked_aborted.is_empty(),
        "records of aborted transactions were invoked: {invoked_aborted:?}"
    );
    // Offsets of committed records are not contiguous: markers and aborted records sit between.
    let offsets: Vec<i64> = committed
        .keys()
        .filter(|(p, _)| *p == 0)
        .map(|k| k.1)
        .collect();
    assert!(offsets.windows(2).any(|w| w[1] > w[0] + 1), "{offsets:?}");
    // The group is committed up to the end of each partition, past the last markers.
    assert_eq!(committed_offsets(&topic, &group, 2), end_offsets(&topic, 2));
}

#[test]
fn a_compacted_topic_is_delivered_across_its_offset_gaps_and_until_caught_up_ends() {
    let topic = topic_name("compacted");
    create_topic_on(
        services().kafka_bootstrap_servers(),
        &topic,
        1,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.ms", "100"),
            ("min.cleanable.dirty.ratio", "0.001"),
            ("delete.retention.ms", "100"),
            ("min.compaction.lag.ms", "0"),
        ],
    );
    // Ten keys, each written many times over several segments (a segment rolls when a record
    // arrives 100 ms after the segment's first), so the cleaner keeps only the newest of each;
    // the first record of every wave has a key of its own, which the cleaner keeps where it is.
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", services().kafka_bootstrap_servers())
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let mut written = 0;
    for wave in 0..6 {
        for i in 0..50 {
            let key = if i == 0 {
                format!("keep-{wave}")
            } else {
                format!("key-{}", i % 10)
            };
            let value = format!(r#"{{"wave":{wave},"i":{i}}}"#);
            producer
                .send(
                    BaseRecord::to(&topic)
                        .partition(0)
                        .key(&key)
                        .payload(&value),
                )
                .map_err(|(e, _)| e)
                .unwrap();
            written += 1;
        }
        producer.flush(Duration::from_secs(30)).unwrap();
        std::thread::sleep(Duration::from_millis(250));
    }
    let start = Instant::now();
    let remaining = loop {
        let remaining = read_all(&topic, 1);
        if remaining.len() < written / 2 {
            break remaining;
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "the cleaner did not compact {topic} within {TIMEOUT:?} ({} of {written} left)",
            remaining.len()
        );
        // Another record rolls the active segment so that the cleaner can take it.
        producer
            .send(
                BaseRecord::to(&topic)
                    .partition(0)
                    .key("roll")
                    .payload("{}"),
            )
            .map_err(|(e, _)| e)
            .unwrap();
        producer.flush(Duration::from_secs(30)).unwrap();
        std::thread::sleep(Duration::from_millis(500));
    };
    let offsets: Vec<i64> = remaining.keys().map(|k| k.1).collect();
    assert!(
        offsets.windows(2).any(|w| w[1] > w[0] + 1),
        "gaps: {offsets:?}"
    );

    let group = group_name("compacted");
    let config = recorder_config(&topic, &group, "batch_size = 4");
    let mut poller = Poller::start_with(&topic, &config, &["--until-caught-up"]);
    assert_eq!(
        poller.wait(TIMEOUT).code(),
        Some(0),
        "log:\n{}",
        poller.log()
    );
    // The newest record of every key is never cleaned away, so each must be delivered (the
    // cleaner may go on removing older ones while the poller reads), and in order.
    let seen = seen_offsets(&topic);
    let mut newest: BTreeMap<String, (i32, i64)> = BTreeMap::new();
    for (position, value) in &remaining {
        let record: serde_json::Value = serde_json::from_str(value).unwrap();
        let key = match (record.get("wave"), record["i"].as_u64()) {
            (Some(wave), Some(0)) => format!("keep-{wave}"),
            (Some(_), Some(i)) => format!("key-{}", i % 10),
            _ => "roll".to_owned(),
        };
        newest.insert(key, *position);
    }
    let missing: Vec<_> = newest
        .iter()
        .filter(|(_, position)| !seen.contains(position))
        .collect();
    assert!(missing.is_empty(), "records never delivered: {missing:?}");
    assert_eq!(reconcile(&topic, &BTreeMap::new()), 0);
}

#[test]
fn a_topic_created_with_64_partitions_is_delivered_completely() {
    let topic = new_topic("wide", 64);
    let produced = produce(&topic, 64, 25, |p, i| format!(r#"{{"p":{p},"i":{i}}}"#));
    let mut poller = Poller::start(
        &topic,
        &recorder_config(&topic, &group_name("wide"), "batch_size = 10"),
    );
    wait_for_seen(TIMEOUT, "every record is delivered", &topic, produced.len());
    assert_eq!(reconcile(&topic, &produced), 0);
    let partitions: BTreeSet<i32> = seen_offsets(&topic).iter().map(|k| k.0).collect();
    assert_eq!(partitions.len(), 64);
    poller.terminate_cleanly(Duration::from_secs(60));
}

/// A producer with a transactional id of its own, transactions initialised.
fn transactional_producer(topic: &str) -> FutureProducer {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", services().kafka_bootstrap_servers())
        .set("transactional.id", unique_name(topic))
        .set("linger.ms", "5")
        .create()
        .unwrap();
    producer.init_transactions(Duration::from_secs(30)).unwrap();
    producer
}

/// Writes `count` records to each of `partitions` partitions in one transaction, then commits
/// or aborts it; returns (partition, offset) → value as the broker placed them (the delivery
/// reports: the partitions' end offsets lag until the coordinator has written the markers).
fn in_transaction(
    producer: &FutureProducer,
    topic: &str,
    partitions: i32,
    count: usize,
    commit: bool,
    value: impl Fn(i32, usize) -> String,
) -> BTreeMap<(i32, i64), String> {
    producer.begin_transaction().unwrap();
    let mut pending = Vec::new();
    for p in 0..partitions {
        for i in 0..count {
            let v = value(p, i);
            let delivery = producer
                .send_result(FutureRecord::<str, str>::to(topic).partition(p).payload(&v))
                .map_err(|(e, _)| e)
                .unwrap();
            pending.push(async move { (delivery.await, v) });
        }
    }
    let mut written = BTreeMap::new();
    for (delivery, v) in futures::executor::block_on(futures::future::join_all(pending)) {
        let delivery = delivery.unwrap().map_err(|(e, _)| e).unwrap();
        written.insert((delivery.partition, delivery.offset), v);
    }
    if commit {
        producer
            .commit_transaction(Duration::from_secs(30))
            .unwrap();
    } else {
        producer.abort_transaction(Duration::from_secs(30)).unwrap();
    }
    written
}

/// Each partition's high watermark (the offset after its last record or marker).
fn end_offsets(topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    (0..partitions)
        .map(|p| {
            (
                p,
                watermarks(services().kafka_bootstrap_servers(), topic, p).1,
            )
        })
        .collect()
}

/// The offsets `group` committed on each partition (-1 for none).
fn committed_offsets(topic: &str, group: &str, partitions: i32) -> BTreeMap<i32, i64> {
    (0..partitions)
        .map(|p| {
            let committed = committed_offset(services().kafka_bootstrap_servers(), group, topic, p);
            (p, committed.unwrap_or(-1))
        })
        .collect()
}

/// Every record of `topic` now, read from the beginning by a plain consumer (read_committed),
/// as (partition, offset) → value.
fn read_all(topic: &str, partitions: i32) -> BTreeMap<(i32, i64), String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", services().kafka_bootstrap_servers())
        .set("group.id", group_name("read-all"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = BTreeMap::new();
    let mut at_end = BTreeSet::new();
    let start = Instant::now();
    while at_end.len() < partitions as usize {
        assert!(
            start.elapsed() < TIMEOUT,
            "reading {topic} took over {TIMEOUT:?}"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let value = m
                    .payload()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default();
                out.insert((m.partition(), m.offset()), value);
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}
