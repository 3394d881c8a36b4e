//! Wire-exact types for the event AWS Lambda delivers for Kafka triggers — Amazon MSK
//! (`"eventSource": "aws:kafka"`) and self-managed Kafka (`"SelfManagedKafka"`) — and for the
//! partial batch response a function sends back.
//!
//! This crate is the one contract of kafka-lambda: the handler SDK *reads* these types, the poller
//! *writes* them (through [`EventWriter`], which streams JSON straight into one buffer and knows the
//! exact payload size while building). Parsing and serializing are byte-compatible with what AWS
//! sends: record keys and values travel as base64, headers as lists of signed Java bytes,
//! timestamps as epoch milliseconds, and the `"<topic>-<partition>"` groups keep their order.
//!
//! Keys and values are decoded from base64 while the event is parsed, so a record holds its bytes
//! and every accessor borrows them without copying.
//!
//! ```
//! use kafka_lambda_events::KafkaEvent;
//!
//! let event = KafkaEvent::from_slice(br#"{
//!   "eventSource": "SelfManagedKafka",
//!   "bootstrapServers": "b-1:9092",
//!   "records": { "orders-0": [ {
//!     "topic": "orders", "partition": 0, "offset": 15,
//!     "timestamp": 1545084650987, "timestampType": "CREATE_TIME",
//!     "key": "b3JkZXItNDI=", "value": "eyJpZCI6NDJ9",
//!     "headers": [ { "source": [119, 101, 98] } ]
//!   } ] }
//! }"#)?;
//!
//! #[derive(serde::Deserialize)]
//! struct Order { id: u32 }
//!
//! let record = event.records().next().unwrap();
//! assert_eq!(record.key_str()?, Some("order-42"));
//! assert_eq!(record.value_json::<Order>()?.id, 42);
//! assert_eq!(record.header("source"), Some(&b"web"[..]));
//! assert_eq!(record.topic_partition().to_string(), "orders-0");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod base64_serde;
#[cfg(feature = "aws-lambda-events")]
mod compat;
mod error;
mod event;
mod header;
mod json;
mod read;
mod record;
mod response;
mod topic_partition;
mod write;

#[cfg(feature = "aws-lambda-events")]
pub use compat::FromAwsEventError;
pub use error::{DecodeError, EventParseError, Field, RecordId, error_chain};
pub use event::{EventBuilder, EventSource, KafkaEvent};
pub use header::{Header, HeaderName};
pub use json::write_str as write_json_string;
pub use record::{DataFormat, KafkaRecord, SchemaMetadata, TimestampType};
pub use response::{BatchItemFailure, ItemIdentifier, KafkaBatchResponse, ResponseParseError};
pub use topic_partition::{ParseTopicPartitionError, TopicPartition};
pub use write::{EventWriter, PayloadFull, RecordRef};
