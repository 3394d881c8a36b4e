//! `kafka-lambda-poller`: a long-running service that consumes Kafka topics and invokes AWS Lambda
//! functions with exactly the event the native MSK / self-managed Kafka trigger sends, so one
//! handler runs unchanged behind either.
//!
//! The library is the binary's: its modules are private, and what `main` needs is re-exported
//! here ([`Config`] → [`ValidatedConfig`] → [`run_mapping`] with a [`LambdaInvoker`], plus the
//! telemetry endpoint). [`filter`] and [`template`] are public for their languages' documented
//! examples. A record flows one way, each module calling only those below it: `mapping` →
//! `consumer` → `workers` → `worker` (with `filter`, `template`, `batch`; in partition order, or
//! by key through a `window`) → `delivery` (its `plan` decides, its driver performs; `lanes`
//! for batches of several keys) → `invoke` / `deadletter` / `backoff`; `object_key` serves
//! `filter` and `template`; `offsets` stores what is done (at-least-once), `internal_events` and
//! `telemetry` report.

mod access;
mod backoff;
mod batch;
mod config;
mod consumer;
mod deadletter;
mod decode;
mod delivery;
pub mod filter;
mod internal_events;
mod invoke;
mod mapping;
mod object_key;
mod offsets;
mod telemetry;
pub mod template;
mod window;
mod worker;
mod workers;

pub use access::{MSK_IAM_GRANTS, MskIamGrant, MskIamResource};
pub use config::{Config, ConfigError, ValidatedConfig};
pub use invoke::{LambdaInvoker, lambda_client};
pub use mapping::{MappingError, RunOptions, run_mapping};
pub use telemetry::{Health, install_recorder, serve};
