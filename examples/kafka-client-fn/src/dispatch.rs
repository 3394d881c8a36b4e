//! How one invocation is served: a command invoked on demand, or a Kafka event from a trigger
//! (MSK `aws:kafka` or `SelfManagedKafka`) whose records are commands.
//!
//! A payload that is a JSON object with an `eventSource` field is a Kafka event: a command never
//! has that field. Each record's value is one command in the on-demand JSON shape; records run
//! through the handler SDK, so each partition's commands run in offset order and a partition
//! stops at its first failed command, which is logged at error with its topic, partition and
//! offset and, with `KAFKA_REPORT_BATCH_ITEM_FAILURES` (the default), answered as a partial
//! batch failure. `consume` is refused in a Kafka event: its answer would have nowhere to go.

use crate::command::Command;
use crate::error::CommandError;
use crate::kafka::Answer;
use kafka_lambda_handler::{
    Diagnostic, HandlerError, InvalidEvent, KafkaBatchResponse, KafkaEvent, ProcessOptions, Record,
    process_event,
};
use serde::Serialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use serde_json::value::RawValue;
use std::future::Future;

/// What an invocation answers.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum Response {
    /// The answer to a command invoked on demand.
    Answer(Answer),
    /// The answer to a Kafka event: empty, or the first failed command of each failed
    /// partition.
    Batch(KafkaBatchResponse),
}

/// Serves the invocation whose payload is `payload`, carrying each command out with `run`.
///
/// On demand, a failed command fails the invocation with its own `errorType`. For a Kafka
/// event, failures are reported as `options` says (partial batch response or
/// `KafkaRecordFailed`); a payload that claims to be an event but is not one fails with
/// `KafkaEventInvalid`.
pub(crate) async fn dispatch<F, Fut>(
    payload: &RawValue,
    run: F,
    options: &ProcessOptions,
) -> Result<Response, Diagnostic>
where
    F: Fn(Command) -> Fut,
    Fut: Future<Output = Result<Answer, CommandError>>,
{
    if !is_kafka_event(payload) {
        let answer = on_demand(payload, &run).await?;
        return Ok(Response::Answer(answer));
    }
    let event = KafkaEvent::from_slice(payload.get().as_bytes()).map_err(|error| {
        let error = HandlerError::from(InvalidEvent::from(error));
        tracing::error!(%error, "the invocation payload is not a Kafka event");
        error
    })?;
    let run = &run;
    let response = process_event(
        event,
        |record: Record<Value>| async move { from_record(record.into_value(), run).await },
        options,
    )
    .await?;
    Ok(Response::Batch(response))
}

/// Whether the payload is an object with an `eventSource` field, whatever its value: the
/// event parser then says what is wrong with it.
fn is_kafka_event(payload: &RawValue) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "eventSource")]
        event_source: Option<IgnoredAny>,
    }
    serde_json::from_str::<Probe>(payload.get()).is_ok_and(|probe| probe.event_source.is_some())
}

async fn on_demand<F, Fut>(payload: &RawValue, run: &F) -> Result<Answer, CommandError>
where
    F: Fn(Command) -> Fut,
    Fut: Future<Output = Result<Answer, CommandError>>,
{
    let payload: Value = serde_json::from_str(payload.get())
        .map_err(|error| CommandError::Invalid(format!("the payload is not JSON: {error}")))?;
    let command = Command::parse(payload).inspect_err(|error| {
        tracing::warn!(%error, "rejected an invalid command");
    })?;
    run(command).await
}

/// Carries out the command a record holds. The handler SDK logs a failure with the record's
/// topic, partition and offset.
async fn from_record<F, Fut>(value: Value, run: &F) -> Result<(), CommandError>
where
    F: Fn(Command) -> Fut,
    Fut: Future<Output = Result<Answer, CommandError>>,
{
    let command = Command::parse(value)?;
    if let Command::Consume(consume) = &command {
        return Err(CommandError::Unsupported(format!(
            "consume of `{}` cannot come from a Kafka trigger: its answer would have nowhere to \
             go; invoke the function directly to read a topic",
            consume.topic
        )));
    }
    run(command).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Created, Delivered, Produced};
    use kafka_lambda_handler::testing::{self, TestEvent};
    use serde_json::json;
    use std::sync::Mutex;

    /// The command that creates `topic`.
    fn create_topic(topic: &str) -> Value {
        json!({"action": "create_topic", "topic": topic})
    }

    /// The command that produces `records` to `topic`.
    fn produce(topic: &str, records: Value) -> Value {
        json!({"action": "produce", "topic": topic, "records": records})
    }

    /// `event` with a record of the `commands` topic per `(partition, offset, command)`.
    fn with_commands(event: TestEvent, commands: &[(i32, i64, Value)]) -> TestEvent {
        commands
            .iter()
            .fold(event, |event, (partition, offset, command)| {
                event.json_record("commands", *partition, *offset, command)
            })
    }

    /// Runs `payload` through [`dispatch`] with a `run` that records each command's topic and
    /// fails the commands on `failing_topic` with `TopicNotFound`.
    async fn serve(
        payload: &[u8],
        options: &ProcessOptions,
        failing_topic: &str,
    ) -> (Result<Value, Diagnostic>, Vec<String>) {
        let ran = Mutex::new(Vec::new());
        let run = |command: Command| {
            let topic = match &command {
                Command::CreateTopic(c) => c.topic.clone(),
                Command::Produce(p) => p.topic.clone(),
                Command::Consume(c) => c.topic.clone(),
            };
            ran.lock().unwrap().push(topic.clone());
            let answer = if topic == failing_topic {
                Err(CommandError::TopicNotFound(topic))
            } else {
                Ok(match command {
                    Command::Produce(p) => Answer::Produced(Produced {
                        topic,
                        records: vec![Delivered {
                            partition: 0,
                            offset: p.records.len() as i64,
                        }],
                    }),
                    _ => Answer::Created(Created {
                        topic,
                        partitions: 1,
                    }),
                })
            };
            std::future::ready(answer)
        };
        let payload: Box<RawValue> = serde_json::from_slice(payload).unwrap();
        let response = dispatch(&payload, run, options)
            .await
            .map(|response| serde_json::to_value(response).unwrap());
        (response, ran.into_inner().unwrap())
    }

    fn reporting() -> ProcessOptions {
        ProcessOptions::new().report_batch_item_failures(true)
    }

    #[tokio::test]
    async fn a_command_invoked_on_demand_answers_as_before() {
        let command = json!({"action": "create_topic", "topic": "orders"}).to_string();
        let (response, ran) = serve(command.as_bytes(), &reporting(), "").await;
        assert_eq!(
            response.unwrap(),
            json!({"topic": "orders", "partitions": 1})
        );
        assert_eq!(ran, ["orders"]);

        let (response, ran) = serve(command.as_bytes(), &reporting(), "orders").await;
        let error = response.unwrap_err();
        assert_eq!(error.error_type, "TopicNotFound");
        assert_eq!(ran, ["orders"]);

        let (response, ran) = serve(br#"{"action":"drop"}"#, &reporting(), "").await;
        assert_eq!(response.unwrap_err().error_type, "UnknownAction");
        assert!(ran.is_empty());
    }

    #[tokio::test]
    async fn each_record_of_an_event_runs_in_order_per_partition() {
        for event in [testing::event(), testing::msk_event()] {
            let event = with_commands(
                event,
                &[
                    (0, 5, create_topic("a")),
                    (1, 9, create_topic("c")),
                    (0, 6, produce("a", json!([{"value": "x"}]))),
                    (0, 7, produce("b", json!([{"value": "y"}]))),
                ],
            )
            .build();
            let (response, ran) = serve(&event.to_vec(), &reporting(), "").await;
            assert_eq!(response.unwrap(), json!({"batchItemFailures": []}));
            let partition_0: Vec<_> = ran.iter().filter(|t| *t != "c").collect();
            assert_eq!(partition_0, ["a", "a", "b"], "offset order: {ran:?}");
            assert!(ran.contains(&"c".to_owned()), "{ran:?}");
        }
    }

    #[tokio::test]
    async fn a_failed_command_is_a_partial_batch_failure_and_stops_only_its_partition() {
        let event = with_commands(
            testing::event(),
            &[
                (0, 5, create_topic("a")),
                (0, 6, produce("missing", json!([{}]))),
                (0, 7, create_topic("b")),
                (1, 3, create_topic("c")),
            ],
        )
        .build();
        let (response, ran) = serve(&event.to_vec(), &reporting(), "missing").await;
        assert_eq!(
            response.unwrap(),
            json!({"batchItemFailures": [
                {"itemIdentifier": {"partition": "commands-0", "offset": 6}}
            ]})
        );
        assert!(
            !ran.contains(&"b".to_owned()),
            "stopped after the failure: {ran:?}"
        );
        assert!(
            ran.contains(&"c".to_owned()),
            "the other partition ran: {ran:?}"
        );

        let (response, _) = serve(&event.to_vec(), &ProcessOptions::new(), "missing").await;
        let error = response.unwrap_err();
        assert_eq!(error.error_type, "KafkaRecordFailed");
        assert!(
            error
                .error_message
                .contains("record commands-0@6: topic `missing` does not exist"),
            "{}",
            error.error_message
        );
    }

    #[tokio::test]
    async fn invalid_commands_and_consume_in_an_event_fail_without_running() {
        let cases = [
            (
                testing::event().text_record("commands", 0, 1, "not json"),
                "record commands-0@1: value is not valid JSON",
            ),
            (
                testing::event().json_record("commands", 0, 1, &json!({"action": "drop"})),
                "record commands-0@1: unknown action `drop`",
            ),
            (
                testing::event().tombstone("commands", 0, 1),
                "record commands-0@1: invalid command: the payload is not a JSON object",
            ),
            (
                testing::event().json_record(
                    "commands",
                    0,
                    1,
                    &json!({"action": "consume", "topic": "orders"}),
                ),
                "record commands-0@1: consume of `orders` cannot come from a Kafka trigger",
            ),
        ];
        for (event, message) in cases {
            let event = event.build();
            let (response, ran) = serve(&event.to_vec(), &reporting(), "").await;
            assert_eq!(
                response.unwrap(),
                json!({"batchItemFailures": [
                    {"itemIdentifier": {"partition": "commands-0", "offset": 1}}
                ]}),
                "{message}"
            );
            assert!(ran.is_empty(), "{message}: {ran:?}");
            let (response, _) = serve(&event.to_vec(), &ProcessOptions::new(), "").await;
            let error = response.unwrap_err();
            assert!(
                error.error_message.contains(message),
                "expected `{message}`, got `{}`",
                error.error_message
            );
        }
    }

    #[tokio::test]
    async fn a_payload_claiming_to_be_an_event_must_be_one() {
        let (response, ran) = serve(
            br#"{"eventSource":"aws:kafka","records":{"t-0":[{"topic":"t"}]}}"#,
            &reporting(),
            "",
        )
        .await;
        assert_eq!(response.unwrap_err().error_type, "KafkaEventInvalid");
        assert!(ran.is_empty());
    }
}
