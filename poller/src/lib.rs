//! `kafka-lambda-poller`: a long-running service that consumes Kafka topics and invokes AWS Lambda
//! functions with exactly the event the native MSK / self-managed Kafka trigger sends, so one
//! handler runs unchanged behind either.
//!
//! Data flows one way through roles, each a module:
//! [`config`] → [`mapping`] → [`source`] → [`partition`] → [`batch`] → [`invoke`], with
//! [`backoff`] for retries, and [`access`] to name the ACL an authorization error asks for.
//! Offsets are stored only after a batch is delivered and committed by librdkafka periodically,
//! on revoke and at shutdown: at-least-once, in order per partition.

pub mod access;
pub mod backoff;
pub mod batch;
pub mod config;
pub mod deadletter;
pub mod failure;
pub mod filter;
pub mod invoke;
pub mod mapping;
pub mod partition;
pub mod source;
pub mod telemetry;
pub mod template;

pub use config::{Config, ConfigError, ValidatedConfig};
