//! The event Lambda delivers for a Kafka trigger.

use crate::record::KafkaRecord;
use indexmap::IndexMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Where the event comes from (`eventSource`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventSource {
    /// Amazon MSK: `"aws:kafka"`; the event carries the cluster's `eventSourceArn`.
    Msk,
    /// A self-managed Apache Kafka cluster: `"SelfManagedKafka"`.
    SelfManagedKafka,
    /// Any other value, kept verbatim so an event from a newer source still parses.
    Other(String),
}

impl EventSource {
    /// The wire value, e.g. `aws:kafka`.
    pub fn as_str(&self) -> &str {
        match self {
            EventSource::Msk => "aws:kafka",
            EventSource::SelfManagedKafka => "SelfManagedKafka",
            EventSource::Other(s) => s,
        }
    }
}

impl From<&str> for EventSource {
    fn from(s: &str) -> Self {
        match s {
            "aws:kafka" => EventSource::Msk,
            "SelfManagedKafka" => EventSource::SelfManagedKafka,
            other => EventSource::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for EventSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventSource {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(EventSource::from(s.as_ref()))
    }
}

/// The Kafka event: a batch of records grouped by `"<topic>-<partition>"`, each group in offset
/// order, groups in the order they were sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaEvent {
    /// `aws:kafka` (MSK) or `SelfManagedKafka`.
    pub event_source: EventSource,
    /// ARN of the MSK cluster; absent for self-managed Kafka.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_source_arn: Option<String>,
    /// Comma-separated `host:port` list of the cluster's bootstrap brokers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_servers: Option<String>,
    /// Records keyed by `"<topic>-<partition>"`, in wire order.
    pub records: IndexMap<String, Vec<KafkaRecord>>,
}

impl KafkaEvent {
    /// Starts building an event (for tests and producers of events).
    pub fn builder(source: EventSource) -> EventBuilder {
        EventBuilder {
            event: KafkaEvent {
                event_source: source,
                event_source_arn: None,
                bootstrap_servers: None,
                records: IndexMap::new(),
            },
        }
    }

    /// All records, group by group, each group in wire (offset) order.
    pub fn records(&self) -> impl Iterator<Item = &KafkaRecord> {
        self.records.values().flatten()
    }

    /// Number of records in the event.
    pub fn len(&self) -> usize {
        self.records.values().map(Vec::len).sum()
    }

    /// Whether the event has no records.
    pub fn is_empty(&self) -> bool {
        self.records.values().all(Vec::is_empty)
    }

    /// The bootstrap servers as a list.
    pub fn bootstrap_server_list(&self) -> Vec<&str> {
        self.bootstrap_servers
            .as_deref()
            .map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Builds a [`KafkaEvent`] from records; records are grouped under their `topic-partition` in the
/// order each group is first seen.
#[derive(Debug, Clone)]
pub struct EventBuilder {
    event: KafkaEvent,
}

impl EventBuilder {
    /// Sets `eventSourceArn` (MSK cluster ARN).
    pub fn event_source_arn(mut self, arn: impl Into<String>) -> Self {
        self.event.event_source_arn = Some(arn.into());
        self
    }

    /// Sets `bootstrapServers` (comma-separated `host:port`).
    pub fn bootstrap_servers(mut self, servers: impl Into<String>) -> Self {
        self.event.bootstrap_servers = Some(servers.into());
        self
    }

    /// Adds a record.
    pub fn record(mut self, record: KafkaRecord) -> Self {
        let key = record.topic_partition().to_string();
        self.event.records.entry(key).or_default().push(record);
        self
    }

    /// Adds records.
    pub fn records(self, records: impl IntoIterator<Item = KafkaRecord>) -> Self {
        records.into_iter().fold(self, EventBuilder::record)
    }

    /// The event.
    pub fn build(self) -> KafkaEvent {
        self.event
    }
}
