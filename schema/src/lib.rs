//! Records written through a schema registry, read the way AWS Lambda's Kafka event source
//! mapping reads them when a schema registry is configured.
//!
//! - [`wire`]: the registry header before a record's data (Confluent's magic byte and schema id,
//!   Glue's header and schema version id) and Protobuf's message indexes;
//! - [`registry`]: clients of a Confluent-compatible registry and of AWS Glue Schema Registry;
//! - [`Schemas`]: a registry behind a bounded cache of compiled schemas, each fetched once, and
//!   the decoding of a record's key or value with it ([`Schemas::decode`]);
//! - [`avro`], [`protobuf`], [`json_schema`] (cargo features `avro`, `protobuf`, `json-schema`):
//!   the three data formats, each to JSON.
//!
//! Errors are split the way a consumer acts on them (see [`error`]): a record that does not
//! decode fails with the ESM's error type (`SCHEMA_NOT_FOUND`, `DESERIALIZATION_ERROR`); a
//! registry that cannot be reached is no record's failure.

#[cfg(feature = "avro")]
pub mod avro;
mod cache;
pub mod error;
#[cfg(feature = "json-schema")]
pub mod json_schema;
#[cfg(feature = "protobuf")]
pub mod protobuf;
pub mod registry;
pub mod wire;

pub use cache::{Compiled, DEFAULT_CAPACITY, Decoded, Schemas};
pub use error::{DESERIALIZATION_ERROR, DecodeError, RegistryError, SCHEMA_NOT_FOUND};
pub use registry::{ConfluentAuth, ConfluentRegistry, GlueRegistry, RegisteredSchema, Registry};
pub use wire::{Framing, MessageIndexes, SchemaId, WireError};
