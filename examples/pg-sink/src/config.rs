//! The function's configuration, read from environment variables (see `README.md`), through a
//! lookup function so that it is tested without touching the process environment.

use kafka_lambda_handler::env::{EnvVarError, EnvVars, FromEnv};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::config::SslMode;

/// How long connecting to the database may take unless `PGCONNECT_TIMEOUT` says otherwise: a
/// database that is down fails the invocation quickly instead of using up its timeout.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The table written unless `PG_SINK_TABLE` names another.
const DEFAULT_TABLE: &str = "ad_views";

/// What the function does with a record that is not an ad view of a known shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InvalidRecords {
    /// `fail` (default): the record fails, stopping its partition; with partial batch responses
    /// it is reported as the partition's failure, so the trigger's retries and on-failure
    /// destination (dead-letter topic) take it.
    Fail,
    /// `skip`: the record is logged at error level with its id and the reason, and left out.
    Skip,
}

/// What `pg-sink` does, as the environment describes it.
#[derive(Clone)]
pub(crate) struct Config {
    /// Where the database is: `PG_URL`, completed by the `PG*` variables.
    pub(crate) database: tokio_postgres::Config,
    /// `PGSSLROOTCERT`: PEM file of the CA that signed the server's certificate (default: the
    /// system's trusted roots).
    pub(crate) ssl_root_cert: Option<PathBuf>,
    /// `PG_SINK_TABLE`: the table written, `name` or `schema.name`.
    pub(crate) table: String,
    /// `PG_SINK_INVALID_RECORDS`: `fail` or `skip`.
    pub(crate) invalid_records: InvalidRecords,
    /// `PG_SINK_REPORT_BATCH_ITEM_FAILURES`: answer failed records with a partial batch response
    /// (the trigger must have `ReportBatchItemFailures`); default: fail the invocation.
    pub(crate) report_batch_item_failures: bool,
}

/// The environment does not describe a usable configuration. Messages name the variable and
/// never show a password.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// A variable has a value this function cannot use.
    #[error("{name} {problem}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong and what is allowed.
        problem: String,
    },
    /// A variable is not valid Unicode, or not a flag or number in range.
    #[error(transparent)]
    Env(#[from] EnvVarError),
    /// No database is named at all.
    #[error(
        "no database: set PG_URL (postgres://user@host:port/database) or PGHOST, PGUSER and \
         PGDATABASE"
    )]
    NoDatabase,
}

impl FromEnv for Config {
    type Error = ConfigError;

    /// Reads the variables through `env` (the process environment, or fixed values in tests).
    /// Empty values count as unset.
    ///
    /// `PG_URL` is a libpq connection URL or key=value string; as with libpq, the `PG*`
    /// variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`,
    /// `PGCONNECT_TIMEOUT`, `PGAPPNAME`) fill in what it leaves out, or stand alone. (Unlike
    /// libpq, a URL always sets the port, 5432 when it names none.)
    fn from_vars(env: &EnvVars) -> Result<Self, ConfigError> {
        let var = |name: &'static str| env.get(name);
        let mut database = match var("PG_URL")? {
            // The URL may carry a password: the parser's message is kept, the URL is not.
            Some(url) => {
                tokio_postgres::Config::from_str(&url).map_err(|e| ConfigError::Invalid {
                    name: "PG_URL",
                    problem: format!("is not a PostgreSQL connection string: {e}"),
                })?
            }
            None => tokio_postgres::Config::new(),
        };
        if database.get_hosts().is_empty() {
            match var("PGHOST")? {
                Some(hosts) => {
                    for host in hosts.split(',') {
                        database.host(host.trim());
                    }
                }
                None if var("PG_URL")?.is_some() => {
                    database.host("localhost");
                }
                None => return Err(ConfigError::NoDatabase),
            }
        }
        if database.get_ports().is_empty()
            && let Some(port) = var("PGPORT")?
        {
            let port = port
                .trim()
                .parse::<u16>()
                .map_err(|_| ConfigError::Invalid {
                    name: "PGPORT",
                    problem: format!("{port:?} is not a port number"),
                })?;
            database.port(port);
        }
        if database.get_user().is_none() {
            let user = var("PGUSER")?.ok_or(ConfigError::Invalid {
                name: "PGUSER",
                problem: "is not set and PG_URL names no user".into(),
            })?;
            database.user(&user);
        }
        if database.get_password().is_none()
            && let Some(password) = var("PGPASSWORD")?
        {
            database.password(password);
        }
        if database.get_dbname().is_none()
            && let Some(dbname) = var("PGDATABASE")?
        {
            database.dbname(&dbname);
        }
        if let Some(mode) = var("PGSSLMODE")? {
            database.ssl_mode(match mode.trim() {
                "disable" => SslMode::Disable,
                "prefer" => SslMode::Prefer,
                "require" => SslMode::Require,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "PGSSLMODE",
                        problem: format!(
                            "{mode:?} is not one of disable, prefer, require (with require, the \
                             certificate and host name are verified)"
                        ),
                    });
                }
            });
        }
        if database.get_connect_timeout().is_none() {
            let timeout = match var("PGCONNECT_TIMEOUT")? {
                Some(seconds) => match seconds.trim().parse::<u64>() {
                    Ok(s) if s > 0 => Duration::from_secs(s),
                    _ => {
                        return Err(ConfigError::Invalid {
                            name: "PGCONNECT_TIMEOUT",
                            problem: format!("{seconds:?} is not a positive number of seconds"),
                        });
                    }
                },
                None => DEFAULT_CONNECT_TIMEOUT,
            };
            database.connect_timeout(timeout);
        }
        if database.get_application_name().is_none() {
            database.application_name(
                var("PGAPPNAME")?
                    .or(var("AWS_LAMBDA_FUNCTION_NAME")?)
                    .as_deref()
                    .unwrap_or("pg-sink"),
            );
        }

        let table = var("PG_SINK_TABLE")?.unwrap_or_else(|| DEFAULT_TABLE.to_owned());
        if !is_table_name(&table) {
            return Err(ConfigError::Invalid {
                name: "PG_SINK_TABLE",
                problem: format!(
                    "{table:?} is not a table name: `name` or `schema.name`, each 1-63 of \
                     [a-z0-9_], not starting with a digit"
                ),
            });
        }
        let invalid_records = match var("PG_SINK_INVALID_RECORDS")?.as_deref().map(str::trim) {
            None | Some("fail") => InvalidRecords::Fail,
            Some("skip") => InvalidRecords::Skip,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "PG_SINK_INVALID_RECORDS",
                    problem: format!("{other:?} is not `fail` or `skip`"),
                });
            }
        };
        let report_batch_item_failures = env
            .flag("PG_SINK_REPORT_BATCH_ITEM_FAILURES")?
            .unwrap_or(false);
        Ok(Config {
            database,
            ssl_root_cert: var("PGSSLROOTCERT")?.map(PathBuf::from),
            table,
            invalid_records,
            report_batch_item_failures,
        })
    }
}

impl Config {
    /// `host:port/database` for logs: never the user or password.
    pub(crate) fn describe_database(&self) -> String {
        let host = match self.database.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
            None => "localhost".into(),
        };
        let port = self.database.get_ports().first().copied().unwrap_or(5432);
        let dbname = self
            .database
            .get_dbname()
            .or(self.database.get_user())
            .unwrap_or_default();
        format!("{host}:{port}/{dbname}")
    }
}

// By hand: `tokio_postgres::Config`'s own `Debug` is not relied upon to hide the password.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database", &self.describe_database())
            .field("ssl_root_cert", &self.ssl_root_cert)
            .field("table", &self.table)
            .field("invalid_records", &self.invalid_records)
            .field(
                "report_batch_item_failures",
                &self.report_batch_item_failures,
            )
            .finish_non_exhaustive()
    }
}

fn is_table_name(name: &str) -> bool {
    let part = |p: &str| {
        (1..=63).contains(&p.len())
            && !p.starts_with(|c: char| c.is_ascii_digit())
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    match name.split_once('.') {
        Some((schema, table)) => part(schema) && part(table),
        None => part(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(&EnvVars::from_pairs(vars.iter().copied()))
    }

    /// The message `vars` are refused with.
    fn refusal(vars: &[(&str, &str)]) -> String {
        parse(vars).unwrap_err().to_string()
    }

    #[test]
    fn a_url_alone_is_enough() {
        let config = parse(&[("PG_URL", "postgres://sink:s3cret@db.internal:6432/ads")]).unwrap();
        assert_eq!(config.describe_database(), "db.internal:6432/ads");
        assert_eq!(config.database.get_user(), Some("sink"));
        assert_eq!(config.database.get_password(), Some(&b"s3cret"[..]));
        assert_eq!(
            config.database.get_connect_timeout(),
            Some(&Duration::from_secs(5))
        );
        assert_eq!(config.table, "ad_views");
        assert_eq!(config.invalid_records, InvalidRecords::Fail);
        assert!(!config.report_batch_item_failures);
    }

    #[test]
    fn pg_variables_fill_in_what_the_url_leaves_out() {
        let config = parse(&[
            ("PG_URL", "postgres://db.internal/ads"),
            ("PGUSER", "sink"),
            ("PGPASSWORD", "from-secrets-manager"),
            ("PGPORT", "7777"),
            ("PGSSLMODE", "require"),
            ("PGCONNECT_TIMEOUT", "2"),
        ])
        .unwrap();
        // A URL always has a port (5432 when it names none): PGPORT does not override it.
        assert_eq!(config.describe_database(), "db.internal:5432/ads");
        assert_eq!(config.database.get_user(), Some("sink"));
        assert_eq!(
            config.database.get_password(),
            Some(&b"from-secrets-manager"[..])
        );
        assert_eq!(config.database.get_ssl_mode(), SslMode::Require);
        assert_eq!(
            config.database.get_connect_timeout(),
            Some(&Duration::from_secs(2))
        );

        let alone = parse(&[
            ("PGHOST", "db"),
            ("PGPORT", "6432"),
            ("PGUSER", "sink"),
            ("PGDATABASE", "ads"),
        ])
        .unwrap();
        assert_eq!(alone.describe_database(), "db:6432/ads");
    }

    #[test]
    fn bad_values_are_named_without_the_password() {
        let error = refusal(&[]);
        assert!(error.starts_with("no database"), "{error}");
        let error = refusal(&[("PG_URL", "postgres://u:hunter2@h:notaport/d")]);
        assert!(
            error.starts_with("PG_URL is not a PostgreSQL connection string"),
            "{error}"
        );
        assert!(!error.contains("hunter2"), "{error}");
        let cases = [
            ("PG_SINK_TABLE", "Ad-Views", "is not a table name"),
            ("PG_SINK_TABLE", "a.b.c", "is not a table name"),
            ("PG_SINK_INVALID_RECORDS", "drop", "is not `fail` or `skip`"),
            (
                "PG_SINK_REPORT_BATCH_ITEM_FAILURES",
                "yes",
                "is neither `true` nor `false`",
            ),
            ("PGSSLMODE", "verify-full", "is not one of disable"),
        ];
        for (name, value, problem) in cases {
            let error = refusal(&[("PG_URL", "postgres://u@h/d"), (name, value)]);
            assert!(
                error.starts_with(name) && error.contains(problem),
                "{error}"
            );
        }
    }

    #[test]
    fn the_policy_and_table_are_read() {
        let config = parse(&[
            ("PG_URL", "postgres://u@h/d"),
            ("PG_SINK_TABLE", "analytics.ad_views_v2"),
            ("PG_SINK_INVALID_RECORDS", "skip"),
            ("PG_SINK_REPORT_BATCH_ITEM_FAILURES", "TRUE"),
        ])
        .unwrap();
        assert_eq!(config.table, "analytics.ad_views_v2");
        assert_eq!(config.invalid_records, InvalidRecords::Skip);
        assert!(config.report_batch_item_failures);
    }
}
