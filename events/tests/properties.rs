//! Property tests: for arbitrary events, the wire form decodes to what was encoded, the streaming
//! writer agrees with `serde_json` byte for byte, its size accounting is exact, and the payload
//! limit is never crossed.

use indexmap::IndexMap;
use kafka_lambda_events::{
    BatchItemFailure, DataFormat, EventSource, EventWriter, Header, ItemIdentifier,
    KafkaBatchResponse, KafkaEvent, KafkaRecord, RecordRef, SchemaMetadata, TimestampType,
    TopicPartition,
};
use proptest::prelude::*;
use serde_json::Value;

/// Text that stresses JSON escaping and `topic-partition` splitting: dashes, digits, quotes,
/// backslashes, control characters and any Unicode scalar.
fn text() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        4 => proptest::char::range('a', 'z'),
        2 => Just('-'),
        2 => proptest::char::range('0', '9'),
        1 => prop_oneof![Just('"'), Just('\\'), Just('/'), Just('.'), Just('_')],
        1 => proptest::char::range('\u{0}', '\u{1f}'),
        1 => Just('\u{7f}'),
        2 => any::<char>(),
    ];
    proptest::collection::vec(ch, 0..16).prop_map(String::from_iter)
}

fn non_empty_text() -> impl Strategy<Value = String> {
    text().prop_filter("non-empty", |s| !s.is_empty())
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..48)
}

fn timestamp_type() -> impl Strategy<Value = TimestampType> {
    prop_oneof![
        Just(TimestampType::CreateTime),
        Just(TimestampType::LogAppendTime),
        Just(TimestampType::NoTimestampType),
    ]
}

fn schema_metadata() -> impl Strategy<Value = Option<SchemaMetadata>> {
    let format = prop_oneof![
        Just(DataFormat::Avro),
        Just(DataFormat::Json),
        Just(DataFormat::Protobuf),
        text().prop_map(|s| DataFormat::from(s.as_str())),
    ];
    proptest::option::of(
        (format, text()).prop_map(|(data_format, schema_id)| SchemaMetadata {
            data_format,
            schema_id,
        }),
    )
}

fn header() -> impl Strategy<Value = Header> {
    (text(), bytes()).prop_map(|(name, value)| Header::new(name, value))
}

/// A record on the given topic. Partitions are non-negative, as in Kafka: only then is the
/// `"<topic>-<partition>"` group key unambiguous (`"x-"`/`-1` and `"x--"`/`1` both give `x---1`).
fn record(topic: impl Strategy<Value = String>) -> impl Strategy<Value = KafkaRecord> {
    (
        (
            topic,
            0..=i32::MAX,
            any::<i64>(),
            any::<i64>(),
            timestamp_type(),
        ),
        proptest::option::of(bytes()),
        proptest::option::of(bytes()),
        proptest::collection::vec(header(), 0..4),
        schema_metadata(),
        schema_metadata(),
    )
        .prop_map(
            |(
                (topic, partition, offset, timestamp, timestamp_type),
                key,
                value,
                headers,
                key_schema_metadata,
                value_schema_metadata,
            )| KafkaRecord {
                topic,
                partition,
                offset,
                timestamp,
                timestamp_type,
                key,
                value,
                headers,
                key_schema_metadata,
                value_schema_metadata,
            },
        )
}

/// A record with any partition, negative ones included.
fn any_record() -> impl Strategy<Value = KafkaRecord> {
    (record(text()), any::<i32>()).prop_map(|(mut r, partition)| {
        r.partition = partition;
        r
    })
}

fn event_source() -> impl Strategy<Value = EventSource> {
    prop_oneof![
        Just(EventSource::Msk),
        Just(EventSource::SelfManagedKafka),
        text().prop_map(|s| EventSource::from(s.as_str())),
    ]
}

/// Records for a batch, in the order a poller would push them (each topic-partition contiguous).
fn records() -> impl Strategy<Value = Vec<KafkaRecord>> {
    proptest::collection::vec(text(), 1..4).prop_flat_map(|topics| {
        let topic = proptest::sample::select(topics);
        let small_partition = (record(topic), 0..3i32).prop_map(|(mut r, p)| {
            r.partition = p;
            r
        });
        proptest::collection::vec(prop_oneof![small_partition, record(text())], 0..12).prop_map(
            |records| {
                // Group, keeping the order each group is first seen, as EventBuilder does.
                let mut groups: IndexMap<(String, i32), Vec<KafkaRecord>> = IndexMap::new();
                for r in records {
                    groups
                        .entry((r.topic.clone(), r.partition))
                        .or_default()
                        .push(r);
                }
                groups.into_values().flatten().collect()
            },
        )
    })
}

fn event() -> impl Strategy<Value = KafkaEvent> {
    (
        event_source(),
        proptest::option::of(text()),
        proptest::option::of(text()),
        records(),
    )
        .prop_map(|(source, arn, servers, records)| {
            let mut builder = KafkaEvent::builder(source).records(records);
            if let Some(arn) = arn {
                builder = builder.event_source_arn(arn);
            }
            if let Some(servers) = servers {
                builder = builder.bootstrap_servers(servers);
            }
            builder.build()
        })
}

/// An event whose group keys are arbitrary strings, unrelated to the records inside (the writer
/// must reproduce a parsed event verbatim whatever its keys).
fn event_with_arbitrary_keys() -> impl Strategy<Value = KafkaEvent> {
    (
        event_source(),
        proptest::collection::vec(
            (text(), proptest::collection::vec(any_record(), 0..3)),
            0..4,
        ),
    )
        .prop_map(|(source, groups)| {
            let mut event = KafkaEvent::builder(source).build();
            event.records = groups.into_iter().collect();
            event
        })
}

fn finished_len(writer: &EventWriter) -> usize {
    writer.clone().finish().len()
}

fn item_identifier() -> impl Strategy<Value = ItemIdentifier> {
    (non_empty_text(), 0..=i32::MAX, 0..=i64::MAX)
        .prop_map(|(topic, partition, offset)| ItemIdentifier::new(topic, partition, offset))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encoding_then_decoding_an_event_is_the_identity(event in event()) {
        let decoded = KafkaEvent::from_slice(&event.to_vec());
        prop_assert!(decoded.is_ok(), "{:?}", decoded.err());
        prop_assert_eq!(decoded.ok(), Some(event));
    }

    #[test]
    fn the_writer_and_serde_json_agree_byte_for_byte(event in event()) {
        prop_assert_eq!(event.to_vec(), serde_json::to_vec(&event).unwrap());
    }

    #[test]
    fn events_with_arbitrary_group_keys_round_trip_verbatim(event in event_with_arbitrary_keys()) {
        let written = event.to_vec();
        prop_assert_eq!(&written, &serde_json::to_vec(&event).unwrap());
        prop_assert_eq!(KafkaEvent::from_slice(&written).unwrap(), event);
    }

    #[test]
    fn pushing_records_one_by_one_builds_the_same_event(event in event()) {
        let mut writer = EventWriter::new(
            &event.event_source,
            event.event_source_arn.as_deref(),
            event.bootstrap_servers.as_deref(),
        );
        prop_assert!(writer.is_empty());
        prop_assert_eq!(writer.len(), finished_len(&writer));
        for (i, record) in event.records().enumerate() {
            writer.push(&RecordRef::from(record));
            prop_assert_eq!(writer.len(), finished_len(&writer), "after record {}", i);
            prop_assert_eq!(writer.record_count(), i + 1);
        }
        prop_assert_eq!(writer.is_empty(), event.is_empty());
        let len = writer.len();
        let payload = writer.finish();
        prop_assert_eq!(payload.len(), len);
        prop_assert_eq!(&payload, &serde_json::to_vec(&event).unwrap());
    }

    #[test]
    fn len_is_exact_after_every_step_of_an_explicitly_grouped_event(
        event in event_with_arbitrary_keys()
    ) {
        let mut writer = EventWriter::with_capacity(&event.event_source, None, None, 0);
        prop_assert_eq!(writer.len(), finished_len(&writer));
        for (key, records) in &event.records {
            writer.begin_group(key);
            prop_assert_eq!(writer.len(), finished_len(&writer), "after opening {:?}", key);
            for record in records {
                writer.push_in_group(&RecordRef::from(record));
                prop_assert_eq!(writer.len(), finished_len(&writer));
            }
        }
        prop_assert_eq!(writer.record_count(), event.len());
        prop_assert_eq!(writer.finish(), event.to_vec());
    }

    #[test]
    fn try_push_never_exceeds_the_limit_and_a_rejected_push_changes_nothing(
        event in event(),
        limit in 0usize..4096,
    ) {
        let mut writer = EventWriter::new(
            &event.event_source,
            event.event_source_arn.as_deref(),
            event.bootstrap_servers.as_deref(),
        );
        let mut accepted = Vec::new();
        for record in event.records() {
            let before = writer.clone();
            let would_be = {
                let mut probe = writer.clone();
                probe.push(&RecordRef::from(record));
                probe.len()
            };
            match writer.try_push(&RecordRef::from(record), limit) {
                Ok(()) => {
                    prop_assert!(would_be <= limit);
                    prop_assert_eq!(writer.len(), would_be);
                    accepted.push(record.clone());
                }
                Err(full) => {
                    prop_assert!(would_be > limit);
                    prop_assert_eq!(full.would_be, would_be);
                    prop_assert_eq!(full.limit, limit);
                    prop_assert_eq!(writer.len(), before.len());
                    prop_assert_eq!(writer.record_count(), before.record_count());
                    prop_assert_eq!(writer.last_record(), before.last_record());
                    prop_assert_eq!(writer.clone().finish(), before.finish());
                }
            }
            prop_assert!(writer.is_empty() || writer.len() <= limit);
            prop_assert_eq!(writer.len(), finished_len(&writer));
        }
        // What was accepted is a valid event holding exactly the accepted records.
        let payload = writer.finish();
        let parsed = KafkaEvent::from_slice(&payload).unwrap();
        prop_assert_eq!(parsed.records().cloned().collect::<Vec<_>>(), accepted);
    }

    #[test]
    fn records_copied_by_their_ranges_make_the_same_event_as_encoding_them(
        event in event(),
        keep in proptest::collection::vec(any::<bool>(), 0..64),
    ) {
        let writer = || EventWriter::new(
            &event.event_source,
            event.event_source_arn.as_deref(),
            event.bootstrap_servers.as_deref(),
        );
        let mut original = writer();
        let mut ranges = Vec::new();
        for record in event.records() {
            original.push(&RecordRef::from(record));
            ranges.push(original.last_record().unwrap());
        }
        let payload = original.finish();
        let (mut copied, mut encoded) = (writer(), writer());
        for (i, (record, range)) in event.records().zip(&ranges).enumerate() {
            if keep.get(i).copied().unwrap_or(true) {
                copied.push_encoded(&record.topic, record.partition, &payload[range.clone()]);
                encoded.push(&RecordRef::from(record));
            }
        }
        prop_assert_eq!(copied.len(), encoded.len());
        prop_assert_eq!(copied.record_count(), encoded.record_count());
        prop_assert_eq!(copied.finish(), encoded.finish());
    }

    #[test]
    fn try_push_accepts_at_exactly_the_limit_and_rejects_one_byte_below(
        event in event().prop_filter("has records", |e| !e.is_empty())
    ) {
        let mut writer = EventWriter::new(&event.event_source, None, None);
        for record in event.records() {
            let record = RecordRef::from(record);
            let exact = {
                let mut probe = writer.clone();
                probe.push(&record);
                probe.len()
            };
            let err = writer.try_push(&record, exact - 1);
            prop_assert_eq!(err, Err(kafka_lambda_events::PayloadFull {
                would_be: exact,
                limit: exact - 1,
            }));
            prop_assert!(writer.try_push(&record, exact).is_ok());
            prop_assert_eq!(writer.len(), exact);
        }
    }

    #[test]
    fn header_bytes_are_written_signed_and_read_back_from_either_form(value in bytes()) {
        let record = KafkaRecord::new("t", 0, 0).with_header("h", value.clone());
        let event = KafkaEvent::builder(EventSource::Msk).record(record).build();
        let json: Value = serde_json::from_slice(&event.to_vec()).unwrap();
        let wire = json["records"]["t-0"][0]["headers"][0]["h"].as_array().unwrap().clone();
        let signed: Vec<i64> = value.iter().map(|&b| i64::from(b as i8)).collect();
        prop_assert_eq!(wire.iter().map(|n| n.as_i64().unwrap()).collect::<Vec<_>>(), signed);

        let decoded = KafkaEvent::from_slice(&event.to_vec()).unwrap();
        prop_assert_eq!(decoded.records().next().unwrap().header("h"), Some(value.as_slice()));

        // The unsigned spelling (0..=255) reads as the same bytes.
        let mut unsigned = json.clone();
        unsigned["records"]["t-0"][0]["headers"][0]["h"] =
            value.iter().map(|&b| Value::from(b)).collect();
        let decoded = KafkaEvent::from_slice(&serde_json::to_vec(&unsigned).unwrap()).unwrap();
        prop_assert_eq!(decoded, event);
    }

    #[test]
    fn tombstones_and_null_keys_survive_a_round_trip(
        key in proptest::option::of(bytes()),
        value in proptest::option::of(bytes()),
    ) {
        let mut record = KafkaRecord::new("topic", 1, 2);
        record.key = key.clone();
        record.value = value.clone();
        let event = KafkaEvent::builder(EventSource::SelfManagedKafka).record(record).build();
        let decoded = KafkaEvent::from_slice(&event.to_vec()).unwrap();
        let record = decoded.records().next().unwrap();
        prop_assert_eq!(record.key(), key.as_deref());
        prop_assert_eq!(record.value(), value.as_deref());
        prop_assert_eq!(
            record.value_json::<Option<Value>>().is_ok_and(|v| v.is_none()),
            value.is_none()
        );
    }

    #[test]
    fn item_identifiers_round_trip_in_object_and_string_form(id in item_identifier()) {
        let object = serde_json::to_value(&id).unwrap();
        prop_assert_eq!(
            &object,
            &serde_json::json!({
                "partition": format!("{}-{}", id.topic, id.partition),
                "offset": id.offset,
            })
        );
        prop_assert_eq!(serde_json::from_value::<ItemIdentifier>(object).unwrap(), id.clone());

        let legacy = serde_json::json!({
            "topic-partition": format!("{}-{}", id.topic, id.partition),
            "offset": id.offset,
        });
        prop_assert_eq!(serde_json::from_value::<ItemIdentifier>(legacy).unwrap(), id.clone());

        let string = Value::String(id.to_string());
        prop_assert_eq!(serde_json::from_value::<ItemIdentifier>(string).unwrap(), id.clone());
        prop_assert_eq!(id.topic_partition(), TopicPartition::new(id.topic.clone(), id.partition));
    }

    #[test]
    fn batch_responses_round_trip_in_both_forms(
        ids in proptest::collection::vec((item_identifier(), any::<bool>()), 0..6)
    ) {
        let response = KafkaBatchResponse::failed(ids.iter().map(|(id, _)| id.clone()));
        let payload = serde_json::to_vec(&response).unwrap();
        prop_assert_eq!(KafkaBatchResponse::from_payload(&payload).unwrap(), response.clone());

        // A function may write some identifiers as "<topic>-<partition>-<offset>" strings.
        let mixed = serde_json::json!({
            "batchItemFailures": ids.iter().map(|(id, as_string)| {
                let identifier = if *as_string {
                    Value::String(id.to_string())
                } else {
                    serde_json::to_value(id).unwrap()
                };
                serde_json::json!({ "itemIdentifier": identifier })
            }).collect::<Vec<_>>()
        });
        let parsed = KafkaBatchResponse::from_payload(&serde_json::to_vec(&mixed).unwrap()).unwrap();
        prop_assert_eq!(&parsed, &response);
        prop_assert_eq!(
            parsed.batch_item_failures,
            ids.into_iter()
                .map(|(item_identifier, _)| BatchItemFailure { item_identifier })
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn topic_partitions_round_trip_through_display_and_parse(
        topic in non_empty_text(),
        partition in 0..=i32::MAX,
    ) {
        let tp = TopicPartition::new(topic, partition);
        prop_assert_eq!(tp.to_string().parse::<TopicPartition>().unwrap(), tp);
    }

    #[test]
    fn parsing_arbitrary_bytes_never_panics(input in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(event) = KafkaEvent::from_slice(&input) {
            prop_assert_eq!(KafkaEvent::from_slice(&event.to_vec()).unwrap(), event);
        }
        let _ = KafkaBatchResponse::from_payload(&input);
    }
}
