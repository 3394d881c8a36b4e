//! What the auth tests run against: their own tansu brokers with SCRAM users (sqlite storage, so
//! users survive the restart with `--authentication`), stunnel as the TLS terminator in front of
//! them, certificates made with rcgen, and a client context that records what librdkafka
//! reported. Every process is started on free ports in its own directory and ended on drop; the
//! shared broker of `scripts/services.sh` is never touched.

use kafka_lambda_client::{KafkaClientConfig, KafkaClientContext};
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
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// A fresh directory under the system temp dir.
pub(crate) fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join("kafka-lambda-client-tests")
        .join(kafka_lambda_tests::unique_name(test));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn wait_for_port(port: u16, what: &str, child: &mut Child, log: &Path) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited ({status}) while starting:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what} did not listen on {port} within 30 s:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process that is killed when dropped.
pub(crate) struct Process {
    child: Child,
    /// Its combined output.
    pub(crate) log: PathBuf,
}

impl Process {
    fn spawn(mut command: Command, log: PathBuf, what: &str) -> Process {
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Process { child, log }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The tansu binary: on `PATH`, else where `cargo install` put it.
fn tansu() -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("tansu"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            let home = std::env::var_os("CARGO_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo")
                });
            home.join("bin/tansu")
        })
}

/// SCRAM mechanism of a tansu user.
#[derive(Clone, Copy)]
pub(crate) enum Scram {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

/// A tansu broker of its own.
pub(crate) struct Broker {
    process: Process,
    /// The port tansu listens on.
    pub(crate) port: u16,
    /// The address it advertises (itself, or the TLS terminator in front of it).
    pub(crate) advertised_port: u16,
}

impl Broker {
    /// Starts tansu on a fresh sqlite store, creates `users` and `topics` (one partition each),
    /// then restarts it, with authentication required when there are users. With `advertised_port`, clients are sent
    /// to that port (a TLS terminator in front) instead of tansu's own.
    pub(crate) fn start(
        dir: &Path,
        users: &[(&str, &str, Scram)],
        topics: &[&str],
        advertised_port: Option<u16>,
    ) -> Broker {
        let port = free_port();
        let advertised_port = advertised_port.unwrap_or(port);
        let url = format!("tcp://127.0.0.1:{port}");
        let mut setup = Self::spawn(dir, port, port, false, "tansu-setup.log");
        for (name, password, scram) in users {
            let mechanism = match scram {
                Scram::Sha256 => "scram256",
                Scram::Sha512 => "scram512",
            };
            run(
                Command::new(tansu())
                    .args(["user", "create", name, password, "--mechanism", mechanism])
                    .args(["--broker", &url]),
                "tansu user create",
            );
        }
        for topic in topics {
            run(
                Command::new(tansu())
                    .args(["topic", "create", topic, "--partitions", "1"])
                    .args(["--broker", &url]),
                "tansu topic create",
            );
        }
        setup.stop();
        let authentication = !users.is_empty();
        let process = Self::spawn(dir, port, advertised_port, authentication, "tansu.log");
        Broker {
            process,
            port,
            advertised_port,
        }
    }

    fn spawn(dir: &Path, port: u16, advertised: u16, auth: bool, log: &str) -> Process {
        let mut command = Command::new(tansu());
        command
            .current_dir(dir)
            .args(["broker", "--storage-engine", "sqlite://tansu.db"])
            .args(["--listener-url", &format!("tcp://127.0.0.1:{port}")])
            .args([
                "--advertised-listener-url",
                &format!("tcp://127.0.0.1:{advertised}"),
            ]);
        if auth {
            command.arg("--authentication");
        }
        let mut process = Process::spawn(
            command,
            dir.join(log),
            "tansu (scripts/services.sh install)",
        );
        let log = process.log.clone();
        wait_for_port(port, "tansu", &mut process.child, &log);
        process
    }

    /// `host:port` clients bootstrap from.
    pub(crate) fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.advertised_port)
    }

    /// The broker's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.process.log).unwrap_or_default()
    }
}

fn run(command: &mut Command, what: &str) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA and the certificates the TLS tests need, written as PEM files into a directory.
pub(crate) struct Pki {
    /// The CA that signed the server and client certificates.
    pub(crate) ca: PathBuf,
    /// Another CA, which signed nothing here.
    pub(crate) other_ca: PathBuf,
    /// Server certificate for 127.0.0.1 and localhost.
    pub(crate) server_cert: PathBuf,
    /// Its key.
    pub(crate) server_key: PathBuf,
    /// Server certificate naming only `broker.elsewhere.example`.
    pub(crate) wrong_host_cert: PathBuf,
    /// Its key.
    pub(crate) wrong_host_key: PathBuf,
    /// Client certificate for mTLS.
    pub(crate) client_cert: PathBuf,
    /// Its key.
    pub(crate) client_key: PathBuf,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA cert")
}

fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
    dir: &Path,
    stem: &str,
) -> (PathBuf, PathBuf) {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names.clone()).expect("leaf params");
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_default(),
    );
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, issuer).expect("sign leaf");
    let cert_path = dir.join(format!("{stem}.pem"));
    let key_path = dir.join(format!("{stem}.key"));
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    (cert_path, key_path)
}

impl Pki {
    /// Makes everything in `dir`.
    pub(crate) fn create(dir: &Path) -> Pki {
        let ca_issuer = ca("kafka-lambda test CA");
        let other = ca("some other CA");
        let ca = dir.join("ca.pem");
        let other_ca = dir.join("other-ca.pem");
        std::fs::write(&ca, ca_issuer.pem()).expect("write CA");
        std::fs::write(&other_ca, other.pem()).expect("write CA");
        let (server_cert, server_key) = leaf(
            &ca_issuer,
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
            dir,
            "server",
        );
        let (wrong_host_cert, wrong_host_key) = leaf(
            &ca_issuer,
            &["broker.elsewhere.example"],
            ExtendedKeyUsagePurpose::ServerAuth,
            dir,
            "wrong-host",
        );
        let (client_cert, client_key) = leaf(
            &ca_issuer,
            &["kafka-lambda-client"],
            ExtendedKeyUsagePurpose::ClientAuth,
            dir,
            "client",
        );
        Pki {
            ca,
            other_ca,
            server_cert,
            server_key,
            wrong_host_cert,
            wrong_host_key,
            client_cert,
            client_key,
        }
    }
}

/// stunnel terminating TLS on `port` and forwarding to `target`.
pub(crate) struct Stunnel {
    _process: Process,
}

impl Stunnel {
    /// Starts stunnel with `cert`/`key`; with `client_ca`, a client certificate signed by that CA
    /// is required.
    pub(crate) fn start(
        dir: &Path,
        port: u16,
        target: u16,
        cert: &Path,
        key: &Path,
        client_ca: Option<&Path>,
    ) -> Stunnel {
        let name = format!("stunnel-{port}");
        let mut config = format!(
            "foreground = yes\npid =\ndebug = notice\n\n[kafka]\naccept = 127.0.0.1:{port}\n\
             connect = 127.0.0.1:{target}\ncert = {}\nkey = {}\n",
            cert.display(),
            key.display()
        );
        if let Some(ca) = client_ca {
            config.push_str(&format!(
                "CAfile = {}\nverifyChain = yes\nrequireCert = yes\n",
                ca.display()
            ));
        }
        let config_path = dir.join(format!("{name}.conf"));
        std::fs::write(&config_path, config).expect("write stunnel config");
        let binary = ["stunnel4", "stunnel"]
            .into_iter()
            .find(|b| {
                Command::new(b)
                    .arg("-version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok()
            })
            .unwrap_or_else(|| {
                panic!("stunnel is not installed: run scripts/services.sh install (Debian package stunnel4)")
            });
        let mut command = Command::new(binary);
        command.arg(&config_path);
        let mut process = Process::spawn(command, dir.join(format!("{name}.log")), "stunnel");
        let log = process.log.clone();
        wait_for_port(port, "stunnel", &mut process.child, &log);
        Stunnel { _process: process }
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
