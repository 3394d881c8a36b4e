//! The function's configuration, read once at start-up from environment variables named as in
//! the classic cloud "Kafka to Elasticsearch" templates (`ES_ADDRESS`, `ES_USER`,
//! `ES_PASSWORD`, `ES_INDEX_KEYWORD`, `ES_LOG_IGNORE_WORDS`, `ES_INDEX_TIME_FORMAT`).
//!
//! A variable set to the empty string counts as unset: a SAM parameter left at its `""`
//! default must mean "not configured", not "configured as empty".

use crate::document::{DOCUMENT_FIELDS, IndexNaming, IndexPeriod};
use chrono::FixedOffset;
use kafka_lambda_handler::env::{EnvVarError, EnvVars, FromEnv};
use reqwest::Url;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// URL of the cluster (`https://host[:port][/path]`); required.
pub(crate) const ADDRESS_VAR: &str = "ES_ADDRESS";
/// User of HTTP basic authentication; unset: no authentication.
pub(crate) const USER_VAR: &str = "ES_USER";
/// Password of `ES_USER`.
pub(crate) const PASSWORD_VAR: &str = "ES_PASSWORD";
/// A file holding the password of `ES_USER` instead (one trailing line break is dropped).
pub(crate) const PASSWORD_FILE_VAR: &str = "ES_PASSWORD_FILE";
/// Reserved for reading the password from AWS Secrets Manager; refused until supported.
pub(crate) const PASSWORD_SECRET_ARN_VAR: &str = "ES_PASSWORD_SECRET_ARN";
/// Index prefix; required.
pub(crate) const INDEX_KEYWORD_VAR: &str = "ES_INDEX_KEYWORD";
/// Comma-separated document fields to leave out.
pub(crate) const IGNORE_WORDS_VAR: &str = "ES_LOG_IGNORE_WORDS";
/// `day` (default) or `hour`: one index per day or per hour.
pub(crate) const INDEX_TIME_FORMAT_VAR: &str = "ES_INDEX_TIME_FORMAT";
/// `true` (default) or `false`: answer with a partial batch response.
pub(crate) const REPORT_FAILURES_VAR: &str = "ES_REPORT_BATCH_ITEM_FAILURES";
/// Seconds a bulk request may take, connection included.
pub(crate) const TIMEOUT_VAR: &str = "ES_TIMEOUT_SECONDS";

/// Bulk request timeout unless `ES_TIMEOUT_SECONDS` says otherwise: half of the template's
/// 60-second function timeout, so a hung cluster fails the invocation with a clear error
/// before Lambda kills it.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Lambda's longest function timeout: a longer request could never finish.
const MAX_TIMEOUT_SECONDS: u64 = 900;
/// Elasticsearch's limit on an index name is 255 bytes; the date suffix takes up to 14.
const MAX_INDEX_PREFIX_BYTES: usize = 240;

/// Settings of the function.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Where bulk requests go: `ES_ADDRESS` + `/_bulk`.
    pub(crate) bulk_url: Url,
    /// Basic authentication, when `ES_USER` is set.
    pub(crate) credentials: Option<Credentials>,
    /// How index names are made.
    pub(crate) index: IndexNaming,
    /// Top-level document fields left out of every document.
    pub(crate) ignore_fields: Vec<String>,
    /// Answer retryable failures with a partial batch response (else fail the invocation).
    pub(crate) report_batch_item_failures: bool,
    /// Bulk request timeout.
    pub(crate) timeout: Duration,
    /// The offset the cleaned timestamps (and the index dates) are written in.
    pub(crate) utc_offset: FixedOffset,
}

/// HTTP basic authentication.
#[derive(Clone)]
pub(crate) struct Credentials {
    /// `ES_USER`.
    pub(crate) user: String,
    /// From `ES_PASSWORD` or the file `ES_PASSWORD_FILE` names.
    pub(crate) password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The configuration is invalid; the function refuses to start. The message starts with the
/// variable's name and never contains a password.
pub(crate) type ConfigError = EnvVarError;

impl FromEnv for Config {
    type Error = ConfigError;

    /// Reads the configuration through `env` (the process environment, or fixed values in tests).
    fn from_vars(env: &EnvVars) -> Result<Self, ConfigError> {
        let address = env.required(
            ADDRESS_VAR,
            "is not set; give the cluster's URL, e.g. \
             https://search-logs-abc123.eu-west-1.es.amazonaws.com or http://10.0.0.5:9200",
        )?;
        let bulk_url = parse_address(address.trim())?;
        let credentials = credentials(
            env.get(USER_VAR)?,
            env.get(PASSWORD_VAR)?,
            env.get(PASSWORD_FILE_VAR)?,
            env.get(PASSWORD_SECRET_ARN_VAR)?,
        )?;

        let prefix = env.required(
            INDEX_KEYWORD_VAR,
            "is not set; give the index prefix, e.g. `error-logs` for daily indices \
             error-logs-2020.07.28",
        )?;
        let prefix = parse_index_prefix(prefix.trim())?;
        let period = match env.get(INDEX_TIME_FORMAT_VAR)? {
            None => IndexPeriod::Day,
            Some(value) => match value.trim() {
                "day" => IndexPeriod::Day,
                "hour" => IndexPeriod::Hour,
                _ => {
                    return Err(ConfigError::with_value(
                        INDEX_TIME_FORMAT_VAR,
                        &value,
                        format!(
                            "is neither `day` (daily indices, {prefix}-2020.07.28) nor `hour` \
                             (hourly indices, {prefix}-2020.07.28.21)"
                        ),
                    ));
                }
            },
        };
        let utc_offset = log_etl::Config::from_vars(env)?.utc_offset;

        let ignore_fields = env
            .get(IGNORE_WORDS_VAR)?
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|field| !field.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let report_batch_item_failures = env.flag(REPORT_FAILURES_VAR)?.unwrap_or(true);
        let timeout = env
            .number(TIMEOUT_VAR, 1..=MAX_TIMEOUT_SECONDS, "seconds")?
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs);

        Ok(Config {
            bulk_url,
            credentials,
            index: IndexNaming::new(prefix, period, utc_offset),
            ignore_fields,
            report_batch_item_failures,
            timeout,
            utc_offset,
        })
    }
}

impl Config {
    /// Ignored fields that cleaned documents do not have: most likely typos, worth a warning.
    pub(crate) fn unknown_ignore_fields(&self) -> Vec<&str> {
        self.ignore_fields
            .iter()
            .map(String::as_str)
            .filter(|field| !DOCUMENT_FIELDS.contains(field))
            .collect()
    }
}

/// `ES_ADDRESS` as the URL of its `_bulk` endpoint.
fn parse_address(address: &str) -> Result<Url, ConfigError> {
    let not_a_url = |problem: &str| ConfigError::with_value(ADDRESS_VAR, address, problem);
    let url = Url::parse(address).map_err(|error| {
        not_a_url(&format!(
            "is not a URL ({error}); give scheme and host, e.g. https://my-domain.es.amazonaws.com"
        ))
    })?;
    // Checked before anything that quotes the value: the message must not repeat a password.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::new(
            ADDRESS_VAR,
            format!("carries credentials; give them in {USER_VAR} and {PASSWORD_VAR} instead"),
        ));
    }
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(not_a_url("is not an http:// or https:// URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(not_a_url(
            "has a query or fragment; give only scheme, host, port and path",
        ));
    }
    let mut bulk_url = url;
    let path = format!("{}/_bulk", bulk_url.path().trim_end_matches('/'));
    bulk_url.set_path(&path);
    Ok(bulk_url)
}

fn credentials(
    user: Option<String>,
    password: Option<String>,
    password_file: Option<String>,
    secret_arn: Option<String>,
) -> Result<Option<Credentials>, ConfigError> {
    if secret_arn.is_some() {
        return Err(ConfigError::new(
            PASSWORD_SECRET_ARN_VAR,
            format!(
                "is not supported yet; give the password in {PASSWORD_VAR} or in a file named by \
                 {PASSWORD_FILE_VAR}"
            ),
        ));
    }
    let password = match (password, password_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                PASSWORD_VAR,
                format!("and {PASSWORD_FILE_VAR} are both set; set only one"),
            ));
        }
        (Some(password), None) => Some(password),
        (None, Some(path)) => Some(read_password_file(&path)?),
        (None, None) => None,
    };
    match (user, password) {
        (Some(user), Some(password)) => Ok(Some(Credentials {
            user: user.trim().to_owned(),
            password,
        })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::new(
            USER_VAR,
            format!("is set without a password; set {PASSWORD_VAR} or {PASSWORD_FILE_VAR}"),
        )),
        (None, Some(_)) => Err(ConfigError::new(
            USER_VAR,
            format!(
                "is not set, but a password is ({PASSWORD_VAR} or {PASSWORD_FILE_VAR}); set both or neither"
            ),
        )),
    }
}

fn read_password_file(path: &str) -> Result<String, ConfigError> {
    let path = PathBuf::from(path.trim());
    let mut text = std::fs::read_to_string(&path).map_err(|error| {
        ConfigError::new(
            PASSWORD_FILE_VAR,
            format!("names `{}`, which cannot be read: {error}", path.display()),
        )
    })?;
    // Secret files usually end with a line break (`echo`, editors, mounted secrets).
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(ConfigError::new(
            PASSWORD_FILE_VAR,
            format!("names `{}`, which is empty", path.display()),
        ));
    }
    Ok(text)
}

/// Checks the prefix against Elasticsearch's rules for index names.
fn parse_index_prefix(prefix: &str) -> Result<String, ConfigError> {
    let invalid = |problem: &str| {
        ConfigError::with_value(
            INDEX_KEYWORD_VAR,
            prefix,
            format!("is not a valid index prefix: {problem}"),
        )
    };
    if let Some(c) = prefix.chars().find(|c| c.is_uppercase()) {
        return Err(invalid(&format!(
            "index names are lowercase, and `{c}` is not"
        )));
    }
    if let Some(c) = prefix
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || r#"\/*?"<>|,#:"#.contains(*c))
    {
        return Err(invalid(&format!(
            "`{}` is not allowed in index names",
            c.escape_default()
        )));
    }
    if prefix.starts_with(['-', '_', '+']) {
        return Err(invalid("index names cannot start with `-`, `_` or `+`"));
    }
    if prefix.len() > MAX_INDEX_PREFIX_BYTES {
        return Err(invalid(&format!(
            "it is longer than {MAX_INDEX_PREFIX_BYTES} bytes"
        )));
    }
    Ok(prefix.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &[(&str, &str)] = &[
        (
            "ES_ADDRESS",
            "https://search-logs.eu-west-1.es.amazonaws.com",
        ),
        ("ES_INDEX_KEYWORD", "error-logs"),
    ];

    /// The configuration of [`MINIMAL`] with `vars` set too (a variable of both: `vars`' value).
    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(&EnvVars::from_pairs(MINIMAL.iter().chain(vars).copied()))
    }

    fn error(vars: &[(&str, &str)]) -> ConfigError {
        config(vars).unwrap_err()
    }

    #[test]
    fn the_minimal_configuration_takes_the_defaults() {
        let config = config(&[]).unwrap();
        assert_eq!(
            config.bulk_url.as_str(),
            "https://search-logs.eu-west-1.es.amazonaws.com/_bulk"
        );
        assert!(config.credentials.is_none());
        assert!(config.ignore_fields.is_empty());
        assert!(config.report_batch_item_failures);
        assert_eq!(config.timeout, Duration::from_secs(30));
        assert_eq!(config.utc_offset.local_minus_utc(), 8 * 3600);
        let at = chrono::DateTime::from_timestamp(1_595_944_295, 0).unwrap();
        assert_eq!(config.index.index_for(at), "error-logs-2020.07.28");
    }

    #[test]
    fn every_variable_is_read() {
        let config = config(&[
            ("ES_ADDRESS", "http://10.0.0.5:9200/proxy/es/"),
            ("ES_USER", "elastic"),
            ("ES_PASSWORD", "changeme"),
            ("ES_INDEX_KEYWORD", "trade-errors"),
            ("ES_LOG_IGNORE_WORDS", " requestId, ,returnMessage,"),
            ("ES_INDEX_TIME_FORMAT", "hour"),
            ("ES_REPORT_BATCH_ITEM_FAILURES", "false"),
            ("ES_TIMEOUT_SECONDS", "5"),
            ("LOG_ETL_UTC_OFFSET", "+00:00"),
        ])
        .unwrap();
        assert_eq!(
            config.bulk_url.as_str(),
            "http://10.0.0.5:9200/proxy/es/_bulk"
        );
        let credentials = config.credentials.as_ref().unwrap();
        assert_eq!(
            (credentials.user.as_str(), credentials.password.as_str()),
            ("elastic", "changeme")
        );
        assert_eq!(config.ignore_fields, ["requestId", "returnMessage"]);
        assert!(!config.report_batch_item_failures);
        assert_eq!(config.timeout, Duration::from_secs(5));
        let at = chrono::DateTime::from_timestamp(1_595_944_295, 0).unwrap();
        assert_eq!(config.index.index_for(at), "trade-errors-2020.07.28.13");
    }

    #[test]
    fn empty_values_count_as_unset() {
        let config = config(&[
            ("ES_USER", ""),
            ("ES_PASSWORD", " "),
            ("ES_INDEX_TIME_FORMAT", ""),
        ]);
        let config = config.unwrap();
        assert!(config.credentials.is_none());
    }

    #[test]
    fn the_password_can_come_from_a_file() {
        let path = std::env::temp_dir().join(format!("es-etl-password-{}", std::process::id()));
        std::fs::write(&path, "s3cret\n").unwrap();
        let config = config(&[
            ("ES_USER", "etl"),
            ("ES_PASSWORD_FILE", path.to_str().unwrap()),
        ]);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(config.unwrap().credentials.unwrap().password, "s3cret");
    }

    #[test]
    fn invalid_values_are_clear_errors_naming_the_variable() {
        // (variables, the variable the error names, the start of its message)
        type Case = (
            &'static [(&'static str, &'static str)],
            &'static str,
            &'static str,
        );
        let cases: &[Case] = &[
            (
                &[("ES_ADDRESS", "")],
                "ES_ADDRESS",
                "ES_ADDRESS is not set; give the cluster's URL",
            ),
            (
                &[("ES_ADDRESS", "search-logs:9200")],
                "ES_ADDRESS",
                "ES_ADDRESS=`search-logs:9200` is not an http:// or https:// URL with a host",
            ),
            (
                &[("ES_ADDRESS", "localhost")],
                "ES_ADDRESS",
                "ES_ADDRESS=`localhost` is not a URL (relative URL without a base)",
            ),
            (
                &[("ES_ADDRESS", "https://h:9200/?pretty")],
                "ES_ADDRESS",
                "ES_ADDRESS=`https://h:9200/?pretty` has a query or fragment",
            ),
            (
                &[("ES_INDEX_KEYWORD", "")],
                "ES_INDEX_KEYWORD",
                "ES_INDEX_KEYWORD is not set",
            ),
            (
                &[("ES_INDEX_KEYWORD", "Logs")],
                "ES_INDEX_KEYWORD",
                "ES_INDEX_KEYWORD=`Logs` is not a valid index prefix: index names are lowercase, \
                 and `L` is not",
            ),
            (
                &[("ES_INDEX_KEYWORD", "error logs")],
                "ES_INDEX_KEYWORD",
                "ES_INDEX_KEYWORD=`error logs` is not a valid index prefix: ` ` is not allowed",
            ),
            (
                &[("ES_INDEX_KEYWORD", "_logs")],
                "ES_INDEX_KEYWORD",
                "ES_INDEX_KEYWORD=`_logs` is not a valid index prefix: index names cannot start \
                 with `-`, `_` or `+`",
            ),
            (
                &[("ES_INDEX_TIME_FORMAT", "week")],
                "ES_INDEX_TIME_FORMAT",
                "ES_INDEX_TIME_FORMAT=`week` is neither `day` (daily indices, \
                 error-logs-2020.07.28) nor `hour` (hourly indices, error-logs-2020.07.28.21)",
            ),
            (
                &[("ES_REPORT_BATCH_ITEM_FAILURES", "yes")],
                "ES_REPORT_BATCH_ITEM_FAILURES",
                "ES_REPORT_BATCH_ITEM_FAILURES=`yes` is neither `true` nor `false`",
            ),
            (
                &[("ES_TIMEOUT_SECONDS", "0")],
                "ES_TIMEOUT_SECONDS",
                "ES_TIMEOUT_SECONDS=`0` is not a whole number of seconds from 1 to 900",
            ),
            (
                &[("LOG_ETL_UTC_OFFSET", "CST")],
                "LOG_ETL_UTC_OFFSET",
                "LOG_ETL_UTC_OFFSET=`CST` is not a UTC offset",
            ),
            (
                &[("ES_USER", "elastic")],
                "ES_USER",
                "ES_USER is set without a password; set ES_PASSWORD or ES_PASSWORD_FILE",
            ),
            (
                &[("ES_PASSWORD", "hunter2")],
                "ES_USER",
                "ES_USER is not set, but a password is",
            ),
            (
                &[
                    ("ES_USER", "u"),
                    ("ES_PASSWORD", "hunter2"),
                    ("ES_PASSWORD_FILE", "/p"),
                ],
                "ES_PASSWORD",
                "ES_PASSWORD and ES_PASSWORD_FILE are both set; set only one",
            ),
            (
                &[
                    ("ES_USER", "u"),
                    ("ES_PASSWORD_FILE", "/nonexistent/es-password"),
                ],
                "ES_PASSWORD_FILE",
                "ES_PASSWORD_FILE names `/nonexistent/es-password`, which cannot be read",
            ),
            (
                &[(
                    "ES_PASSWORD_SECRET_ARN",
                    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:es-AbCdEf",
                )],
                "ES_PASSWORD_SECRET_ARN",
                "ES_PASSWORD_SECRET_ARN is not supported yet; give the password in ES_PASSWORD",
            ),
        ];
        for (vars, variable, message) in cases {
            let problem = error(vars);
            assert_eq!(problem.variable(), *variable, "{vars:?}");
            assert!(
                problem.to_string().starts_with(message),
                "{vars:?}: expected `{message}`, got `{problem}`"
            );
        }
    }

    #[test]
    fn passwords_never_reach_messages_or_debug_output() {
        assert_eq!(
            error(&[("ES_ADDRESS", "https://elastic:hunter2@h:9200")]).to_string(),
            "ES_ADDRESS carries credentials; give them in ES_USER and ES_PASSWORD instead"
        );
        assert!(
            !error(&[("ES_PASSWORD", "hunter2")])
                .to_string()
                .contains("hunter2")
        );
        let config = config(&[("ES_USER", "u"), ("ES_PASSWORD", "hunter2")]).unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn ignored_fields_that_documents_lack_are_reported() {
        let config = config(&[("ES_LOG_IGNORE_WORDS", "name,requestId,password")]).unwrap();
        assert_eq!(config.unknown_ignore_fields(), ["name", "password"]);
    }
}
