//! Conformance function (tests/conformance/README.md) for this project's handler SDK,
//! `kafka-lambda-handler`: records are processed one by one with `Nullable<Bytes>` values (raw
//! bytes; tombstones accepted) and `ProcessOptions::report_batch_item_failures(true)`, so a poison
//! record (header `kl-poison`) is a partial batch failure: its partition stops there and the SDK
//! reports it in `batchItemFailures`, the other partitions succeed.
//!
//! `run_records` is the SDK's one-line entry point, but it hands the function records only: the
//! contract's lines also need the request id and the event's `eventSource`, `eventSourceArn` and
//! `bootstrapServers`. So this function does what `run_records` does, from its own
//! `lambda_runtime::service_fn` (the README's way to reach the `Context`): the payload parsed by
//! `KafkaEvent::from_slice`, then `process_event` with the same options.
//!
//! Everything is modeled: header names are bytes (`HeaderName::as_bytes`); one that is not UTF-8
//! is written the way the event carries it, each invalid byte as the escape `\udcXX`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kafka_lambda_handler::events::{HeaderName, SchemaMetadata};
use kafka_lambda_handler::lambda_runtime::{self, Diagnostic, LambdaEvent, service_fn};
use kafka_lambda_handler::{
    Bytes, Error, HandlerError, InvalidEvent, KafkaBatchResponse, KafkaEvent, Nullable,
    ProcessOptions, Record, process_event,
};
use serde::Serialize;
use serde_json::value::RawValue;
use std::io::Write;
use std::sync::{Mutex, PoisonError};

/// The function's name in the lines: its folder's.
const FUNCTION: &str = "rust-handler-sdk";

/// The header that makes a record poison.
const POISON_HEADER: &str = "kl-poison";

#[tokio::main]
async fn main() -> Result<(), Error> {
    let out = std::env::var("KL_CONFORMANCE_OUT")
        .map_err(|_| "KL_CONFORMANCE_OUT is not set: the path of the file to append lines to")?;
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(|invocation| handle(invocation, &out))).await
}

/// What the event says about itself, repeated on each of its records' lines.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Source {
    function: &'static str,
    invocation: String,
    event_source: String,
    event_source_arn: Option<String>,
    bootstrap_servers: Option<String>,
}

/// One line: the contract's fields.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Line<'a> {
    #[serde(flatten)]
    source: &'a Source,
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: i64,
    timestamp_type: &'static str,
    key: Option<String>,
    value: Option<String>,
    /// `[[name, base64 value], …]`, written by hand: see [`name_json`].
    headers: Box<RawValue>,
    key_schema_metadata: Option<&'a SchemaMetadata>,
    value_schema_metadata: Option<&'a SchemaMetadata>,
    poison: bool,
}

async fn handle(
    invocation: LambdaEvent<Box<RawValue>>,
    out: &str,
) -> Result<KafkaBatchResponse, Diagnostic> {
    let (payload, context) = invocation.into_parts();
    let event = KafkaEvent::from_slice(payload.get().as_bytes())
        .map_err(|error| Diagnostic::from(HandlerError::from(InvalidEvent::from(error))))?;
    let source = Source {
        function: FUNCTION,
        invocation: context.request_id,
        event_source: event.event_source.as_str().to_owned(),
        event_source_arn: event.event_source_arn.clone(),
        bootstrap_servers: event.bootstrap_servers.clone(),
    };
    let lines = Mutex::new(Vec::new());
    let options = ProcessOptions::new().report_batch_item_failures(true);
    let response = process_event(
        event,
        |record: Record<Nullable<Bytes>>| {
            let poison = record.header(POISON_HEADER).is_some();
            let line = line(&source, &record, poison);
            let lines = &lines;
            async move {
                let mut lines = lines.lock().unwrap_or_else(PoisonError::into_inner);
                lines.extend_from_slice(line?.as_bytes());
                lines.push(b'\n');
                if poison {
                    return Err(format!("{} is poison", record.id()).into());
                }
                Ok::<(), Error>(())
            }
        },
        &options,
    )
    .await;
    // One write per invocation, appended.
    let lines = lines.into_inner().unwrap_or_else(PoisonError::into_inner);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .and_then(|mut file| file.write_all(&lines))
        .map_err(failure)?;
    response.map_err(Diagnostic::from)
}

/// The line of one record.
fn line(
    source: &Source,
    record: &Record<Nullable<Bytes>>,
    poison: bool,
) -> Result<String, serde_json::Error> {
    let raw = record.raw();
    let headers: Vec<String> = record
        .headers()
        .iter()
        .map(|h| format!("[{},\"{}\"]", name_json(&h.name), STANDARD.encode(&h.value)))
        .collect();
    serde_json::to_string(&Line {
        source,
        topic: record.topic(),
        partition: record.partition(),
        offset: record.offset(),
        timestamp: raw.timestamp,
        timestamp_type: raw.timestamp_type.as_str(),
        key: record.key().map(|key| STANDARD.encode(key)),
        value: record
            .value()
            .0
            .as_ref()
            .map(|value| STANDARD.encode(value)),
        headers: RawValue::from_string(format!("[{}]", headers.join(",")))?,
        key_schema_metadata: raw.key_schema_metadata.as_ref(),
        value_schema_metadata: raw.value_schema_metadata.as_ref(),
        poison,
    })
}

/// A header name as a JSON string: UTF-8 as itself, each other byte as the escape `\udcXX`, as
/// the event carries it (`serde_json` cannot write a lone surrogate itself).
fn name_json(name: &HeaderName) -> String {
    let mut out = String::from("\"");
    for chunk in name.as_bytes().utf8_chunks() {
        let valid = serde_json::to_string(chunk.valid()).unwrap_or_default();
        out.push_str(&valid[1..valid.len() - 1]);
        for byte in chunk.invalid() {
            out.push_str(&format!("\\u{:04x}", 0xDC00 + u16::from(*byte)));
        }
    }
    out.push('"');
    out
}

fn failure(error: impl std::fmt::Display) -> Diagnostic {
    Diagnostic {
        error_type: "ConformanceOutputFailed".to_owned(),
        error_message: error.to_string(),
    }
}
