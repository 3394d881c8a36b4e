//! `examples/topic-dump` end to end, between two real brokers: the shared tansu
//! (`KAFKA_BOOTSTRAP_SERVERS`) is the source cluster, a second tansu started by each test on
//! a free port is the destination.
//!
//! The function is configured by environment variables, which differ per test (the destination
//! broker's port), so each test runs its own `cargo lambda watch` on a free port with its own
//! `--env-file`, instead of the shared emulator. Invoked directly with AWS-shaped events, and
//! through the real `kafka-lambda-poller` binary reading the source topic.

use kafka_lambda_events::{EventSource, KafkaEvent, KafkaRecord, TimestampType};
use kafka_lambda_tests::{Invocation, create_topic, group_name, repo_root, services, topic_name};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::json;
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FUNCTION: &str = "topic-dump";

#[test]
fn copies_every_record_once_per_batch_with_key_value_headers_and_timestamp() {
    let destination = Tansu::start();
    let source = topic_name("dump_source");
    let copy = format!("{source}-copy");
    destination.create_topic(&copy, 1);
    let emulator = Emulator::start(&[
        ("DUMP_BOOTSTRAP_SERVERS", destination.address()),
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
    let copied = read_topic(&destination.address(), &copy, records.len());
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
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        assert_eq!(copy.headers, headers, "headers of {}", original.id());
        assert_eq!(
            copy.timestamp,
            Some(original.timestamp),
            "timestamp of {}",
            original.id()
        );
    }

    // The same batch again (a retry): each record is written once more, no more.
    emulator.invoke(FUNCTION, &event).expect_success();
    let twice = read_topic(&destination.address(), &copy, 2 * records.len());
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
    let emulator = Emulator::start(&[
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
            {"itemIdentifier": {"topic-partition": format!("{source}-0"), "offset": 5}},
            {"itemIdentifier": {"topic-partition": format!("{source}-2"), "offset": 9}},
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
    let (user, password) = ("dumper", "dumper-Secret-42");
    let destination = Tansu::start_with_scram(user, password, &[&copy]);
    let scram = |password: &str, timeout_ms: &str| {
        Emulator::start(&[
            ("DUMP_BOOTSTRAP_SERVERS", destination.address()),
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
    let copied = read_topic_with(&destination.address(), &settings, &copy, 2);
    let values: Vec<_> = copied.iter().map(|r| r.value.clone()).collect();
    assert_eq!(values, [Some(b"one".to_vec()), Some(b"two".to_vec())]);
    drop(emulator);

    let wrong = scram("not-the-password", "3000");
    let response = wrong.invoke(FUNCTION, &event).expect_success();
    assert_eq!(
        response,
        json!({"batchItemFailures": [
            {"itemIdentifier": {"topic-partition": format!("{source}-0"), "offset": 3}},
        ]}),
        "a refused login is a failed batch, not a success"
    );
}

#[test]
fn the_poller_copies_a_topic_partition_by_partition_in_order() {
    let destination = Tansu::start();
    let source = topic_name("dump_poller");
    create_topic(&source, 2);
    destination.create_topic(&source, 2);
    let emulator = Emulator::start(&[
        ("DUMP_BOOTSTRAP_SERVERS", destination.address()),
        ("DUMP_PRESERVE_PARTITION", "true".into()),
        ("DUMP_REPORT_BATCH_ITEM_FAILURES", "true".into()),
    ]);

    let produced = produce(&source, 2, 30);
    let config = format!(
        r#"
[kafka]
bootstrap_servers = "{bootstrap}"
fetch_wait_max_ms = 10
commit_interval_ms = 500

[lambda]
region = "us-east-1"
endpoint_url = "{endpoint}"

[[mapping]]
function = "{FUNCTION}"
topics = ["{source}"]
consumer_group = "{group}"
starting_position = "TRIM_HORIZON"
batch_size = 7
batching_window_ms = 20
report_batch_item_failures = true
"#,
        bootstrap = services().kafka_bootstrap_servers(),
        endpoint = emulator.endpoint,
        group = group_name("dump_poller"),
    );
    let mut poller = Poller::start("topic-dump", &config);

    let copied = read_topic(&destination.address(), &source, produced.len());
    poller.stop();
    assert_eq!(
        copied.len(),
        produced.len(),
        "every record copied once; poller log:\n{}",
        poller.log()
    );
    let mut by_partition: BTreeMap<i32, Vec<KeyValueTimestamp>> = BTreeMap::new();
    for record in &copied {
        by_partition.entry(record.partition).or_default().push((
            record.key.clone().unwrap_or_default(),
            record.value.clone().unwrap_or_default(),
            record.timestamp.unwrap_or(-1),
        ));
        assert_eq!(
            record.headers,
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
    KafkaEvent::builder(EventSource::Msk)
        .event_source_arn(
            "arn:aws:kafka:eu-west-1:123456789012:cluster/orders/7f3a2b1c-9d8e-4f6a-b5c4-3d2e1f0a9b8c-2",
        )
        .bootstrap_servers("b-1.orders.k3x9q2.c2.kafka.eu-west-1.amazonaws.com:9098")
        .records(records)
        .build()
        .to_vec()
}

/// A record read back from a topic.
#[derive(Debug, Clone)]
struct ReadRecord {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
    timestamp: Option<i64>,
}

/// Reads `topic` on `bootstrap` from offset 0 of every partition (tansu 0.6 answers nothing to
/// a fetch starting inside a multi-record batch) until `expected` records were read or 60 s
/// passed, then a moment longer to catch extra copies. Partition by partition, in offset order.
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
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group_name("dump_reader"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10");
    for (key, value) in settings {
        config.set(*key, *value);
    }
    let consumer: BaseConsumer = config.create().expect("a consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("topic metadata");
    let mut assignment = TopicPartitionList::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        assignment
            .add_partition_offset(topic, partition.id(), Offset::Offset(0))
            .expect("an assignment");
    }
    consumer.assign(&assignment).expect("assign");
    let mut out = Vec::new();
    let start = Instant::now();
    let mut complete_at = None;
    while start.elapsed() < Duration::from_secs(60) {
        if out.len() >= expected {
            let at = *complete_at.get_or_insert_with(Instant::now);
            if at.elapsed() > Duration::from_secs(1) {
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
            headers: message
                .headers()
                .map(|headers| {
                    headers
                        .iter()
                        .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default(),
            timestamp: message.timestamp().to_millis(),
        });
    }
    out.sort_by_key(|r| (r.partition, r.offset));
    out
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
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", services().kafka_bootstrap_servers())
        .set("linger.ms", "5")
        .create()
        .expect("a producer");
    let mut produced = Vec::new();
    for partition in 0..partitions {
        for i in 0..count {
            let record = Produced {
                partition,
                key: format!("key-{partition}-{i}").into_bytes(),
                value: format!(r#"{{"partition":{partition},"index":{i}}}"#).into_bytes(),
                timestamp: 1_700_000_000_000 + i64::from(partition) * 1000 + i,
            };
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "index",
                    value: Some("x"),
                })
                .insert(Header {
                    key: "binary",
                    value: Some(&[0u8, 200, 255][..]),
                });
            producer
                .send(
                    BaseRecord::to(topic)
                        .partition(partition)
                        .key(&record.key)
                        .payload(&record.value)
                        .timestamp(record.timestamp)
                        .headers(headers),
                )
                .map_err(|(error, _)| error)
                .expect("enqueue a record");
            produced.push(record);
        }
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("every record delivered to the source topic");
    produced
}

// -------------------------------------------------------------------------------------------
// A private destination broker, a private emulator, the poller

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < timeout, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A tool that `scripts/services.sh install` puts in place: on `PATH`, or in cargo's or pip's
/// bin directories, which a fresh shell may lack.
fn tool_path() -> std::ffi::OsString {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default();
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    dirs.push(
        std::env::var_os("CARGO_HOME")
            .map_or_else(|| home.join(".cargo"), PathBuf::from)
            .join("bin"),
    );
    dirs.push(home.join(".local/bin"));
    std::env::join_paths(dirs).expect("PATH entries")
}

/// A tansu broker of this test alone (in-memory), stopped when dropped.
struct Tansu {
    child: Child,
    address: String,
    /// The sqlite store of a broker with users, removed on drop.
    store: Option<PathBuf>,
}

impl Tansu {
    fn start() -> Tansu {
        Self::spawn(free_port(), "memory://tansu/", false, &std::env::temp_dir())
    }

    /// A broker that requires SASL/SCRAM-SHA-512 from `user`, with `topics` (one partition
    /// each). tansu keeps users in its storage: they are created on a sqlite store without
    /// authentication, then the broker is restarted on it with `--authentication`.
    fn start_with_scram(user: &str, password: &str, topics: &[&str]) -> Tansu {
        let dir = std::env::temp_dir().join(kafka_lambda_tests::unique_name("dump-scram"));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let port = free_port();
        let setup = Self::spawn(port, "sqlite://tansu.db", false, &dir);
        let url = format!("tcp://{}", setup.address);
        let tansu = |args: &[&str]| {
            let output = Command::new("tansu")
                .env("PATH", tool_path())
                .args(args)
                .args(["--broker", &url])
                .stdin(Stdio::null())
                .output()
                .expect("tansu runs");
            assert!(
                output.status.success(),
                "tansu {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        tansu(&["user", "create", user, password, "--mechanism", "scram512"]);
        for topic in topics {
            tansu(&["topic", "create", topic, "--partitions", "1"]);
        }
        drop(setup);
        let mut broker = Self::spawn(port, "sqlite://tansu.db", true, &dir);
        broker.store = Some(dir);
        broker
    }

    fn spawn(port: u16, storage: &str, authentication: bool, dir: &std::path::Path) -> Tansu {
        let address = format!("127.0.0.1:{port}");
        let url = format!("tcp://{address}");
        let mut command = Command::new("tansu");
        command
            .env("PATH", tool_path())
            .args(["broker", "--storage-engine", storage])
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if authentication {
            command.arg("--authentication");
        }
        let child = command
            .spawn()
            .expect("tansu starts (scripts/services.sh install puts it in place)");
        let broker = Tansu {
            child,
            address,
            store: None,
        };
        wait_until(
            Duration::from_secs(30),
            "the destination broker listens",
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        );
        broker
    }

    fn address(&self) -> String {
        self.address.clone()
    }

    fn create_topic(&self, topic: &str, partitions: u32) {
        let output = Command::new("tansu")
            .env("PATH", tool_path())
            .args([
                "topic",
                "create",
                topic,
                "--partitions",
                &partitions.to_string(),
            ])
            .args(["--broker", &format!("tcp://{}", self.address)])
            .stdin(Stdio::null())
            .output()
            .expect("tansu topic create runs");
        assert!(
            output.status.success(),
            "creating {topic} on the destination broker: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(store) = &self.store {
            let _ = std::fs::remove_dir_all(store);
        }
    }
}

/// `cargo lambda watch` of this test alone, on a free port, its functions configured by `env`
/// (through `--env-file`, which keeps commas in values intact). The function binaries were
/// built by `scripts/services.sh start`, which `services()` makes sure ran. Stopped with its
/// function processes when dropped (SIGTERM to its process group).
struct Emulator {
    child: Child,
    endpoint: String,
    log: PathBuf,
}

impl Emulator {
    fn start(env: &[(&str, String)]) -> Emulator {
        services();
        let port = free_port();
        let dir = std::env::temp_dir().join("kafka-lambda-topic-dump-tests");
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let env_file = dir.join(format!("emulator-{port}.env"));
        let lines: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        std::fs::write(&env_file, lines).expect("the env file is written");
        let log = dir.join(format!("emulator-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("the emulator log");
        let mut command = Command::new("cargo");
        command
            .args(["lambda", "watch", "--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &port.to_string()])
            .args(["--ignore-changes", "--concurrency", "2", "--color", "never"])
            .arg("--env-file")
            .arg(&env_file)
            .env("PATH", tool_path())
            .env("RUST_LOG", "info")
            .current_dir(repo_root())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("the log file"))
            .stderr(log_file);
        // What `cargo test` sets for the test must not reach the `cargo run` of the functions.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("CARGO_") && name != "CARGO_HOME" && name != "CARGO_TARGET_DIR" {
                command.env_remove(&*name);
            }
        }
        let child = command
            .spawn()
            .expect("cargo lambda watch starts (scripts/services.sh install puts it in place)");
        let emulator = Emulator {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        };
        wait_until(
            Duration::from_secs(60),
            "the private emulator answers",
            || emulator.probe() == Some(404),
        );
        emulator
    }

    fn probe(&self) -> Option<u16> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(2)))
            .http_status_as_error(false)
            .build()
            .into();
        agent
            .post(format!(
                "{}/2015-03-31/functions/kl-probe/invocations",
                self.endpoint
            ))
            .send("{}")
            .ok()
            .map(|r| r.status().as_u16())
    }

    fn invoke(&self, function: &str, payload: &[u8]) -> Invocation {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(kafka_lambda_tests::INVOKE_TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into();
        let url = format!(
            "{}/2015-03-31/functions/{function}/invocations",
            self.endpoint
        );
        let mut response = agent
            .post(&url)
            .header("content-type", "application/json")
            .send(payload)
            .unwrap_or_else(|error| {
                panic!(
                    "invoking {function} at {url} failed: {error}; emulator log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                )
            });
        Invocation {
            function: function.to_owned(),
            status: response.status().as_u16(),
            headers: Vec::new(),
            body: response
                .body_mut()
                .read_to_vec()
                .expect("the response body"),
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// The real `kafka-lambda-poller` binary from the workspace's target directory, where the
/// workspace build before the tests puts it; built here only when it is missing.
fn poller_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/debug/deps/topic_dump-<hash> → target/debug/kafka-lambda-poller
    let binary = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test runs from target/<profile>/deps")
        .join("kafka-lambda-poller");
    if !binary.is_file() {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "-p",
                "kafka-lambda-poller",
                "--bin",
                "kafka-lambda-poller",
            ])
            .current_dir(repo_root())
            .status()
            .expect("cargo build runs");
        assert!(
            status.success(),
            "cargo build -p kafka-lambda-poller failed"
        );
    }
    binary
}

/// A running `kafka-lambda-poller run`, killed when dropped.
struct Poller {
    child: Option<Child>,
    log: PathBuf,
}

impl Poller {
    fn start(name: &str, config: &str) -> Poller {
        let dir = std::env::temp_dir().join(kafka_lambda_tests::unique_name(name));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let config_path = dir.join("poller.toml");
        std::fs::write(&config_path, config).expect("the poller config is written");
        let log = dir.join("poller.log");
        let child = Command::new(poller_binary())
            .args(["run", "--config"])
            .arg(&config_path)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("the poller log"))
            .spawn()
            .expect("kafka-lambda-poller starts");
        Poller {
            child: Some(child),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits for the drain (at most 30 s).
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
