//! `examples/kafka-client-fn` under the real Lambda emulator (`cargo lambda watch`), invoked
//! with JSON commands against the real broker of the test services: topics created, records
//! produced and consumed back (and read independently with rdkafka), and each kind of failure;
//! and behind the real poller, commands produced to a topic (the trigger mode), with the
//! function behind `cargo lambda watch` and behind AWS's Runtime Interface Emulator alike
//! (`kafka_lambda_tests::FunctionHost`).
//!
//! Each test starts its own emulator with the function's connection settings in its
//! environment, see `kafka_lambda_tests::Emulator`. Consumes that expect records give a long
//! `timeout_ms`: reading returns as soon as it reaches the partition's end, and a loaded
//! machine may take seconds for a cold consumer's first fetch.

use kafka_lambda_tests::{
    Emulator, HostKind, Invocation, Poller, TopicReader, assert_refuses_to_start, cargo_build,
    create_topic, free_port, produce_all, services, topic_name, wait_until,
};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::BaseRecord;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const FUNCTION: &str = "kafka-client-fn";

/// An emulator serving kafka-client-fn on the test broker, given as `KAFKA_BOOTSTRAP_SERVERS`.
fn kafka_client_fn(name: &str) -> Emulator {
    Emulator::start(
        &format!("kafka-client-fn-{name}"),
        &[FUNCTION],
        &[(
            "KAFKA_BOOTSTRAP_SERVERS",
            services().kafka_bootstrap_servers(),
        )],
    )
}

fn run(emulator: &Emulator, command: Value) -> Invocation {
    emulator.invoke(FUNCTION, command.to_string())
}

#[test]
fn topics_are_created_and_records_make_the_round_trip() {
    // The cluster given as kafka-lambda-client TOML, the way a cluster with authentication is.
    let toml = format!(
        "bootstrap_servers = \"{}\"\n[options]\n\"client.id\" = \"kafka-client-fn-test\"\n",
        services().kafka_bootstrap_servers()
    );
    let emulator = Emulator::start(
        "kafka-client-fn-round-trip",
        &[FUNCTION],
        &[("KAFKA_CLIENT_CONFIG", &toml)],
    );
    let topic = topic_name("kafka_client_fn_round_trip");

    let created = run(
        &emulator,
        json!({"action": "create_topic", "topic": topic, "partitions": 3}),
    )
    .expect_success();
    assert_eq!(created, json!({"topic": topic, "partitions": 3}));

    let produced = run(
        &emulator,
        json!({
            "action": "produce",
            "topic": topic,
            "records": [
                {"key": "order-1", "value": {"id": 1, "items": ["a", "b"]}, "partition": 2,
                 "headers": {"source": "web"}, "timestamp": 1_595_944_295_000_i64},
                {"key": "order-2", "value": "plain text, not JSON", "partition": 2,
                 "headers": [{"trace": "t-1"}, {"trace": "t-2"}, {"empty": null}]},
                {"key": "order-1", "partition": 2},
                {"value": "to partition 0", "partition": 0},
            ],
        }),
    )
    .expect_success();
    assert_eq!(
        produced,
        json!({
            "topic": topic,
            "records": [
                {"partition": 2, "offset": 0},
                {"partition": 2, "offset": 1},
                {"partition": 2, "offset": 2},
                {"partition": 0, "offset": 0},
            ],
        })
    );

    let consumed = run(
        &emulator,
        json!({"action": "consume", "topic": topic, "partition": 2, "from_offset": 0,
               "timeout_ms": 30_000}),
    )
    .expect_success();
    let records = consumed["records"].as_array().expect("a records array");
    assert_eq!(records.len(), 3, "{consumed}");
    assert_eq!(consumed["next_offset"], 3, "{consumed}");
    assert_eq!(
        records[0],
        json!({
            "offset": 0,
            "key": "order-1",
            "value": r#"{"id":1,"items":["a","b"]}"#,
            "headers": [{"source": "web"}],
            "timestamp": 1_595_944_295_000_i64,
            "timestamp_type": "create_time",
        })
    );
    assert_eq!(records[1]["value"], "plain text, not JSON");
    assert_eq!(
        records[1]["headers"],
        json!([{"trace": "t-1"}, {"trace": "t-2"}, {"empty": null}])
    );
    assert!(records[1]["timestamp"].as_i64().is_some(), "{consumed}");
    assert_eq!(
        (&records[2]["key"], &records[2]["value"]),
        (&json!("order-1"), &Value::Null),
        "a record without a value is a tombstone"
    );

    // What the broker holds, read independently of the function.
    let on_broker = read_partition(&topic, 2, 3);
    assert_eq!(
        on_broker,
        [
            (
                Some(b"order-1".to_vec()),
                Some(br#"{"id":1,"items":["a","b"]}"#.to_vec()),
                vec![("source".to_owned(), Some(b"web".to_vec()))]
            ),
            (
                Some(b"order-2".to_vec()),
                Some(b"plain text, not JSON".to_vec()),
                vec![
                    ("trace".to_owned(), Some(b"t-1".to_vec())),
                    ("trace".to_owned(), Some(b"t-2".to_vec())),
                    ("empty".to_owned(), None),
                ]
            ),
            (Some(b"order-1".to_vec()), None, vec![]),
        ]
    );
}

#[test]
fn binary_data_makes_the_round_trip_in_base64() {
    let emulator = kafka_client_fn("base64");
    let topic = topic_name("kafka_client_fn_base64");
    run(&emulator, json!({"action": "create_topic", "topic": topic})).expect_success();

    // Key 00 01, value ff 00 fe, header c3 28 (none of them UTF-8 text).
    run(
        &emulator,
        json!({
            "action": "produce",
            "topic": topic,
            "format": "base64",
            "records": [{"key": "AAE=", "value": "/wD+", "headers": {"raw": "wyg="}}],
        }),
    )
    .expect_success();

    let as_text = run(
        &emulator,
        json!({"action": "consume", "topic": topic, "timeout_ms": 30_000}),
    );
    let error = as_text.expect_function_error();
    assert_eq!(error.error_type, "RecordNotText");
    assert_eq!(
        error.error_message,
        format!(
            "record {topic}-0@0: the value is not UTF-8 text; consume with \"format\": \
             \"base64\""
        )
    );
    let consumed = run(
        &emulator,
        json!({"action": "consume", "topic": topic, "format": "base64", "timeout_ms": 30_000}),
    )
    .expect_success();
    let record = &consumed["records"][0];
    assert_eq!(
        (&record["key"], &record["value"], &record["headers"]),
        (&json!("AAE="), &json!("/wD+"), &json!([{"raw": "wyg="}]))
    );
}

#[test]
fn consume_stops_at_max_records_and_says_where_to_continue() {
    let emulator = kafka_client_fn("paging");
    let topic = topic_name("kafka_client_fn_paging");
    run(&emulator, json!({"action": "create_topic", "topic": topic})).expect_success();
    // One command, one batch of five records: the second page starts inside that batch.
    let records: Vec<Value> = (0..5).map(|i| json!({"value": format!("v{i}")})).collect();
    let produced = run(
        &emulator,
        json!({"action": "produce", "topic": topic, "records": records}),
    )
    .expect_success();
    for i in 0..5 {
        assert_eq!(produced["records"][i]["offset"], i, "{produced}");
    }

    let values = |consumed: &Value| -> Vec<String> {
        consumed["records"]
            .as_array()
            .expect("a records array")
            .iter()
            .map(|r| r["value"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let first = run(
        &emulator,
        json!({"action": "consume", "topic": topic, "max_records": 2, "timeout_ms": 30_000}),
    )
    .expect_success();
    assert_eq!(values(&first), ["v0", "v1"]);
    assert_eq!(first["next_offset"], 2);
    assert_eq!(first["high_watermark"], 5);

    let rest = run(
        &emulator,
        json!({"action": "consume", "topic": topic, "from_offset": first["next_offset"],
               "timeout_ms": 30_000}),
    )
    .expect_success();
    assert_eq!(values(&rest), ["v2", "v3", "v4"]);
    assert_eq!(rest["next_offset"], 5);

    // At the end: nothing, at once, whatever the timeout.
    let started = Instant::now();
    let end = run(
        &emulator,
        json!({"action": "consume", "topic": topic, "from_offset": 5, "timeout_ms": 30_000}),
    )
    .expect_success();
    assert_eq!(values(&end), Vec::<String>::new());
    assert_eq!(end["next_offset"], 5);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn commands_that_cannot_be_carried_out_fail_with_typed_errors() {
    let emulator = kafka_client_fn("errors");
    let topic = topic_name("kafka_client_fn_errors");
    let missing = topic_name("kafka_client_fn_missing");
    run(
        &emulator,
        json!({"action": "create_topic", "topic": topic, "partitions": 2}),
    )
    .expect_success();

    let cases = [
        (
            json!({"action": "delete_topic", "topic": topic}),
            "UnknownAction",
            "unknown action `delete_topic`; the actions are create_topic, produce and consume"
                .to_owned(),
        ),
        (
            json!({"topic": topic}),
            "InvalidCommand",
            "invalid command: `action` is missing; give \"create_topic\", \"produce\" or \
             \"consume\""
                .to_owned(),
        ),
        (
            json!({"action": "produce", "topic": topic, "records": [{"value": 1, "partiton": 0}]}),
            "InvalidCommand",
            "invalid command: produce: `records[0].partiton`: unknown field `partiton`, \
             expected one of `key`, `value`, `headers`, `partition`, `timestamp`"
                .to_owned(),
        ),
        (
            json!({"action": "create_topic", "topic": topic}),
            "TopicAlreadyExists",
            format!("topic `{topic}` already exists"),
        ),
        (
            json!({"action": "produce", "topic": missing, "records": [{"value": "x"}]}),
            "TopicNotFound",
            format!("topic `{missing}` does not exist; create it first (action create_topic)"),
        ),
        (
            json!({"action": "consume", "topic": missing}),
            "TopicNotFound",
            format!("topic `{missing}` does not exist; create it first (action create_topic)"),
        ),
        (
            json!({"action": "produce", "topic": topic, "records": [{"value": "x", "partition": 2}]}),
            "PartitionNotFound",
            format!("topic `{topic}` has no partition 2; its partitions are 0 to 1"),
        ),
        (
            json!({"action": "consume", "topic": topic, "partition": 7}),
            "PartitionNotFound",
            format!("topic `{topic}` has no partition 7; its partitions are 0 to 1"),
        ),
    ];
    for (command, error_type, message) in cases {
        let error = run(&emulator, command.clone()).expect_function_error();
        assert_eq!(
            (error.error_type.as_str(), error.error_message.as_str()),
            (error_type, message.as_str()),
            "{command}"
        );
    }
    // Nothing was produced by the failed commands, and the missing topic was not created.
    let consumed = run(&emulator, json!({"action": "consume", "topic": topic})).expect_success();
    assert_eq!(consumed["records"], json!([]));
    let still_missing = run(&emulator, json!({"action": "consume", "topic": missing}));
    assert_eq!(
        still_missing.expect_function_error().error_type,
        "TopicNotFound"
    );
}

#[test]
fn an_unreachable_broker_is_reported_within_the_timeout() {
    let closed = format!("127.0.0.1:{}", free_port());
    let emulator = Emulator::start(
        "kafka-client-fn-unreachable",
        &[FUNCTION],
        &[
            ("KAFKA_BOOTSTRAP_SERVERS", &closed),
            ("KAFKA_TIMEOUT_MS", "2000"),
        ],
    );
    // The first invocation also starts the function; time the later ones.
    run(&emulator, json!({"action": "consume", "topic": "t"})).expect_function_error();

    for command in [
        json!({"action": "create_topic", "topic": "t"}),
        json!({"action": "produce", "topic": "t", "records": [{"value": "x"}]}),
        json!({"action": "consume", "topic": "t"}),
    ] {
        let started = Instant::now();
        let error = run(&emulator, command.clone()).expect_function_error();
        let elapsed = started.elapsed();
        assert_eq!(
            error.error_type, "KafkaBrokerUnreachable",
            "{command}: {error:?}"
        );
        assert!(
            error.error_message.starts_with(&format!(
                "no Kafka broker answered within 2000 ms (brokers {closed}; KAFKA_TIMEOUT_MS sets \
                 the limit)"
            )),
            "{command}: {error:?}"
        );
        assert!(
            elapsed < Duration::from_secs(15),
            "{command}: took {elapsed:?}"
        );
    }
}

#[test]
fn create_topic_is_refused_clearly_with_msk_iam() {
    let msk_iam = format!(
        "bootstrap_servers = \"127.0.0.1:{}\"\n[auth.tls]\n[auth.sasl]\nmechanism = \"AWS_MSK_IAM\"\n\
         region = \"eu-west-1\"\n",
        free_port()
    );
    let emulator = Emulator::start(
        "kafka-client-fn-msk-iam",
        &[FUNCTION],
        &[
            ("KAFKA_CLIENT_CONFIG", &msk_iam),
            // No instance metadata to wait for: the signer finds no credentials at once.
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );

    let error =
        run(&emulator, json!({"action": "create_topic", "topic": "t"})).expect_function_error();

    assert_eq!(error.error_type, "Unsupported");
    assert!(
        error
            .error_message
            .starts_with("create_topic is not available with MSK IAM authentication"),
        "{error:?}"
    );
}

#[test]
fn an_invalid_configuration_stops_the_function_at_start_naming_the_variable() {
    cargo_build(&[FUNCTION]);
    let cases = [
        (
            vec![],
            "KAFKA_BOOTSTRAP_SERVERS is not set, and neither is KAFKA_CLIENT_CONFIG nor \
             KAFKA_CLIENT_CONFIG_FILE",
        ),
        (
            vec![("KAFKA_BOOTSTRAP_SERVERS", "kafka-1")],
            "KAFKA_BOOTSTRAP_SERVERS is invalid: invalid Kafka client config: \
             `bootstrap_servers` has `kafka-1`, which is not host:port",
        ),
        (
            vec![(
                "KAFKA_CLIENT_CONFIG",
                "bootstrap_servers = \"k:9098\"\n[auth.sasl]\nmechanism = \"SCRAM-SHA-512\"\n\
                 username = \"u\"\npassword = { env = \"KAFKA_PASSWORD\" }\n",
            )],
            "KAFKA_CLIENT_CONFIG is invalid: invalid Kafka client config: `auth.sasl.password` \
             names the environment variable `KAFKA_PASSWORD`, which is not set",
        ),
    ];
    assert_refuses_to_start(FUNCTION, &cases);
}

#[test]
fn commands_from_a_topic_run_in_order_through_the_poller_and_failures_are_dead_lettered() {
    commands_run_through_the_poller(HostKind::CargoLambdaWatch);
}

#[test]
fn commands_from_a_topic_run_in_order_through_the_poller_and_failures_are_dead_lettered_behind_the_runtime_interface_emulator()
 {
    commands_run_through_the_poller(HostKind::RuntimeInterfaceEmulator);
}

/// The poller reads a topic of commands and invokes kafka-client-fn behind `kind` of host.
fn commands_run_through_the_poller(kind: HostKind) {
    let commands = topic_name("kafka_client_fn_commands");
    let dead_letters = format!("{commands}-dlq");
    create_topic(&commands, 1);
    create_topic(&dead_letters, 1);
    let host = kind.start(
        "kafka-client-fn-poller",
        FUNCTION,
        &[
            (
                "KAFKA_BOOTSTRAP_SERVERS",
                services().kafka_bootstrap_servers(),
            ),
            ("KAFKA_REPORT_BATCH_ITEM_FAILURES", "true"),
        ],
    );
    let config = host.mapping_config(
        FUNCTION,
        &commands,
        &format!(
            "starting_position = \"TRIM_HORIZON\"\n\
             batch_size = 1\n\
             batching_window_ms = 200\n\
             report_batch_item_failures = true\n\
             max_retry_attempts = 1\n\
             retry_backoff_base_ms = 100\n\
             retry_backoff_max_ms = 500\n\
             on_failure = \"kafka://{dead_letters}\""
        ),
    );
    // One command per invocation: once its retries run out, the poller (like Lambda's event
    // source mapping) sends the failed record and the rest of its batch to `on_failure`.
    let mut poller = Poller::start("kafka-client-fn", &config);

    // Offsets 0 to 4 of the commands topic: a topic created, two commands that cannot run
    // (an unknown action, and a consume, whose answer would have nowhere to go), then two
    // produce commands to the new topic that must run after them.
    let target = topic_name("kafka_client_fn_target");
    let invalid = json!({"action": "delete_topic", "topic": target});
    let consume = json!({"action": "consume", "topic": target});
    produce_commands(
        &commands,
        &[
            json!({"action": "create_topic", "topic": target, "partitions": 3}),
            invalid.clone(),
            consume.clone(),
            json!({"action": "produce", "topic": target, "records": [
                {"key": "k-0", "value": {"n": 0}, "partition": 0, "headers": {"h": "0"}},
                {"key": "k-1", "value": "one", "partition": 1},
                {"key": "k-2", "value": "two", "partition": 2},
            ]}),
            json!({"action": "produce", "topic": target, "records": [
                {"key": "k-3", "value": "three", "partition": 0},
            ]}),
        ],
    );

    wait_until(
        Duration::from_secs(120),
        "the poller has the function create the topic",
        || partition_count(&target).is_some(),
    );
    assert_eq!(partition_count(&target), Some(3));
    let partition_0 = read_partition(&target, 0, 2);
    assert_eq!(
        partition_0,
        [
            (
                Some(b"k-0".to_vec()),
                Some(br#"{"n":0}"#.to_vec()),
                vec![("h".to_owned(), Some(b"0".to_vec()))]
            ),
            (Some(b"k-3".to_vec()), Some(b"three".to_vec()), vec![]),
        ],
        "in command order, each once; poller log:\n{}",
        poller.log()
    );
    assert_eq!(
        read_partition(&target, 1, 1),
        [(Some(b"k-1".to_vec()), Some(b"one".to_vec()), vec![])]
    );
    assert_eq!(
        read_partition(&target, 2, 1),
        [(Some(b"k-2".to_vec()), Some(b"two".to_vec()), vec![])]
    );

    // The failed commands were retried, then written to the dead-letter topic before the
    // commands after them ran, with the failure in the poller's headers.
    let dead = read_partition(&dead_letters, 0, 2);
    poller.stop();
    assert_eq!(dead.len(), 2, "poller log:\n{}", poller.log());
    for ((_, value, headers), (command, offset)) in dead.iter().zip([(&invalid, 1), (&consume, 2)])
    {
        let value: Value = serde_json::from_slice(value.as_deref().unwrap_or_default())
            .expect("the dead letter is the command");
        assert_eq!(&value, command);
        let header = |name: &str| {
            headers
                .iter()
                .find(|(h, _)| h == name)
                .and_then(|(_, v)| v.as_deref())
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(
            header("kafka-lambda-source-offset"),
            Some(offset.to_string()),
            "{headers:?}"
        );
        assert_eq!(
            header("kafka-lambda-function").as_deref(),
            Some(host.function_name(FUNCTION))
        );
    }
    let log = host.log_text();
    for error in [
        "unknown action `delete_topic`",
        &format!("consume of `{target}` cannot come from a Kafka trigger"),
    ] {
        assert!(log.contains(error), "`{error}` logged:\n{log}");
    }
}

/// Produces the commands as records to `topic`, in order, batched together as a producer
/// does, so a retry from a failed command's offset starts inside a batch.
fn produce_commands(topic: &str, commands: &[Value]) {
    let commands: Vec<String> = commands.iter().map(Value::to_string).collect();
    produce_all(
        &[("linger.ms", "20")],
        commands
            .iter()
            .map(|command| BaseRecord::<(), _>::to(topic).payload(command)),
    );
}

/// How many partitions `topic` has, `None` while the broker does not know it.
fn partition_count(topic: &str) -> Option<usize> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", services().kafka_bootstrap_servers())
        .set("allow.auto.create.topics", "false")
        .create()
        .expect("create a consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .ok()?;
    let topic = metadata.topics().iter().find(|t| t.name() == topic)?;
    (topic.error().is_none() && !topic.partitions().is_empty()).then(|| topic.partitions().len())
}

/// Key, value and headers of a record as the broker holds them.
type Stored = (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(String, Option<Vec<u8>>)>,
);

/// The records of one partition, read with a plain rdkafka consumer from its start until
/// `count` are there (at most 30 s), and a second longer: more than `count` when more arrive.
fn read_partition(topic: &str, partition: i32, count: usize) -> Vec<Stored> {
    TopicReader {
        partition: Some(partition),
        timeout: Duration::from_secs(30),
        linger: Duration::from_secs(1),
        ..TopicReader::new(services().kafka_bootstrap_servers())
    }
    .read(topic, count)
    .into_iter()
    .map(|record| {
        let headers = record
            .raw_headers
            .into_iter()
            .map(|(name, value)| (String::from_utf8_lossy(&name).into_owned(), value))
            .collect();
        (record.key, record.value, headers)
    })
    .collect()
}
