//! `kafka-client-fn`: a Lambda function that creates a topic, produces records or consumes
//! them, on a cluster configured through the environment (`KAFKA_BOOTSTRAP_SERVERS`, or
//! `KAFKA_CLIENT_CONFIG` / `KAFKA_CLIENT_CONFIG_FILE` with `kafka-lambda-client`'s TLS, SASL
//! and MSK IAM settings). Invoked on demand with one JSON command, or by a Kafka trigger whose
//! records are commands (`KAFKA_REPORT_BATCH_ITEM_FAILURES`). See `README.md`.

mod command;
mod config;
mod dispatch;
mod error;
mod kafka;

use config::Config;
use kafka::Kafka;
use kafka_lambda_handler::ProcessOptions;
use kafka_lambda_handler::env::FromEnv;
use kafka_lambda_handler::lambda_runtime::{self, LambdaEvent, service_fn};
use serde_json::value::RawValue;
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let kafka = Arc::new(Kafka::connect(&config)?);
    let options = Arc::new(
        ProcessOptions::new().report_batch_item_failures(config.report_batch_item_failures),
    );
    tracing::info!(
        bootstrap_servers = %config.client.bootstrap_servers,
        from = config.origin,
        timeout_ms = config.timeout.as_millis() as u64,
        report_batch_item_failures = config.report_batch_item_failures,
        "kafka-client-fn ready"
    );
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        let kafka = Arc::clone(&kafka);
        let options = Arc::clone(&options);
        async move {
            dispatch::dispatch(&event.payload, |command| kafka.execute(command), &options).await
        }
    }))
    .await
    .map_err(anyhow::Error::from_boxed)
}
