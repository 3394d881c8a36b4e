use super::*;
use serde_json::json;

fn parse(payload: Value) -> Result<Command, CommandError> {
    Command::parse(payload)
}

fn message(payload: Value) -> String {
    parse(payload).unwrap_err().to_string()
}

#[test]
fn the_three_actions_parse_with_their_defaults() {
    assert_eq!(
        parse(json!({"action": "create_topic", "topic": "orders"})).unwrap(),
        Command::CreateTopic(CreateTopic {
            topic: "orders".into(),
            partitions: 1,
            replication_factor: None,
            config: BTreeMap::new(),
        })
    );
    assert_eq!(
        parse(json!({"action": "consume", "topic": "orders"})).unwrap(),
        Command::Consume(Consume {
            topic: "orders".into(),
            partition: 0,
            from_offset: 0,
            max_records: 100,
            timeout_ms: 5000,
            format: Format::Text,
        })
    );
    let Command::Produce(produce) = parse(json!({
        "action": "produce",
        "topic": "orders",
        "records": [{"value": "plain"}],
    }))
    .unwrap() else {
        panic!("not a produce command");
    };
    assert_eq!(produce.records[0].key, None);
    assert_eq!(produce.format, Format::Text);
}

#[test]
fn values_keys_and_headers_become_bytes() {
    let record: ProduceRecord = serde_json::from_value(json!({
        "key": "o-1",
        "value": {"id": 1, "items": ["a"]},
        "headers": [{"source": "web"}, {"source": "api"}, {"trace": null}],
        "partition": 2,
    }))
    .unwrap();
    let bytes = record.bytes(Format::Text, 0).unwrap();
    assert_eq!(bytes.key.as_deref(), Some(&b"o-1"[..]));
    assert_eq!(
        bytes.value.as_deref(),
        Some(&br#"{"id":1,"items":["a"]}"#[..])
    );
    assert_eq!(
        bytes.headers,
        [
            ("source".to_owned(), Some(b"web".to_vec())),
            ("source".to_owned(), Some(b"api".to_vec())),
            ("trace".to_owned(), None),
        ]
    );

    let text = |value: Value| {
        let record: ProduceRecord = serde_json::from_value(json!({ "value": value })).unwrap();
        record.bytes(Format::Text, 0).unwrap().value
    };
    assert_eq!(text(json!("plain text")), Some(b"plain text".to_vec()));
    assert_eq!(text(json!("42")), Some(b"42".to_vec()));
    assert_eq!(text(json!(42)), Some(b"42".to_vec()));
    assert_eq!(text(json!(null)), None);

    let binary: ProduceRecord = serde_json::from_value(json!({
        "key": "AAE=",
        "value": "/wD+",
        "headers": {"raw": "AP8="},
    }))
    .unwrap();
    let bytes = binary.bytes(Format::Base64, 0).unwrap();
    assert_eq!(bytes.key, Some(vec![0, 1]));
    assert_eq!(bytes.value, Some(vec![255, 0, 254]));
    assert_eq!(bytes.headers, [("raw".to_owned(), Some(vec![0, 255]))]);
}

#[test]
fn answers_encode_bytes_as_asked() {
    assert_eq!(Format::Text.encode(b"caf\xc3\xa9").as_deref(), Some("café"));
    assert_eq!(Format::Text.encode(&[0xff, 0]), None);
    assert_eq!(Format::Base64.encode(&[0xff, 0]).as_deref(), Some("/wA="));
}

#[test]
fn malformed_commands_name_the_field() {
    let cases = [
        (
            json!("produce"),
            "invalid command: the payload is not a JSON object",
        ),
        (
            json!({"topic": "t"}),
            "invalid command: `action` is missing",
        ),
        (
            json!({"action": 7}),
            "invalid command: `action` is 7, not a string",
        ),
        (
            json!({"action": "delete_topic", "topic": "t"}),
            "unknown action `delete_topic`; the actions are create_topic, produce and consume",
        ),
        (
            json!({"action": "create_topic"}),
            "invalid command: create_topic: missing field `topic`",
        ),
        (
            json!({"action": "create_topic", "topic": "t", "partitions": "three"}),
            "invalid command: create_topic: `partitions`: invalid type: string \"three\", \
             expected i32",
        ),
        (
            json!({"action": "create_topic", "topic": "t", "partition": 3}),
            "invalid command: create_topic: `partition`: unknown field `partition`",
        ),
        (
            json!({"action": "create_topic", "topic": "has space"}),
            "invalid command: `topic` is \"has space\", not a Kafka topic name",
        ),
        (
            json!({"action": "create_topic", "topic": "t", "partitions": 0}),
            "invalid command: `partitions` is 0; give 1 to 10000",
        ),
        (
            json!({"action": "produce", "topic": "t", "records": []}),
            "invalid command: `records` has 0 records; give 1 to 10000",
        ),
        (
            json!({"action": "produce", "topic": "t", "records": [{"value": "x"}, {"key": 5}]}),
            "invalid command: produce: `records[1].key`: invalid type: integer `5`",
        ),
        (
            json!({"action": "produce", "topic": "t", "records": [{"partition": -1}]}),
            "invalid command: `records[0].partition` is -1; partitions start at 0",
        ),
        (
            json!({"action": "produce", "topic": "t", "format": "base64", "records": [{"value": "not base64!"}]}),
            "invalid command: `records[0].value` is not base64",
        ),
        (
            json!({"action": "produce", "topic": "t", "format": "base64", "records": [{"value": {"a": 1}}]}),
            "invalid command: `records[0].value` must be a base64 string or null",
        ),
        (
            json!({"action": "produce", "topic": "t", "format": "hex", "records": [{}]}),
            "invalid command: produce: `format`: unknown variant `hex`, expected `text` or `base64`",
        ),
        (
            json!({"action": "produce", "topic": "t", "records": [{"headers": [{"a": "1", "b": "2"}]}]}),
            "invalid command: produce: `records[0].headers`: each header in a list is an \
             object with exactly one name",
        ),
        (
            json!({"action": "consume", "topic": "t", "from_offset": -2}),
            "invalid command: `from_offset` is -2; offsets start at 0",
        ),
        (
            json!({"action": "consume", "topic": "t", "max_records": 0}),
            "invalid command: `max_records` is 0; give 1 to 10000",
        ),
        (
            json!({"action": "consume", "topic": "t", "timeout_ms": 600000}),
            "invalid command: `timeout_ms` is 600000; give at most 60000",
        ),
    ];
    for (payload, expected) in cases {
        let error = message(payload.clone());
        assert!(
            error.starts_with(expected),
            "{payload}: expected `{expected}`, got `{error}`"
        );
    }
    assert_eq!(
        parse(json!({"action": "delete_topic"}))
            .unwrap_err()
            .error_type(),
        "UnknownAction"
    );
    assert_eq!(
        parse(json!({"topic": "t"})).unwrap_err().error_type(),
        "InvalidCommand"
    );
}
