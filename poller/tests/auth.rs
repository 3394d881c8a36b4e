//! `[kafka.auth]` in the poller: `check` reads secrets from where the config says and never
//! prints them; `run` consumes from the shared Apache Kafka broker's authenticated listeners
//! (`scripts/services.sh`: SCRAM-SHA-512 over SASL_PLAINTEXT, PLAIN over SASL_SSL, a client
//! certificate on the mTLS listener) and delivers to the `test-recorder` function under the real
//! Lambda emulator, without the password in its log; a wrong password is logged as an
//! authentication error and retried, and loses nothing. Each test has its own topic (created
//! through the PLAINTEXT listener, readable through every one) and consumer group. MSK IAM runs
//! against a **mock MSK broker** behind its own TLS, since Amazon MSK cannot be reached here.

use kafka_lambda_client::{KafkaClientConfig, KafkaClientContext};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kafka_lambda_tests::{create_topic, services, topic_name, users};

/// A password for the `check` tests, which never reach a broker.
const CHECK_PASSWORD: &str = "Poller-Check-Password-4471";
const WRONG_PASSWORD: &str = "Poller-Wrong-Password-9902";

/// How long a poller gets to deliver what a test produced.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(90);

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

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `{ file = "…" }` password source for `password`, in a fresh file under `dir`.
fn password_file(dir: &Path, password: &str) -> String {
    let path = dir.join(kafka_lambda_tests::unique_name("password"));
    std::fs::write(&path, format!("{password}\n")).expect("write password");
    format!("{{ file = \"{}\" }}", path.display())
}

/// `[kafka.auth.sasl]` for `mechanism` as `user`, the password from `password` (a source).
fn sasl_table(mechanism: &str, user: &str, password: &str) -> String {
    format!(
        "[kafka.auth.sasl]\nmechanism = \"{mechanism}\"\nusername = \"{user}\"\n\
         password = {password}\n"
    )
}

/// A poller config reading `topic` from `bootstrap` with the `[kafka.auth…]` tables `auth`,
/// librdkafka's security debug log on, delivering to `test-recorder` on the shared emulator in
/// consumer group `<topic>-group`.
fn config(bootstrap: &str, auth: &str, topic: &str) -> String {
    format!(
        r#"
[kafka]
bootstrap_servers = "{bootstrap}"
fetch_wait_max_ms = 10
commit_interval_ms = 500
options = {{ "debug" = "security" }}

{auth}
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

/// A `check` config: SCRAM-SHA-512 with `password` (a source) and an emulator address that is
/// never called.
fn check_config(password: &str) -> String {
    format!(
        r#"
[kafka]
bootstrap_servers = "127.0.0.1:9"
options = {{ "debug" = "security" }}

{sasl}
[lambda]
region = "us-east-1"
endpoint_url = "http://127.0.0.1:9"

[[mapping]]
function = "test-recorder"
topics = ["orders"]
"#,
        sasl = sasl_table("SCRAM-SHA-512", users::SCRAM.0, password),
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
    let with_env = check_config("{ env = \"KL_POLLER_AUTH_TEST_PASSWORD\" }");
    let output = check(
        &dir,
        &with_env,
        &[("KL_POLLER_AUTH_TEST_PASSWORD", CHECK_PASSWORD)],
    );
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    assert!(
        all.contains("[kafka.auth.sasl]")
            && all.contains("mechanism = \"SCRAM-SHA-512\"")
            && all.contains("env = \"KL_POLLER_AUTH_TEST_PASSWORD\""),
        "{all}"
    );
    assert!(!all.contains(CHECK_PASSWORD), "the password leaked:\n{all}");

    let output = check(&dir, &with_env, &[]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(2), "{all}");
    assert!(
        all.contains("`kafka.auth.sasl.password` names the environment variable `KL_POLLER_AUTH_TEST_PASSWORD`, which is not set"),
        "{all}"
    );

    let literal = check_config(&format!("\"{CHECK_PASSWORD}\""));
    let output = check(&dir, &literal, &[]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(2), "{all}");
    assert!(
        all.contains("literal value, which is not accepted"),
        "{all}"
    );
    assert!(
        !all.contains(CHECK_PASSWORD),
        "the literal password was echoed:\n{all}"
    );
}

#[test]
fn check_rejects_librdkafka_options_that_would_override_kafka_auth() {
    let dir = scratch("check-conflict");
    let conflicting = check_config(&password_file(&dir, CHECK_PASSWORD))
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
    start_poller_with(dir, config, env, &[])
}

/// [`start_poller`] with extra `run` arguments.
fn start_poller_with(
    dir: &Path,
    config: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> (Killed, PathBuf) {
    let path = dir
        .join(kafka_lambda_tests::unique_name("poller"))
        .with_extension("toml");
    std::fs::write(&path, config).expect("write config");
    let log = path.with_extension("log");
    let child = Command::new(env!("CARGO_BIN_EXE_kafka-lambda-poller"))
        .args(["run", "--config"])
        .arg(&path)
        .args(args)
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

fn read_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// Produces `values` to partition 0 of `topic` through the client crate with `client`'s
/// listener and auth (the same as the poller's).
fn produce(client: &KafkaClientConfig, topic: &str, values: &[String]) {
    let producer: FutureProducer<KafkaClientContext> = client
        .create(&[("message.timeout.ms", "10000")])
        .expect("producer");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        for value in values {
            producer
                .send(
                    FutureRecord::to(topic).partition(0).key("k").payload(value),
                    Duration::from_secs(10),
                )
                .await
                .map_err(|(e, _)| e)
                .unwrap_or_else(|e| panic!("produce {value} to {topic}: {e}"));
        }
    });
}

/// Waits until `test-recorder` saw exactly `expected` for `topic`, in order.
fn wait_for_delivery(topic: &str, expected: &[String], log: &Path) {
    let started = Instant::now();
    while seen(topic).len() < expected.len() {
        assert!(
            started.elapsed() < DELIVERY_TIMEOUT,
            "the function saw {} of {} records; poller log:\n{}",
            seen(topic).len(),
            expected.len(),
            read_log(log)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(seen(topic), expected, "poller log:\n{}", read_log(log));
}

/// Produces five records to a fresh topic through `bootstrap` with `client_auth` (a client
/// crate `[auth…]` config), runs the poller on the same listener with `poller_auth` (the same
/// tables under `[kafka.auth…]`) until `test-recorder` saw all five in order, and returns the
/// poller's log. Delivery is the proof that the poller logged in: each listener refuses a
/// client without its credentials (the client crate's `auth` tests). The log has librdkafka's
/// `security` debug lines, the SASL exchange's included (`[kafka.options] debug` raises
/// librdkafka's log level).
fn delivers_through(test: &str, bootstrap: &str, client_auth: &str, poller_auth: &str) -> String {
    let dir = scratch(test);
    let topic = topic_name(test);
    create_topic(&topic, 1);
    let client = KafkaClientConfig::from_toml_str(&format!(
        "bootstrap_servers = \"{bootstrap}\"\n{client_auth}"
    ))
    .expect("client config");
    let values: Vec<String> = (0..5).map(|i| format!("{test}-{i}")).collect();
    produce(&client, &topic, &values);

    let (_poller, log) = start_poller(&dir, &config(bootstrap, poller_auth, &topic), &[]);
    wait_for_delivery(&topic, &values, &log);
    read_log(&log)
}

#[test]
fn the_poller_consumes_over_scram_and_delivers_without_logging_the_password() {
    let dir = scratch("run-scram");
    let (user, password) = users::SCRAM;
    let sasl = sasl_table("SCRAM-SHA-512", user, &password_file(&dir, password));
    let log = delivers_through(
        "poller_scram",
        &services().listeners().sasl_plaintext,
        &sasl.replace("[kafka.auth.sasl]", "[auth.sasl]"),
        &sasl,
    );
    assert!(
        log.contains("Selected provider SCRAM (builtin) for SASL mechanism SCRAM-SHA-512"),
        "librdkafka's security debug log does not show SCRAM-SHA-512:\n{log}"
    );
    assert!(
        log.contains(&format!("Authenticated as {user} using SCRAM-SHA-512")),
        "librdkafka's security debug log does not show the SCRAM login succeeding:\n{log}"
    );
    assert!(
        !log.contains(password),
        "the password is in the poller's log:\n{log}"
    );
}

#[test]
fn the_poller_consumes_with_plain_over_sasl_ssl_and_delivers_without_logging_the_password() {
    let dir = scratch("run-plain");
    let (user, password) = users::PLAIN;
    let ca = services().listeners().tls_dir.join("ca.pem");
    let auth = format!(
        "[kafka.auth.tls]\nca_file = \"{}\"\n\n{}",
        ca.display(),
        sasl_table("PLAIN", user, &password_file(&dir, password))
    );
    let log = delivers_through(
        "poller_plain",
        &services().listeners().sasl_ssl,
        &auth.replace("[kafka.auth.", "[auth."),
        &auth,
    );
    assert!(
        log.contains("Selected provider PLAIN (builtin) for SASL mechanism PLAIN")
            && log.contains(&format!(
                "Loading CA certificate(s) from file {}",
                ca.display()
            ))
            && !log.contains("clear text"),
        "librdkafka's security debug log does not show PLAIN over TLS with the test CA:\n{log}"
    );
    assert!(
        !log.contains(password),
        "the password is in the poller's log:\n{log}"
    );
}

#[test]
fn the_poller_consumes_over_mtls_with_the_client_certificate_the_broker_trusts() {
    let tls_dir = &services().listeners().tls_dir;
    let auth = format!(
        "[kafka.auth.tls]\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        tls_dir.join("ca.pem").display(),
        tls_dir.join("client.pem").display(),
        tls_dir.join("client.key").display(),
    );
    let log = delivers_through(
        "poller_mtls",
        &services().listeners().mtls,
        &auth.replace("[kafka.auth.", "[auth."),
        &auth,
    );
    assert!(
        log.contains(&format!(
            "Loading public key from file {}",
            tls_dir.join("client.pem").display()
        )),
        "librdkafka's security debug log does not show the client certificate:\n{log}"
    );
}

#[test]
fn a_wrong_password_is_logged_as_an_authentication_error_retried_and_loses_nothing() {
    let dir = scratch("run-wrong");
    let topic = topic_name("poller_wrong_password");
    create_topic(&topic, 1);
    let bootstrap = &services().listeners().sasl_plaintext;
    let (user, password) = users::SCRAM;
    let right = sasl_table("SCRAM-SHA-512", user, &password_file(&dir, password));
    let values: Vec<String> = (0..5).map(|i| format!("kept-{i}")).collect();
    let client = KafkaClientConfig::from_toml_str(&format!(
        "bootstrap_servers = \"{bootstrap}\"\n{}",
        right.replace("[kafka.auth.sasl]", "[auth.sasl]")
    ))
    .expect("client config");
    produce(&client, &topic, &values);

    let wrong = sasl_table("SCRAM-SHA-512", user, &password_file(&dir, WRONG_PASSWORD));
    let (mut poller, log) = start_poller(&dir, &config(bootstrap, &wrong, &topic), &[]);
    wait_until(
        Duration::from_secs(30),
        "an authentication error is logged",
        || read_log(&log).contains("SASL authentication error"),
    );
    // Retried: librdkafka tries again after its reconnect backoff, and the poller keeps running.
    wait_until(
        Duration::from_secs(60),
        "a second authentication error is logged (the login is retried)",
        || read_log(&log).matches("SASL authentication error").count() >= 2,
    );
    let text = read_log(&log);
    assert!(
        text.contains("invalid credentials with SASL mechanism SCRAM-SHA-512"),
        "the broker's reason is not in the log:\n{text}"
    );
    assert!(
        !text.contains(WRONG_PASSWORD) && !text.contains(password),
        "a password is in the poller's log:\n{text}"
    );
    assert!(
        poller.0.try_wait().expect("poll the child").is_none(),
        "the poller exited instead of retrying:\n{text}"
    );
    assert!(
        seen(&topic).is_empty(),
        "a poller that could not log in delivered {:?}",
        seen(&topic)
    );
    drop(poller);

    // Same group, right password: everything is still there.
    let (_poller, log) = start_poller(&dir, &config(bootstrap, &right, &topic), &[]);
    wait_for_delivery(&topic, &values, &log);
}

#[path = "../../client/tests/auth/mock_msk.rs"]
mod mock_msk;

#[test]
fn msk_iam_tokens_from_the_default_credential_chain_reach_the_mock_broker_over_tls_with_system_roots()
 {
    const ACCESS_KEY: &str = "AKIAPOLLERIAMTEST001";
    const SECRET_KEY: &str = "poller-iam-secret-key-0000000000000001";
    let dir = scratch("msk-iam");
    let mock = mock_msk::MockMsk::start(&dir);
    // No ca_file: the system roots, which SSL_CERT_FILE points at the mock's CA for this process.
    let config = msk_iam_config(mock.port, "");
    let none = dir.join("none");
    let none = none.to_str().expect("utf-8");
    let (_poller, log) = start_poller(
        &dir,
        &config,
        &[
            ("SSL_CERT_FILE", mock.ca_file.to_str().expect("utf-8")),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_CONFIG_FILE", none),
            ("AWS_SHARED_CREDENTIALS_FILE", none),
        ],
    );
    let token = mock
        .tokens
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| {
            panic!(
                "the mock MSK broker got no token; poller log:\n{}",
                read_log(&log)
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
    let log = read_log(&log);
    assert!(
        !log.contains(SECRET_KEY) && !log.contains(&token),
        "a credential is in the poller's log:\n{log}"
    );
}

/// A poller config for MSK IAM against the mock MSK broker on `port`; `extra` goes into the mapping.
fn msk_iam_config(port: u16, extra: &str) -> String {
    format!(
        r#"
[kafka]
bootstrap_servers = "127.0.0.1:{port}"

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
{extra}
"#
    )
}

/// Starts a poller with MSK IAM against a fresh **mock MSK broker** and waits for the first token
/// it receives. The mock serves no metadata or offsets, so every lookup the poller makes before
/// subscribing times out (10 s) even once authenticated. The token must come while the poller
/// is still in its first lookup — not never, and not only when the poller gives up and closes
/// its consumer (which serves the queue one last time).
fn first_token_with(name: &str, extra: &str, args: &[&str]) {
    let dir = scratch(name);
    let mock = mock_msk::MockMsk::start(&dir);
    let (mut poller, log) = start_poller_with(
        &dir,
        &msk_iam_config(mock.port, extra),
        &[("SSL_CERT_FILE", mock.ca_file.to_str().expect("utf-8"))],
        args,
    );
    if mock.tokens.recv_timeout(Duration::from_secs(25)).is_err() {
        panic!(
            "the mock MSK broker got no token; poller log:\n{}",
            read_log(&log)
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    let exited = poller.0.try_wait().expect("wait");
    let text = read_log(&log);
    assert!(
        exited.is_none() && !text.contains("cannot read") && !text.contains("cannot look up"),
        "the token came only after the lookups failed (exit: {exited:?}); poller log:\n{text}"
    );
}

#[test]
fn an_at_timestamp_start_authenticates_with_msk_iam_before_looking_up_its_offsets() {
    first_token_with(
        "msk-iam-at-timestamp",
        "starting_position = \"AT_TIMESTAMP\"\nstarting_position_timestamp = 1700000000",
        &[],
    );
}

#[test]
fn until_caught_up_authenticates_with_msk_iam_before_reading_end_offsets() {
    first_token_with("msk-iam-until-caught-up", "", &["--until-caught-up"]);
}
