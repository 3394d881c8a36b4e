//! The database side: one connection per execution environment, the table created when
//! missing, and an idempotent upsert keyed by the record's coordinates.

use crate::config::Config;
use crate::normalize::AdView;
use kafka_lambda_handler::RecordId;
use openssl::ssl::{SslConnector, SslMethod};
use postgres_openssl::MakeTlsConnector;
use tokio::sync::Mutex;
use tokio_postgres::Client;

/// One normalized record and where it came from: the row's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    /// Topic, partition and offset of the record: the primary key.
    pub(crate) record: RecordId,
    /// The normalized view.
    pub(crate) view: AdView,
}

/// The database could not be reached or refused the write. Always worth retrying: the whole
/// batch fails and the trigger retries it; the upsert makes the rows already written harmless.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SinkError {
    /// No connection could be made.
    #[error("cannot connect to PostgreSQL at {database}: {source}")]
    Connect {
        /// `host:port/database`.
        database: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The TLS settings could not be used (`PGSSLROOTCERT`).
    #[error("cannot set up TLS for PostgreSQL: {0}")]
    Tls(#[from] openssl::error::ErrorStack),
    /// Creating the table failed.
    #[error("cannot create table {table}: {source}")]
    CreateTable {
        /// The table.
        table: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The upsert failed.
    #[error("cannot write {rows} row(s) to {table}: {source}")]
    Write {
        /// The table.
        table: String,
        /// How many rows the statement carried.
        rows: usize,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
}

/// Writes rows to the configured table.
pub(crate) struct Sink {
    config: Config,
    tls: MakeTlsConnector,
    upsert: String,
    client: Mutex<Option<Client>>,
}

impl Sink {
    /// Prepares the TLS connector; connects lazily, on the first write.
    pub(crate) fn new(config: Config) -> Result<Self, SinkError> {
        let mut builder = SslConnector::builder(SslMethod::tls_client())?;
        if let Some(ca) = &config.ssl_root_cert {
            builder.set_ca_file(ca)?;
        }
        let upsert = upsert_statement(&config.table);
        Ok(Sink {
            tls: MakeTlsConnector::new(builder.build()),
            upsert,
            config,
            client: Mutex::new(None),
        })
    }

    /// Upserts `rows` with one statement (atomic: all or none), keyed by
    /// `(kafka_topic, kafka_partition, kafka_offset)`: writing a row again replaces it with the
    /// same values, so a retried batch adds nothing. Returns the number of rows written.
    pub(crate) async fn write(&self, rows: &[Row]) -> Result<u64, SinkError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let mut guard = self.client.lock().await;
        let client = match guard.take() {
            Some(client) if !client.is_closed() => client,
            _ => self.connect().await?,
        };
        let columns = Columns::of(rows);
        let result = client
            .execute(
                &self.upsert,
                &[
                    &columns.topic,
                    &columns.partition,
                    &columns.offset,
                    &columns.ad_id,
                    &columns.user_id,
                    &columns.viewed_at,
                    &columns.price_micros,
                    &columns.currency,
                    &columns.shape,
                ],
            )
            .await;
        match result {
            Ok(written) => {
                *guard = Some(client);
                Ok(written)
            }
            // The connection is dropped: after an error it may be broken, and a new one is
            // cheap next to a batch retried against a dead socket.
            Err(source) => Err(SinkError::Write {
                table: self.config.table.clone(),
                rows: rows.len(),
                source,
            }),
        }
    }

    /// A new connection, with the table created if missing.
    async fn connect(&self) -> Result<Client, SinkError> {
        let database = self.config.describe_database();
        let (client, connection) = self
            .config
            .database
            .connect(self.tls.clone())
            .await
            .map_err(|source| SinkError::Connect {
                database: database.clone(),
                source,
            })?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "the PostgreSQL connection ended");
            }
        });
        tracing::info!(%database, table = %self.config.table, "connected to PostgreSQL");
        // Looked up first: `CREATE TABLE IF NOT EXISTS` needs the CREATE privilege on the schema
        // even when the table exists, which a least-privilege user only has for the first run.
        let exists: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&self.config.table])
            .await
            .map_err(|source| SinkError::CreateTable {
                table: self.config.table.clone(),
                source,
            })?
            .get(0);
        if exists {
            return Ok(client);
        }
        // Instances starting together may all find the table missing: an advisory lock lets one
        // create it while the others wait, instead of failing on the catalog's unique index.
        let create = format!(
            "BEGIN;
             SELECT pg_advisory_xact_lock(hashtext('pg-sink {table}'));
             {ddl}
             COMMIT;",
            table = self.config.table,
            ddl = create_table_statement(&self.config.table),
        );
        client
            .batch_execute(&create)
            .await
            .map_err(|source| SinkError::CreateTable {
                table: self.config.table.clone(),
                source,
            })?;
        Ok(client)
    }
}

/// The table every shape is normalized into.
pub(crate) fn create_table_statement(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (
            kafka_topic     text        NOT NULL,
            kafka_partition integer     NOT NULL,
            kafka_offset    bigint      NOT NULL,
            ad_id           text        NOT NULL,
            user_id         text,
            viewed_at       timestamptz NOT NULL,
            price_micros    bigint      NOT NULL CHECK (price_micros >= 0),
            currency        text        NOT NULL CHECK (currency ~ '^[A-Z]{{3}}$'),
            source_shape    text        NOT NULL,
            written_at      timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (kafka_topic, kafka_partition, kafka_offset)
        );"
    )
}

/// One `INSERT … SELECT FROM unnest(…)` for the whole batch: nine array parameters whatever the
/// number of rows (a `VALUES` list would hit the 65 535-parameter limit near 7 000 rows).
fn upsert_statement(table: &str) -> String {
    format!(
        "INSERT INTO {table} AS t (kafka_topic, kafka_partition, kafka_offset, ad_id, user_id,
                                   viewed_at, price_micros, currency, source_shape)
         SELECT * FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::text[], $5::text[],
                              $6::timestamptz[], $7::bigint[], $8::text[], $9::text[])
         ON CONFLICT (kafka_topic, kafka_partition, kafka_offset) DO UPDATE SET
             ad_id = EXCLUDED.ad_id, user_id = EXCLUDED.user_id, viewed_at = EXCLUDED.viewed_at,
             price_micros = EXCLUDED.price_micros, currency = EXCLUDED.currency,
             source_shape = EXCLUDED.source_shape"
    )
}

/// The rows as one array per column, the upsert's parameters.
struct Columns<'a> {
    topic: Vec<&'a str>,
    partition: Vec<i32>,
    offset: Vec<i64>,
    ad_id: Vec<&'a str>,
    user_id: Vec<Option<&'a str>>,
    viewed_at: Vec<chrono::DateTime<chrono::Utc>>,
    price_micros: Vec<i64>,
    currency: Vec<&'a str>,
    shape: Vec<&'static str>,
}

impl<'a> Columns<'a> {
    fn of(rows: &'a [Row]) -> Self {
        Columns {
            topic: rows.iter().map(|r| r.record.topic.as_str()).collect(),
            partition: rows.iter().map(|r| r.record.partition).collect(),
            offset: rows.iter().map(|r| r.record.offset).collect(),
            ad_id: rows.iter().map(|r| r.view.ad_id.as_str()).collect(),
            user_id: rows.iter().map(|r| r.view.user_id.as_deref()).collect(),
            viewed_at: rows.iter().map(|r| r.view.viewed_at).collect(),
            price_micros: rows.iter().map(|r| r.view.price_micros).collect(),
            currency: rows.iter().map(|r| r.view.currency.as_str()).collect(),
            shape: rows.iter().map(|r| r.view.shape.as_str()).collect(),
        }
    }
}
