//! Errors raised while parsing an event or decoding a record's contents.

use std::fmt;

/// Identifies one record in error messages: `topic-partition@offset`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordId {
    /// The record's topic.
    pub topic: String,
    /// The record's partition.
    pub partition: i32,
    /// The record's offset within the partition.
    pub offset: i64,
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}@{}", self.topic, self.partition, self.offset)
    }
}

/// The part of a record a [`DecodeError`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// The record key.
    Key,
    /// The record value.
    Value,
    /// The header with this name.
    Header(String),
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Key => f.write_str("key"),
            Field::Value => f.write_str("value"),
            Field::Header(name) => write!(f, "header `{name}`"),
        }
    }
}

/// A record's key, value or header could not be decoded into what the caller asked for.
///
/// Every variant names the record and the field, so a log line is enough to find the culprit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes are not valid UTF-8.
    #[error("record {record}: {field} is not valid UTF-8: {source}")]
    Utf8 {
        /// The record.
        record: RecordId,
        /// The field that failed.
        field: Field,
        /// The underlying error (tells the byte position).
        #[source]
        source: std::str::Utf8Error,
    },
    /// The bytes are not JSON of the requested shape.
    #[error("record {record}: {field} is not valid JSON for the expected type: {source}")]
    Json {
        /// The record.
        record: RecordId,
        /// The field that failed.
        field: Field,
        /// The underlying error (tells line, column and what was expected).
        #[source]
        source: serde_json::Error,
    },
    /// The field is absent or null (a tombstone value) but a value was required.
    #[error("record {record}: {field} is null (for a value: a tombstone) but a value was required")]
    Null {
        /// The record.
        record: RecordId,
        /// The field that was null.
        field: Field,
    },
    /// The bytes are not data of the schema a schema registry holds for them, or that schema
    /// cannot be had.
    #[error("record {record}: {field} does not decode with its schema ({error_type}): {message}")]
    Schema {
        /// The record.
        record: RecordId,
        /// The field that failed.
        field: Field,
        /// As the Lambda event source mapping names such failures: `SCHEMA_NOT_FOUND` or
        /// `DESERIALIZATION_ERROR`.
        error_type: &'static str,
        /// What went wrong.
        message: String,
    },
}

impl DecodeError {
    /// The record the error is about.
    pub fn record(&self) -> &RecordId {
        self.record_and_field().0
    }

    /// The part of the record the error is about.
    pub fn field(&self) -> &Field {
        self.record_and_field().1
    }

    fn record_and_field(&self) -> (&RecordId, &Field) {
        match self {
            DecodeError::Utf8 { record, field, .. }
            | DecodeError::Json { record, field, .. }
            | DecodeError::Null { record, field }
            | DecodeError::Schema { record, field, .. } => (record, field),
        }
    }
}

/// An error and its sources on one line, `outer: inner: root`, as kafka-lambda reports errors
/// (the handler in a failed invocation's message, the poller in its logs and metrics). A source
/// whose text the message already contains, as `thiserror` messages often do, is not repeated.
///
/// ```
/// #[derive(Debug, thiserror::Error)]
/// #[error("saving order")]
/// struct Saving(#[source] std::io::Error);
///
/// let error = Saving(std::io::Error::other("disk full"));
/// assert_eq!(kafka_lambda_events::error_chain(&error), "saving order: disk full");
/// ```
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// A byte string is not a Kafka event of the AWS shape.
///
/// The message names the JSON path of the offending field, e.g.
/// `records.orders-0[3].value: invalid base64 ...`.
#[derive(Debug, thiserror::Error)]
#[error("invalid Kafka event at `{path}`: {source}")]
pub struct EventParseError {
    pub(crate) path: String,
    #[source]
    pub(crate) source: serde_json::Error,
}

impl EventParseError {
    /// The JSON path of the field that failed, or that is missing (`.` when the document itself
    /// is malformed).
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// Parses JSON, returning the path of the failing field with the error (`.` for the document).
///
/// Valid input is parsed by serde_json alone: tracking the path costs an allocation per object
/// key, which more than doubled the time to parse a 6 MB event. Only invalid input is parsed a
/// second time with the path tracked; parsing is deterministic, so it fails at the same place.
pub(crate) fn from_slice_with_path<T: serde::de::DeserializeOwned>(
    json: &[u8],
) -> Result<T, (String, serde_json::Error)> {
    match serde_json::from_slice(json) {
        Ok(value) => Ok(value),
        Err(error) => {
            let located = LOCATING.with(|locating| {
                locating.set(true);
                let located = locate_error::<T>(json);
                locating.set(false);
                located
            });
            // The second pass reads header names as text (see `locating`): an event that also
            // holds a name that is not UTF-8 can fail there first, which is not its error.
            Err(located
                .filter(|(_, e)| (e.line(), e.column()) == (error.line(), error.column()))
                .unwrap_or_else(|| (".".to_owned(), error)))
        }
    }
}

thread_local! {
    static LOCATING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is parsing again to locate an error. Header names are then read as text:
/// the path tracker records a map key only when it is read as a string, and a header name is
/// otherwise read as bytes (see `header::HeaderName`).
pub(crate) fn locating() -> bool {
    LOCATING.with(std::cell::Cell::get)
}

/// Parses `json` again tracking the path, for the error of a parse that failed.
fn locate_error<T: serde::de::DeserializeOwned>(
    json: &[u8],
) -> Option<(String, serde_json::Error)> {
    let mut de = serde_json::Deserializer::from_slice(json);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Err(e) => {
            let path = e.path().to_string();
            let source = e.into_inner();
            Some((with_missing_field(path, &source), source))
        }
        Ok(_) => de.end().err().map(|e| (".".to_owned(), e)),
    }
}

/// serde reports a missing field at the object that lacks it; point at the field itself, so that
/// the path names what is missing (`records.t-0[0].offset`, not `records.t-0[0]`).
fn with_missing_field(path: String, error: &serde_json::Error) -> String {
    if !error.is_data() {
        return path;
    }
    let message = error.to_string();
    let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(field, _)| field)
    else {
        return path;
    };
    if path == "." {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}
