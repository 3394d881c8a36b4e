//! The poller's configuration file (TOML): what to read, what to invoke, how to batch.
//!
//! Field names follow the Lambda event source mapping (`batch_size`, `batching_window_ms`,
//! `starting_position`, ...) so a mapping can be moved between the native trigger and this poller.
//! [`Config::validate`] checks every value and turns the file into a [`ValidatedConfig`]; each
//! error names the field and the allowed range.
//!
//! [`file`] is the file as written, [`validate`] checks it, and [`model`] is what the poller runs on.

mod file;
mod model;
mod validate;

pub use file::Config;
pub(crate) use file::{GroupProtocol, Ordering, StartingPosition};
pub use model::ValidatedConfig;
pub(crate) use model::{Lambda, Mapping};
pub use validate::ConfigError;
