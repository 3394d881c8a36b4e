//! A function's configuration from environment variables, the way Lambda functions are
//! configured: [`EnvVars`] reads them with the conventions every example function shares, and
//! [`EnvVarError`] names the variable at fault.
//!
//! - A variable that is unset, empty or only whitespace is *unset* (SAM and CloudFormation make
//!   it easy to leave a parameter empty; an empty value is never meant literally).
//! - A value that is not valid Unicode is an error naming the variable, never silently unset.
//! - Flags are `true` or `false` in any case; numbers are whole numbers in a documented range.
//! - Messages start with the variable's name; values are quoted only through
//!   [`EnvVarError::with_value`], which callers never use for secrets.
//!
//! Everything is read through a lookup function, so that a configuration is unit-tested without
//! touching the process environment:
//!
//! ```
//! use kafka_lambda_handler::env::EnvVars;
//!
//! let env = EnvVars::from_pairs([("TIMEOUT_MS", "250"), ("VERBOSE", "TRUE"), ("TOPIC", " ")]);
//! assert_eq!(env.number("TIMEOUT_MS", 1..=60_000, "milliseconds").unwrap(), Some(250));
//! assert_eq!(env.flag("VERBOSE").unwrap(), Some(true));
//! assert_eq!(env.get("TOPIC").unwrap(), None);
//! assert_eq!(
//!     env.required("TOPIC", "is not set: give the topic to read").unwrap_err().to_string(),
//!     "TOPIC is not set: give the topic to read"
//! );
//!
//! let env = EnvVars::from_pairs([("TIMEOUT_MS", "0")]);
//! let error = env.number("TIMEOUT_MS", 1..=60_000, "milliseconds").unwrap_err();
//! assert_eq!(error.variable(), "TIMEOUT_MS");
//! assert_eq!(
//!     error.to_string(),
//!     "TIMEOUT_MS=`0` is not a whole number of milliseconds from 1 to 60000"
//! );
//! ```

use std::collections::HashMap;
use std::env::VarError;
use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::sync::Arc;

/// An environment variable does not hold a usable value. The message starts with the variable's
/// name and says what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EnvVarError {
    variable: &'static str,
    message: String,
}

impl EnvVarError {
    /// `variable` has a problem, described without its value: `"{variable} {problem}"`.
    pub fn new(variable: &'static str, problem: impl fmt::Display) -> Self {
        EnvVarError {
            variable,
            message: format!("{variable} {problem}"),
        }
    }

    /// `variable`'s value has a problem, quoted in the message: ``"{variable}=`{value}` {problem}"``.
    /// Never use this for a secret.
    pub fn with_value(variable: &'static str, value: &str, problem: impl fmt::Display) -> Self {
        EnvVarError {
            variable,
            message: format!("{variable}=`{value}` {problem}"),
        }
    }

    /// The variable at fault.
    pub fn variable(&self) -> &'static str {
        self.variable
    }
}

/// A function's settings read from environment variables (Lambda's way of configuring a
/// function). Implement [`from_vars`](FromEnv::from_vars) against any [`EnvVars`], so that tests
/// can read fixed values ([`EnvVars::from_pairs`]); [`from_env`](FromEnv::from_env) reads the
/// process environment with it.
///
/// ```
/// use kafka_lambda_handler::env::{EnvVarError, EnvVars, FromEnv};
///
/// struct Settings {
///     table: String,
/// }
///
/// impl FromEnv for Settings {
///     type Error = EnvVarError;
///
///     fn from_vars(env: &EnvVars) -> Result<Self, EnvVarError> {
///         Ok(Settings {
///             table: env.get("TABLE")?.unwrap_or_else(|| "events".to_owned()),
///         })
///     }
/// }
///
/// let settings = Settings::from_vars(&EnvVars::from_pairs([("TABLE", "orders")])).unwrap();
/// assert_eq!(settings.table, "orders");
/// ```
pub trait FromEnv: Sized {
    /// What a missing or malformed variable is reported as; it should name the variable.
    type Error;

    /// Reads the settings through `env`.
    ///
    /// # Errors
    /// A variable is missing, malformed or inconsistent with another.
    fn from_vars(env: &EnvVars) -> Result<Self, Self::Error>;

    /// Reads the settings from the process environment.
    ///
    /// # Errors
    /// As [`from_vars`](FromEnv::from_vars).
    fn from_env() -> Result<Self, Self::Error> {
        Self::from_vars(&EnvVars::from_process())
    }
}

/// How [`EnvVars`] looks a variable up: answers like [`std::env::var`].
type Lookup = dyn Fn(&str) -> Result<String, VarError> + Send + Sync;

/// Reads configuration variables through a lookup function: the process environment
/// ([`EnvVars::from_process`]) or, in tests, a fixed set ([`EnvVars::from_pairs`]). One type
/// for both, so that a [`FromEnv`] implementation takes `&EnvVars` without naming the lookup.
#[derive(Clone)]
pub struct EnvVars {
    lookup: Arc<Lookup>,
}

impl EnvVars {
    /// The process environment.
    pub fn from_process() -> Self {
        Self::new(|name| std::env::var(name))
    }

    /// A fixed set of variables, for tests; every other variable is unset. A name given twice
    /// has its last value.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        let vars: HashMap<String, String> = pairs
            .into_iter()
            .map(|(name, value)| (name.into(), value.into()))
            .collect();
        Self::new(move |name| vars.get(name).cloned().ok_or(VarError::NotPresent))
    }

    /// Reads variables through `lookup`, which answers like [`std::env::var`].
    pub fn new(lookup: impl Fn(&str) -> Result<String, VarError> + Send + Sync + 'static) -> Self {
        EnvVars {
            lookup: Arc::new(lookup),
        }
    }

    /// The value of `name`, untrimmed; `None` when it is unset, empty or only whitespace.
    ///
    /// # Errors
    /// The value is not valid Unicode.
    pub fn get(&self, name: &'static str) -> Result<Option<String>, EnvVarError> {
        match (self.lookup)(name) {
            Ok(value) if value.trim().is_empty() => Ok(None),
            Ok(value) => Ok(Some(value)),
            Err(VarError::NotPresent) => Ok(None),
            Err(VarError::NotUnicode(_)) => Err(EnvVarError::new(name, "is not valid Unicode")),
        }
    }

    /// The value of `name`, untrimmed, for a variable that must be set.
    ///
    /// # Errors
    /// The variable is unset, empty or only whitespace: `"{name} {unset}"`, where `unset` says
    /// so and what to give (`"is not set: give the registry's URL"`); or its value is not valid
    /// Unicode.
    pub fn required(&self, name: &'static str, unset: &str) -> Result<String, EnvVarError> {
        self.get(name)?.ok_or_else(|| EnvVarError::new(name, unset))
    }

    /// `true` or `false` (any case, surrounding whitespace ignored); `None` when unset.
    ///
    /// # Errors
    /// Any other value.
    pub fn flag(&self, name: &'static str) -> Result<Option<bool>, EnvVarError> {
        let Some(value) = self.get(name)? else {
            return Ok(None);
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            _ => Err(EnvVarError::with_value(
                name,
                &value,
                "is neither `true` nor `false`",
            )),
        }
    }

    /// A whole number within `range` (surrounding whitespace ignored); `None` when unset.
    /// `unit` names what the number counts, for the message (`"milliseconds"`).
    ///
    /// # Errors
    /// A value that is not a number of type `T` or is outside `range`.
    pub fn number<T>(
        &self,
        name: &'static str,
        range: RangeInclusive<T>,
        unit: &str,
    ) -> Result<Option<T>, EnvVarError>
    where
        T: FromStr + PartialOrd + fmt::Display,
    {
        let Some(value) = self.get(name)? else {
            return Ok(None);
        };
        match value.trim().parse::<T>() {
            Ok(number) if range.contains(&number) => Ok(Some(number)),
            _ => Err(EnvVarError::with_value(
                name,
                &value,
                format!(
                    "is not a whole number of {unit} from {} to {}",
                    range.start(),
                    range.end()
                ),
            )),
        }
    }
}

impl fmt::Debug for EnvVars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The values may be secrets: never shown.
        f.debug_struct("EnvVars").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    #[test]
    fn empty_and_blank_values_count_as_unset() {
        let env = EnvVars::from_pairs([("EMPTY", ""), ("BLANK", " \t"), ("SET", " a ")]);
        assert_eq!(env.get("EMPTY"), Ok(None));
        assert_eq!(env.get("BLANK"), Ok(None));
        assert_eq!(env.get("UNSET"), Ok(None));
        assert_eq!(env.get("SET"), Ok(Some(" a ".to_owned())));
        assert_eq!(env.flag("BLANK"), Ok(None));
        assert_eq!(env.number::<u32>("EMPTY", 1..=2, "seconds"), Ok(None));
    }

    #[test]
    fn a_value_that_is_not_unicode_is_an_error_naming_the_variable() {
        let env = EnvVars::new(|_: &str| Err(VarError::NotUnicode(OsString::from("x"))));
        let error = env.get("ES_ADDRESS").unwrap_err();
        assert_eq!(error.variable(), "ES_ADDRESS");
        assert_eq!(error.to_string(), "ES_ADDRESS is not valid Unicode");
    }

    #[test]
    fn flags_are_true_or_false_in_any_case() {
        let env = EnvVars::from_pairs([("A", "true"), ("B", " FALSE "), ("C", "True"), ("D", "1")]);
        assert_eq!(env.flag("A"), Ok(Some(true)));
        assert_eq!(env.flag("B"), Ok(Some(false)));
        assert_eq!(env.flag("C"), Ok(Some(true)));
        let error = env.flag("D").unwrap_err();
        assert_eq!(error.variable(), "D");
        assert_eq!(error.to_string(), "D=`1` is neither `true` nor `false`");
    }

    #[test]
    fn numbers_are_checked_against_their_range() {
        let env =
            EnvVars::from_pairs([("LOW", "0"), ("OK", " 30 "), ("HIGH", "901"), ("NAN", "3s")]);
        assert_eq!(env.number("OK", 1..=900u64, "seconds"), Ok(Some(30)));
        for name in ["LOW", "HIGH", "NAN"] {
            let error = env.number(name, 1..=900u64, "seconds").unwrap_err();
            assert_eq!(error.variable(), name);
            assert!(
                error
                    .to_string()
                    .ends_with("is not a whole number of seconds from 1 to 900"),
                "{error}"
            );
        }
        // Out of the type's range is the same error, not a panic.
        let env = EnvVars::from_pairs([("BIG", "99999999999")]);
        assert!(env.number("BIG", 1..=u32::MAX, "ms").is_err());
    }

    #[test]
    fn debug_output_shows_no_values() {
        let env = EnvVars::from_pairs([("PASSWORD", "hunter2")]);
        assert!(!format!("{env:?}").contains("hunter2"));
    }
}
