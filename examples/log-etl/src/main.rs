//! `log-etl`: a Lambda function on a Kafka trigger that cleans error-log records.
//!
//! Configuration: `LOG_ETL_UTC_OFFSET` (default `+08:00`), the UTC offset timestamps are
//! written in. See `README.md`; the cleaning itself lives in the library (`src/lib.rs`).

use kafka_lambda_handler::env::FromEnv;
use kafka_lambda_handler::{Batch, run_batch};
use log_etl::{Config, ErrorLog};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Config { utc_offset } = Config::from_env()?;
    run_batch(move |batch: Batch<ErrorLog>| log_etl::handle(batch, utc_offset))
        .await
        .map_err(anyhow::Error::from_boxed)
}
