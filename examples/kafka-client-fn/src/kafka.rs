//! The commands carried out against the cluster, with clients made once per execution
//! environment from `kafka-lambda-client`'s configuration (so TLS, SASL and MSK IAM work as
//! they do for the poller).
//!
//! Metadata and watermarks are read through the producer, whose background thread keeps
//! serving librdkafka's callbacks (MSK IAM token refreshes among them) between invocations.

use crate::command::{
    Command, Consume, Consumed, ConsumedRecord, CreateTopic, Created, Delivered, Format, Produce,
    Produced,
};
use crate::config::Config;
use crate::error::CommandError;
use kafka_lambda_client::{ClientError, KafkaClientContext, SaslConfig};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, Timestamp, TopicPartitionList};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// The consumer's group id. Records are read by assigning the partition, so the group is
/// never joined and no offset is ever committed; librdkafka wants one all the same.
const GROUP_ID: &str = "kafka-client-fn";
/// A consume answer stops growing past this many bytes (keys, values, headers, plus a bit per
/// record): Lambda caps a synchronous response at 6 MB. `next_offset` says where to go on.
const MAX_CONSUMED_BYTES: usize = 5_000_000;
/// Per-record JSON overhead counted against `MAX_CONSUMED_BYTES`.
const RECORD_OVERHEAD_BYTES: usize = 128;
/// The answer to a command, fields in the order the command types declare them.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum Answer {
    /// To `create_topic`.
    Created(Created),
    /// To `produce`.
    Produced(Produced),
    /// To `consume`.
    Consumed(Consumed),
}

/// The clients, made once per execution environment.
pub(crate) struct Kafka {
    producer: FutureProducer<KafkaClientContext>,
    /// None with MSK IAM: rust-rdkafka's admin client never polls the queue where librdkafka
    /// asks for an OAUTHBEARER token, so it could not authenticate.
    admin: Option<AdminClient<KafkaClientContext>>,
    consumer: Arc<Mutex<BaseConsumer<KafkaClientContext>>>,
    servers: String,
    timeout: Duration,
}

impl Kafka {
    /// Makes the clients; nothing is sent to the cluster yet.
    pub(crate) fn connect(config: &Config) -> Result<Self, ClientError> {
        let timeout_ms = config.timeout.as_millis().to_string();
        let producer = config.client.create(&[
            // A produce to a missing topic must fail, not create the topic behind the caller's
            // back (librdkafka's producer default is to ask the broker to create it).
            ("allow.auto.create.topics", "false"),
            ("message.timeout.ms", &timeout_ms),
        ])?;
        let msk_iam = matches!(config.client.auth.sasl, Some(SaslConfig::AwsMskIam(_)));
        let admin = if msk_iam {
            None
        } else {
            Some(config.client.create(&[])?)
        };
        let consumer = config.client.create(&[
            ("group.id", GROUP_ID),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("allow.auto.create.topics", "false"),
            ("fetch.wait.max.ms", "100"),
            // The end of a partition is reported as an event, so a read stops there even when
            // the last offsets hold no record to return (transaction markers, aborted or
            // compacted records).
            ("enable.partition.eof", "true"),
        ])?;
        Ok(Kafka {
            producer,
            admin,
            consumer: Arc::new(Mutex::new(consumer)),
            servers: config.client.bootstrap_servers.clone(),
            timeout: config.timeout,
        })
    }

    /// Carries out `command` and returns the answer.
    pub(crate) async fn execute(&self, command: Command) -> Result<Answer, CommandError> {
        let (action, topic) = match &command {
            Command::CreateTopic(c) => ("create_topic", c.topic.clone()),
            Command::Produce(p) => ("produce", p.topic.clone()),
            Command::Consume(c) => ("consume", c.topic.clone()),
        };
        let span = tracing::info_span!("command", action, topic);
        async move {
            let answer = match command {
                Command::CreateTopic(c) => Answer::Created(self.create_topic(c).await?),
                Command::Produce(p) => Answer::Produced(self.produce(p).await?),
                Command::Consume(c) => Answer::Consumed(self.consume(c).await?),
            };
            tracing::info!("command done");
            Ok(answer)
        }
        .instrument(span)
        .await
        .inspect_err(|error: &CommandError| tracing::error!(%error, "command failed"))
    }

    async fn create_topic(&self, command: CreateTopic) -> Result<Created, CommandError> {
        let Some(admin) = &self.admin else {
            return Err(CommandError::Unsupported(
                "create_topic is not available with MSK IAM authentication: the Kafka admin \
                 client cannot refresh its IAM token yet; create the topic with the MSK console, \
                 the AWS CLI or a Kafka admin tool"
                    .to_owned(),
            ));
        };
        // -1: the broker's default.replication.factor (KIP-464).
        let replication = TopicReplication::Fixed(command.replication_factor.unwrap_or(-1));
        let mut topic = NewTopic::new(&command.topic, command.partitions, replication);
        for (key, value) in &command.config {
            topic = topic.set(key, value);
        }
        let options = AdminOptions::new()
            .request_timeout(Some(self.timeout))
            .operation_timeout(Some(self.timeout));
        let results = admin
            .create_topics([&topic], &options)
            .await
            .map_err(|error| self.classify("creating the topic", error))?;
        match results.into_iter().next() {
            Some(Ok(_)) => {}
            Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => {
                return Err(CommandError::TopicExists(command.topic));
            }
            Some(Err((_, code))) => {
                return Err(self.classify("creating the topic", KafkaError::AdminOp(code)));
            }
            None => {
                return Err(CommandError::Kafka {
                    operation: "creating the topic".to_owned(),
                    detail: "the broker answered without a result for the topic".to_owned(),
                });
            }
        }
        // The controller answers before every broker knows the topic; a produce right after
        // this answer must find it.
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.partitions(&command.topic).await {
                Ok(partitions) if partitions >= command.partitions => break,
                Ok(_) | Err(CommandError::TopicNotFound(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ => {
                    tracing::warn!("the topic was created but its metadata is not complete yet");
                    break;
                }
            }
        }
        Ok(Created {
            topic: command.topic,
            partitions: command.partitions,
        })
    }

    async fn produce(&self, command: Produce) -> Result<Produced, CommandError> {
        let partitions = self.partitions(&command.topic).await?;
        let mut prepared = Vec::with_capacity(command.records.len());
        for (index, record) in command.records.iter().enumerate() {
            if let Some(partition) = record.partition
                && partition >= partitions
            {
                return Err(CommandError::PartitionNotFound {
                    topic: command.topic,
                    partition,
                    partitions,
                });
            }
            prepared.push((record.bytes(command.format, index)?, record));
        }
        let topic = command.topic.as_str();
        let sends = prepared.iter().map(|(bytes, record)| {
            let mut headers = OwnedHeaders::new_with_capacity(bytes.headers.len());
            for (key, value) in &bytes.headers {
                headers = headers.insert(Header {
                    key,
                    value: value.as_deref(),
                });
            }
            let mut message = FutureRecord::<[u8], [u8]>::to(topic).headers(headers);
            if let Some(key) = &bytes.key {
                message = message.key(key.as_slice());
            }
            if let Some(value) = &bytes.value {
                message = message.payload(value.as_slice());
            }
            if let Some(partition) = record.partition {
                message = message.partition(partition);
            }
            if let Some(timestamp) = record.timestamp {
                message = message.timestamp(timestamp);
            }
            self.producer.send(message, self.timeout)
        });
        let results = futures::future::join_all(sends).await;
        let mut delivered = Vec::with_capacity(results.len());
        let mut failed = Vec::new();
        for (index, result) in results.into_iter().enumerate() {
            match result {
                Ok(delivery) => delivered.push(Delivered {
                    partition: delivery.partition,
                    offset: delivery.offset,
                }),
                Err((error, _)) => failed.push((index, error.to_string())),
            }
        }
        if !failed.is_empty() {
            return Err(CommandError::ProduceFailed {
                topic: command.topic,
                count: prepared.len(),
                failed,
            });
        }
        Ok(Produced {
            topic: command.topic,
            records: delivered,
        })
    }

    async fn consume(&self, command: Consume) -> Result<Consumed, CommandError> {
        let partitions = self.partitions(&command.topic).await?;
        if command.partition >= partitions {
            return Err(CommandError::PartitionNotFound {
                topic: command.topic,
                partition: command.partition,
                partitions,
            });
        }
        let (low, high) = {
            let producer = self.producer.clone();
            let (topic, partition, timeout) =
                (command.topic.clone(), command.partition, self.timeout);
            blocking(move || {
                producer
                    .client()
                    .fetch_watermarks(&topic, partition, timeout)
            })
            .await
            .map_err(|error| self.classify("reading the partition's offsets", error))?
        };
        let start = command.from_offset.max(low);
        let mut consumed = Consumed {
            topic: command.topic.clone(),
            partition: command.partition,
            records: Vec::new(),
            next_offset: start,
            low_watermark: low,
            high_watermark: high,
        };
        if start >= high {
            return Ok(consumed);
        }
        let consumer = Arc::clone(&self.consumer);
        let records = blocking(move || {
            let consumer = consumer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            read_partition(&consumer, &command, start, high)
        })
        .await
        .map_err(|error| match error {
            ReadError::Kafka(error) => self.classify("reading records", error),
            ReadError::Command(error) => error,
        })?;
        let (records, reached_end) = records;
        if let Some(last) = records.last() {
            consumed.next_offset = last.offset + 1;
        }
        if reached_end {
            // Everything before the end the partition had is read, records or not.
            consumed.next_offset = consumed.next_offset.max(high);
        }
        consumed.records = records;
        Ok(consumed)
    }

    /// How many partitions `topic` has; [`CommandError::TopicNotFound`] when it does not exist.
    async fn partitions(&self, topic: &str) -> Result<i32, CommandError> {
        let producer = self.producer.clone();
        let (name, timeout) = (topic.to_owned(), self.timeout);
        let metadata = blocking(move || producer.client().fetch_metadata(Some(&name), timeout))
            .await
            .map_err(|error| self.classify("reading the topic's metadata", error))?;
        let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Err(CommandError::TopicNotFound(topic.to_owned()));
        };
        match found.error().map(RDKafkaErrorCode::from) {
            None if !found.partitions().is_empty() => Ok(found.partitions().len() as i32),
            None
            | Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
                Err(CommandError::TopicNotFound(topic.to_owned()))
            }
            Some(code) => Err(self.classify(
                "reading the topic's metadata",
                KafkaError::MetadataFetch(code),
            )),
        }
    }

    /// An unanswered request is an unreachable cluster; anything else is reported as it is.
    fn classify(&self, operation: &str, error: KafkaError) -> CommandError {
        // Admin operations carry their code outside `rdkafka_error_code`.
        let code = match &error {
            KafkaError::AdminOp(code) => Some(*code),
            other => other.rdkafka_error_code(),
        };
        let unreachable = matches!(
            code,
            Some(
                RDKafkaErrorCode::OperationTimedOut
                    | RDKafkaErrorCode::RequestTimedOut
                    | RDKafkaErrorCode::AllBrokersDown
                    | RDKafkaErrorCode::BrokerTransportFailure
                    | RDKafkaErrorCode::NetworkException
                    | RDKafkaErrorCode::Resolve
                    | RDKafkaErrorCode::BrokerNotAvailable
            )
        );
        if unreachable {
            CommandError::BrokerUnreachable {
                servers: self.servers.clone(),
                timeout: self.timeout,
                detail: format!("{operation}: {error}"),
            }
        } else {
            CommandError::Kafka {
                operation: operation.to_owned(),
                detail: error.to_string(),
            }
        }
    }
}

enum ReadError {
    Kafka(KafkaError),
    Command(CommandError),
}

/// Reads `command`'s partition from `start` until `max_records`, the end it had (`high`), the
/// byte budget or the timeout, whichever comes first; also says whether the end was reached
/// (the offsets before `high` may hold no record at all: transaction markers, aborted or
/// compacted records).
fn read_partition(
    consumer: &BaseConsumer<KafkaClientContext>,
    command: &Consume,
    start: i64,
    high: i64,
) -> Result<(Vec<ConsumedRecord>, bool), ReadError> {
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&command.topic, command.partition, Offset::Offset(start))
        .map_err(ReadError::Kafka)?;
    consumer.assign(&assignment).map_err(ReadError::Kafka)?;
    let deadline = Instant::now() + Duration::from_millis(command.timeout_ms);
    let mut records = Vec::new();
    let mut bytes = 0;
    let mut reached_end = false;
    let result = loop {
        if records.len() >= command.max_records || bytes >= MAX_CONSUMED_BYTES {
            break Ok(());
        }
        if records
            .last()
            .is_some_and(|last: &ConsumedRecord| last.offset + 1 >= high)
        {
            reached_end = true;
            break Ok(());
        }
        let Some(wait) = deadline.checked_duration_since(Instant::now()) else {
            break Ok(());
        };
        let message = match consumer.poll(wait) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(partition))) if partition == command.partition => {
                reached_end = true;
                break Ok(());
            }
            Some(Err(KafkaError::PartitionEOF(_))) => continue,
            Some(Err(error)) => break Err(ReadError::Kafka(error)),
            Some(Ok(message)) => message,
        };
        // A fetch answered for an earlier assignment may still be queued.
        if message.topic() != command.topic
            || message.partition() != command.partition
            || message.offset() < start
        {
            continue;
        }
        match record(&message, command.format) {
            Ok(record) => {
                bytes += record_size(&record);
                records.push(record);
            }
            Err(error) => break Err(ReadError::Command(error)),
        }
    };
    // Stop fetching until the next command assigns again.
    let _ = consumer.unassign();
    result.map(|()| (records, reached_end))
}

fn record(message: &BorrowedMessage<'_>, format: Format) -> Result<ConsumedRecord, CommandError> {
    let not_text = |field: String| CommandError::NotText {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        field,
    };
    let encode = |bytes: Option<&[u8]>, field: &dyn Fn() -> String| {
        bytes
            .map(|bytes| format.encode(bytes).ok_or_else(|| not_text(field())))
            .transpose()
    };
    let key = encode(message.key(), &|| "key".to_owned())?;
    let value = encode(message.payload(), &|| "value".to_owned())?;
    let mut headers = Vec::new();
    // Names as bytes (rdkafka's own reader panics on a name that is not UTF-8): such a name
    // cannot be a key of the JSON answer, so the read fails naming the record.
    for (name, value) in kafka_lambda_client::raw_headers(message) {
        let name = std::str::from_utf8(name).map_err(|_| {
            not_text(format!(
                "header name `{}` (not UTF-8, in any format)",
                String::from_utf8_lossy(name)
            ))
        })?;
        let value = encode(value, &|| format!("header `{name}`"))?;
        headers.push(BTreeMap::from([(name.to_owned(), value)]));
    }
    let (timestamp, timestamp_type) = match message.timestamp() {
        Timestamp::NotAvailable => (None, None),
        Timestamp::CreateTime(ms) => (Some(ms), Some("create_time")),
        Timestamp::LogAppendTime(ms) => (Some(ms), Some("log_append_time")),
    };
    Ok(ConsumedRecord {
        offset: message.offset(),
        key,
        value,
        headers,
        timestamp,
        timestamp_type,
    })
}

fn record_size(record: &ConsumedRecord) -> usize {
    let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    RECORD_OVERHEAD_BYTES
        + text(&record.key)
        + text(&record.value)
        + record
            .headers
            .iter()
            .flat_map(|h| h.iter())
            .map(|(name, value)| name.len() + text(value))
            .sum::<usize>()
}

/// Runs a blocking librdkafka call off the async workers.
async fn blocking<T, E>(f: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: Send + 'static + From<KafkaError>,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        // Only when the runtime shuts down.
        Err(_) => Err(KafkaError::Canceled.into()),
    }
}

impl From<KafkaError> for ReadError {
    fn from(error: KafkaError) -> Self {
        ReadError::Kafka(error)
    }
}
