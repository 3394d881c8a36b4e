//! Building events from plain values, to unit-test a function without a Lambda runtime.
//!
//! ```
//! use kafka_lambda_handler::{ProcessOptions, Record, process_event, testing};
//! use serde_json::json;
//!
//! #[derive(serde::Deserialize)]
//! struct Order { id: u64 }
//!
//! async fn ship(order: Record<Order>) -> Result<(), String> {
//!     if order.value().id == 0 { Err("no id".into()) } else { Ok(()) }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let event = testing::event()
//!     .json_record("orders", 0, 5, &json!({ "id": 42 }))
//!     .json_record("orders", 0, 6, &json!({ "id": 0 }))
//!     .build();
//! let options = ProcessOptions::new().report_batch_item_failures(true);
//! let response = process_event(event, ship, &options).await.unwrap();
//! assert_eq!(response.batch_item_failures[0].item_identifier.offset, 6);
//! # });
//! ```

use kafka_lambda_events::{EventSource, KafkaEvent, KafkaRecord};
use serde::Serialize;

/// ARN used by [`msk_event`].
pub const TEST_CLUSTER_ARN: &str = "arn:aws:kafka:us-east-1:123456789012:cluster/test-cluster/abcd1234-ab12-cd34-ef56-abcdef123456-1";

/// Starts a self-managed Kafka event (`"eventSource": "SelfManagedKafka"`).
pub fn event() -> TestEvent {
    TestEvent {
        inner: KafkaEvent::builder(EventSource::SelfManagedKafka)
            .bootstrap_servers("localhost:9092"),
    }
}

/// Starts an Amazon MSK event (`"eventSource": "aws:kafka"`, with [`TEST_CLUSTER_ARN`]).
pub fn msk_event() -> TestEvent {
    TestEvent {
        inner: KafkaEvent::builder(EventSource::Msk)
            .event_source_arn(TEST_CLUSTER_ARN)
            .bootstrap_servers("b-1.test-cluster.kafka.us-east-1.amazonaws.com:9092"),
    }
}

/// An event being built; records are grouped by topic-partition in the order each group is
/// first seen. Add a partition's records in increasing offset order.
#[derive(Debug, Clone)]
pub struct TestEvent {
    inner: kafka_lambda_events::EventBuilder,
}

impl TestEvent {
    /// Adds a record whose value is `value` serialized as JSON.
    ///
    /// # Panics
    ///
    /// If `value` cannot be serialized as JSON (e.g. a map with non-string keys).
    pub fn json_record<V: Serialize + ?Sized>(
        self,
        topic: &str,
        partition: i32,
        offset: i64,
        value: &V,
    ) -> Self {
        let json = serde_json::to_vec(value)
            .unwrap_or_else(|e| panic!("test record {topic}-{partition}@{offset}: {e}"));
        self.bytes_record(topic, partition, offset, json)
    }

    /// Adds a record whose value is `text`.
    pub fn text_record(self, topic: &str, partition: i32, offset: i64, text: &str) -> Self {
        self.bytes_record(topic, partition, offset, text)
    }

    /// Adds a record whose value is `bytes`.
    pub fn bytes_record(
        self,
        topic: &str,
        partition: i32,
        offset: i64,
        bytes: impl Into<Vec<u8>>,
    ) -> Self {
        self.record(KafkaRecord::new(topic, partition, offset).with_value(bytes))
    }

    /// Adds a tombstone: a record with a null value.
    pub fn tombstone(self, topic: &str, partition: i32, offset: i64) -> Self {
        self.record(KafkaRecord::new(topic, partition, offset))
    }

    /// Adds a record built by hand, for keys, headers and timestamps
    /// (`KafkaRecord::new(..).with_key(..).with_header(..)`).
    pub fn record(mut self, record: KafkaRecord) -> Self {
        self.inner = self.inner.record(record);
        self
    }

    /// The event.
    pub fn build(self) -> KafkaEvent {
        self.inner.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_are_grouped_by_partition_in_first_seen_order() {
        let event = msk_event()
            .json_record("a", 1, 0, &json!(1))
            .text_record("b", 0, 3, "x")
            .tombstone("a", 1, 1)
            .build();
        let groups: Vec<_> = event.records.keys().cloned().collect();
        assert_eq!(groups, ["a-1", "b-0"]);
        assert_eq!(event.records["a-1"][1].value, None);
        assert_eq!(event.event_source, EventSource::Msk);

        // The event is what AWS would send: it survives the wire.
        let reparsed = KafkaEvent::from_slice(&event.to_vec()).unwrap();
        assert_eq!(reparsed, event);
    }
}
