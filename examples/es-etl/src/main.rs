//! `es-etl`: a Lambda function on a Kafka trigger that cleans error-log records like `log-etl`
//! and indexes the documents in Elasticsearch or OpenSearch with the `_bulk` API.
//!
//! Configuration from environment variables (`ES_ADDRESS`, `ES_USER`, `ES_PASSWORD`,
//! `ES_INDEX_KEYWORD`, `ES_LOG_IGNORE_WORDS`, `ES_INDEX_TIME_FORMAT`, ...), read once at start:
//! an invalid one stops the function with a message naming the variable. See `README.md`.

mod bulk;
mod config;
mod document;
mod etl;

use config::{Config, IGNORE_WORDS_VAR};
use etl::EsEtl;
use kafka_lambda_handler::env::FromEnv;
use kafka_lambda_handler::{Batch, BatchOptions, lambda_runtime, run_batch_with};
use log_etl::ErrorLog;
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Before the configuration is read, so its warnings are logged like everything else.
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let unknown = config.unknown_ignore_fields();
    if !unknown.is_empty() {
        tracing::warn!(
            ?unknown,
            fields = ?document::DOCUMENT_FIELDS,
            "{IGNORE_WORDS_VAR} names fields that documents do not have; they are ignored"
        );
    }
    let etl = Arc::new(EsEtl::new(&config)?);
    tracing::info!(
        bulk_url = %config.bulk_url,
        index = %config.index.index_for(chrono::Utc::now()),
        report_batch_item_failures = config.report_batch_item_failures,
        "es-etl ready"
    );
    // Records that are not error logs are logged and left out rather than failing the batch:
    // delivering them again would fail again, forever.
    let options = BatchOptions::new().skip_undecodable(true);
    run_batch_with(
        move |batch: Batch<ErrorLog>| {
            let etl = Arc::clone(&etl);
            async move { etl.handle(batch).await }
        },
        options,
    )
    .await
    .map_err(anyhow::Error::from_boxed)
}
