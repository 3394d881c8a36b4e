//! The conformance suite (`tests/conformance/README.md`, the contract): the same records,
//! produced with explicit bytes, are delivered by `kafka-lambda-poller run --until-caught-up`
//! to a function written with each of AWS's runtimes and libraries (and with this project's
//! handler SDK), each behind AWS's Lambda Runtime Interface Emulator, and what each function
//! wrote down is reconciled with what was produced: key and value bytes, headers in order with
//! their bytes, timestamp and its type, coordinates and the event's source fields; poison
//! records retried, then dead-lettered with their failure headers; nothing lost; offsets of a
//! partition increasing within each invocation.
//!
//! One test per function folder (`tests/conformance/<name>/`), from the table at the end of this
//! file, which also names what each library cannot carry (its known limits): the check of that
//! field is relaxed for that library alone, and each limit must actually occur, so the table
//! cannot go stale silently. A folder that is missing, or has no `install.sh`, fails its test
//! saying so; a folder with an `install.sh` but no row fails
//! `every_conformance_folder_has_a_test`.
//!
//! Each test runs the mapping twice, one after the other behind a fresh emulator (it serves one
//! invocation at a time): as an Amazon MSK trigger (`aws:kafka`, with an ARN) and as a
//! self-managed Kafka trigger (`SelfManagedKafka`), both over the same two topics, one with
//! producer timestamps (`CreateTime`) and one with `message.timestamp.type=LogAppendTime`.
//!
//! TODO (the suite's next stage): offsets past 2^31 (a partition moved there with
//! `kafka-delete-records` or a large log start offset) and records written through a schema
//! registry (`keySchemaMetadata`/`valueSchemaMetadata`, checked here only to be `null`).

// Test helpers outside #[test] functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kafka_lambda_tests::{
    Poller, RIE_FUNCTION, ReadRecord, Rie, TopicReader, create_topic_on, group_name, output_text,
    produce_all, repo_root, services, tool_path, topic_name, unique_dir,
    without_cargo_test_variables,
};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::BaseRecord;
use serde::de::{Deserializer, Visitor};
use serde::{Deserialize, de};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// The mapping's retries after a function error or a failed record.
const MAX_RETRY_ATTEMPTS: usize = 2;

/// The mapping's batch size: bounds how often bisecting invokes a healthy record again.
const BATCH_SIZE: usize = 100;

/// The header that makes a record poison (the contract's `kl-poison`).
const POISON_HEADER: &[u8] = b"kl-poison";

/// The header carrying a record's index in its topic's record set (matches what was read back
/// to what was meant).
const INDEX_HEADER: &[u8] = b"kl-index";

/// Every this-many-th record produced (over both topics) is poison.
const POISON_EVERY: usize = 50;

/// How long one `--until-caught-up` run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(200);

/// The MSK cluster ARN of the `aws:kafka` run.
const MSK_ARN: &str = "arn:aws:kafka:us-east-1:123456789012:cluster/conformance/7f3a2b1c-9d8e-4f6a-b5c4-3d2e1f0a9b8c-2";

/// The failure headers every dead letter carries.
const DEAD_LETTER_HEADERS: &[&str] = &[
    "kafka-lambda-source-topic",
    "kafka-lambda-source-partition",
    "kafka-lambda-source-offset",
    "kafka-lambda-source-timestamp",
    "kafka-lambda-function",
    "kafka-lambda-error-type",
    "kafka-lambda-error-message",
    "kafka-lambda-attempts",
    "kafka-lambda-failed-at",
];

/// What a library cannot carry: the check of the field named is relaxed for that library alone,
/// and the test fails when the limit does not occur (the table would be stale).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Limit {
    /// A null key is read as empty (`""`).
    NullKeyAsEmpty,
    /// A null value (a tombstone) is read as empty (`""`).
    NullValueAsEmpty,
    /// An empty key is read as a null one.
    EmptyKeyAsNull,
    /// Keys and values are read as UTF-8 text: one that is not UTF-8 is read with its invalid
    /// bytes replaced (U+FFFD), as `String::from_utf8_lossy` does.
    KeyValueAsText,
    /// Header values are read as UTF-8 text: one that is not UTF-8 is read with its invalid
    /// bytes replaced (U+FFFD); names, order and UTF-8 values are still checked.
    BinaryHeaderValuesAsText,
    /// Headers are read into a case-insensitive map: names lowercased, a repeated name kept
    /// once, at its first position, with its last value.
    HeadersAsCaseInsensitiveMap,
    /// A header name that is not UTF-8 is read with its invalid bytes replaced (U+FFFD).
    NonUtf8HeaderNameReplaced,
    /// A missing `eventSourceArn` (self-managed Kafka) is read as `""`.
    MissingEventSourceArnAsEmpty,
    /// The timestamp is read through a float of seconds whose fraction is truncated: many come
    /// out 1 ms early (aws_lambda_events 1.2's `MillisecondTimestamp`: 1796688245560 is read as
    /// …559).
    TimestampOneMillisecondEarly,
    /// A header name that is not UTF-8 (`\udcXX` escapes in the event) makes the whole event
    /// undecodable: such a record never reaches the function's code, it is retried, bisected
    /// down to, and dead-lettered.
    NonUtf8HeaderNameFailsTheEvent,
}

/// One function folder and what its library does.
#[derive(Debug)]
struct Library {
    /// The folder under `tests/conformance/`, and the `function` of its lines.
    name: &'static str,
    /// Whether the library has a partial batch failure mechanism for Kafka (then a poison record
    /// fails alone; otherwise it fails the whole invocation and bisecting isolates it).
    partial_failure: bool,
    /// Its known limits.
    limits: &'static [Limit],
}

impl Library {
    fn has(&self, limit: Limit) -> bool {
        self.limits.contains(&limit)
    }
}

/// One mapping run: the trigger it stands for.
#[derive(Debug, Clone, Copy)]
struct Run {
    event_source: &'static str,
    event_source_arn: Option<&'static str>,
}

const RUNS: [Run; 2] = [
    Run {
        event_source: "aws:kafka",
        event_source_arn: Some(MSK_ARN),
    },
    Run {
        event_source: "SelfManagedKafka",
        event_source_arn: None,
    },
];

// ---------------------------------------------------------------------------------------------
// The record set.

/// One record to produce.
#[derive(Debug, Clone)]
struct Spec {
    partition: i32,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    /// Names are any bytes; a `None` value is a null header value.
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// The producer's timestamp (epoch ms).
    timestamp: i64,
}

/// A record as produced and read back: what every function must see.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    topic: String,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    /// As the event carries them: a null header value is empty.
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    timestamp: i64,
    timestamp_type: &'static str,
    poison: bool,
}

impl Expected {
    fn id(&self) -> String {
        format!("{}-{}@{}", self.topic, self.partition, self.offset)
    }

    fn has_non_utf8_header_name(&self) -> bool {
        self.headers
            .iter()
            .any(|(name, _)| std::str::from_utf8(name).is_err())
    }
}

/// Deterministic bytes (xorshift), any of 0..=255.
fn noise(seed: usize, len: usize) -> Vec<u8> {
    let mut state = (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[3]
        })
        .collect()
}

/// The records of one topic: `count` records over `partitions` partitions (record `j` in
/// partition `j % partitions`), the first ones each an edge case, the others arbitrary bytes;
/// `first` is the index of the first one over the whole set, for [`POISON_EVERY`].
fn record_specs(partitions: i32, count: usize, first: usize) -> Vec<Spec> {
    (0..count)
        .map(|j| {
            let partition = i32::try_from(j).unwrap() % partitions;
            let mut headers: Vec<(Vec<u8>, Option<Vec<u8>>)> =
                vec![(INDEX_HEADER.to_vec(), Some(j.to_string().into_bytes()))];
            let mut key = Some(format!("key-{j}").into_bytes());
            let mut value = Some(noise(j, j % 37));
            // Milliseconds that are not whole seconds.
            let mut timestamp = 1_700_000_000_123 + i64::try_from(j).unwrap() * 1_001;
            match j {
                0 => key = None,
                1 => {
                    key = Some(Vec::new());
                    value = Some(Vec::new());
                }
                2 => value = None,
                3 => {
                    key = Some(vec![0xff, 0xfe, 0x00, 0x80, 0xc3]);
                    value = Some(vec![0xc3, 0x28, 0x00, 0xff, 0xa0, 0xa1, 0xed, 0xa0, 0x80]);
                }
                4 => headers.extend([
                    (b"Mixed-Case".to_vec(), Some(b"M".to_vec())),
                    (b"dup".to_vec(), Some(b"first".to_vec())),
                    (b"dup".to_vec(), Some(b"second".to_vec())),
                    (b"bin".to_vec(), Some(vec![0x00, 0xff, 0x80, 0x7f, 0x00])),
                    (b"dup".to_vec(), Some(b"first".to_vec())),
                    (b"empty".to_vec(), Some(Vec::new())),
                ]),
                // Header names that are not UTF-8: Latin-1 `café`, and bytes that never are.
                5 => headers.extend([
                    (b"caf\xe9".to_vec(), Some(b"latin-1 name".to_vec())),
                    (b"\xff\xfe-raw".to_vec(), Some(vec![0x00, 0xff])),
                ]),
                6 => headers.extend([
                    ("café".as_bytes().to_vec(), Some(b"utf-8 name".to_vec())),
                    ("🎉".as_bytes().to_vec(), Some("🎉".as_bytes().to_vec())),
                ]),
                7 => headers.push((b"null-value".to_vec(), None)),
                // The smallest timestamp a producer can set (0 is "now" to librdkafka).
                8 => timestamp = 1,
                9 => {
                    key = None;
                    value = None;
                }
                10 => value = Some(noise(10, 10_000)),
                11 => value = Some(br#"{"a": 1, "text": "caf\u00e9"}"#.to_vec()),
                _ => {
                    if j % 3 == 0 {
                        key = Some(noise(j + 1_000, j % 11));
                    }
                    if j % 4 == 0 {
                        headers.push((b"h".to_vec(), Some(noise(j + 2_000, j % 9))));
                    }
                }
            }
            if (first + j) % POISON_EVERY == POISON_EVERY - 1 {
                headers.push((POISON_HEADER.to_vec(), Some(b"1".to_vec())));
            }
            Spec {
                partition,
                key,
                value,
                headers,
                timestamp,
            }
        })
        .collect()
}

/// The two topics of one test and every record in them, by (topic, partition, offset).
#[derive(Debug)]
struct RecordSet {
    topics: [String; 2],
    records: BTreeMap<(String, i32, i64), Expected>,
}

/// Creates the test's topics, produces the record set with explicit bytes and reads it back:
/// what was read back (offsets, and the broker's timestamps on the `LogAppendTime` topic) is
/// what every function must see, after checking it is what was meant.
fn produce_record_set(name: &str) -> RecordSet {
    let bootstrap = services().kafka_bootstrap_servers();
    let create_time = topic_name(&format!("conformance-{name}-create-time"));
    // No retention: a record with a 1970 timestamp must not be deleted under the test.
    create_topic_on(bootstrap, &create_time, 3, 1, &[("retention.ms", "-1")]);
    let log_append_time = topic_name(&format!("conformance-{name}-log-append-time"));
    create_topic_on(
        bootstrap,
        &log_append_time,
        2,
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    );
    let mut records = BTreeMap::new();
    let mut first = 0;
    for (topic, partitions, count, timestamp_type) in [
        (&create_time, 3, 120, "CREATE_TIME"),
        (&log_append_time, 2, 80, "LOG_APPEND_TIME"),
    ] {
        let specs = record_specs(partitions, count, first);
        first += count;
        produce_specs(topic, &specs);
        let read = TopicReader {
            timeout: Duration::from_secs(60),
            ..TopicReader::new(bootstrap)
        }
        .read(topic, count);
        assert_eq!(read.len(), count, "records read back from {topic}");
        for record in read {
            let expected = expected_from(topic, &specs, &record, timestamp_type);
            records.insert(
                (topic.clone(), expected.partition, expected.offset),
                expected,
            );
        }
    }
    RecordSet {
        topics: [create_time, log_append_time],
        records,
    }
}

fn produce_specs(topic: &str, specs: &[Spec]) {
    let records = specs.iter().map(|spec| {
        let headers = spec
            .headers
            .iter()
            .fold(OwnedHeaders::new(), |headers, (name, value)| {
                kafka_lambda_client::add_raw_header(headers, name, value.as_deref())
            });
        let mut record = BaseRecord::<[u8], [u8]>::to(topic)
            .partition(spec.partition)
            .timestamp(spec.timestamp)
            .headers(headers);
        if let Some(key) = &spec.key {
            record = record.key(key);
        }
        if let Some(value) = &spec.value {
            record = record.payload(value);
        }
        record
    });
    produce_all(&[("linger.ms", "5"), ("compression.codec", "lz4")], records);
}

/// The record read back, after checking it holds what its spec meant.
fn expected_from(
    topic: &str,
    specs: &[Spec],
    read: &ReadRecord,
    timestamp_type: &'static str,
) -> Expected {
    let index: usize = read
        .header(std::str::from_utf8(INDEX_HEADER).unwrap())
        .and_then(|index| index.parse().ok())
        .unwrap_or_else(|| panic!("a record of {topic} read back without its index: {read:?}"));
    let spec = &specs[index];
    assert_eq!(
        (read.partition, &read.key, &read.value, &read.raw_headers),
        (spec.partition, &spec.key, &spec.value, &spec.headers),
        "record {index} of {topic} was read back otherwise than produced"
    );
    let timestamp = read.timestamp.expect("a timestamp");
    if timestamp_type == "CREATE_TIME" {
        assert_eq!(timestamp, spec.timestamp, "record {index} of {topic}");
    } else {
        assert_ne!(
            timestamp, spec.timestamp,
            "record {index} of {topic} kept its producer timestamp on a LogAppendTime topic"
        );
    }
    Expected {
        topic: topic.to_owned(),
        partition: read.partition,
        offset: read.offset,
        key: read.key.clone(),
        value: read.value.clone(),
        headers: read
            .raw_headers
            .iter()
            .map(|(name, value)| (name.clone(), value.clone().unwrap_or_default()))
            .collect(),
        timestamp,
        timestamp_type,
        poison: read
            .raw_headers
            .iter()
            .any(|(name, _)| name == POISON_HEADER),
    }
}

// ---------------------------------------------------------------------------------------------
// Installing and running a function.

/// Runs `<folder>/install.sh` once per test process; its last line of stdout split into the
/// command line, or why it cannot be had.
fn install(name: &str) -> Result<Vec<String>, String> {
    static INSTALLED: Mutex<BTreeMap<String, Result<Vec<String>, String>>> =
        Mutex::new(BTreeMap::new());
    let mut installed = INSTALLED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    installed
        .entry(name.to_owned())
        .or_insert_with(|| run_install(name))
        .clone()
}

fn run_install(name: &str) -> Result<Vec<String>, String> {
    let dir = folder(name);
    if !dir.is_dir() {
        return Err(format!(
            "{} does not exist: the {name} conformance function has not landed (the contract is \
             tests/conformance/README.md)",
            dir.display()
        ));
    }
    let script = dir.join("install.sh");
    if !script.is_file() {
        return Err(format!(
            "{} has no install.sh, which the contract requires (tests/conformance/README.md)",
            dir.display()
        ));
    }
    let mut command = Command::new("bash");
    command
        .arg(&script)
        .current_dir(&dir)
        .env("PATH", tool_path())
        .stdin(Stdio::null());
    without_cargo_test_variables(&mut command);
    let output = command
        .output()
        .map_err(|error| format!("cannot run {}: {error}", script.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} failed:\n{}",
            script.display(),
            output_text(&output)
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or_default();
    let command: Vec<String> = line.split(' ').map(str::to_owned).collect();
    if command.is_empty() || command[0].is_empty() || !Path::new(&command[0]).is_absolute() {
        return Err(format!(
            "the last line of {}'s stdout is not a command line with an absolute program \
             path: {line:?}\n{}",
            script.display(),
            output_text(&output)
        ));
    }
    Ok(command)
}

fn folder(name: &str) -> PathBuf {
    repo_root().join("tests/conformance").join(name)
}

/// The poller's configuration for one run: both topics to the function behind `endpoint`.
fn poller_config(run: &Run, endpoint: &str, topics: &[String; 2], dlq: &str) -> String {
    let arn = run
        .event_source_arn
        .map(|arn| format!("event_source_arn = \"{arn}\""))
        .unwrap_or_default();
    format!(
        r#"[kafka]
bootstrap_servers = "{bootstrap}"
fetch_wait_max_ms = 10
commit_interval_ms = 200

[lambda]
region = "us-east-1"
endpoint_url = "{endpoint}"

[shutdown]
drain_timeout_ms = 20000

[[mapping]]
function = "{RIE_FUNCTION}"
topics = {topics:?}
consumer_group = "{group}"
event_source = "{source}"
{arn}
batch_size = {BATCH_SIZE}
batching_window_ms = 100
max_concurrency = 1
report_batch_item_failures = true
bisect_batch_on_function_error = true
max_retry_attempts = {MAX_RETRY_ATTEMPTS}
retry_backoff_base_ms = 10
retry_backoff_max_ms = 100
on_failure = "kafka://{dlq}"
"#,
        bootstrap = services().kafka_bootstrap_servers(),
        group = group_name("conformance"),
        source = run.event_source,
    )
}

/// What one run left behind.
struct RunOutput {
    lines: Vec<Vec<u8>>,
    dead: Vec<ReadRecord>,
}

/// Runs the mapping of `run` over the record set to the function behind a fresh emulator until
/// the poller has caught up, and collects the function's lines and the dead letters.
fn run_mapping(
    library: &Library,
    command: &[String],
    set: &RecordSet,
    run: &Run,
    expected_dead: usize,
) -> RunOutput {
    let scratch = unique_dir(&format!("conformance-{}", library.name));
    let out = scratch.join("seen.jsonl");
    let rie = Rie::start_command(
        library.name,
        command,
        &folder(library.name),
        &[
            ("KL_CONFORMANCE_OUT", out.to_str().unwrap()),
            // A function that hangs shows as timeouts, not as a run that never ends.
            ("AWS_LAMBDA_FUNCTION_TIMEOUT", "30"),
        ],
    );
    let dlq = topic_name(&format!("conformance-{}-dlq", library.name));
    create_topic_on(services().kafka_bootstrap_servers(), &dlq, 1, 1, &[]);
    let mut poller = Poller::start_with(
        &format!("conformance-{}", library.name),
        &poller_config(run, rie.endpoint(), &set.topics, &dlq),
        &["--until-caught-up"],
    );
    let status = poller.wait(RUN_TIMEOUT);
    assert!(
        status.success(),
        "{} ({}): the poller exited with {status}; its log:\n{}\nthe emulator's log:\n{}",
        library.name,
        run.event_source,
        poller.log(),
        rie.log_text()
    );
    let dead = TopicReader {
        timeout: Duration::from_secs(30),
        // Read on a little: a record dead-lettered twice must show.
        linger: Duration::from_secs(2),
        ..TopicReader::new(services().kafka_bootstrap_servers())
    }
    .read(&dlq, expected_dead);
    let text = std::fs::read(&out).unwrap_or_default();
    let lines = text
        .split(|&b| b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .map(<[u8]>::to_vec)
        .collect();
    drop(rie);
    RunOutput { lines, dead }
}

// ---------------------------------------------------------------------------------------------
// What a function wrote: the contract's line.

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Line {
    function: Option<String>,
    invocation: Option<String>,
    event_source: Option<String>,
    event_source_arn: Option<String>,
    bootstrap_servers: Option<String>,
    topic: String,
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    timestamp_type: Option<String>,
    key: Option<String>,
    value: Option<String>,
    headers: Option<Vec<(WireName, String)>>,
    key_schema_metadata: Option<serde_json::Value>,
    value_schema_metadata: Option<serde_json::Value>,
    poison: Option<bool>,
}

/// A header name as a function wrote it: a JSON string read as bytes, where a lone surrogate
/// `\udc80`..`\udcff` (how the event carries a byte of a name that is not UTF-8, Python's
/// `surrogateescape`) is the byte it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WireName(Vec<u8>);

impl<'de> Deserialize<'de> for WireName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl Visitor<'_> for NameVisitor {
            type Value = WireName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a header name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<WireName, E> {
                Ok(WireName(name.as_bytes().to_vec()))
            }
            fn visit_bytes<E: de::Error>(self, name: &[u8]) -> Result<WireName, E> {
                // serde_json hands a lone surrogate over in its 3-byte generalized UTF-8 form.
                let mut bytes = Vec::with_capacity(name.len());
                let mut i = 0;
                while i < name.len() {
                    match name[i..] {
                        [0xED, second @ (0xB2 | 0xB3), third @ 0x80..=0xBF, ..] => {
                            bytes.push(0x80 | ((second & 1) << 6) | (third & 0x3F));
                            i += 3;
                        }
                        [byte, ..] => {
                            bytes.push(byte);
                            i += 1;
                        }
                        [] => break,
                    }
                }
                Ok(WireName(bytes))
            }
        }
        deserializer.deserialize_bytes(NameVisitor)
    }
}

/// `bytes` as a library that reads them as UTF-8 text gives them back: `None` when they are
/// UTF-8 (nothing changes), else the bytes with each invalid sequence replaced by U+FFFD.
fn as_text(bytes: &[u8]) -> Option<Vec<u8>> {
    std::str::from_utf8(bytes)
        .is_err()
        .then(|| String::from_utf8_lossy(bytes).into_owned().into_bytes())
}

/// `headers` as a case-insensitive map keeps them: names lowercased, a repeated name once, at
/// its first position, with its last value.
fn as_case_insensitive_map(headers: &[(Vec<u8>, Vec<u8>)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut mapped: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for (name, value) in headers {
        let name = match std::str::from_utf8(name) {
            Ok(text) => text.to_lowercase().into_bytes(),
            Err(_) => name.to_ascii_lowercase(),
        };
        match mapped.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1.clone_from(value),
            None => mapped.push((name, value.clone())),
        }
    }
    mapped
}

fn show_bytes(bytes: Option<&[u8]>) -> String {
    bytes.map_or_else(
        || "null".to_owned(),
        |b| format!("\"{}\"", b.escape_ascii()),
    )
}

fn show_headers(headers: &[(Vec<u8>, Vec<u8>)]) -> String {
    let shown: Vec<String> = headers
        .iter()
        .map(|(n, v)| format!("{}={}", n.escape_ascii(), v.escape_ascii()))
        .collect();
    format!("[{}]", shown.join(", "))
}

// ---------------------------------------------------------------------------------------------
// Reconciling.

/// One invocation's lines, in the order written: its request id and each line's (topic,
/// partition, offset).
type Invocation = (String, Vec<(String, i32, i64)>);

/// The mismatches of one test, and the limits that did occur.
struct Reconciliation<'a> {
    library: &'a Library,
    problems: Vec<String>,
    occurred: BTreeMap<&'static str, BTreeSet<Limit>>,
}

impl Reconciliation<'_> {
    fn problem(&mut self, run: &Run, text: String) {
        self.problems.push(format!("[{}] {text}", run.event_source));
    }

    /// Whether `limit` excuses a mismatch (and records that it occurred).
    fn excused(&mut self, run: &Run, limit: Limit) -> bool {
        if self.library.has(limit) {
            self.occurred
                .entry(run.event_source)
                .or_default()
                .insert(limit);
            true
        } else {
            false
        }
    }

    /// Checks one run: every line against what was produced, sightings, invocations, dead
    /// letters.
    fn check_run(&mut self, run: &Run, set: &RecordSet, expected_dead: &BTreeSet<String>) {
        let output = run_mapping(
            self.library,
            &install(self.library.name).unwrap(),
            set,
            run,
            expected_dead.len(),
        );
        let by_id: BTreeMap<String, &Expected> =
            set.records.values().map(|e| (e.id(), e)).collect();
        let mut sightings: BTreeMap<String, usize> = BTreeMap::new();
        let mut invocations: Vec<Invocation> = Vec::new();
        for (number, bytes) in output.lines.iter().enumerate() {
            let line: Line = match serde_json::from_slice(bytes) {
                Ok(line) => line,
                Err(error) => {
                    self.problem(
                        run,
                        format!(
                            "line {} is not the contract's JSON ({error}): {}",
                            number + 1,
                            String::from_utf8_lossy(bytes)
                        ),
                    );
                    continue;
                }
            };
            let id = format!("{}-{}@{}", line.topic, line.partition, line.offset);
            let invocation = line.invocation.clone().unwrap_or_default();
            match invocations.last_mut() {
                Some((last, records)) if *last == invocation => {
                    records.push((line.topic.clone(), line.partition, line.offset));
                }
                _ => invocations.push((
                    invocation,
                    vec![(line.topic.clone(), line.partition, line.offset)],
                )),
            }
            let Some(expected) = by_id.get(&id) else {
                self.problem(run, format!("{id} was seen but never produced"));
                continue;
            };
            *sightings.entry(id.clone()).or_default() += 1;
            self.check_line(run, &line, expected);
        }
        self.check_invocations(run, &invocations);
        self.check_sightings(run, set, expected_dead, &sightings);
        self.check_dead_letters(run, &by_id, expected_dead, &output.dead);
    }

    fn check_line(&mut self, run: &Run, line: &Line, expected: &Expected) {
        let id = expected.id();
        let name = self.library.name;
        if line.function.as_deref() != Some(name) {
            self.problem(
                run,
                format!("{id}: function {:?}, not {name:?}", line.function),
            );
        }
        if line.invocation.as_deref().unwrap_or_default().is_empty() {
            self.problem(run, format!("{id}: no invocation (request id)"));
        }
        let bootstrap = services().kafka_bootstrap_servers();
        for (field, seen, want) in [
            (
                "eventSource",
                line.event_source.as_deref(),
                Some(run.event_source),
            ),
            (
                "eventSourceArn",
                line.event_source_arn.as_deref(),
                run.event_source_arn,
            ),
            (
                "bootstrapServers",
                line.bootstrap_servers.as_deref(),
                Some(bootstrap),
            ),
        ] {
            let excused = field == "eventSourceArn"
                && want.is_none()
                && seen == Some("")
                && self.excused(run, Limit::MissingEventSourceArnAsEmpty);
            if seen != want && !excused {
                self.problem(run, format!("{id}: {field} {seen:?}, not {want:?}"));
            }
        }
        self.check_bytes(
            run,
            &id,
            "key",
            line.key.as_deref(),
            expected.key.as_deref(),
        );
        self.check_bytes(
            run,
            &id,
            "value",
            line.value.as_deref(),
            expected.value.as_deref(),
        );
        self.check_headers(run, &id, line.headers.as_deref(), &expected.headers);
        let timestamp_ok = line.timestamp == Some(expected.timestamp)
            || (line.timestamp == Some(expected.timestamp - 1)
                && self.excused(run, Limit::TimestampOneMillisecondEarly));
        if !timestamp_ok || line.timestamp_type.as_deref() != Some(expected.timestamp_type) {
            self.problem(
                run,
                format!(
                    "{id}: timestamp {:?} {:?}, not {} {}",
                    line.timestamp,
                    line.timestamp_type,
                    expected.timestamp,
                    expected.timestamp_type
                ),
            );
        }
        // No schema registry in this stage: nothing to carry.
        for (field, seen) in [
            ("keySchemaMetadata", &line.key_schema_metadata),
            ("valueSchemaMetadata", &line.value_schema_metadata),
        ] {
            if seen.is_some() {
                self.problem(run, format!("{id}: {field} {seen:?}, not null"));
            }
        }
        if line.poison != Some(expected.poison) {
            self.problem(
                run,
                format!("{id}: poison {:?}, not {}", line.poison, expected.poison),
            );
        }
    }

    /// A key or value: base64 in the line, compared as bytes.
    fn check_bytes(
        &mut self,
        run: &Run,
        id: &str,
        field: &str,
        seen: Option<&str>,
        expected: Option<&[u8]>,
    ) {
        let seen = match seen.map(|text| STANDARD.decode(text)).transpose() {
            Ok(seen) => seen,
            Err(error) => {
                self.problem(
                    run,
                    format!("{id}: {field} {seen:?} is not base64: {error}"),
                );
                return;
            }
        };
        if seen.as_deref() == expected {
            return;
        }
        let null_as_empty = if field == "key" {
            Limit::NullKeyAsEmpty
        } else {
            Limit::NullValueAsEmpty
        };
        let excused = match (expected, seen.as_deref()) {
            (None, Some([])) => self.excused(run, null_as_empty),
            (Some([]), None) if field == "key" => self.excused(run, Limit::EmptyKeyAsNull),
            (Some(bytes), Some(seen)) if as_text(bytes).as_deref() == Some(seen) => {
                self.excused(run, Limit::KeyValueAsText)
            }
            _ => false,
        };
        if !excused {
            self.problem(
                run,
                format!(
                    "{id}: {field} {}, not {}",
                    show_bytes(seen.as_deref()),
                    show_bytes(expected)
                ),
            );
        }
    }

    fn check_headers(
        &mut self,
        run: &Run,
        id: &str,
        seen: Option<&[(WireName, String)]>,
        expected: &[(Vec<u8>, Vec<u8>)],
    ) {
        let Some(seen) = seen else {
            self.problem(
                run,
                format!("{id}: headers null, not {}", show_headers(expected)),
            );
            return;
        };
        let decoded: Result<Vec<(Vec<u8>, Vec<u8>)>, _> = seen
            .iter()
            .map(|(name, value)| STANDARD.decode(value).map(|v| (name.0.clone(), v)))
            .collect();
        let decoded = match decoded {
            Ok(decoded) => decoded,
            Err(error) => {
                self.problem(run, format!("{id}: a header value is not base64: {error}"));
                return;
            }
        };
        if self.headers_match(run, &decoded, expected) {
            return;
        }
        // Read into a case-insensitive map: the headers the map leaves.
        let mapped = as_case_insensitive_map(expected);
        if mapped != expected
            && self.library.has(Limit::HeadersAsCaseInsensitiveMap)
            && self.headers_match(run, &decoded, &mapped)
        {
            self.excused(run, Limit::HeadersAsCaseInsensitiveMap);
            return;
        }
        self.problem(
            run,
            format!(
                "{id}: headers {}, not {}",
                show_headers(&decoded),
                show_headers(expected)
            ),
        );
    }

    /// Whether `seen` are the headers `expected`, name by name and value by value, allowing
    /// the library's limits on single names and values.
    fn headers_match(
        &mut self,
        run: &Run,
        seen: &[(Vec<u8>, Vec<u8>)],
        expected: &[(Vec<u8>, Vec<u8>)],
    ) -> bool {
        if seen.len() != expected.len() {
            return false;
        }
        let mut limits = Vec::new();
        for ((name, value), (want_name, want_value)) in seen.iter().zip(expected) {
            if name != want_name {
                if as_text(want_name).as_deref() != Some(name.as_slice()) {
                    return false;
                }
                limits.push(Limit::NonUtf8HeaderNameReplaced);
            }
            if value != want_value {
                if as_text(want_value).as_deref() != Some(value.as_slice()) {
                    return false;
                }
                limits.push(Limit::BinaryHeaderValuesAsText);
            }
        }
        // Record them only when they excuse the whole list.
        limits.iter().all(|limit| self.library.has(*limit))
            && limits.into_iter().all(|limit| self.excused(run, limit))
    }

    /// Lines of one invocation are written at once, and within it each partition's offsets
    /// increase.
    fn check_invocations(&mut self, run: &Run, invocations: &[Invocation]) {
        let mut finished = BTreeSet::new();
        for (invocation, records) in invocations {
            if !finished.insert(invocation) {
                self.problem(
                    run,
                    format!(
                        "the lines of invocation {invocation:?} are not together (one write per \
                         invocation)"
                    ),
                );
            }
            let mut last: BTreeMap<(&str, i32), i64> = BTreeMap::new();
            for (topic, partition, offset) in records {
                if let Some(previous) = last.insert((topic, *partition), *offset)
                    && previous >= *offset
                {
                    self.problem(
                        run,
                        format!(
                            "invocation {invocation}: {topic}-{partition} offset {offset} after \
                             {previous}"
                        ),
                    );
                }
            }
        }
    }

    /// Nothing lost; poison records retried; healthy records invoked no more than the failure
    /// handling requires.
    fn check_sightings(
        &mut self,
        run: &Run,
        set: &RecordSet,
        expected_dead: &BTreeSet<String>,
        sightings: &BTreeMap<String, usize>,
    ) {
        let bisect_depth = BATCH_SIZE.next_power_of_two().trailing_zeros() as usize;
        // Records that fail, by partition, for the bounds below.
        let failing: BTreeSet<(&str, i32, i64)> = set
            .records
            .values()
            .filter(|e| expected_dead.contains(&e.id()))
            .map(|e| (e.topic.as_str(), e.partition, e.offset))
            .collect();
        for expected in set.records.values() {
            let id = expected.id();
            let seen = sightings.get(&id).copied().unwrap_or(0);
            let failing_before = failing
                .iter()
                .filter(|(t, p, o)| {
                    *t == expected.topic && *p == expected.partition && *o < expected.offset
                })
                .count();
            let failing_in_partition = failing
                .iter()
                .filter(|(t, p, _)| *t == expected.topic && *p == expected.partition)
                .count();
            let (least, most, why) = if expected.poison {
                let tries = 1 + MAX_RETRY_ATTEMPTS;
                if self.library.partial_failure {
                    (
                        tries,
                        tries + (MAX_RETRY_ATTEMPTS + 1) * failing_before,
                        "a poison record reported as a partial failure is tried 1 + max_retry_attempts \
                         times, and again while a failed record before it in its partition is retried \
                         (a library that processes the records after a failure, as Powertools does)",
                    )
                } else {
                    (
                        tries,
                        tries + bisect_depth,
                        "a poison record failing its invocation is bisected down to, then tried 1 + max_retry_attempts times",
                    )
                }
            } else if expected_dead.contains(&id) {
                if seen == 0 {
                    self.excused(run, Limit::NonUtf8HeaderNameFailsTheEvent);
                }
                (
                    0,
                    0,
                    "the library cannot decode an event holding this record",
                )
            } else if self.library.partial_failure {
                (
                    1,
                    1 + (MAX_RETRY_ATTEMPTS + 1) * failing_before,
                    "with partial failures, a healthy record is invoked again only while a failed \
                     record before it in its partition is retried",
                )
            } else if failing_in_partition == 0 {
                (1, 1, "no record of its partition fails")
            } else {
                (
                    1,
                    1 + bisect_depth,
                    "bisecting invokes a healthy record at most once per halving",
                )
            };
            if seen < least || seen > most {
                let range = if least == most {
                    least.to_string()
                } else {
                    format!("{least}..={most}")
                };
                let what = if seen == 0 { " (lost)" } else { "" };
                self.problem(
                    run,
                    format!("{id} was seen {seen} times{what}, expected {range}: {why}"),
                );
            }
        }
    }

    /// Exactly the records that must fail are dead-lettered, once each, as produced, with the
    /// failure headers.
    fn check_dead_letters(
        &mut self,
        run: &Run,
        by_id: &BTreeMap<String, &Expected>,
        expected_dead: &BTreeSet<String>,
        dead: &[ReadRecord],
    ) {
        let mut found = BTreeMap::<String, usize>::new();
        for letter in dead {
            let source = (
                letter.header("kafka-lambda-source-topic"),
                letter.header("kafka-lambda-source-partition"),
                letter.header("kafka-lambda-source-offset"),
            );
            let (Some(topic), Some(partition), Some(offset)) = source else {
                self.problem(
                    run,
                    format!("a dead letter without its source headers: {letter:?}"),
                );
                continue;
            };
            let id = format!("{topic}-{partition}@{offset}");
            *found.entry(id.clone()).or_default() += 1;
            let Some(expected) = by_id.get(&id) else {
                self.problem(run, format!("a dead letter of {id}, never produced"));
                continue;
            };
            let headers: Vec<(Vec<u8>, Vec<u8>)> = letter
                .raw_headers
                .iter()
                .map(|(n, v)| (n.clone(), v.clone().unwrap_or_default()))
                .collect();
            let original_kept = letter.key == expected.key
                && letter.value == expected.value
                && headers.starts_with(&expected.headers);
            if !original_kept {
                self.problem(
                    run,
                    format!(
                        "the dead letter of {id} is not the record as produced: {letter:?}, \
                         expected {expected:?}"
                    ),
                );
            }
            let failure_names: BTreeSet<Vec<u8>> = headers
                [expected.headers.len().min(headers.len())..]
                .iter()
                .map(|(n, _)| n.clone())
                .collect();
            let missing: Vec<&str> = DEAD_LETTER_HEADERS
                .iter()
                .filter(|h| !failure_names.contains(h.as_bytes()))
                .copied()
                .collect();
            if !missing.is_empty() {
                self.problem(
                    run,
                    format!("the dead letter of {id} lacks the headers {missing:?}"),
                );
            }
            let attempts: usize = letter
                .header("kafka-lambda-attempts")
                .and_then(|a| a.parse().ok())
                .unwrap_or(0);
            if letter.header("kafka-lambda-function").as_deref() != Some(RIE_FUNCTION)
                || letter.header("kafka-lambda-source-timestamp")
                    != Some(expected.timestamp.to_string())
                || attempts < 1 + MAX_RETRY_ATTEMPTS
            {
                self.problem(
                    run,
                    format!(
                        "the dead letter of {id} has function {:?}, source timestamp {:?} \
                         (expected {}), attempts {attempts} (expected at least {})",
                        letter.header("kafka-lambda-function"),
                        letter.header("kafka-lambda-source-timestamp"),
                        expected.timestamp,
                        1 + MAX_RETRY_ATTEMPTS
                    ),
                );
            }
        }
        for (id, count) in &found {
            if !expected_dead.contains(id) {
                self.problem(
                    run,
                    format!("{id} was dead-lettered, but should have been delivered"),
                );
            } else if *count > 1 {
                self.problem(run, format!("{id} was dead-lettered {count} times"));
            }
        }
        for id in expected_dead {
            if !found.contains_key(id) {
                self.problem(run, format!("{id} must fail but was not dead-lettered"));
            }
        }
    }
}

/// The conformance test of the function `name`.
fn conformance(name: &str) {
    let library = LIBRARIES
        .iter()
        .find(|library| library.name == name)
        .unwrap_or_else(|| panic!("no row for {name} in the table of libraries"));
    // First, so that a missing folder fails before any topic is made.
    if let Err(reason) = install(name) {
        panic!("{name}: {reason}");
    }
    let set = produce_record_set(name);
    let expected_dead: BTreeSet<String> = set
        .records
        .values()
        .filter(|e| {
            e.poison
                || (library.has(Limit::NonUtf8HeaderNameFailsTheEvent)
                    && e.has_non_utf8_header_name())
        })
        .map(Expected::id)
        .collect();
    let mut reconciliation = Reconciliation {
        library,
        problems: Vec::new(),
        occurred: BTreeMap::new(),
    };
    for run in &RUNS {
        reconciliation.check_run(run, &set, &expected_dead);
    }
    // A limit may show in one run only (a missing ARN: self-managed Kafka).
    let occurred: BTreeSet<Limit> = reconciliation
        .occurred
        .values()
        .flatten()
        .copied()
        .collect();
    for limit in library.limits {
        if !occurred.contains(limit) {
            reconciliation.problems.push(format!(
                "the known limit {limit:?} of {name} did not occur: the library may carry it \
                 now; remove it from the table"
            ));
        }
    }
    let problems = &reconciliation.problems;
    assert!(
        problems.is_empty(),
        "{name}: {} problems (first 60):\n{}",
        problems.len(),
        problems
            .iter()
            .take(60)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The table of functions: one test each, and their libraries' partial failure mechanism and
/// known limits.
macro_rules! conformance_tests {
    ($($test:ident: $name:literal, partial_failure: $partial:literal, limits: [$($limit:ident),*];)*) => {
        const LIBRARIES: &[Library] = &[$(Library {
            name: $name,
            partial_failure: $partial,
            limits: &[$(Limit::$limit),*],
        }),*];
        $(
            #[test]
            fn $test() {
                conformance($name);
            }
        )*
    };
}

conformance_tests! {
    // Powertools for AWS Lambda (Python): `BatchProcessor(EventType.Kafka)` +
    // `process_partial_response`; headers through `decoded_headers`, a `CaseInsensitiveDict`
    // (tests/conformance/python-powertools/LIMITS.md).
    python_powertools_sees_every_record_as_produced: "python-powertools",
        partial_failure: true, limits: [HeadersAsCaseInsensitiveMap];
    // aws-lambda-go's `events.KafkaEvent`: `Key`, `Value` and `EventSourceARN` are `string`s,
    // so null reads as ""; encoding/json replaces a lone surrogate with U+FFFD; no Kafka
    // response type (tests/conformance/go/LIMITS.md).
    go_sees_every_record_as_produced: "go",
        partial_failure: false,
        limits: [
            NullKeyAsEmpty,
            NullValueAsEmpty,
            NonUtf8HeaderNameReplaced,
            MissingEventSourceArnAsEmpty
        ];
    // Powertools for AWS Lambda (TypeScript)'s `kafkaConsumer`: keys, values and header values
    // as UTF-8 text, an empty key as undefined; its batch utility has no Kafka event type
    // (tests/conformance/node-powertools/index.cjs).
    node_powertools_sees_every_record_as_produced: "node-powertools",
        partial_failure: false,
        limits: [EmptyKeyAsNull, KeyValueAsText, BinaryHeaderValuesAsText];
    // aws-lambda-java-events' `KafkaEvent` under the Java runtime interface client; no Kafka
    // response type.
    java_sees_every_record_as_produced: "java",
        partial_failure: false, limits: [];
    // aws_lambda_events' `KafkaEvent`: header names are `String`s, which serde_json cannot read
    // from a lone surrogate; timestamps through `f64` seconds; no Kafka response type.
    rust_aws_lambda_events_sees_every_record_as_produced: "rust-aws-lambda-events",
        partial_failure: false,
        limits: [NonUtf8HeaderNameFailsTheEvent, TimestampOneMillisecondEarly];
    // kafka-lambda-handler's `process_event` with `report_batch_item_failures(true)`.
    rust_handler_sdk_sees_every_record_as_produced: "rust-handler-sdk",
        partial_failure: true, limits: [];
}

/// A function folder nobody listed in the table would be skipped silently.
#[test]
fn every_conformance_folder_has_a_test() {
    let root = repo_root().join("tests/conformance");
    let unlisted: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.path().join("install.sh").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| !LIBRARIES.iter().any(|library| library.name == name))
        .collect();
    assert!(
        unlisted.is_empty(),
        "folders of {} with an install.sh but no row in the table of tests/tests/conformance.rs: \
         {unlisted:?}",
        root.display()
    );
}

/// The other direction: the partial batch response our SDK writes (the golden file that
/// `events/tests/aws_fixtures.rs` keeps equal to what `KafkaBatchResponse` writes) is valid by
/// Powertools for AWS Lambda (Python)'s own model and equal to what its `BatchProcessor` answers
/// (tests/conformance/powertools-models/check_response.py, in a venv `run.sh` makes once).
#[test]
fn our_partial_batch_responses_are_read_by_the_powertools_python_model() {
    let output = Command::new(repo_root().join("tests/conformance/powertools-models/run.sh"))
        .output()
        .expect("run tests/conformance/powertools-models/run.sh");
    assert!(
        output.status.success(),
        "check_response.py failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
