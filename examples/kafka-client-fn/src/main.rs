//! `kafka-client-fn`: a Lambda function invoked on demand with a JSON command that creates a
//! topic, produces records or consumes them, on a cluster configured through the environment
//! (`KAFKA_BOOTSTRAP_SERVERS`, or `KAFKA_CLIENT_CONFIG` / `KAFKA_CLIENT_CONFIG_FILE` with
//! `kafka-lambda-client`'s TLS, SASL and MSK IAM settings). See `README.md`.

mod command;
mod config;
mod error;
mod kafka;

use config::Config;
use kafka::Kafka;
use kafka_lambda_handler::lambda_runtime::{self, LambdaEvent, service_fn};
use serde_json::Value;
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let kafka = Arc::new(Kafka::connect(&config)?);
    tracing::info!(
        bootstrap_servers = %config.client.bootstrap_servers,
        from = config.origin,
        timeout_ms = config.timeout.as_millis() as u64,
        "kafka-client-fn ready"
    );
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let kafka = Arc::clone(&kafka);
        async move { kafka.handle(event.payload).await }
    }))
    .await
    .map_err(anyhow::Error::from_boxed)
}
