//! `avro-orders`: a Lambda function on a Kafka trigger whose values are Avro `Order` records
//! written through a Confluent-compatible schema registry. It answers with a summary of the
//! batch: orders and cents per status. Records whose schema the registry does not have, or that
//! do not decode, are reported as partial batch failures (the trigger needs
//! `ReportBatchItemFailures`), never lose the rest of the batch.
//!
//! The same function takes both forms of the event: from a trigger (or the poller) with a schema
//! registry in `SOURCE` format, and from one without a registry (the producer's bytes, registry
//! header first). Configuration: see `README.md`.

use avro_orders::{Config, Order, Summary};
use kafka_lambda_handler::env::FromEnv;
use kafka_lambda_handler::schema::{Avro, SchemaSource};
use kafka_lambda_handler::{
    ProcessOptions, Record, events::KafkaEvent, lambda_runtime, process_records,
};
use std::sync::{Arc, Mutex};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let schemas =
        SchemaSource::confluent(&config.registry_url, config.auth()).map_err(anyhow::Error::msg)?;
    let options = ProcessOptions::new()
        .schemas(schemas)
        .report_batch_item_failures(true);
    let options = Arc::new(options);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<KafkaEvent>| {
            let options = options.clone();
            async move {
                let summary = Mutex::new(Summary::default());
                let outcome = process_records(
                    event.payload,
                    |order: Record<Avro<Order>>| {
                        summary
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .add(&order.value().0);
                        async { Ok::<(), kafka_lambda_handler::Error>(()) }
                    },
                    &options,
                )
                .await?;
                let summary = summary
                    .into_inner()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                tracing::info!(orders = summary.orders, "orders summed");
                Ok::<_, kafka_lambda_handler::Error>(summary.into_response(&outcome))
            }
        },
    ))
    .await
    .map_err(anyhow::Error::from_boxed)
}
