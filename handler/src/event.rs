//! Reading the invocation payload as a Kafka event, and checking what processing relies on.

use crate::error::InvalidEvent;
use kafka_lambda_events::{KafkaEvent, KafkaRecord};

/// Parses the payload; the error names the offending field (`records.orders-0[3].value`).
pub(crate) fn parse(payload: &[u8]) -> Result<KafkaEvent, InvalidEvent> {
    let event = KafkaEvent::from_slice(payload)?;
    validate(&event)?;
    Ok(event)
}

/// Checks that every record sits in its own `topic-partition` group and that offsets increase
/// within a group: in-order processing and partial batch responses depend on both.
pub(crate) fn validate(event: &KafkaEvent) -> Result<(), InvalidEvent> {
    for (group, records) in &event.records {
        if let Some(record) = records.iter().find(|r| !belongs_to(r, group)) {
            return Err(InvalidEvent::Misgrouped {
                group: group.clone(),
                record: record.id(),
            });
        }
        if let Some(pair) = records.windows(2).find(|w| w[1].offset <= w[0].offset) {
            return Err(InvalidEvent::OutOfOrder {
                group: group.clone(),
                previous: pair[0].offset,
                offset: pair[1].offset,
            });
        }
    }
    Ok(())
}

fn belongs_to(record: &KafkaRecord, group: &str) -> bool {
    group
        .strip_prefix(record.topic.as_str())
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|partition| partition.parse::<i32>().ok())
        == Some(record.partition)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_lambda_events::EventSource;

    /// An event whose one group, `group`, holds records of `topic`'s `partition` at `offsets`.
    fn event_with_group(
        group: &str,
        (topic, partition): (&str, i32),
        offsets: &[i64],
    ) -> KafkaEvent {
        let mut event = KafkaEvent::builder(EventSource::SelfManagedKafka).build();
        let records = offsets
            .iter()
            .map(|&offset| KafkaRecord::new(topic, partition, offset))
            .collect();
        event.records.insert(group.to_owned(), records);
        event
    }

    #[test]
    fn a_well_formed_event_is_valid() {
        let event = event_with_group("my-topic-2", ("my-topic", 2), &[7, 9]);
        validate(&event).unwrap();
    }

    #[test]
    fn a_record_in_the_wrong_group_is_rejected() {
        let event = event_with_group("orders-0", ("orders", 1), &[7]);
        let err = validate(&event).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid Kafka event: record orders-1@7 is in group `orders-0`"
        );
    }

    #[test]
    fn offsets_must_increase_within_a_group() {
        let event = event_with_group("orders-0", ("orders", 0), &[7, 7]);
        let err = validate(&event).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid Kafka event: in group `orders-0`, offset 7 follows offset 7"
        );
    }

    #[test]
    fn a_payload_that_is_not_a_kafka_event_names_the_field() {
        let err =
            parse(br#"{"eventSource":"aws:kafka","records":{"t-0":[{"topic":1}]}}"#).unwrap_err();
        assert!(matches!(err, InvalidEvent::Parse(_)));
        assert!(err.to_string().contains("records.t-0[0].topic"), "{err}");
    }
}
