//! Configuration errors: each names the file or the field, and what is allowed.

/// A configuration problem; the message names the field and what is allowed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The path given.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape (unknown fields included).
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The path given.
        path: String,
        /// The parser's message with line and column, without the quoted line (it may hold a
        /// secret).
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid config: `{field}` {problem}")]
    Invalid {
        /// Dotted path of the field, e.g. `mapping[0].batch_size`.
        field: String,
        /// What is wrong and what is allowed.
        problem: String,
    },
}
