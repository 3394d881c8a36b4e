//! Event filtering: the Lambda event source mapping `FilterCriteria` pattern language, applied to
//! Kafka records before they are batched.
//!
//! A mapping carries up to [`DEFAULT_MAX_PATTERNS`] patterns — the same JSON a user pastes into an
//! ESM's `FilterCriteria.Filters[].Pattern` — and a record is delivered if **any** pattern
//! matches; records matching none are dropped (their offsets still advance). An empty [`Filter`]
//! matches every record.
//!
//! ```
//! use kafka_lambda_poller::filter::{Filter, RecordView};
//!
//! let filter = Filter::parse(&[
//!     r#"{"value": {"device_ID": [{"prefix": "AB"}]}}"#,
//!     r#"{"headers": {"priority": ["high"]}}"#,
//! ])?;
//! let record = RecordView {
//!     topic: "devices",
//!     partition: 0,
//!     key: None,
//!     value: Some(br#"{"device_ID": "AB1234", "session": {"duration": 162}}"#),
//!     headers: &[],
//! };
//! assert!(filter.matches(&record));
//! # Ok::<(), kafka_lambda_poller::filter::FilterError>(())
//! ```
//!
//! # What a pattern can match
//!
//! The record is seen as an object with these fields (anything else is rejected by
//! [`Filter::parse`]):
//!
//! | field | what it is | example |
//! | --- | --- | --- |
//! | `value` | the record value: a JSON object is matched field by field, anything else that is UTF-8 as one plain string (native ESM behaviour) | `{"value": {"code": [{"numeric": [">=", 500]}]}}`, `{"value": [{"anything-but": ["error"]}]}` |
//! | `key` | the record key, read like `value` (an extension: ESM filters only `value`) | `{"key": [{"prefix": "order-"}]}` |
//! | `headers` | header name → its values as UTF-8 strings; a repeated name is a list | `{"headers": {"source": ["web"]}}` |
//! | `topic` | the topic name | `{"topic": [{"suffix": ".dlq"}]}` |
//! | `partition` | the partition number | `{"partition": [0, 1]}` |
//!
//! # Semantics (as EventBridge and Lambda document them)
//!
//! * Fields of one object are ANDed; the rules in one list are ORed; `"$or": [{..}, {..}]`
//!   ORs whole sub-patterns (at any level, at least two entries).
//! * Rules: exact values (`"a"`, `5`, `true`, `null`, `""`), `prefix`, `suffix` (both also as
//!   `{"equals-ignore-case": ".."}`), `equals-ignore-case`, `wildcard` (`*` any run, `\*` a star),
//!   `anything-but` (a value, a list of only strings or only numbers, or `{"prefix"|"suffix"|
//!   "equals-ignore-case"|"wildcard": ..}`), `numeric` (`=`, `<`, `<=`, `>`, `>=`, and
//!   ranges `[">", 0, "<=", 5]`), `exists` (`true`/`false`), `cidr` (IPv4 and IPv6).
//! * Types are strict: string rules match only strings, `numeric` only JSON numbers, `"5"` is not
//!   `5`. An exact number matches the same text only: `300` is not `300.0` nor `3.0e2`, `1.5` is
//!   not `1.50` (Lambda compares the text). `numeric` and numeric `anything-but` compare values
//!   (`["=", 300]` matches `3.0e2`) as doubles, and refuse a number that no double is as written
//!   (`9007199254740993`, `5e-324`: EventBridge documents 15 digits of precision, and event-ruler
//!   refuses them too). `anything-but` matches any value not listed, including values of other
//!   types (EventBridge's behaviour), but never a missing field.
//! * A rule against an array in the data matches if any element matches; an object pattern
//!   against an array of objects needs one element to satisfy the whole object, including the
//!   parts of it given in a `$or` beside it (array-consistent, like EventBridge's
//!   `rulesForJSONEvent`).
//! * `exists` looks at leaves only: a field whose value is an object or an empty array does not
//!   "exist" (documented EventBridge behaviour). `null` is a value: `[null]` and
//!   `exists: true` match it, a missing field matches neither.
//!
//! # Kafka specifics
//!
//! * A value (or key) that is a JSON object is matched by object patterns only; a value that is
//!   any other UTF-8 text — including JSON scalars and arrays — by rule lists only. A mismatch
//!   (an object pattern against a plain string, or a string rule against an object) does not
//!   match. AWS documents this case as "filters on the other metadata properties only", which
//!   cannot select anything by value, so it never lets such a record through.
//! * Bytes that are not UTF-8 match no value rule; only `{"exists": true}` sees them.
//! * A tombstone (no value) or a null key is Kafka's null: it matches `[null]` and
//!   `[{"exists": false}]`, and nothing else.
//! * Header values that are not UTF-8 count for `exists` but match no other rule.
//!
//! # Cost
//!
//! Patterns are compiled once. Per record, the key and value are each read at most once, and
//! only if some pattern looks at them; a filter over topic, partition and headers never touches
//! them and does not allocate. A JSON value is parsed pruned to the fields the patterns name:
//! other fields are tokenized but never built, and strings without escapes are borrowed (so is the
//! text of a number where an exact number rule reads it).

mod doc;
mod json;
mod pattern;
mod rule;

#[cfg(test)]
mod tests;

use doc::Trie;
use kafka_lambda_events::Header;
use pattern::{Eval, RecordCond};
use std::fmt;

/// Most patterns per mapping, as in Lambda (whose quota can be raised to 10: use
/// [`Filter::parse_with_limit`] for that).
pub const DEFAULT_MAX_PATTERNS: usize = 5;

/// The parts of a Kafka record a [`Filter`] can look at, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    /// Topic name.
    pub topic: &'a str,
    /// Partition number.
    pub partition: i32,
    /// Key bytes (`None`: null key).
    pub key: Option<&'a [u8]>,
    /// Value bytes (`None`: tombstone).
    pub value: Option<&'a [u8]>,
    /// Headers in record order.
    pub headers: &'a [Header],
}

/// Compiled filter patterns of one mapping, ORed. Cheap to share (`Clone`, `Send`, `Sync`).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    patterns: Vec<RecordCond>,
    value: Trie,
    key: Trie,
}

impl Filter {
    /// Compiles up to [`DEFAULT_MAX_PATTERNS`] patterns. An empty list gives a filter that
    /// matches everything.
    ///
    /// # Errors
    /// [`FilterError`] naming the pattern's index and, for a bad rule, the field path.
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Filter, FilterError> {
        Filter::parse_with_limit(patterns, DEFAULT_MAX_PATTERNS)
    }

    /// Like [`Filter::parse`], with another limit on the number of patterns.
    ///
    /// # Errors
    /// [`FilterError::TooManyPatterns`] past `max`, else as [`Filter::parse`].
    pub fn parse_with_limit<S: AsRef<str>>(
        patterns: &[S],
        max: usize,
    ) -> Result<Filter, FilterError> {
        if patterns.len() > max {
            return Err(FilterError::TooManyPatterns {
                count: patterns.len(),
                max,
            });
        }
        let mut filter = Filter::default();
        for (index, text) in patterns.iter().enumerate() {
            let json_error = |e: serde_json::Error| FilterError::Json {
                index,
                line: e.line(),
                column: e.column(),
                message: json_message(&e),
            };
            // serde_json checks the text (its errors, its nesting limit); then it is read again
            // with numbers as written, which exact number rules compare.
            serde_json::from_str::<serde_json::Value>(text.as_ref()).map_err(json_error)?;
            let json: json::Value = serde_json::from_str(text.as_ref()).map_err(json_error)?;
            let cond =
                pattern::compile(&json, &mut filter.value, &mut filter.key).map_err(|e| {
                    FilterError::Invalid {
                        index,
                        path: e.path,
                        problem: e.problem,
                    }
                })?;
            filter.patterns.push(cond);
        }
        Ok(filter)
    }

    /// Whether the record satisfies at least one pattern (always, for an empty filter).
    pub fn matches(&self, record: &RecordView<'_>) -> bool {
        if self.patterns.is_empty() {
            return true;
        }
        let eval = Eval::new(record, &self.value, &self.key);
        self.patterns.iter().any(|p| p.matches(&eval))
    }

    /// Number of patterns.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// Whether there are no patterns (the filter lets everything through).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any pattern looks at record values (so matching may parse them).
    pub fn reads_value(&self) -> bool {
        self.value.is_read()
    }

    /// Whether any pattern looks at record keys.
    pub fn reads_key(&self) -> bool {
        self.key.is_read()
    }
}

/// serde_json's message without the " at line L column C" it appends.
fn json_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    full.strip_suffix(&suffix).unwrap_or(&full).to_owned()
}

/// Why filter patterns were rejected. The message names the pattern (`filter[i]`, counted from
/// 0 in the order given) and where inside it the problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FilterError {
    /// More patterns than allowed.
    TooManyPatterns {
        /// Patterns given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A pattern is not JSON.
    Json {
        /// Which pattern.
        index: usize,
        /// 1-based line of the error in the pattern text.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the JSON parser expected.
        message: String,
    },
    /// A pattern is JSON but not a valid filter pattern.
    Invalid {
        /// Which pattern.
        index: usize,
        /// Dotted field path of the problem (`value.code`, `$or[1].key`); empty for the
        /// pattern as a whole.
        path: String,
        /// What is wrong and what is allowed.
        problem: String,
    },
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilterError::TooManyPatterns { count, max } => write!(
                f,
                "{count} filter patterns given; a mapping takes at most {max}"
            ),
            FilterError::Json {
                index,
                line,
                column,
                message,
            } => write!(
                f,
                "filter[{index}] is not valid JSON: {message} at line {line} column {column}"
            ),
            FilterError::Invalid {
                index,
                path,
                problem,
            } if path.is_empty() => write!(f, "filter[{index}]: {problem}"),
            FilterError::Invalid {
                index,
                path,
                problem,
            } => write!(f, "filter[{index}] at {path}: {problem}"),
        }
    }
}

impl std::error::Error for FilterError {}
