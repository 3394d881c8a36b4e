//! Clients configured by `kafka-lambda-client` (TLS, SASL, MSK IAM), with a context that records
//! what librdkafka reported, producing to and consuming from a listener of the shared broker:
//! how the authentication tests see a login work or fail.

use kafka_lambda_client::{KafkaClientConfig, KafkaClientContext};
use rdkafka::ClientConfig;
use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What librdkafka reported to a [`RecordingContext`]: errors, log lines and token refresh
/// calls; everything else goes on to the [`KafkaClientContext`] it wraps.
#[derive(Debug, Default)]
pub struct Recording {
    inner: KafkaClientContext,
    errors: Mutex<Vec<String>>,
    logs: Mutex<Vec<String>>,
    /// How often librdkafka asked for an OAUTHBEARER token.
    pub token_requests: AtomicUsize,
}

impl Recording {
    /// Wraps `inner`.
    pub fn new(inner: KafkaClientContext) -> Arc<Recording> {
        Arc::new(Recording {
            inner,
            ..Recording::default()
        })
    }

    /// `error` callbacks so far, as `error: reason`.
    pub fn errors(&self) -> Vec<String> {
        lock(&self.errors).clone()
    }

    /// Log lines so far, as `facility: message`.
    pub fn logs(&self) -> Vec<String> {
        lock(&self.logs).clone()
    }

    /// Everything reported so far, one line each.
    pub fn transcript(&self) -> String {
        let mut all = self.errors();
        all.extend(self.logs());
        all.join("\n")
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The context handed to rdkafka: a shared [`Recording`].
#[derive(Debug, Clone)]
pub struct RecordingContext(pub Arc<Recording>);

impl ClientContext for RecordingContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        lock(&self.0.logs).push(format!("{fac}: {log_message}"));
        self.0.inner.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        lock(&self.0.errors).push(format!("{error}: {reason}"));
        self.0.inner.error(error, reason);
    }

    fn generate_oauth_token(
        &self,
        oauthbearer_config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        self.0.token_requests.fetch_add(1, Ordering::SeqCst);
        self.0.inner.generate_oauth_token(oauthbearer_config)
    }
}

impl ConsumerContext for RecordingContext {}

/// librdkafka settings from `config` plus `extra`, every log line (debug included) going to a
/// new [`Recording`], and a broken connection reported within seconds (`message.timeout.ms` 8 s,
/// `socket.connection.setup.timeout.ms` 5 s).
///
/// # Panics
///
/// When `config` is invalid.
pub fn client_config(
    config: &KafkaClientConfig,
    extra: &[(&str, &str)],
) -> (ClientConfig, Arc<Recording>) {
    let mut cc = ClientConfig::new();
    let context = config.apply(&mut cc).expect("valid client config");
    cc.set("message.timeout.ms", "8000")
        .set("socket.connection.setup.timeout.ms", "5000");
    for (key, value) in extra {
        cc.set(*key, *value);
    }
    // librdkafka writes debug lines only for the `debug` contexts a test turns on, and rdkafka
    // would otherwise set the level from the `log` crate's, which no test configures.
    cc.set_log_level(RDKafkaLogLevel::Debug);
    (cc, Recording::new(context))
}

/// Produces `values` to partition 0 of `topic` through `config`, with key `k`; returns the first
/// delivery error, if any, and what the client reported.
///
/// # Panics
///
/// When the producer cannot be made.
pub fn produce(
    config: &KafkaClientConfig,
    topic: &str,
    values: &[&str],
) -> (Result<(), KafkaError>, Arc<Recording>) {
    let (cc, recording) = client_config(config, &[]);
    let producer: FutureProducer<RecordingContext> = cc
        .create_with_context(RecordingContext(recording.clone()))
        .expect("create producer");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = runtime.block_on(async {
        for value in values {
            producer
                .send(
                    FutureRecord::to(topic)
                        .partition(0)
                        .key("k")
                        .payload(*value),
                    Duration::from_secs(8),
                )
                .await
                .map_err(|(e, _)| e)?;
        }
        Ok(())
    });
    (result, recording)
}

/// [`produce`], which must deliver every record.
///
/// # Panics
///
/// When a record is not delivered; the message carries what the client reported.
pub fn produce_ok(config: &KafkaClientConfig, topic: &str, values: &[&str]) {
    let (result, recording) = produce(config, topic, values);
    assert!(
        result.is_ok(),
        "producing to {topic} failed: {result:?}\nclient reported:\n{}",
        recording.transcript()
    );
}

/// Reads partition 0 of `topic` through `config` from the start until `count` records arrived.
///
/// # Panics
///
/// When they have not within 20 s; the message carries what the client reported.
pub fn consume(config: &KafkaClientConfig, topic: &str, count: usize) -> Vec<String> {
    let (cc, recording) = client_config(config, &[("group.id", &crate::group_name("auth"))]);
    let consumer: BaseConsumer<RecordingContext> = cc
        .create_with_context(RecordingContext(recording.clone()))
        .expect("create consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&assignment).expect("assign");
    let values = poll_values(&consumer, count, Duration::from_secs(20));
    assert!(
        values.len() >= count,
        "consumed {values:?} of {count} records from {topic} in 20 s; client reported:\n{}",
        recording.transcript()
    );
    values
}

/// Joins consumer group `group` on `topic` through `config` (committed offsets, else the
/// earliest), reads for `count` records or until `within` passed, and commits what it read.
/// Returns the values and what the client reported.
///
/// # Panics
///
/// When the consumer cannot be made or cannot commit.
pub fn consume_in_group(
    config: &KafkaClientConfig,
    topic: &str,
    group: &str,
    count: usize,
    within: Duration,
) -> (Vec<String>, Arc<Recording>) {
    let (cc, recording) = client_config(
        config,
        &[
            ("group.id", group),
            ("auto.offset.reset", "earliest"),
            ("enable.auto.commit", "false"),
        ],
    );
    let consumer: BaseConsumer<RecordingContext> = cc
        .create_with_context(RecordingContext(recording.clone()))
        .expect("create consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let values = poll_values(&consumer, count, within);
    if !values.is_empty() {
        consumer
            .commit_consumer_state(CommitMode::Sync)
            .expect("commit");
    }
    (values, recording)
}

/// The values `consumer` polls until `count` arrived or `within` passed. Errors (connection
/// setup, empty fetches) are in the recording; polling goes on.
fn poll_values(
    consumer: &BaseConsumer<RecordingContext>,
    count: usize,
    within: Duration,
) -> Vec<String> {
    let start = Instant::now();
    let mut values = Vec::new();
    while values.len() < count && start.elapsed() < within {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            values
                .push(String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned());
        }
    }
    values
}
