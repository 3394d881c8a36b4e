//! `kafka-lambda-poller`: a long-running service that consumes Kafka topics and invokes AWS Lambda
//! functions with exactly the event the native MSK / self-managed Kafka trigger sends, so one
//! handler runs unchanged behind either.
//!
//! The library is the binary's: its modules are private, and what `main` needs is re-exported
//! here ([`Config`] → [`ValidatedConfig`] → [`run_mapping`] with a [`LambdaInvoker`], plus the
//! telemetry endpoint). [`filter`] and [`template`] are public for their languages' documented
//! examples. Data flows one way: `config` → `mapping` → `source` → `partition` → `batch` →
//! `failure` → `invoke` / `deadletter`, with `backoff`, `telemetry` and `access` beside. Offsets
//! are stored only after a batch is delivered and committed soon after: at-least-once, in order
//! per partition.

mod access;
mod backoff;
mod batch;
mod config;
mod deadletter;
mod failure;
pub mod filter;
mod invoke;
mod mapping;
mod partition;
mod source;
mod telemetry;
pub mod template;

pub use config::{Config, ConfigError, ValidatedConfig};
pub use invoke::{LambdaInvoker, lambda_client};
pub use mapping::{MappingError, RunOptions, run_mapping};
pub use telemetry::{Health, install_recorder, serve};
