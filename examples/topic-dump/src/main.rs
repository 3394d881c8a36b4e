//! `topic-dump`: a Lambda function on a Kafka trigger that copies every record it receives to
//! a topic on another cluster — to dump a topic to an offline cluster, or to double-write during
//! a migration. Keys, values, headers and timestamps are kept; partitions too on request.
//!
//! Configuration: environment variables `DUMP_BOOTSTRAP_SERVERS` (or `DUMP_CLIENT_CONFIG_FILE`),
//! `DUMP_TOPIC`, `DUMP_PRESERVE_PARTITION`, `DUMP_DELIVERY_TIMEOUT_MS`,
//! `DUMP_REPORT_BATCH_ITEM_FAILURES` and the `DUMP_TLS*`, `DUMP_SASL*` and `DUMP_MSK_IAM_*`
//! authentication settings. See `README.md`.

mod config;
mod dump;

use config::Config;
use dump::{Dumper, Value};
use kafka_lambda_handler::env::FromEnv;
use kafka_lambda_handler::{Batch, run_batch};
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let report = config.report_batch_item_failures;
    // One producer per execution environment: its connections and idempotence state outlive
    // the invocations.
    let dumper = Arc::new(Dumper::new(&config)?);
    tracing::info!(
        destination = %config.destination.bootstrap_servers,
        topic = config.topic.as_deref().unwrap_or("<source topic>"),
        preserve_partition = config.preserve_partition,
        report_batch_item_failures = report,
        "topic-dump configured"
    );
    run_batch(move |batch: Batch<Value>| {
        let dumper = Arc::clone(&dumper);
        async move { dumper.dump(&batch).await.into_response(report) }
    })
    .await
    .map_err(anyhow::Error::from_boxed)
}
