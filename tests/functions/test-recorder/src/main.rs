//! Test function for the poller's integration tests, run under `cargo lambda watch`.
//!
//! For every invocation it appends one JSON line per record to
//! `$KL_RECORDER_DIR/<topic>.jsonl` (default `/tmp/kafka-lambda-recorder`), with the record's
//! coordinates, contents and the shape of the event it came in, written with a single `write` so
//! concurrent invocations never interleave lines. Tests read the file back to reconcile what was
//! produced with what the function saw.
//!
//! Driven by the record value (JSON), so tests can script failures:
//! `{"sleep_ms": N}` sleeps before answering; `{"fail": true}` fails the invocation.

use kafka_lambda_events::KafkaEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;

fn recorder_dir() -> PathBuf {
    std::env::var_os("KL_RECORDER_DIR").map_or_else(|| PathBuf::from("/tmp/kafka-lambda-recorder"), PathBuf::from)
}

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let raw = serde_json::to_vec(&event.payload)?;
    let parsed = KafkaEvent::from_slice(&raw)?;
    let invocation = event.context.request_id.clone();
    let mut sleep_ms = 0u64;
    let mut fail = None;
    let mut lines: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    for (group_index, (group, records)) in parsed.records.iter().enumerate() {
        for record in records {
            let value_json: Option<Value> = record.value().and_then(|v| serde_json::from_slice(v).ok());
            if let Some(v) = &value_json {
                sleep_ms = sleep_ms.max(v.get("sleep_ms").and_then(Value::as_u64).unwrap_or(0));
                if v.get("fail").and_then(Value::as_bool) == Some(true) {
                    fail = Some(record.id());
                }
            }
            let headers: Vec<Value> = record
                .headers()
                .iter()
                .map(|h| json!([h.name, String::from_utf8_lossy(&h.value)]))
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
                "headers": headers,
            });
            let out = lines.entry(record.topic.clone()).or_default();
            serde_json::to_writer(&mut *out, &line)?;
            out.push(b'\n');
        }
    }
    if sleep_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(sleep_ms)).await;
    }
    if let Some(id) = fail {
        return Err(format!("record {id} asked to fail").into());
    }
    let dir = recorder_dir();
    std::fs::create_dir_all(&dir)?;
    for (topic, bytes) in lines {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(format!("{topic}.jsonl")))?;
        file.write_all(&bytes)?;
    }
    Ok(json!({ "batchItemFailures": [] }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handle)).await
}
