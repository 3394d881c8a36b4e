//! `examples/topic-dump` end to end, between two real Apache Kafka clusters: the shared broker
//! (`KAFKA_BOOTSTRAP_SERVERS`) is the source cluster, a private one-node cluster started by each
//! test on free ports is the destination (the SCRAM test writes to the shared broker's SASL
//! listener instead).
//!
//! The function is configured by environment variables, which differ per test (the destination
//! broker's port), so each test runs its own `cargo lambda watch` on a free port with its own
//! environment, instead of the shared emulator. Invoked directly with AWS-shaped events, and
//! through the real `kafka-lambda-poller` binary reading the source topic, behind
//! `cargo lambda watch` and behind AWS's Runtime Interface Emulator alike
//! (`kafka_lambda_tests::FunctionHost`).

use kafka_lambda_events::{KafkaRecord, TimestampType};
use kafka_lambda_tests::{
    Emulator, HostKind, KafkaCluster, Poller, ReadRecord, TopicReader, create_topic, free_port,
    produce_all, services, topic_name,
};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const FUNCTION: &str = "topic-dump";

#[test]
fn copies_every_record_once_per_batch_with_key_value_headers_and_timestamp() {
    let destination = KafkaCluster::start(1);
    let source = topic_name("dump_source");
    let copy = format!("{source}-copy");
    destination.create_topic(&copy, 1);
    let emulator = function_emulator(&[
        ("DUMP_BOOTSTRAP_SERVERS", destination.bootstrap_servers()),
        ("DUMP_TOPIC", copy.clone()),
        ("DUMP_REPORT_BATCH_ITEM_FAILURES", "true".into()),
    ]);

    // Two source partitions; every kind of record: binary and text values, a tombstone, a null
    // key, repeated and binary headers, producer and broker timestamps.
    let records = vec![
        KafkaRecord::new(&source, 0, 40)
            .with_key("order-1")
            .with_value(r#"{"id":1}"#)
            .with_header("source", "web")
            .with_header("source", "api")
            .with_timestamp(1_700_000_000_001, TimestampType::CreateTime),
        KafkaRecord::new(&source, 0, 41)
            .with_key(vec![0u8, 159, 255])
            .with_value(vec![255u8, 0, 1])
            .with_header("bin", vec![0u8, 200])
            .with_timestamp(1_700_000_000_002, TimestampType::LogAppendTime),
        KafkaRecord::new(&source, 0, 42)
            .with_key("order-1")
            .with_timestamp(1_700_000_000_003, TimestampType::CreateTime),
        KafkaRecord::new(&source, 1, 7)
            .with_value("no key")
            .with_timestamp(1_700_000_000_004, TimestampType::CreateTime),
        KafkaRecord::new(&source, 1, 8)
            .with_key("order-2")
            .with_value("last")
            .with_timestamp(1_700_000_000_005, TimestampType::CreateTime),
    ];
    let event = msk_event(records.clone());

    let first = emulator.invoke(FUNCTION, &event).expect_success();
    assert_eq!(first, json!({"batchItemFailures": []}));
    let copied = read_topic(&destination.bootstrap_servers(), &copy, records.len());
    assert_eq!(
        copied.len(),
        records.len(),
        "one copy of each record: {copied:#?}"
    );
    // One destination partition: the event's order, partition by partition, is kept.
    for (copy, original) in copied.iter().zip(&records) {
        assert_eq!(copy.partition, 0);
        assert_eq!(
            copy.key.as_deref(),
            original.key(),
            "key of {}",
            original.id()
        );
        assert_eq!(
            copy.value.as_deref(),
            original.value(),
            "value of {}",
            original.id()
        );
        let headers: Vec<(String, Vec<u8>)> = original
            .headers()
            .iter()
            .map(|h| (h.name.to_string(), h.value.clone()))
            .collect();
        assert_eq!(copy.headers(), headers, "headers of {}", original.id());
        assert_eq!(
            copy.timestamp,
            Some(original.timestamp),
            "timestamp of {}",
            original.id()
        );
    }

    // The same batch again (a retry): each record is written once more, no more.
    emulator.invoke(FUNCTION, &event).expect_success();
    let twice = read_topic(&destination.bootstrap_servers(), &copy, 2 * records.len());
    assert_eq!(twice.len(), 2 * records.len());
    let offsets: Vec<i64> = twice.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (0..10).collect::<Vec<i64>>());
    for (second, first) in twice[records.len()..].iter().zip(&copied) {
        assert_eq!((&second.key, &second.value), (&first.key, &first.value));
    }
}

#[test]
fn a_destination_that_is_down_fails_the_first_record_of_each_partition() {
    // A port nothing listens on: every delivery times out.
    let closed = free_port();
    let emulator = function_emulator(&[
        ("DUMP_BOOTSTRAP_SERVERS", format!("127.0.0.1:{closed}")),
        ("DUMP_DELIVERY_TIMEOUT_MS", "2000".into()),
        ("DUMP_REPORT_BATCH_ITEM_FAILURES", "true".into()),
    ]);
    let source = topic_name("dump_down");
    let event = msk_event([
        KafkaRecord::new(&source, 0, 5).with_value("a"),
        KafkaRecord::new(&source, 0, 6).with_value("b"),
        KafkaRecord::new(&source, 2, 9).with_value("c"),
    ]);
    let started = Instant::now();
    let response = emulator.invoke(FUNCTION, &event).expect_success();
    assert_eq!(
        response,
        json!({"batchItemFailures": [
            {"itemIdentifier": {"partition": format!("{source}-0"), "offset": 5}},
            {"itemIdentifier": {"partition": format!("{source}-2"), "offset": 9}},
        ]}),
        "the failed partitions restart at their first record"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the delivery timeout bounds the invocation: {:?}",
        started.elapsed()
    );
}

#[test]
fn authenticates_to_the_destination_with_scram_from_the_environment() {
    let copy = topic_name("dump_scram_copy");
    create_topic(&copy, 1);
    let (user, password) = kafka_lambda_tests::users::SCRAM;
    let destination = services().listeners().sasl_plaintext.clone();
    let scram = |password: &str, timeout_ms: &str| {
        function_emulator(&[
            ("DUMP_BOOTSTRAP_SERVERS", destination.clone()),
            ("DUMP_TOPIC", copy.clone()),
            ("DUMP_SASL_MECHANISM", "SCRAM-SHA-512".into()),
            ("DUMP_SASL_USERNAME", user.into()),
            ("DUMP_SASL_PASSWORD", password.into()),
            ("DUMP_DELIVERY_TIMEOUT_MS", timeout_ms.into()),
            ("DUMP_REPORT_BATCH_ITEM_FAILURES", "true".into()),
        ])
    };
    let source = topic_name("dump_scram");
    let event = msk_event([
        KafkaRecord::new(&source, 0, 3)
            .with_key("k")
            .with_value("one"),
        KafkaRecord::new(&source, 0, 4)
            .with_key("k")
            .with_value("two"),
    ]);

    let emulator = scram(password, "30000");
    let response = emulator.invoke(FUNCTION, &event).expect_success();
    assert_eq!(response, json!({"batchItemFailures": []}));
    let settings = [
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("sasl.username", user),
        ("sasl.password", password),
    ];
    let copied = read_topic_with(&destination, &settings, &copy, 2);
    let values: Vec<_> = copied.iter().map(|r| r.value.clone()).collect();
    assert_eq!(values, [Some(b"one".to_vec()), Some(b"two".to_vec())]);
    drop(emulator);

    let wrong = scram("not-the-password", "3000");
    let response = wrong.invoke(FUNCTION, &event).expect_success();
    assert_eq!(
        response,
        json!({"batchItemFailures": [
            {"itemIdentifier": {"partition": format!("{source}-0"), "offset": 3}},
        ]}),
        "a refused login is a failed batch, not a success"
    );
}

#[test]
fn the_poller_copies_a_topic_partition_by_partition_in_order() {
    copies_through_the_poller(HostKind::CargoLambdaWatch);
}

#[test]
fn the_poller_copies_a_topic_partition_by_partition_in_order_behind_the_runtime_interface_emulator()
{
    copies_through_the_poller(HostKind::RuntimeInterfaceEmulator);
}

/// The poller reads a two-partition source topic and invokes topic-dump behind `kind` of host.
fn copies_through_the_poller(kind: HostKind) {
    let destination = KafkaCluster::start(1);
    let source = topic_name("dump_poller");
    create_topic(&source, 2);
    destination.create_topic(&source, 2);
    let host = kind.start(
        FUNCTION,
        FUNCTION,
        &[
            ("DUMP_BOOTSTRAP_SERVERS", &destination.bootstrap_servers()),
            ("DUMP_PRESERVE_PARTITION", "true"),
            ("DUMP_REPORT_BATCH_ITEM_FAILURES", "true"),
        ],
    );

    let produced = produce(&source, 2, 30);
    let config = host.mapping_config(
        FUNCTION,
        &source,
        "starting_position = \"TRIM_HORIZON\"\n\
             batch_size = 7\n\
             batching_window_ms = 20\n\
             report_batch_item_failures = true",
    );
    let mut poller = Poller::start("topic-dump", &config);

    let copied = read_topic(&destination.bootstrap_servers(), &source, produced.len());
    poller.stop();
    assert_eq!(
        copied.len(),
        produced.len(),
        "every record copied once; poller log:\n{}\n{kind:?} log:\n{}",
        poller.log(),
        host.log_text()
    );
    let mut by_partition: BTreeMap<i32, Vec<KeyValueTimestamp>> = BTreeMap::new();
    for record in &copied {
        by_partition.entry(record.partition).or_default().push((
            record.key.clone().unwrap_or_default(),
            record.value.clone().unwrap_or_default(),
            record.timestamp.unwrap_or(-1),
        ));
        assert_eq!(
            record.headers(),
            [
                ("index".to_owned(), b"x".to_vec()),
                ("binary".to_owned(), vec![0, 200, 255])
            ],
        );
    }
    for (partition, records) in by_partition {
        let expected: Vec<_> = produced
            .iter()
            .filter(|p| p.partition == partition)
            .map(|p| (p.key.clone(), p.value.clone(), p.timestamp))
            .collect();
        assert_eq!(records, expected, "partition {partition}, in source order");
    }
}

// -------------------------------------------------------------------------------------------
// Events, records, topics

/// What must survive the copy: key, value, timestamp.
type KeyValueTimestamp = (Vec<u8>, Vec<u8>, i64);

fn msk_event(records: impl IntoIterator<Item = KafkaRecord>) -> Vec<u8> {
    kafka_lambda_tests::msk_event("orders", "eu-west-1", records)
}

/// Reads `topic` on `bootstrap` from the beginning of every partition until `expected` records
/// were read or 60 s passed, then a moment longer to catch extra copies. Partition by
/// partition, in offset order.
fn read_topic(bootstrap: &str, topic: &str, expected: usize) -> Vec<ReadRecord> {
    read_topic_with(bootstrap, &[], topic, expected)
}

/// [`read_topic`] with extra client settings (SASL).
fn read_topic_with(
    bootstrap: &str,
    settings: &[(&str, &str)],
    topic: &str,
    expected: usize,
) -> Vec<ReadRecord> {
    let mut records = TopicReader {
        settings,
        linger: Duration::from_secs(1),
        ..TopicReader::new(bootstrap)
    }
    .read(topic, expected);
    records.sort_by_key(|r| (r.partition, r.offset));
    records
}

/// A record produced to the source topic.
struct Produced {
    partition: i32,
    key: Vec<u8>,
    value: Vec<u8>,
    timestamp: i64,
}

/// Produces `count` records to each of `partitions` partitions of `topic` on the shared broker,
/// with keys, two headers and a distinct producer timestamp each.
fn produce(topic: &str, partitions: i32, count: i64) -> Vec<Produced> {
    let produced: Vec<Produced> = (0..partitions)
        .flat_map(|partition| {
            (0..count).map(move |i| Produced {
                partition,
                key: format!("key-{partition}-{i}").into_bytes(),
                value: format!(r#"{{"partition":{partition},"index":{i}}}"#).into_bytes(),
                timestamp: 1_700_000_000_000 + i64::from(partition) * 1000 + i,
            })
        })
        .collect();
    produce_all(
        &[("linger.ms", "5")],
        produced.iter().map(|record| {
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "index",
                    value: Some("x"),
                })
                .insert(Header {
                    key: "binary",
                    value: Some(&[0u8, 200, 255][..]),
                });
            BaseRecord::to(topic)
                .partition(record.partition)
                .key(&record.key)
                .payload(&record.value)
                .timestamp(record.timestamp)
                .headers(headers)
        }),
    );
    produced
}

/// This test's own emulator serving topic-dump, configured by `env`.
fn function_emulator(env: &[(&str, String)]) -> Emulator {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Emulator::start(FUNCTION, &[FUNCTION], &env)
}
