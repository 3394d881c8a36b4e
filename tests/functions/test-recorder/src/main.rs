//! Test function for the poller's integration tests, run under `cargo lambda watch`.
//!
//! Every invocation first appends one line per record to `$KL_RECORDER_DIR/<topic>.attempts.jsonl`
//! (default dir `/tmp/kafka-lambda-recorder`): how often each record was *invoked*. Records the
//! function *processed* — all of them on success; with a partial batch response, those before the
//! first failed record of each partition — are then appended to `<topic>.jsonl` with their
//! coordinates, contents (key and value as text read lossily and as bytes, headers as
//! `[name, value, name bytes]`, schema metadata) and the shape
//! of the event they came in. Each file gets a single `write`
//! per invocation so concurrent invocations never interleave lines.
//!
//! Failures are scripted by the record value (JSON) or headers:
//! - `{"sleep_ms": N}`: sleep before answering (with `"sleep_times": K`, only on attempts ≤ K);
//! - `{"fail": true}` or header `x-fail: true`: fail the invocation with the error type
//!   `RecordAskedToFail`;
//! - `{"fail_times": N}`: fail the invocation while this record's attempt number is ≤ N;
//! - `{"partial_times": N}`: report this record in `batchItemFailures` while its attempt number
//!   is ≤ N (the invocation succeeds);
//! - `{"bad_response": true}`: answer with a malformed partial batch response;
//! - `{"exit_times": N}`: end the process (exit status 3) while this record's attempt number is
//!   ≤ N; `{"panic_times": N}`: panic in the handler likewise. Only behind AWS's Runtime
//!   Interface Emulator, which starts the runtime again: `cargo lambda watch` never does.

use kafka_lambda_events::{ItemIdentifier, KafkaBatchResponse, KafkaEvent, KafkaRecord};
use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

fn recorder_dir() -> PathBuf {
    std::env::var_os("KL_RECORDER_DIR").map_or_else(
        || PathBuf::from("/tmp/kafka-lambda-recorder"),
        PathBuf::from,
    )
}

fn append(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(bytes)
}

/// Attempt number of every record of `topic` (1 = first invocation), after recording this one.
fn record_attempts(
    dir: &Path,
    topic: &str,
    records: &[&KafkaRecord],
) -> Result<HashMap<(i32, i64), u64>, Error> {
    let path = dir.join(format!("{topic}.attempts.jsonl"));
    let mut lines = Vec::new();
    for r in records {
        serde_json::to_writer(
            &mut lines,
            &json!({"partition": r.partition, "offset": r.offset}),
        )?;
        lines.push(b'\n');
    }
    append(&path, &lines)?;
    let mut counts = HashMap::new();
    for line in complete_lines(&std::fs::read_to_string(&path)?) {
        let v: Value = serde_json::from_str(line)?;
        let key = (
            v["partition"].as_i64().unwrap_or(-1) as i32,
            v["offset"].as_i64().unwrap_or(-1),
        );
        *counts.entry(key).or_insert(0) += 1;
    }
    Ok(counts)
}

/// The lines of `text` that end with a newline: a concurrent invocation may be half-way
/// through appending the last one.
fn complete_lines(text: &str) -> impl Iterator<Item = &str> {
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete.split('\n').filter(|l| !l.trim().is_empty())
}

fn number(v: &Option<Value>, field: &str) -> Option<u64> {
    v.as_ref()
        .and_then(|v| v.get(field))
        .and_then(Value::as_u64)
}

/// A record asked the function to fail (`{"fail": true}` and the like).
#[derive(Debug)]
struct AskedToFail(String);

impl std::fmt::Display for AskedToFail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AskedToFail {}

/// The function: what [`record`] answers, its scripted failures with the error type
/// `RecordAskedToFail` (so tests can check the type a dead letter carries), other errors with
/// lambda_runtime's default.
async fn handle(event: LambdaEvent<Box<RawValue>>) -> Result<Value, Diagnostic> {
    record(event)
        .await
        .map_err(|error| match error.downcast::<AskedToFail>() {
            Ok(asked) => Diagnostic {
                error_type: "RecordAskedToFail".to_owned(),
                error_message: asked.0,
            },
            Err(other) => Diagnostic::from(other),
        })
}

/// The payload is taken as raw JSON: a `serde_json::Value` cannot hold a header name that is not
/// UTF-8 (a lone surrogate escape), which the events crate reads into bytes.
async fn record(event: LambdaEvent<Box<RawValue>>) -> Result<Value, Error> {
    let raw = event.payload.get().as_bytes();
    let parsed = KafkaEvent::from_slice(raw)?;
    let invocation = event.context.request_id.clone();
    let dir = recorder_dir();
    std::fs::create_dir_all(&dir)?;

    let mut by_topic: BTreeMap<&str, Vec<&KafkaRecord>> = BTreeMap::new();
    for r in parsed.records() {
        by_topic.entry(&r.topic).or_default().push(r);
    }
    let mut attempts = HashMap::new();
    for (topic, records) in &by_topic {
        for (k, n) in record_attempts(&dir, topic, records)? {
            attempts.insert((topic.to_string(), k.0, k.1), n);
        }
    }

    let mut sleep_ms = 0u64;
    let mut fail = None;
    let mut bad_response = false;
    let mut partial: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for record in parsed.records() {
        let attempt = attempts
            .get(&(record.topic.clone(), record.partition, record.offset))
            .copied()
            .unwrap_or(1);
        let v: Option<Value> = record.value().and_then(|v| serde_json::from_slice(v).ok());
        if number(&v, "sleep_times").is_none_or(|n| attempt <= n) {
            sleep_ms = sleep_ms.max(number(&v, "sleep_ms").unwrap_or(0));
        }
        let always = v
            .as_ref()
            .and_then(|v| v.get("fail"))
            .and_then(Value::as_bool)
            == Some(true)
            || record.header("x-fail") == Some(b"true".as_slice());
        if always || number(&v, "fail_times").is_some_and(|n| attempt <= n) {
            fail.get_or_insert(format!(
                "record {} asked to fail (attempt {attempt})",
                record.id()
            ));
        }
        if number(&v, "partial_times").is_some_and(|n| attempt <= n) {
            partial
                .entry((record.topic.clone(), record.partition))
                .or_insert(record.offset);
        }
        bad_response |= v
            .as_ref()
            .and_then(|v| v.get("bad_response"))
            .and_then(Value::as_bool)
            == Some(true);
        if number(&v, "exit_times").is_some_and(|n| attempt <= n) {
            // What this script is for: the runtime process ends in the middle of an invocation.
            #[allow(clippy::exit)]
            std::process::exit(3);
        }
        assert!(
            number(&v, "panic_times").is_none_or(|n| attempt > n),
            "record {} asked to panic (attempt {attempt})",
            record.id()
        );
    }
    if sleep_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(sleep_ms)).await;
    }
    if let Some(message) = fail {
        return Err(AskedToFail(message).into());
    }
    if bad_response {
        return Ok(
            json!({"batchItemFailures": [{"itemIdentifier": {"topic-partition": "nope", "offset": "x"}}]}),
        );
    }

    for topic in by_topic.keys() {
        let mut lines = Vec::new();
        for (group_index, (group, group_records)) in parsed.records.iter().enumerate() {
            for record in group_records.iter().filter(|r| r.topic == *topic) {
                if partial
                    .get(&(record.topic.clone(), record.partition))
                    .is_some_and(|&failed| record.offset >= failed)
                {
                    continue;
                }
                let headers: Vec<Value> = record
                    .headers()
                    .iter()
                    .map(|h| {
                        json!([
                            h.name.to_string_lossy(),
                            String::from_utf8_lossy(&h.value),
                            h.name.as_bytes()
                        ])
                    })
                    .collect();
                let line = json!({
                    "invocation": invocation,
                    "eventSource": parsed.event_source.as_str(),
                    "eventSourceArn": parsed.event_source_arn,
                    "bootstrapServers": parsed.bootstrap_servers,
                    "group": group,
                    "groupIndex": group_index,
                    "batchRecords": parsed.len(),
                    "payloadBytes": raw.len(),
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "timestamp": record.timestamp,
                    "timestampType": record.timestamp_type.as_str(),
                    "key": record.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    "value": record.value().map(|v| String::from_utf8_lossy(v).into_owned()),
                    "keyBytes": record.key(),
                    "valueBytes": record.value(),
                    "keySchemaMetadata": record.key_schema_metadata,
                    "valueSchemaMetadata": record.value_schema_metadata,
                    "headers": headers,
                });
                serde_json::to_writer(&mut lines, &line)?;
                lines.push(b'\n');
            }
        }
        append(&dir.join(format!("{topic}.jsonl")), &lines)?;
    }
    let response = KafkaBatchResponse::failed(
        partial
            .into_iter()
            .map(|((topic, partition), offset)| ItemIdentifier::new(topic, partition, offset)),
    );
    Ok(serde_json::to_value(response)?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handle)).await
}
