//! `[kafka.auth]` in the poller: `check` reads secrets from where the config says and never
//! prints them; `run` consumes from the shared Apache Kafka broker's authenticated listeners
//! (`scripts/services.sh`: SCRAM-SHA-512 over SASL_PLAINTEXT, PLAIN over SASL_SSL, a client
//! certificate on the mTLS listener) and delivers to the `test-recorder` function under the real
//! Lambda emulator, without the password in its log; a wrong password is logged as an
//! authentication error and retried, and loses nothing. Each test has its own topic (created
//! through the PLAINTEXT listener, readable through every one) and consumer group. MSK IAM runs
//! against a **mock MSK broker** behind its own TLS, since Amazon MSK cannot be reached here; it
//! refuses a token not signed with the credentials the poller was given, and records every request
//! it receives, so that a test can tell that the poller authenticated before its lookups.

use kafka_lambda_client::KafkaClientConfig;
use kafka_lambda_tests::{
    MockMsk, MskIamCredentials, Poller, SeenRequest, client, new_topic, poll_until, poller_check,
    recorder_config, sasl_table, secret_file, seen_values, services, unique_dir, users, wait_until,
    with_kafka_auth, with_kafka_setting,
};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, SystemTime};

/// A password for the `check` tests, which never reach a broker.
const CHECK_PASSWORD: &str = "Poller-Check-Password-4471";
const WRONG_PASSWORD: &str = "Poller-Wrong-Password-9902";

/// How long a poller gets to deliver what a test produced.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(90);

/// The poller's log level in these tests: its own and librdkafka's debug lines (the security
/// log), not the AWS SDK's or the HTTP stack's.
const RUST_LOG: (&str, &str) = ("RUST_LOG", "debug,aws=info,hyper=info,h2=info,tower=info");

/// `[kafka.auth.sasl]` for `mechanism` as `user`, the password from `password` (a source).
fn poller_sasl(mechanism: &str, user: &str, password: &str) -> String {
    sasl_table("kafka.auth.sasl", mechanism, user, password)
}

/// A poller config reading `topic` from `bootstrap` with the `[kafka.auth…]` tables `auth`,
/// librdkafka's security debug log on, delivering to `test-recorder` on the shared emulator in
/// consumer group `<topic>-group`.
fn config(bootstrap: &str, auth: &str, topic: &str) -> String {
    with_kafka_setting(
        &with_kafka_auth(
            &recorder_config(topic, &format!("{topic}-group"), ""),
            bootstrap,
            auth,
        ),
        "options = { \"debug\" = \"security\" }",
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
        sasl = poller_sasl("SCRAM-SHA-512", users::SCRAM.0, password),
    )
}

fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `kafka-lambda-poller check` on `config`, which must refuse it (exit code 2); returns
/// what it printed.
fn check_refuses(config: &str) -> String {
    let output = poller_check(config, &[]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(2), "{all}");
    all
}

#[test]
fn check_reads_the_password_from_the_environment_and_never_prints_it() {
    let with_env = check_config("{ env = \"KL_POLLER_AUTH_TEST_PASSWORD\" }");
    let output = poller_check(
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

    let all = check_refuses(&with_env);
    assert!(
        all.contains("`kafka.auth.sasl.password` names the environment variable `KL_POLLER_AUTH_TEST_PASSWORD`, which is not set"),
        "{all}"
    );

    let literal = check_config(&format!("\"{CHECK_PASSWORD}\""));
    let all = check_refuses(&literal);
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
    let conflicting = check_config(&secret_file(CHECK_PASSWORD))
        .replace("\"debug\" = \"security\"", "\"sasl.mechanism\" = \"PLAIN\"");
    let all = check_refuses(&conflicting);
    assert!(
        all.contains("`kafka.options.\"sasl.mechanism\"` is set by the [auth] table"),
        "{all}"
    );
}

/// Starts `kafka-lambda-poller run` with [`RUST_LOG`], then `env`, and `args`.
fn start_poller(name: &str, config: &str, env: &[(&str, &str)], args: &[&str]) -> Poller {
    let env: Vec<(&str, &str)> = [RUST_LOG].into_iter().chain(env.iter().copied()).collect();
    Poller::start_with_env(name, config, args, &env)
}

/// A client of the client crate for `bootstrap` with the poller's `[kafka.auth…]` tables
/// `poller_auth`, which are the client crate's `[auth…]` tables.
fn client_config(bootstrap: &str, poller_auth: &str) -> KafkaClientConfig {
    let auth = poller_auth.replace("[kafka.auth.", "[auth.");
    KafkaClientConfig::from_toml_str(&format!("bootstrap_servers = \"{bootstrap}\"\n{auth}"))
        .expect("client config")
}

/// Produces `values` to partition 0 of `topic` through `client`'s listener and auth (the same as
/// the poller's).
fn produce(client: &KafkaClientConfig, topic: &str, values: &[String]) {
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    client::produce_ok(client, topic, &values);
}

/// Waits until `test-recorder` saw exactly `expected` for `topic`, in order.
fn wait_for_delivery(topic: &str, expected: &[String], poller: &Poller) {
    let delivered = poll_until(DELIVERY_TIMEOUT, || {
        seen_values(topic).len() >= expected.len()
    });
    assert!(
        delivered,
        "the function saw {} of {} records; poller log:\n{}",
        seen_values(topic).len(),
        expected.len(),
        poller.log()
    );
    assert_eq!(
        seen_values(topic),
        expected,
        "poller log:\n{}",
        poller.log()
    );
}

/// Produces five records to a fresh topic through `bootstrap` with `poller_auth` (the poller's
/// `[kafka.auth…]` tables, given to the client crate as its `[auth…]`), runs the poller on the
/// same listener with `poller_auth` until `test-recorder` saw all five in order, and returns the
/// poller's log. Delivery is the proof that the poller logged in: each listener refuses a
/// client without its credentials (the client crate's `auth` tests). The log has librdkafka's
/// `security` debug lines, the SASL exchange's included (`[kafka.options] debug` raises
/// librdkafka's log level).
fn delivers_through(test: &str, bootstrap: &str, poller_auth: &str) -> String {
    let topic = new_topic(test, 1);
    let values: Vec<String> = (0..5).map(|i| format!("{test}-{i}")).collect();
    produce(&client_config(bootstrap, poller_auth), &topic, &values);

    let poller = start_poller(&topic, &config(bootstrap, poller_auth, &topic), &[], &[]);
    wait_for_delivery(&topic, &values, &poller);
    poller.log()
}

/// Checks that the poller's `log` has `line` from librdkafka's `security` debug log, which shows
/// `what`.
fn assert_security_log_shows(log: &str, line: &str, what: &str) {
    assert!(
        log.contains(line),
        "librdkafka's security debug log does not show {what}:\n{log}"
    );
}

#[test]
fn the_poller_consumes_over_scram_and_delivers_without_logging_the_password() {
    let (user, password) = users::SCRAM;
    let sasl = poller_sasl("SCRAM-SHA-512", user, &secret_file(password));
    let log = delivers_through(
        "poller_scram",
        &services().listeners().sasl_plaintext,
        &sasl,
    );
    assert_security_log_shows(
        &log,
        "Selected provider SCRAM (builtin) for SASL mechanism SCRAM-SHA-512",
        "SCRAM-SHA-512",
    );
    assert_security_log_shows(
        &log,
        &format!("Authenticated as {user} using SCRAM-SHA-512"),
        "the SCRAM login succeeding",
    );
    assert!(
        !log.contains(password),
        "the password is in the poller's log:\n{log}"
    );
}

#[test]
fn the_poller_consumes_with_plain_over_sasl_ssl_and_delivers_without_logging_the_password() {
    let (user, password) = users::PLAIN;
    let ca = services().listeners().ca_file();
    let auth = format!(
        "[kafka.auth.tls]\nca_file = \"{}\"\n\n{}",
        ca.display(),
        poller_sasl("PLAIN", user, &secret_file(password))
    );
    let log = delivers_through("poller_plain", &services().listeners().sasl_ssl, &auth);
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
    let listeners = services().listeners();
    let (cert, key) = listeners.trusted_client_cert();
    let auth = format!(
        "[kafka.auth.tls]\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        listeners.ca_file().display(),
        cert.display(),
        key.display(),
    );
    let log = delivers_through("poller_mtls", &listeners.mtls, &auth);
    assert_security_log_shows(
        &log,
        &format!("Loading public key from file {}", cert.display()),
        "the client certificate",
    );
}

#[test]
fn a_wrong_password_is_logged_as_an_authentication_error_retried_and_loses_nothing() {
    let topic = new_topic("poller_wrong_password", 1);
    let bootstrap = &services().listeners().sasl_plaintext;
    let (user, password) = users::SCRAM;
    let right = poller_sasl("SCRAM-SHA-512", user, &secret_file(password));
    let values: Vec<String> = (0..5).map(|i| format!("kept-{i}")).collect();
    let client = client_config(bootstrap, &right);
    produce(&client, &topic, &values);

    let wrong = poller_sasl("SCRAM-SHA-512", user, &secret_file(WRONG_PASSWORD));
    let mut poller = start_poller(&topic, &config(bootstrap, &wrong, &topic), &[], &[]);
    wait_until(
        Duration::from_secs(30),
        "an authentication error is logged",
        || poller.log().contains("SASL authentication error"),
    );
    // Retried: librdkafka tries again after its reconnect backoff, and the poller keeps running.
    wait_until(
        Duration::from_secs(60),
        "a second authentication error is logged (the login is retried)",
        || poller.log().matches("SASL authentication error").count() >= 2,
    );
    let text = poller.log();
    assert!(
        text.contains("invalid credentials with SASL mechanism SCRAM-SHA-512"),
        "the broker's reason is not in the log:\n{text}"
    );
    assert!(
        !text.contains(WRONG_PASSWORD) && !text.contains(password),
        "a password is in the poller's log:\n{text}"
    );
    assert!(
        poller.is_running(),
        "the poller exited instead of retrying:\n{text}"
    );
    assert!(
        seen_values(&topic).is_empty(),
        "a poller that could not log in delivered {:?}",
        seen_values(&topic)
    );
    drop(poller);

    // Same group, right password: everything is still there.
    let poller = start_poller(&topic, &config(bootstrap, &right, &topic), &[], &[]);
    wait_for_delivery(&topic, &values, &poller);
}

#[test]
fn msk_iam_tokens_from_the_default_credential_chain_reach_the_mock_broker_over_tls_with_system_roots()
 {
    let dir = unique_dir("msk-iam");
    let mock = MockMsk::expecting(&dir, &msk_iam_credentials(), MSK_REGION);
    // No ca_file: the system roots, which SSL_CERT_FILE points at the mock's CA for this process.
    let config = msk_iam_config(mock.port, "");
    let env = msk_iam_env(&mock, &dir);
    let poller = start_poller("msk-iam", &config, &borrowed(&env), &[]);
    let token = mock.expect_token(Duration::from_secs(30), || {
        format!("poller log:\n{}", poller.log())
    });
    assert_verifies(&token, &mock, &poller);
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
        url.contains(&format!("X-Amz-Credential={MSK_ACCESS_KEY}%2F")),
        "{url}"
    );
    let log = poller.log();
    assert!(
        !log.contains(MSK_SECRET_KEY) && !log.contains(MSK_SESSION_TOKEN) && !log.contains(&token),
        "a credential is in the poller's log:\n{log}"
    );
}

/// The region of the MSK IAM configs ([`msk_iam_config`]).
const MSK_REGION: &str = "eu-north-1";
/// The temporary credentials an MSK IAM poller finds in its environment ([`msk_iam_env`]), which
/// the mock MSK broker expects its tokens to be signed with.
const MSK_ACCESS_KEY: &str = "ASIAPOLLERIAMTEST001";
const MSK_SECRET_KEY: &str = "poller-iam-secret-key-0000000000000001";
const MSK_SESSION_TOKEN: &str = "poller-iam-session-token-0000000000000001";

fn msk_iam_credentials() -> MskIamCredentials {
    MockMsk::credentials(MSK_ACCESS_KEY, MSK_SECRET_KEY, Some(MSK_SESSION_TOKEN))
}

/// The environment of an MSK IAM poller against `mock`: the mock's CA as the system roots
/// (`SSL_CERT_FILE`), and the [`msk_iam_credentials`] as the only ones the default credential
/// chain finds (no AWS config or credentials file; `dir` holds neither).
fn msk_iam_env(mock: &MockMsk, dir: &Path) -> Vec<(&'static str, String)> {
    let none = dir.join("none").to_str().expect("utf-8").to_owned();
    vec![
        (
            "SSL_CERT_FILE",
            mock.ca_file.to_str().expect("utf-8").to_owned(),
        ),
        ("AWS_ACCESS_KEY_ID", MSK_ACCESS_KEY.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", MSK_SECRET_KEY.to_owned()),
        ("AWS_SESSION_TOKEN", MSK_SESSION_TOKEN.to_owned()),
        ("AWS_CONFIG_FILE", none.clone()),
        ("AWS_SHARED_CREDENTIALS_FILE", none),
    ]
}

/// `env` for [`start_poller`].
fn borrowed<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect()
}

/// Checks that `token`, which `mock` received from `poller`, verifies against
/// [`msk_iam_credentials`] and [`MSK_REGION`], and that the mock refused no token.
fn assert_verifies(token: &str, mock: &MockMsk, poller: &Poller) {
    if let Err(error) = msk_iam_credentials().verify_token(token, MSK_REGION, SystemTime::now()) {
        panic!(
            "the poller's token does not verify: {error}; poller log:\n{}",
            poller.log()
        );
    }
    if let Ok(refusal) = mock.refusals.try_recv() {
        panic!(
            "the mock MSK broker refused a token: {refusal}; poller log:\n{}",
            poller.log()
        );
    }
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
region = "{MSK_REGION}"

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

/// The requests a poller's offset lookups make: Metadata, or FindCoordinator, OffsetFetch and
/// ListOffsets (which the mock does not offer in its ApiVersions, so librdkafka should not send them).
const LOOKUPS: [i16; 4] = [
    SeenRequest::METADATA,
    SeenRequest::FIND_COORDINATOR,
    SeenRequest::OFFSET_FETCH,
    SeenRequest::LIST_OFFSETS,
];

/// The first lookup request in `requests` (in the order the mock received them) that came on a
/// connection after that connection's accepted SaslAuthenticate, if any.
///
/// # Panics
///
/// When a lookup request came on a connection before any accepted SaslAuthenticate on it: a
/// request MSK would refuse.
fn first_authenticated_lookup(requests: &[SeenRequest]) -> Option<&SeenRequest> {
    let mut found = None;
    for (i, request) in requests.iter().enumerate() {
        if !LOOKUPS.contains(&request.api_key) {
            continue;
        }
        let authenticated = requests[..i]
            .iter()
            .any(|r| r.connection == request.connection && r.is_accepted_authentication());
        assert!(
            authenticated,
            "{} came on connection {} before it authenticated; the requests:\n{}",
            request.api(),
            request.connection,
            describe(requests)
        );
        found = found.or(Some(request));
    }
    found
}

/// The requests the mock received, a line each, timed from the first.
fn describe(requests: &[SeenRequest]) -> String {
    let Some(first) = requests.first() else {
        return "  (none)".to_owned();
    };
    requests
        .iter()
        .map(|r| {
            let outcome = match r.accepted {
                Some(true) => " (accepted)",
                Some(false) => " (refused)",
                None => "",
            };
            format!(
                "  +{:>7.3} s  connection {}: {} v{}{outcome}",
                r.at.duration_since(first.at).as_secs_f64(),
                r.connection,
                r.api(),
                r.api_version
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Starts a poller with MSK IAM against a fresh **mock MSK broker** expecting the poller's
/// credentials, and checks from what the mock received that the poller authenticated before its
/// first offset lookup went out. The mock serves no metadata or offsets, so every lookup the
/// poller makes before subscribing times out (10 s) even once authenticated, and is retried
/// (logged as "waiting it out") until its budget (60 s) is spent; only then is it a failure
/// ("cannot read..." or "cannot look up..."). A poller that authenticated first has its lookup's
/// Metadata request reach the mock on an authenticated connection long before that; one that
/// serves the token only once its lookup failed (closing its consumer serves the queue one last
/// time) authenticates too late, or never.
fn first_token_with(name: &str, extra: &str, args: &[&str]) {
    let dir = unique_dir(name);
    let mock = MockMsk::expecting(&dir, &msk_iam_credentials(), MSK_REGION);
    let env = msk_iam_env(&mock, &dir);
    let mut poller = start_poller(
        name,
        &msk_iam_config(mock.port, extra),
        &borrowed(&env),
        args,
    );
    let failed = |log: &str| log.contains("cannot read") || log.contains("cannot look up");

    // (1) A token that verifies, accepted by the mock.
    let token = mock.expect_token(Duration::from_secs(25), || {
        format!("poller log:\n{}", poller.log())
    });
    assert_verifies(&token, &mock, &poller);

    // (2) A lookup request on a connection after its accepted SaslAuthenticate...
    let mut lookup = None;
    poll_until(Duration::from_secs(25), || {
        lookup = first_authenticated_lookup(&mock.requests()).cloned();
        lookup.is_some()
    });
    // ... (3) read by the mock before this log, which must show no failed lookup yet.
    let text = poller.log();
    let running = poller.is_running();
    let requests = mock.requests();
    let Some(lookup) = lookup else {
        panic!(
            "no offset lookup reached the mock MSK broker authenticated (running: {running}); \
             the requests:\n{}\npoller log:\n{text}",
            describe(&requests)
        );
    };
    assert!(
        running && !failed(&text),
        "by the time the poller's {} reached the mock authenticated (connection {}), its lookup \
         had failed or it had exited (running: {running}); the requests:\n{}\npoller log:\n{text}",
        lookup.api(),
        lookup.connection,
        describe(&requests)
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
