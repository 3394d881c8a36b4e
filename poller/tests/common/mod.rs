//! Harness for the poller's integration tests: runs the real `kafka-lambda-poller` binary
//! against the real broker (Apache Kafka) and the real Lambda emulator (`cargo lambda watch`) running
//! the `test-recorder` function, produces records with rdkafka and reads back what the function
//! saw. Services come from `kafka_lambda_tests::services()`.

// Each test file compiles this module on its own and uses only part of it.
#![allow(dead_code, unreachable_pub, unused_imports)]

use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub use kafka_lambda_tests::{create_topic, group_name, services, topic_name};

/// Where `test-recorder` writes (must match the function's default).
pub fn recorder_file(topic: &str) -> PathBuf {
    PathBuf::from("/tmp/kafka-lambda-recorder").join(format!("{topic}.jsonl"))
}

/// One record as the function saw it.
#[derive(Debug, Clone)]
pub struct Seen(pub Value);

impl Seen {
    pub fn partition(&self) -> i32 {
        self.0["partition"].as_i64().unwrap_or(-1) as i32
    }
    pub fn offset(&self) -> i64 {
        self.0["offset"].as_i64().unwrap_or(-1)
    }
    pub fn invocation(&self) -> &str {
        self.0["invocation"].as_str().unwrap_or_default()
    }
}

/// Everything the function has recorded for `topic` so far, in delivery order.
pub fn seen(topic: &str) -> Vec<Seen> {
    let text = std::fs::read_to_string(recorder_file(topic)).unwrap_or_default();
    complete_lines(&text)
        .map(|l| Seen(serde_json::from_str(l).expect("recorder lines are JSON")))
        .collect()
}

/// The lines of `text` that end with a newline: the function may be half-way through
/// appending the last one while a test reads the file.
fn complete_lines(text: &str) -> impl Iterator<Item = &str> {
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete.split('\n').filter(|l| !l.trim().is_empty())
}

/// Distinct (partition, offset) pairs seen.
pub fn seen_offsets(topic: &str) -> BTreeSet<(i32, i64)> {
    seen(topic)
        .iter()
        .map(|s| (s.partition(), s.offset()))
        .collect()
}

/// Waits until `cond` holds, or panics with `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Produces `count` records to each of `partitions` partitions, as producers usually do
/// (batches of many records, lz4-compressed, after a 5 ms linger); returns what was written as
/// (partition, offset) → value. `value` gets (partition, index).
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
pub fn produce_compressed(
    topic: &str,
    partitions: i32,
    count: usize,
    codec: &str,
    value: impl Fn(i32, usize) -> String,
) -> BTreeMap<(i32, i64), String> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", services().kafka_bootstrap_servers())
        .set("linger.ms", "5")
        .set("compression.codec", codec)
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut pending = Vec::new();
        for p in 0..partitions {
            for i in 0..count {
                let v = value(p, i);
                let key = format!("key-{p}-{i}");
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "index",
                        value: Some(i.to_string().as_bytes()),
                    })
                    .insert(Header {
                        key: "binary",
                        value: Some(&[0u8, 200, 255][..]),
                    });
                let record = FutureRecord::to(topic)
                    .partition(p)
                    .key(&key)
                    .payload(&v)
                    .headers(headers);
                let delivery = producer
                    .send_result(record)
                    .map_err(|(e, _)| e)
                    .expect("enqueue a record");
                pending.push(async move { (delivery.await, v) });
            }
        }
        let mut written = BTreeMap::new();
        for result in futures::future::join_all(pending).await {
            let (delivery, v) = result;
            let delivery = delivery
                .expect("delivery report")
                .unwrap_or_else(|(e, _)| panic!("produce to {topic} failed: {e}"));
            written.insert((delivery.partition, delivery.offset), v);
        }
        written
    })
}

/// A running `kafka-lambda-poller run`.
pub struct Poller {
    child: Option<Child>,
    pub log: PathBuf,
    pub config: PathBuf,
}

/// A config for one mapping of `topic` → `test-recorder`; `extra` lines go into the mapping
/// (a 20 ms batching window unless `extra` sets one).
pub fn recorder_config(topic: &str, group: &str, extra: &str) -> String {
    let window = if extra.contains("batching_window_ms") {
        ""
    } else {
        "batching_window_ms = 20"
    };
    // KL_TEST_RDKAFKA_DEBUG=fetch,cgrp turns on librdkafka's debug contexts in the poller's log.
    let debug = std::env::var("KL_TEST_RDKAFKA_DEBUG")
        .map(|d| format!("options = {{ \"debug\" = \"{d}\" }}"))
        .unwrap_or_default();
    format!(
        r#"
[kafka]
bootstrap_servers = "{bootstrap}"
fetch_wait_max_ms = 10
commit_interval_ms = 500
{debug}

[lambda]
region = "us-east-1"
endpoint_url = "{endpoint}"

[shutdown]
drain_timeout_ms = 20000

[[mapping]]
function = "test-recorder"
topics = ["{topic}"]
consumer_group = "{group}"
{window}
{extra}
"#,
        bootstrap = services().kafka_bootstrap_servers(),
        endpoint = services().lambda_endpoint(),
    )
}

/// `config` with `line` added to its `[kafka]` table (`group_protocol = "consumer"`, …).
pub fn with_kafka_setting(config: &str, line: &str) -> String {
    assert!(
        config.contains("[kafka]\n"),
        "no [kafka] table in:\n{config}"
    );
    config.replacen("[kafka]\n", &format!("[kafka]\n{line}\n"), 1)
}

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("kafka-lambda-poller-tests");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

impl Poller {
    /// Writes `config` to a file and starts the poller on it.
    pub fn start(name: &str, config: &str) -> Poller {
        Self::start_with(name, config, &[])
    }

    /// [`Poller::start`] with extra `run` arguments (e.g. `--until-caught-up`).
    pub fn start_with(name: &str, config: &str, args: &[&str]) -> Poller {
        Self::start_with_env(name, config, args, &[])
    }

    /// [`Poller::start_with`] with extra environment variables.
    pub fn start_with_env(name: &str, config: &str, args: &[&str], env: &[(&str, &str)]) -> Poller {
        let dir = scratch_dir();
        let config_path = dir.join(format!("{name}.toml"));
        std::fs::write(&config_path, config).expect("write config");
        let log = dir.join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_kafka-lambda-poller"))
            .args(["run", "--config"])
            .arg(&config_path)
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env(
                "RUST_LOG",
                if std::env::var_os("KL_TEST_RDKAFKA_DEBUG").is_some() {
                    "info,kafka_lambda_poller=debug,librdkafka=debug"
                } else {
                    "info,kafka_lambda_poller=debug"
                },
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start kafka-lambda-poller");
        Poller {
            child: Some(child),
            log,
            config: config_path,
        }
    }

    /// The poller's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends SIGTERM and waits for the exit (panics after `timeout`).
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        self.wait(timeout)
    }

    /// Whether the process is still running: false once it exited on its own (or was stopped).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// SIGKILL: a crash.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for the poller to exit by itself (panics after `timeout`).
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        let child = self.child.as_mut().expect("poller running");
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                self.child = None;
                return status;
            }
            if start.elapsed() > timeout {
                let log = self.log_text();
                self.kill9();
                panic!("poller did not exit within {timeout:?}; log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Checks every produced record was seen, and that within each partition the first sightings are
/// in offset order. Returns the number of duplicate sightings (allowed after crashes).
pub fn reconcile(topic: &str, produced: &BTreeMap<(i32, i64), String>) -> usize {
    let seen = seen(topic);
    let mut first_seen: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    let mut distinct = BTreeSet::new();
    for s in &seen {
        let key = (s.partition(), s.offset());
        if let Some(expected) = produced.get(&key) {
            assert_eq!(
                s.0["value"].as_str(),
                Some(expected.as_str()),
                "value of {key:?} changed in transit"
            );
        }
        if distinct.insert((s.partition(), s.offset())) {
            first_seen
                .entry(s.partition())
                .or_default()
                .push(s.offset());
        }
    }
    let missing: Vec<_> = produced
        .keys()
        .filter(|k| !distinct.contains(k))
        .take(20)
        .collect();
    assert!(
        missing.is_empty(),
        "records produced but never delivered (first 20): {missing:?}"
    );
    for (p, offsets) in &first_seen {
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "partition {p} delivered out of order: {offsets:?}"
        );
    }
    seen.len() - distinct.len()
}

/// How many times each (partition, offset) of `topic` was invoked.
pub fn attempts(topic: &str) -> BTreeMap<(i32, i64), usize> {
    let path = PathBuf::from("/tmp/kafka-lambda-recorder").join(format!("{topic}.attempts.jsonl"));
    let mut counts = BTreeMap::new();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for line in complete_lines(&text) {
        let v: Value = serde_json::from_str(line).expect("attempt lines are JSON");
        let key = (
            v["partition"].as_i64().unwrap_or(-1) as i32,
            v["offset"].as_i64().unwrap_or(-1),
        );
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

/// A record read back from a topic.
#[derive(Debug, Clone)]
pub struct ReadRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// Names read lossily as text.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The same names' bytes.
    pub header_names: Vec<Vec<u8>>,
}

impl ReadRecord {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

/// Reads every record of `topic` (all partitions, from the start) until `expected` were read or
/// `timeout` passed.
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
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Message, Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group_name("reader"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .expect("tpl");
        }
    }
    consumer.assign(&tpl).expect("assign");
    let start = Instant::now();
    let mut out = Vec::new();
    while out.len() < expected && start.elapsed() < timeout {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push(ReadRecord {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers: kafka_lambda_client::raw_headers(&m)
                    .map(|(name, value)| {
                        (
                            String::from_utf8_lossy(name).into_owned(),
                            value.unwrap_or_default().to_vec(),
                        )
                    })
                    .collect(),
                header_names: kafka_lambda_client::raw_headers(&m)
                    .map(|(name, _)| name.to_vec())
                    .collect(),
            });
        }
    }
    out
}

/// Sends `records` one at a time with a producer of `settings` (beside the shared broker's
/// bootstrap servers), each acknowledged before the next; returns their offsets.
pub fn send_each<'a>(
    settings: &[(&str, &str)],
    records: impl IntoIterator<Item = FutureRecord<'a, str, [u8]>>,
) -> Vec<i64> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", services().kafka_bootstrap_servers());
    for (key, value) in settings {
        config.set(*key, *value);
    }
    let producer: FutureProducer = config.create().expect("producer");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    records
        .into_iter()
        .map(|record| {
            let topic = record.topic.to_owned();
            runtime
                .block_on(producer.send(record, Duration::from_secs(30)))
                .unwrap_or_else(|(e, _)| panic!("produce to {topic} failed: {e}"))
                .offset
        })
        .collect()
}

/// Produces one record with an optional timestamp (epoch ms) and headers; returns its offset.
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

/// A GET on 127.0.0.1:`port`: the status and the body.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The value of a metric line with all the given label fragments.
pub fn metric(body: &str, name: &str, labels: &[&str]) -> Option<f64> {
    body.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|f| l.contains(f)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .reduce(|a, b| a + b)
}
