//! Conformance function (tests/conformance/README.md) for `aws_lambda_events`, the crate AWS
//! publishes with the Lambda event types, running on `lambda_runtime`: the event is decoded into
//! `aws_lambda_events::event::kafka::KafkaEvent` by the runtime itself, as a user of that crate
//! writes it, and each record is written to `KL_CONFORMANCE_OUT` as the library gives it.
//!
//! What the library models, and so what the lines hold:
//! - `key` and `value` are the wire's base64 strings (`None` for null): decoded here with the
//!   standard alphabet, as a user must, and written re-encoded.
//! - `headers` is a list of single-entry maps of a `String` name to signed bytes: order and
//!   duplicates are kept; a name is a Rust `String`, so serde_json refuses a name that is not
//!   UTF-8 (the poller writes it with `\udcXX` escapes) and the whole event cannot be decoded.
//! - `records` is a `HashMap`: the order of the `topic-partition` groups is the map's, not the
//!   event's (within a group it is kept).
//! - `keySchemaMetadata` and `valueSchemaMetadata` are not modeled: written `null`.
//!
//! The crate has no partial batch response type for Kafka (only Kinesis, DynamoDB and SQS), so a
//! poison record (header `kl-poison`) fails the whole invocation, after its line is written.

use aws_lambda_events::event::kafka::{KafkaEvent, KafkaRecord};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};
use std::io::Write;

/// The function's name in the lines: its folder's.
const FUNCTION: &str = "rust-aws-lambda-events";

/// The header that makes a record poison.
const POISON_HEADER: &str = "kl-poison";

#[tokio::main]
async fn main() -> Result<(), Error> {
    let out = std::env::var("KL_CONFORMANCE_OUT")
        .map_err(|_| "KL_CONFORMANCE_OUT is not set: the path of the file to append lines to")?;
    lambda_runtime::run(service_fn(|invocation| handle(invocation, &out))).await
}

async fn handle(invocation: LambdaEvent<KafkaEvent>, out: &str) -> Result<(), Error> {
    let (event, context) = invocation.into_parts();
    let mut lines = Vec::new();
    let mut poison = Vec::new();
    for records in event.records.values() {
        for record in records {
            let line = line(&event, &context.request_id, record)?;
            if line["poison"] == true {
                poison.push(format!(
                    "{}-{}@{}",
                    record.topic.as_deref().unwrap_or_default(),
                    record.partition,
                    record.offset
                ));
            }
            serde_json::to_writer(&mut lines, &line)?;
            lines.push(b'\n');
        }
    }
    // One write per invocation, appended.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)?
        .write_all(&lines)?;
    if poison.is_empty() {
        Ok(())
    } else {
        Err(format!("poison records: {}", poison.join(", ")).into())
    }
}

/// The line of one record, as the contract spells it.
fn line(event: &KafkaEvent, invocation: &str, record: &KafkaRecord) -> Result<Value, Error> {
    let decode = |field: &str, text: &Option<String>| -> Result<Option<String>, Error> {
        text.as_deref()
            .map(|text| {
                STANDARD
                    .decode(text)
                    .map(|bytes| STANDARD.encode(bytes))
                    .map_err(|error| format!("{field} is not base64: {error}").into())
            })
            .transpose()
    };
    let headers: Vec<(&String, String)> = record
        .headers
        .iter()
        .flatten()
        .map(|(name, value)| {
            let bytes: Vec<u8> = value.iter().map(|&b| b as u8).collect();
            (name, STANDARD.encode(bytes))
        })
        .collect();
    let poison = record
        .headers
        .iter()
        .any(|header| header.contains_key(POISON_HEADER));
    Ok(json!({
        "function": FUNCTION,
        "invocation": invocation,
        "eventSource": event.event_source,
        "eventSourceArn": event.event_source_arn,
        "bootstrapServers": event.bootstrap_servers,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp.timestamp_millis(),
        "timestampType": record.timestamp_type,
        "key": decode("key", &record.key)?,
        "value": decode("value", &record.value)?,
        "headers": headers,
        // Not modeled by the crate.
        "keySchemaMetadata": null,
        "valueSchemaMetadata": null,
        "poison": poison,
    }))
}
