//! The `test-recorder` function (`tests/functions/test-recorder`), which the poller's tests run
//! under the shared emulator: the poller configuration that delivers a topic to it, and what it
//! wrote down — every record it processed and every invocation of each record — reconciled
//! against what a test produced.

use crate::poller::{Poller, RDKAFKA_DEBUG_VARIABLE};
use crate::records::produce;
use crate::services;
use crate::tools::wait_until;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

/// The directory test-recorder writes to (its default, `KL_RECORDER_DIR` unset).
const RECORDER_DIR: &str = "/tmp/kafka-lambda-recorder";

/// The file of the records test-recorder processed for `topic`: one JSON line each.
pub fn recorder_file(topic: &str) -> PathBuf {
    PathBuf::from(RECORDER_DIR).join(format!("{topic}.jsonl"))
}

/// The file of test-recorder's invocations of `topic`'s records: one JSON line per record
/// invoked.
fn attempts_file(topic: &str) -> PathBuf {
    PathBuf::from(RECORDER_DIR).join(format!("{topic}.attempts.jsonl"))
}

/// One record as the function saw it: its coordinates, contents, and the shape of the event it
/// came in (`eventSource`, `batchRecords`, `payloadBytes`, …).
#[derive(Debug, Clone)]
pub struct Seen(pub Value);

impl Seen {
    /// The record's partition.
    pub fn partition(&self) -> i32 {
        self.0["partition"]
            .as_i64()
            .and_then(|p| i32::try_from(p).ok())
            .unwrap_or(-1)
    }

    /// The record's offset.
    pub fn offset(&self) -> i64 {
        self.0["offset"].as_i64().unwrap_or(-1)
    }

    /// The record's value, as text.
    pub fn value(&self) -> &str {
        self.0["value"].as_str().unwrap_or_default()
    }

    /// The record's value as the event carried it, byte for byte (`None`: a tombstone).
    pub fn value_bytes(&self) -> Option<Vec<u8>> {
        bytes(&self.0["valueBytes"])
    }

    /// The record's key as the event carried it, byte for byte (`None`: a null key).
    pub fn key_bytes(&self) -> Option<Vec<u8>> {
        bytes(&self.0["keyBytes"])
    }

    /// The id of the invocation that carried it.
    pub fn invocation(&self) -> &str {
        self.0["invocation"].as_str().unwrap_or_default()
    }
}

fn bytes(v: &Value) -> Option<Vec<u8>> {
    v.as_array().map(|a| {
        a.iter()
            .map(|b| {
                b.as_u64()
                    .and_then(|b| u8::try_from(b).ok())
                    .unwrap_or_default()
            })
            .collect()
    })
}

/// Everything the function has recorded for `topic` so far, in delivery order.
///
/// # Panics
///
/// When a line is not JSON.
pub fn seen(topic: &str) -> Vec<Seen> {
    let text = std::fs::read_to_string(recorder_file(topic)).unwrap_or_default();
    complete_lines(&text)
        .map(|l| Seen(serde_json::from_str(l).expect("recorder lines are JSON")))
        .collect()
}

/// The values the function saw for `topic`, in delivery order.
pub fn seen_values(topic: &str) -> Vec<String> {
    seen(topic).iter().map(|s| s.value().to_owned()).collect()
}

/// Distinct (partition, offset) pairs seen.
pub fn seen_offsets(topic: &str) -> BTreeSet<(i32, i64)> {
    seen(topic)
        .iter()
        .map(|s| (s.partition(), s.offset()))
        .collect()
}

/// Waits until the function has seen `count` distinct records of `topic`.
///
/// # Panics
///
/// When it has not within `timeout`; the message is [`wait_until`]'s with `what`.
pub fn wait_for_seen(timeout: Duration, what: &str, topic: &str, count: usize) {
    wait_until(timeout, what, || seen_offsets(topic).len() >= count);
}

/// Produces `marker` to partition 0 of `topic` and adds it to `expected`, then runs a new poller
/// of `config` until the function has seen it, and checks that every record of `expected` was
/// delivered once: the poller's group had committed what its earlier members delivered. `why`
/// says what a record delivered twice would mean.
///
/// # Panics
///
/// When the marker is not delivered within `timeout`, a record was delivered twice, or the
/// poller does not stop cleanly.
pub fn resume_with_marker(
    topic: &str,
    config: &str,
    marker: &str,
    expected: &mut BTreeMap<(i32, i64), String>,
    timeout: Duration,
    why: &str,
) {
    expected.extend(produce(topic, 1, 1, |_, _| marker.to_owned()));
    let mut poller = Poller::start(&format!("{topic}-b"), config);
    wait_for_seen(timeout, "the marker is delivered", topic, expected.len());
    assert_eq!(reconcile(topic, expected), 0, "{why}");
    poller.terminate_cleanly(Duration::from_secs(30));
}

/// Lines the function has recorded for `topic` (a record seen twice counts twice), without
/// parsing them: the file of a long test grows to tens of megabytes.
pub fn recorded_lines(topic: &str) -> usize {
    std::fs::read(recorder_file(topic)).map_or(0, |bytes| {
        bytes.iter().filter(|&&byte| byte == b'\n').count()
    })
}

/// How many times each (partition, offset) of `topic` was invoked.
///
/// # Panics
///
/// When a line is not JSON.
pub fn attempts(topic: &str) -> BTreeMap<(i32, i64), usize> {
    let mut counts = BTreeMap::new();
    let text = std::fs::read_to_string(attempts_file(topic)).unwrap_or_default();
    for line in complete_lines(&text) {
        let v: Value = serde_json::from_str(line).expect("attempt lines are JSON");
        let key = (
            v["partition"]
                .as_i64()
                .and_then(|p| i32::try_from(p).ok())
                .unwrap_or(-1),
            v["offset"].as_i64().unwrap_or(-1),
        );
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

/// The lines of `text` that end with a newline: the function may be half-way through
/// appending the last one while a test reads the file.
fn complete_lines(text: &str) -> impl Iterator<Item = &str> {
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete.split('\n').filter(|l| !l.trim().is_empty())
}

/// Checks that every produced record was seen with the value produced, and that within each
/// partition the first sightings are in offset order. Returns the number of duplicate
/// sightings (allowed after crashes and rebalances).
///
/// # Panics
///
/// When a record was never seen, seen with another value, or first seen out of order.
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
        if distinct.insert(key) {
            first_seen.entry(key.0).or_default().push(key.1);
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

/// Retries after 10 to 100 ms: `[[mapping]]` settings for tests whose failures should be retried
/// at once.
pub const FAST_RETRIES: &str = "retry_backoff_base_ms = 10\nretry_backoff_max_ms = 100";

/// A poller configuration for one mapping of `topic` on the shared broker to `test-recorder` on
/// the shared emulator, in consumer group `group`, with short fetch waits, commits every 500 ms
/// and a 20 s drain; `extra` lines go into the `[[mapping]]` table (a 20 ms batching window
/// unless `extra` sets one). With [`RDKAFKA_DEBUG_VARIABLE`] set, librdkafka's debug contexts
/// it names are on.
///
/// # Panics
///
/// When the test services are not available.
pub fn recorder_config(topic: &str, group: &str, extra: &str) -> String {
    recorder_config_of_topics(&[topic], group, extra)
}

/// [`recorder_config`] for a mapping of several `topics`.
///
/// # Panics
///
/// When the test services are not available.
pub fn recorder_config_of_topics(topics: &[&str], group: &str, extra: &str) -> String {
    let window = if extra.contains("batching_window_ms") {
        ""
    } else {
        "batching_window_ms = 20"
    };
    let debug = std::env::var(RDKAFKA_DEBUG_VARIABLE)
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
topics = {topics:?}
consumer_group = "{group}"
{window}
{extra}
"#,
        bootstrap = services().kafka_bootstrap_servers(),
        endpoint = services().lambda_endpoint(),
    )
}

/// `config` with `line` added to its `[kafka]` table (`group_protocol = "consumer"`, …).
///
/// # Panics
///
/// When `config` has no `[kafka]` table.
pub fn with_kafka_setting(config: &str, line: &str) -> String {
    assert!(
        config.contains("[kafka]\n"),
        "no [kafka] table in:\n{config}"
    );
    config.replacen("[kafka]\n", &format!("[kafka]\n{line}\n"), 1)
}

/// `config` reading from `bootstrap` instead of the shared broker's PLAINTEXT listener, with
/// `tables` (`[kafka.auth.sasl]`, …) after its `[kafka]` table.
///
/// # Panics
///
/// When `config` is not a [`recorder_config`].
pub fn with_kafka_auth(config: &str, bootstrap: &str, tables: &str) -> String {
    let shared = format!(
        "bootstrap_servers = \"{}\"",
        services().kafka_bootstrap_servers()
    );
    assert!(
        config.contains(&shared) && config.contains("\n[lambda]\n"),
        "not a recorder config:\n{config}"
    );
    config
        .replacen(&shared, &format!("bootstrap_servers = \"{bootstrap}\""), 1)
        .replacen("\n[lambda]\n", &format!("\n{tables}\n[lambda]\n"), 1)
}

#[cfg(test)]
mod tests {
    use super::complete_lines;

    #[test]
    fn a_line_still_being_written_is_not_read() {
        let lines: Vec<&str> = complete_lines("{\"a\":1}\n\n{\"b\":2}\n{\"c\"").collect();
        assert_eq!(lines, ["{\"a\":1}", "{\"b\":2}"]);
        assert_eq!(complete_lines("{\"c\"").count(), 0);
    }
}
