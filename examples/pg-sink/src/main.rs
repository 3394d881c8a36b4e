//! `pg-sink`: a Lambda function on a Kafka trigger that normalizes ad-view events written by
//! several producers, each in its own shape, into one table of PostgreSQL, with an idempotent
//! upsert keyed by each record's topic, partition and offset.
//!
//! Configuration: `PG_URL` and/or the libpq `PG*` variables, `PG_SINK_TABLE`,
//! `PG_SINK_INVALID_RECORDS` (`fail` or `skip`), `PG_SINK_REPORT_BATCH_ITEM_FAILURES`. See
//! `README.md`.

mod config;
mod handle;
mod normalize;
mod sink;

use config::Config;
use handle::Value;
use kafka_lambda_handler::env::FromEnv;
use kafka_lambda_handler::{Batch, run_batch};
use sink::Sink;
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let (policy, report) = (config.invalid_records, config.report_batch_item_failures);
    tracing::info!(
        database = %config.describe_database(),
        table = %config.table,
        invalid_records = ?policy,
        report_batch_item_failures = report,
        "pg-sink configured"
    );
    // One connection per execution environment, made on the first batch and kept.
    let sink = Arc::new(Sink::new(config)?);
    run_batch(move |batch: Batch<Value>| {
        let sink = Arc::clone(&sink);
        async move { handle::handle(&sink, batch, policy, report).await }
    })
    .await
    .map_err(anyhow::Error::from_boxed)
}
