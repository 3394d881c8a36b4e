//! The `"<topic>-<partition>"` key that groups records in an event.

use std::fmt;
use std::str::FromStr;

/// A topic and partition, written `topic-partition` (the key of the event's `records` object and
/// the `topic-partition` field of a batch item failure). Topic names may contain `-` themselves:
/// the partition is what follows the **last** `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic name.
    pub topic: String,
    /// The partition number.
    pub partition: i32,
}

impl TopicPartition {
    /// Makes a topic-partition.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A string is not of the form `<topic>-<partition>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not `<topic>-<partition>` with a non-empty topic and a partition number")]
pub struct ParseTopicPartitionError {
    input: String,
}

impl FromStr for TopicPartition {
    type Err = ParseTopicPartitionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseTopicPartitionError {
            input: s.to_owned(),
        };
        let (topic, partition) = s.rsplit_once('-').ok_or_else(err)?;
        if topic.is_empty()
            || partition.is_empty()
            || !partition.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(err());
        }
        let partition = partition.parse().map_err(|_| err())?;
        Ok(TopicPartition {
            topic: topic.to_owned(),
            partition,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partition_follows_the_last_dash() {
        let tp: TopicPartition = "my-topic-name-12".parse().unwrap();
        assert_eq!(tp, TopicPartition::new("my-topic-name", 12));
        assert_eq!(tp.to_string(), "my-topic-name-12");
    }

    #[test]
    fn malformed_keys_are_rejected() {
        for bad in ["", "topic", "-0", "topic-", "topic-x", "topic-99999999999"] {
            assert!(bad.parse::<TopicPartition>().is_err(), "{bad:?}");
        }
    }
}
