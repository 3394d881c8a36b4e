//! Entry points: run a function on the Lambda runtime.
//!
//! Each `run_*` function initialises logging (unless a `tracing` subscriber is already set) and
//! serves invocations until the runtime stops. They are thin wrappers around the runtime-free
//! [`process_event`] and [`process_batch`]; to add `tower` layers or other runtime options,
//! call those from your own [`lambda_runtime::service_fn`].

use crate::batch::{Batch, BatchOptions, process_batch};
use crate::decode::DecodeValue;
use crate::error::{HandlerError, InvalidEvent};
use crate::process::{ProcessOptions, process_event};
use crate::record::Record;
use kafka_lambda_events::KafkaEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde::Serialize;
use serde_json::value::RawValue;
use std::future::Future;
use std::sync::Arc;

/// Runs the Lambda runtime with `f` and `options` kept for every invocation, whose payload is
/// parsed as a Kafka event and handed to `$process(event, &f, &options)`. A macro rather than a
/// function: the future `$process` returns borrows `f` and `options` from the shared pair, a
/// bound no closure type in a generic signature can name.
macro_rules! serve {
    ($f:expr, $options:expr, $process:path) => {{
        init_tracing();
        let shared = Arc::new(($f, $options));
        lambda_runtime::run(service_fn(move |invocation: LambdaEvent<Box<RawValue>>| {
            let shared = Arc::clone(&shared);
            async move {
                let (f, options) = &*shared;
                let event = parse(&invocation.payload)?;
                $process(event, f, options).await
            }
        }))
        .await
    }};
}

/// Runs `f` on each record of every invocation, partition by partition in offset order, as
/// [`process_event`] describes.
///
/// Without [`ProcessOptions::report_batch_item_failures`], any failed record fails the
/// invocation (Lambda retries the batch); with it, the response lists the first failed record
/// of each failed partition.
///
/// ```no_run
/// use kafka_lambda_handler::{ProcessOptions, Record, run_records};
///
/// #[derive(serde::Deserialize)]
/// struct Order { id: u64 }
///
/// async fn ship(order: Record<Order>) -> Result<(), kafka_lambda_handler::Error> {
///     tracing::info!(id = order.value().id, "shipping");
///     Ok(())
/// }
///
/// #[tokio::main]
/// async fn main() -> Result<(), kafka_lambda_handler::Error> {
///     run_records(ship, ProcessOptions::new().report_batch_item_failures(true)).await
/// }
/// ```
pub async fn run_records<T, F, Fut, E>(f: F, options: ProcessOptions) -> Result<(), Error>
where
    T: DecodeValue,
    F: Fn(Record<T>) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Into<Error>,
{
    serve!(f, options, process_event)
}

/// Runs `f` on the whole decoded batch of every invocation; whatever `f` returns is the
/// invocation's response. A record that does not decode fails the invocation, naming the
/// record; see [`run_batch_with`] to skip such records instead.
///
/// ```no_run
/// use kafka_lambda_handler::{Batch, Text, run_batch};
///
/// async fn count_lines(batch: Batch<Text>) -> Result<usize, kafka_lambda_handler::Error> {
///     Ok(batch.iter().map(|line| line.value().lines().count()).sum())
/// }
///
/// #[tokio::main]
/// async fn main() -> Result<(), kafka_lambda_handler::Error> {
///     run_batch(count_lines).await
/// }
/// ```
pub async fn run_batch<T, R, F, Fut, E>(f: F) -> Result<(), Error>
where
    T: DecodeValue,
    R: Serialize,
    F: Fn(Batch<T>) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    E: Into<Error>,
{
    run_batch_with(f, BatchOptions::new()).await
}

/// [`run_batch`] with options.
pub async fn run_batch_with<T, R, F, Fut, E>(f: F, options: BatchOptions) -> Result<(), Error>
where
    T: DecodeValue,
    R: Serialize,
    F: Fn(Batch<T>) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    E: Into<Error>,
{
    serve!(f, options, process_batch)
}

/// The payload is taken raw and parsed here so that a payload that is not a Kafka event is
/// reported as `KafkaEventInvalid`, naming the offending field.
fn parse(payload: &RawValue) -> Result<KafkaEvent, HandlerError> {
    crate::event::parse(payload.get().as_bytes()).map_err(|error: InvalidEvent| {
        tracing::error!(%error, "the invocation payload is not a Kafka event");
        HandlerError::from(error)
    })
}

/// Logging as `lambda_runtime` sets it up: level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`,
/// JSON lines when `AWS_LAMBDA_LOG_FORMAT=JSON`. A subscriber the user installed wins.
fn init_tracing() {
    if !tracing::dispatcher::has_been_set() {
        lambda_runtime::tracing::init_default_subscriber();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use serde_json::json;

    /// Reads a payload the way `lambda_runtime` does before calling the service.
    fn lambda_payload(body: &[u8]) -> Box<RawValue> {
        let mut de = serde_json::Deserializer::from_slice(body);
        serde_path_to_error::deserialize(&mut de).unwrap()
    }

    #[test]
    fn the_raw_payload_parses_into_the_event() {
        let event = testing::msk_event()
            .json_record("orders", 0, 5, &json!({ "id": 1 }))
            .build();
        let payload = lambda_payload(&event.to_vec());
        assert_eq!(parse(&payload).unwrap(), event);
    }

    #[test]
    fn a_payload_that_is_not_a_kafka_event_is_invalid() {
        let payload = lambda_payload(br#"{"Records":[{"eventSource":"aws:sqs"}]}"#);
        let error = parse(&payload).unwrap_err();
        assert_eq!(error.error_type(), "KafkaEventInvalid");
        assert!(error.to_string().contains("invalid Kafka event"), "{error}");
    }
}
