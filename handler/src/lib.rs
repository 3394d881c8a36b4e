//! Write AWS Lambda functions for Kafka triggers (Amazon MSK and self-managed Kafka) with
//! typed, decoded records.
//!
//! Two ways to write a function:
//!
//! - **Per record** — [`run_records`]: your `async fn(Record<T>) -> Result<(), E>` is called
//!   for each record. Each partition is processed in offset order and stops at its first
//!   failure; partitions run concurrently (up to [`ProcessOptions::max_concurrency`]). By
//!   default any failure fails the invocation so Lambda retries the batch; opt in to partial
//!   batch responses with [`ProcessOptions::report_batch_item_failures`] when the trigger has
//!   `ReportBatchItemFailures` enabled.
//! - **Per batch** — [`run_batch`]: your `async fn(Batch<T>) -> Result<R, E>` receives every
//!   decoded record at once and its `R` is the invocation's response.
//!
//! `T` is decoded from each record's value ([`DecodeValue`]): any `serde` type as JSON
//! (`Option<U>` also accepts tombstones), [`Bytes`] for the raw value, [`Text`] for UTF-8
//! ([`Nullable`] of either accepts tombstones).
//! A record that does not decode is a failure naming the record, unless you choose to skip
//! such records.
//!
//! ```no_run
//! use kafka_lambda_handler::{Error, ProcessOptions, Record, run_records};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Order {
//!     id: u64,
//!     amount_cents: i64,
//! }
//!
//! /// The business logic: typed input, testable without a runtime.
//! async fn charge(order: Record<Order>) -> Result<(), Error> {
//!     if order.value().amount_cents < 0 {
//!         return Err(format!("order {} has a negative amount", order.value().id).into());
//!     }
//!     tracing::info!(id = order.value().id, key = ?order.key_str()?, "charged");
//!     Ok(())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     run_records(charge, ProcessOptions::new().max_concurrency(4)).await
//! }
//! ```
//!
//! The same function runs in a unit test against an event built with [`testing`]; the
//! `process_*` functions do all the work of the `run_*` entry points without a runtime:
//!
//! ```
//! # use kafka_lambda_handler::{Error, Record};
//! # #[derive(serde::Deserialize)] struct Order { id: u64, amount_cents: i64 }
//! # async fn charge(order: Record<Order>) -> Result<(), Error> {
//! #     if order.value().amount_cents < 0 { return Err("negative".into()) } Ok(())
//! # }
//! use kafka_lambda_handler::{ProcessOptions, process_event, testing};
//! use serde_json::json;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let event = testing::event()
//!     .json_record("orders", 0, 15, &json!({ "id": 1, "amount_cents": 500 }))
//!     .json_record("orders", 0, 16, &json!({ "id": 2, "amount_cents": -1 }))
//!     .build();
//! let error = process_event(event, charge, &ProcessOptions::new()).await.unwrap_err();
//! assert_eq!(error.error_type(), "KafkaRecordFailed");
//! assert!(error.to_string().contains("record orders-0@16: negative"));
//! # });
//! ```
//!
//! Configuration from environment variables, with the conventions of the example functions
//! (empty = unset, errors naming the variable), is read with [`env::EnvVars`].
//!
//! Logging goes through `tracing`; each record is processed inside a `kafka_record` span
//! carrying `topic`, `partition` and `offset`, and `AWS_LAMBDA_LOG_FORMAT=JSON` switches to
//! JSON lines.

mod batch;
mod decode;
pub mod env;
mod error;
mod event;
mod process;
mod record;
mod run;
#[cfg(feature = "schema-registry")]
pub mod schema;
pub mod testing;

pub use batch::{Batch, BatchOptions, decode_batch, process_batch};
pub use decode::{Bytes, DecodeValue, Nullable, Text};
pub use error::{FailureReason, HandlerError, InvalidEvent, RecordFailure};
pub use process::{Ordering, Outcome, ProcessOptions, process_event, process_records};
pub use record::Record;
pub use run::{run_batch, run_batch_with, run_records};

/// The event types this crate reads and answers with.
pub use kafka_lambda_events as events;
pub use kafka_lambda_events::{
    DecodeError, Header, KafkaBatchResponse, KafkaEvent, KafkaRecord, RecordId, TopicPartition,
};

/// The Lambda runtime this crate runs on, for `Context`, `Diagnostic`, layers and more.
pub use lambda_runtime;
pub use lambda_runtime::{Diagnostic, Error};
