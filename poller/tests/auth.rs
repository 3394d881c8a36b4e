//! `[kafka.auth]` in the poller: `check` reads secrets from where the config says and never
//! prints them; `run` consumes from a tansu broker that requires SCRAM and delivers to the
//! `test-recorder` function under the real Lambda emulator; a wrong password is logged as an
//! authentication error and retried. The broker is this test's own (sqlite storage, users created
//! before it restarts with `--authentication`); the Lambda emulator is the shared one.

use kafka_lambda_client::{KafkaClientConfig, KafkaClientContext};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kafka_lambda_tests::{services, topic_name};

const PASSWORD: &str = "Poller-Scram-Password-4471";
const WRONG_PASSWORD: &str = "Poller-Wrong-Password-9902";
const USER: &str = "poller";

/// The values `test-recorder` saw for `topic`, in delivery order (one JSON line per record in
/// `/tmp/kafka-lambda-recorder/<topic>.jsonl`).
fn seen(topic: &str) -> Vec<String> {
    let path = PathBuf::from("/tmp/kafka-lambda-recorder").join(format!("{topic}.jsonl"));
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let record: serde_json::Value =
                serde_json::from_str(line).expect("recorder lines are JSON");
            record["value"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join("kafka-lambda-poller-auth")
        .join(kafka_lambda_tests::unique_name(test));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("ephemeral port")
        .port()
}

fn tansu() -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("tansu"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo/bin/tansu")
        })
}

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_tansu(dir: &Path, port: u16, authentication: bool) -> Killed {
    let log = std::fs::File::create(dir.join("tansu.log")).expect("log");
    let mut command = Command::new(tansu());
    command
        .current_dir(dir)
        .args(["broker", "--storage-engine", "sqlite://tansu.db"])
        .args(["--listener-url", &format!("tcp://127.0.0.1:{port}")])
        .args([
            "--advertised-listener-url",
            &format!("tcp://127.0.0.1:{port}"),
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    if authentication {
        command.arg("--authentication");
    }
    let child = Killed(
        command
            .spawn()
            .expect("start tansu (scripts/services.sh install)"),
    );
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "tansu did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn tansu_cli(args: &[&str]) {
    let output = Command::new(tansu())
        .args(args)
        .output()
        .expect("run tansu");
    assert!(output.status.success(), "tansu {args:?}: {output:?}");
}

/// A tansu broker requiring SCRAM-SHA-512, with user `poller` and `topic`.
fn scram_broker(dir: &Path, topic: &str) -> (Killed, String) {
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let setup = start_tansu(dir, port, false);
    tansu_cli(&[
        "user",
        "create",
        USER,
        PASSWORD,
        "--mechanism",
        "scram512",
        "--broker",
        &url,
    ]);
    tansu_cli(&[
        "topic",
        "create",
        topic,
        "--partitions",
        "1",
        "--broker",
        &url,
    ]);
    drop(setup);
    (start_tansu(dir, port, true), format!("127.0.0.1:{port}"))
}

fn password_file(dir: &Path, password: &str) -> PathBuf {
    let path = dir.join(format!("password-{}", password.len()));
    std::fs::write(&path, format!("{password}\n")).expect("write password");
    path
}

fn config(bootstrap: &str, password: &str, topic: &str) -> String {
    format!(
        r#"
[kafka]
bootstrap_servers = "{bootstrap}"
fetch_wait_max_ms = 10
commit_interval_ms = 500
options = {{ "debug" = "security" }}

[kafka.auth.sasl]
mechanism = "SCRAM-SHA-512"
username = "{USER}"
password = {password}

[lambda]
region = "us-east-1"
endpoint_url = "{endpoint}"

[[mapping]]
function = "test-recorder"
topics = ["{topic}"]
consumer_group = "{topic}-group"
batching_window_ms = 20
"#,
        endpoint = services().lambda_endpoint(),
    )
}

fn check(dir: &Path, config: &str, env: &[(&str, &str)]) -> Output {
    let path = dir.join("check.toml");
    std::fs::write(&path, config).expect("write config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_kafka-lambda-poller"));
    command.args(["check", "--config"]).arg(&path);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run check")
}

fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn check_reads_the_password_from_the_environment_and_never_prints_it() {
    let dir = scratch("check-env");
    let with_env = config(
        "127.0.0.1:9",
        "{ env = \"KL_POLLER_AUTH_TEST_PASSWORD\" }",
        "orders",
    );
    let output = check(
        &dir,
        &with_env,
        &[("KL_POLLER_AUTH_TEST_PASSWORD", PASSWORD)],
    );
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    assert!(
        all.contains("[kafka.auth.sasl]")
            && all.contains("mechanism = \"SCRAM-SHA-512\"")
            && all.contains("env = \"KL_POLLER_AUTH_TEST_PASSWORD\""),
        "{all}"
    );
    assert!(!all.contains(PASSWORD), "the password leaked:\n{all}");

    let output = check(&dir, &with_env, &[]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(2), "{all}");
    assert!(
        all.contains("`kafka.auth.sasl.password` names the environment variable `KL_POLLER_AUTH_TEST_PASSWORD`, which is not set"),
        "{all}"
    );

    let literal = config("127.0.0.1:9", &format!("\"{PASSWORD}\""), "orders");
    let output = check(&dir, &literal, &[]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(2), "{all}");
    assert!(
        all.contains("literal value, which is not accepted"),
        "{all}"
    );
    assert!(
        !all.contains(PASSWORD),
        "the literal password was echoed:\n{all}"
    );
}

#[test]
fn check_rejects_librdkafka_options_that_would_override_kafka_auth() {
    let dir = scratch("check-conflict");
    let password = password_file(&dir, PASSWORD);
    let conflicting = config(
        "127.0.0.1:9",
        &format!("{{ file = \"{}\" }}", password.display()),
        "orders",
    )
    .replace("\"debug\" = \"security\"", "\"sasl.mechanism\" = \"PLAIN\"");
    let output = check(&dir, &conflicting, &[]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(2), "{all}");
    assert!(
        all.contains("`kafka.options.\"sasl.mechanism\"` is set by the [auth] table"),
        "{all}"
    );
}

/// Starts `kafka-lambda-poller run`; `env` is added after the defaults (fake AWS keys, no
/// instance metadata, debug logs) and wins over them.
fn start_poller(dir: &Path, config: &str, env: &[(&str, &str)]) -> (Killed, PathBuf) {
    let path = dir.join("poller.toml");
    std::fs::write(&path, config).expect("write config");
    let log = dir.join("poller.log");
    let child = Command::new(env!("CARGO_BIN_EXE_kafka-lambda-poller"))
        .args(["run", "--config"])
        .arg(&path)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "debug,aws=info,hyper=info,h2=info,tower=info")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start kafka-lambda-poller");
    (Killed(child), log)
}

#[test]
fn the_poller_consumes_over_scram_and_delivers_without_logging_the_password() {
    let dir = scratch("run-scram");
    let topic = topic_name("poller_scram");
    let (_broker, bootstrap) = scram_broker(&dir, &topic);
    let password = password_file(&dir, PASSWORD);
    let source = format!("{{ file = \"{}\" }}", password.display());

    // Produce with the same auth, through the client crate.
    let client = KafkaClientConfig::from_toml_str(&format!(
        "bootstrap_servers = \"{bootstrap}\"\n[auth.sasl]\nmechanism = \"SCRAM-SHA-512\"\n\
         username = \"{USER}\"\npassword = {source}\n"
    ))
    .expect("client config");
    let producer: FutureProducer<KafkaClientContext> = client
        .create(&[("message.timeout.ms", "10000")])
        .expect("producer");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        for i in 0..5 {
            let value = format!("scram-{i}");
            producer
                .send(
                    FutureRecord::to(&topic)
                        .partition(0)
                        .key("k")
                        .payload(&value),
                    Duration::from_secs(10),
                )
                .await
                .map_err(|(e, _)| e)
                .expect("produce over SCRAM");
        }
    });

    let (_poller, log) = start_poller(&dir, &config(&bootstrap, &source, &topic), &[]);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let started = Instant::now();
    while seen(&topic).len() < 5 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the function saw {} of 5 records; poller log:\n{}",
            seen(&topic).len(),
            log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        seen(&topic),
        ["scram-0", "scram-1", "scram-2", "scram-3", "scram-4"]
    );
    let log = log_text();
    assert!(
        log.contains("SCRAM"),
        "librdkafka's security debug log is missing:\n{log}"
    );
    assert!(
        !log.contains(PASSWORD),
        "the password is in the poller's log:\n{log}"
    );
}

#[test]
fn a_wrong_password_is_logged_as_an_authentication_error_and_the_poller_keeps_retrying() {
    let dir = scratch("run-wrong");
    let topic = topic_name("poller_wrong_password");
    let (_broker, bootstrap) = scram_broker(&dir, &topic);
    let password = password_file(&dir, WRONG_PASSWORD);
    let source = format!("{{ file = \"{}\" }}", password.display());
    let (mut poller, log) = start_poller(&dir, &config(&bootstrap, &source, &topic), &[]);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until(
        Duration::from_secs(30),
        "an authentication error is logged",
        || log_text().contains("SASL authentication error"),
    );
    let log = log_text();
    assert!(log.contains("invalid-proof"), "{log}");
    assert!(
        !log.contains(WRONG_PASSWORD),
        "the password is in the poller's log:\n{log}"
    );
    assert!(
        poller.0.try_wait().expect("poll the child").is_none(),
        "the poller exited instead of retrying:\n{log}"
    );
}

/// A CA and a server certificate for 127.0.0.1 signed by it, as PEM files: (CA, cert, key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct subjects: a leaf named like its issuer looks self-signed to OpenSSL.
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "kafka-lambda poller test CA");
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("CA");
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("server certificate");
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca.pem()).expect("write");
    std::fs::write(&paths.1, cert.pem()).expect("write");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write");
    paths
}

/// stunnel terminating TLS on `port` in front of `target` (tansu has no TLS listener of its own).
fn stunnel(dir: &Path, port: u16, target: u16, cert: &Path, key: &Path) -> Killed {
    let config = dir.join("stunnel.conf");
    std::fs::write(
        &config,
        format!(
            "foreground = yes\npid =\n[kafka]\naccept = 127.0.0.1:{port}\n\
             connect = 127.0.0.1:{target}\ncert = {}\nkey = {}\n",
            cert.display(),
            key.display()
        ),
    )
    .expect("write stunnel config");
    let log = std::fs::File::create(dir.join("stunnel.log")).expect("log");
    let child = Killed(
        Command::new("stunnel4")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start stunnel4 (scripts/services.sh install)"),
    );
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "stunnel did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

#[path = "../../client/tests/auth/mock_msk.rs"]
mod mock_msk;

#[test]
fn msk_iam_tokens_from_the_default_credential_chain_reach_the_broker_over_tls_with_system_roots() {
    const ACCESS_KEY: &str = "AKIAPOLLERIAMTEST001";
    const SECRET_KEY: &str = "poller-iam-secret-key-0000000000000001";
    let dir = scratch("msk-iam");
    let (ca, cert, key) = certificates(&dir);
    let mock = mock_msk::MockMsk::start();
    let tls_port = free_port();
    let _stunnel = stunnel(&dir, tls_port, mock.port, &cert, &key);
    // No ca_file: the system roots, which SSL_CERT_FILE points at the test CA for this process.
    let config = format!(
        r#"
[kafka]
bootstrap_servers = "127.0.0.1:{tls_port}"

[kafka.auth.tls]

[kafka.auth.sasl]
mechanism = "AWS_MSK_IAM"
region = "eu-north-1"

[lambda]
region = "eu-north-1"
endpoint_url = "http://127.0.0.1:9"

[[mapping]]
function = "test-recorder"
topics = ["orders"]
event_source = "aws:kafka"
event_source_arn = "arn:aws:kafka:eu-north-1:123456789012:cluster/mock/abc"
"#
    );
    let none = dir.join("none");
    let none = none.to_str().expect("utf-8");
    let (_poller, log) = start_poller(
        &dir,
        &config,
        &[
            ("SSL_CERT_FILE", ca.to_str().expect("utf-8")),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_CONFIG_FILE", none),
            ("AWS_SHARED_CREDENTIALS_FILE", none),
        ],
    );
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let token = mock
        .tokens
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| {
            panic!(
                "the mock MSK broker got no token; poller log:\n{}",
                log_text()
            )
        });
    use base64::Engine;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&token)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .expect("the token is base64url");
    assert!(
        url.starts_with("https://kafka.eu-north-1.amazonaws.com/?Action=kafka-cluster%3AConnect&"),
        "{url}"
    );
    assert!(
        url.contains(&format!("X-Amz-Credential={ACCESS_KEY}%2F")),
        "{url}"
    );
    let log = log_text();
    assert!(
        !log.contains(SECRET_KEY) && !log.contains(&token),
        "a credential is in the poller's log:\n{log}"
    );
}
