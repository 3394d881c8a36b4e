//! The poller's configuration file (TOML): what to read, what to invoke, how to batch.
//!
//! Field names follow the Lambda event source mapping (`batch_size`, `batching_window_ms`,
//! `starting_position`, ...) so a mapping can be moved between the native trigger and this poller.
//! [`Config::validate`] checks every value and turns the file into a [`ValidatedConfig`]; each
//! error names the field and the allowed range.
//!
//! [`file`] is the file as written, [`validate`] checks it into [`model`], what the poller runs
//! on; [`error`] names what is wrong.

mod error;
mod file;
mod model;
mod schema_registry;
mod validate;

pub use error::ConfigError;
pub use file::Config;
pub use model::ValidatedConfig;
pub(crate) use model::{GroupProtocol, Lambda, Mapping, Ordering, StartingPosition};
pub(crate) use schema_registry::{EventRecordFormat, RegistryTarget, SchemaRegistry};
