//! `log-etl`: a Lambda function on a Kafka trigger that cleans error-log records.
//!
//! Configuration: `LOG_ETL_UTC_OFFSET` (default `+08:00`), the UTC offset timestamps are
//! written in. See `README.md`.

mod config;
mod etl;

use config::Config;
use etl::ErrorLog;
use kafka_lambda_handler::{Batch, run_batch};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Config { utc_offset } = Config::from_env()?;
    run_batch(move |batch: Batch<ErrorLog>| etl::handle(batch, utc_offset))
        .await
        .map_err(anyhow::Error::from_boxed)
}
