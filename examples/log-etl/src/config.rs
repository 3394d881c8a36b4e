//! The function's configuration, read once at start-up.

use chrono::FixedOffset;
use kafka_lambda_handler::env::{EnvVarError, EnvVars, FromEnv};

/// The environment variable holding the UTC offset timestamps are written in.
pub const UTC_OFFSET_VAR: &str = "LOG_ETL_UTC_OFFSET";

/// The offset used when [`UTC_OFFSET_VAR`] is unset: China Standard Time, where the logs come
/// from.
pub const DEFAULT_UTC_OFFSET: &str = "+08:00";

/// Settings of the function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The offset cleaned timestamps are written in.
    pub utc_offset: FixedOffset,
}

/// The configuration is invalid; the function refuses to start. The message starts with the
/// variable's name.
pub type ConfigError = EnvVarError;

impl FromEnv for Config {
    type Error = ConfigError;

    /// Reads the configuration through `env` (the process environment, or fixed values in tests).
    fn from_vars(env: &EnvVars) -> Result<Self, ConfigError> {
        let utc_offset = match env.get(UTC_OFFSET_VAR)? {
            Some(offset) => parse_utc_offset(&offset)?,
            None => parse_utc_offset(DEFAULT_UTC_OFFSET)?,
        };
        Ok(Config { utc_offset })
    }
}

/// Parses `±HH:MM` strictly (chrono's parser accepts trailing text, which would hide typos).
pub fn parse_utc_offset(text: &str) -> Result<FixedOffset, ConfigError> {
    let invalid = || {
        EnvVarError::with_value(
            UTC_OFFSET_VAR,
            text,
            "is not a UTC offset of the form ±HH:MM (e.g. +08:00, -05:30, +00:00)",
        )
    };
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1, &text[1..]),
        Some(b'-') => (-1, &text[1..]),
        _ => return Err(invalid()),
    };
    let (hours, minutes) = rest.split_once(':').ok_or_else(invalid)?;
    let two_digits = |s: &str| {
        (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<i32>().ok())
            .flatten()
    };
    let (hours, minutes) = two_digits(hours)
        .zip(two_digits(minutes))
        .ok_or_else(invalid)?;
    if hours > 23 || minutes > 59 {
        return Err(invalid());
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60)).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_of_the_form_sign_hours_minutes_parse() {
        let cases = [
            ("+08:00", 8 * 3600),
            ("-05:30", -(5 * 3600 + 30 * 60)),
            ("+00:00", 0),
        ];
        for (text, seconds) in cases {
            assert_eq!(
                parse_utc_offset(text).unwrap().local_minus_utc(),
                seconds,
                "{text}"
            );
        }
        assert_eq!(
            parse_utc_offset(DEFAULT_UTC_OFFSET).unwrap(),
            FixedOffset::east_opt(8 * 3600).unwrap()
        );
    }

    #[test]
    fn anything_else_is_a_clear_error() {
        for text in [
            "", "08:00", "+8:00", "+0800", "+08:00 ", "+24:00", "+08:60", "UTC", "+08:0x", "+٠٨:00",
        ] {
            let error = parse_utc_offset(text).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!(
                    "LOG_ETL_UTC_OFFSET=`{text}` is not a UTC offset of the form ±HH:MM \
                     (e.g. +08:00, -05:30, +00:00)"
                )
            );
        }
    }
}
