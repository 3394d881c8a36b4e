//! What the auth tests run against: the shared Apache Kafka broker of `scripts/services.sh`, one
//! listener per security protocol ([`listeners`]: SASL_PLAINTEXT, SSL, mTLS, SASL_SSL; its test
//! users in [`users`]), with topics created through its PLAINTEXT listener; certificates the
//! broker does not trust, made by the tests with rcgen ([`OwnCa`]); a TCP relay on another
//! loopback address for hostname checks ([`Relay`]); and a client context that records what
//! librdkafka reported.

use kafka_lambda_client::{KafkaClientConfig, KafkaClientContext};
pub(crate) use kafka_lambda_tests::users;
use kafka_lambda_tests::{Listeners, services, topic_name};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The shared broker's authenticated listeners and the directory of its PEM files.
pub(crate) fn listeners() -> &'static Listeners {
    services().listeners()
}

/// The CA every listener's certificate comes from (`$KAFKA_TLS_DIR/ca.pem`).
pub(crate) fn broker_ca() -> PathBuf {
    listeners().tls_dir.join("ca.pem")
}

/// The client certificate and key the mTLS listener trusts (`client.pem`, `client.key`).
pub(crate) fn trusted_client_cert() -> (PathBuf, PathBuf) {
    let dir = &listeners().tls_dir;
    (dir.join("client.pem"), dir.join("client.key"))
}

/// A fresh topic of one partition on the shared broker, created through its PLAINTEXT listener;
/// every listener reads and writes it (the test users are super users).
pub(crate) fn new_topic(test: &str) -> String {
    let topic = topic_name(test);
    kafka_lambda_tests::create_topic(&topic, 1);
    topic
}

/// A fresh directory under the system temp dir.
pub(crate) fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join("kafka-lambda-client-tests")
        .join(kafka_lambda_tests::unique_name(test));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// A CA made by the test with rcgen, which the shared broker knows nothing about, its PEM
/// written to a file: a broker certificate checked against it fails, and a client certificate
/// it signs is refused by the mTLS listener.
pub(crate) struct OwnCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// The CA's certificate, PEM.
    pub(crate) pem: PathBuf,
}

impl OwnCa {
    /// A new CA called `name`, written to `dir/<name>.pem`.
    pub(crate) fn create(dir: &Path, name: &str) -> OwnCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
            .expect("CA cert");
        let pem = dir.join(format!("{name}.pem"));
        std::fs::write(&pem, issuer.pem()).expect("write CA");
        OwnCa { issuer, pem }
    }

    /// A client certificate with common name `cn` signed by this CA, as `dir/<stem>.pem` and
    /// `dir/<stem>.key`.
    pub(crate) fn client_cert(&self, dir: &Path, cn: &str, stem: &str) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        let cert_path = dir.join(format!("{stem}.pem"));
        let key_path = dir.join(format!("{stem}.key"));
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        (cert_path, key_path)
    }
}

/// A plain TCP relay from a free port on 127.0.0.2 (loopback, but an address the broker's
/// certificate does not name) to a listener of the shared broker. It copies bytes both ways and
/// never looks at them: the TLS session is the broker's own, end to end. Runs until the test
/// process ends.
pub(crate) struct Relay {
    /// `127.0.0.2:port`.
    pub(crate) address: String,
}

impl Relay {
    /// Relays to `target` (`host:port`).
    pub(crate) fn to(target: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2 (Linux loopback)");
        let address = listener.local_addr().expect("address").to_string();
        let target = target.to_owned();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ]
                .into_iter()
                .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Relay { address }
    }
}

/// A context that delegates to [`KafkaClientContext`] and records what librdkafka reported:
/// errors, log lines and token refresh calls.
#[derive(Default)]
pub(crate) struct Recording {
    inner: KafkaClientContext,
    /// `error` callbacks, as `error: reason`.
    pub(crate) errors: Mutex<Vec<String>>,
    /// Log lines, as `facility: message`.
    pub(crate) logs: Mutex<Vec<String>>,
    /// How often librdkafka asked for an OAUTHBEARER token.
    pub(crate) token_requests: AtomicUsize,
}

impl Recording {
    /// Wraps `inner`.
    pub(crate) fn new(inner: KafkaClientContext) -> Arc<Recording> {
        Arc::new(Recording {
            inner,
            ..Recording::default()
        })
    }

    /// Errors so far.
    pub(crate) fn errors(&self) -> Vec<String> {
        self.errors.lock().expect("lock").clone()
    }

    /// Log lines so far.
    pub(crate) fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("lock").clone()
    }

    /// Everything reported so far, one line each.
    pub(crate) fn transcript(&self) -> String {
        let mut all = self.errors();
        all.extend(self.logs.lock().expect("lock").iter().cloned());
        all.join("\n")
    }
}

/// The context handed to rdkafka: a shared [`Recording`].
#[derive(Clone)]
pub(crate) struct RecordingContext(pub Arc<Recording>);

impl ClientContext for RecordingContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.0
            .logs
            .lock()
            .expect("lock")
            .push(format!("{fac}: {log_message}"));
        self.0.inner.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.0
            .errors
            .lock()
            .expect("lock")
            .push(format!("{error}: {reason}"));
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

/// librdkafka settings from `config` plus `extra`, with the recording context.
pub(crate) fn client_config(
    config: &KafkaClientConfig,
    extra: &[(&str, &str)],
) -> (ClientConfig, Arc<Recording>) {
    let mut cc = ClientConfig::new();
    let context = config.apply(&mut cc).expect("valid client config");
    // Fail fast: a broken connection is reported within seconds, not after librdkafka's defaults.
    cc.set("message.timeout.ms", "8000")
        .set("socket.connection.setup.timeout.ms", "5000");
    for (key, value) in extra {
        cc.set(*key, *value);
    }
    // Every log line reaches the recording, debug included: librdkafka writes debug lines only
    // for the `debug` contexts a test turns on, and rdkafka would otherwise set the level from
    // the `log` crate's, which no test configures.
    cc.set_log_level(RDKafkaLogLevel::Debug);
    (cc, Recording::new(context))
}

/// Produces `values` to partition 0 of `topic`; returns the first delivery error, if any.
pub(crate) fn produce(
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

/// [`produce`], panicking with what the client reported when a record is not delivered.
pub(crate) fn produce_ok(config: &KafkaClientConfig, topic: &str, values: &[&str]) {
    let (result, recording) = produce(config, topic, values);
    assert!(
        result.is_ok(),
        "producing to {topic} failed: {result:?}\nclient reported:\n{}",
        recording.transcript()
    );
}

/// Reads partition 0 of `topic` from the start until `count` records arrived (or 20 s passed).
pub(crate) fn consume(config: &KafkaClientConfig, topic: &str, count: usize) -> Vec<String> {
    let (cc, recording) = client_config(
        config,
        &[("group.id", &kafka_lambda_tests::group_name("auth"))],
    );
    let consumer: BaseConsumer<RecordingContext> = cc
        .create_with_context(RecordingContext(recording.clone()))
        .expect("create consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&assignment).expect("assign");
    poll_values(&consumer, &recording, topic, count)
}

/// Joins consumer group `group` on `topic` (committed offsets, else the earliest), reads for
/// `count` records or until `within` passed, and commits what it read. Returns the values and
/// what the client reported.
pub(crate) fn consume_in_group(
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
    let start = Instant::now();
    let mut values = Vec::new();
    while values.len() < count && start.elapsed() < within {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            values
                .push(String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned());
        }
    }
    if !values.is_empty() {
        consumer
            .commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
            .expect("commit");
    }
    (values, recording)
}

fn poll_values(
    consumer: &BaseConsumer<RecordingContext>,
    recording: &Recording,
    topic: &str,
    count: usize,
) -> Vec<String> {
    let start = Instant::now();
    let mut values = Vec::new();
    while values.len() < count {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "consumed {values:?} of {count} records from {topic} in 20 s; client reported:\n{}",
            recording.transcript()
        );
        // Errors (connection setup, empty fetches) are in the recording; keep polling.
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            values
                .push(String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned());
        }
    }
    values
}

/// How many records partition 0 of `topic` holds (its high watermark), asked through the
/// PLAINTEXT listener: what a refused client cannot have changed.
pub(crate) fn records_in(topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", services().kafka_bootstrap_servers())
        .create()
        .expect("a metadata client");
    let (low, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .expect("watermarks");
    high - low
}

/// Waits until `condition` holds; panics with `what` and the transcript after `timeout`.
pub(crate) fn wait_until(
    timeout: Duration,
    what: &str,
    recording: &Recording,
    mut condition: impl FnMut() -> bool,
) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting until {what}; client reported:\n{}",
            recording.transcript()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `f` with a `tracing` subscriber (this thread only) that captures everything at debug
/// and above; returns `f`'s result and the captured text.
pub(crate) fn capture_tracing<T>(f: impl FnOnce() -> T) -> (T, String) {
    let buffer = Arc::new(Mutex::new(Vec::<u8>::new()));
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || CaptureWriter(writer.clone()))
        .finish();
    let result = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&buffer.lock().expect("lock")).into_owned();
    (result, text)
}

struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
