//! SASL against the shared Apache Kafka broker: PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 over its
//! SASL_PLAINTEXT listener and over its SASL_SSL listener (verified against the test CA), each
//! producing and consuming real records; wrong passwords and missing credentials refused with
//! nothing written or read.

use kafka_lambda_client::KafkaClientConfig;
use kafka_lambda_tests::client::{consume, consume_in_group, produce, produce_ok};
use kafka_lambda_tests::{
    capture_tracing, group_name, new_topic, records_in, sasl_table, secret_file, services, users,
};
use std::path::Path;
use std::time::Duration;

/// A client config for `bootstrap` with SASL `mechanism`, the password read from a file; with
/// `ca`, over TLS verified against that CA (SASL_SSL), else in clear text.
pub(crate) fn sasl_config(
    bootstrap: &str,
    mechanism: &str,
    (user, password): (&str, &str),
    ca: Option<&Path>,
) -> KafkaClientConfig {
    let tls = ca.map_or_else(String::new, |ca| {
        format!("[auth.tls]\nca_file = \"{}\"\n", ca.display())
    });
    let sasl = sasl_table("auth.sasl", mechanism, user, &secret_file(password));
    let config = KafkaClientConfig::from_toml_str(&format!(
        "bootstrap_servers = \"{bootstrap}\"\n{tls}\n{sasl}"
    ))
    .expect("config parses");
    config.validate().expect("valid");
    config
}

/// Produces three records to a fresh topic and reads them back, both through `config`'s
/// listener, and checks the topic holds exactly those; returns what was logged meanwhile.
fn round_trip(test: &str, config: &KafkaClientConfig) -> String {
    let topic = new_topic(test, 1);
    let ((), logs) = capture_tracing(|| {
        produce_ok(config, &topic, &["one", "two", "three"]);
        assert_eq!(consume(config, &topic, 3), ["one", "two", "three"]);
    });
    assert_eq!(records_in(&topic, 0), 3);
    logs
}

/// [`round_trip`] with [`sasl_config`] as the test user of `mechanism`: in clear text on the
/// SASL_PLAINTEXT listener, or with `over_tls` on the SASL_SSL listener verified against the
/// broker's CA.
fn sasl_round_trip(test: &str, mechanism: &str, over_tls: bool) -> String {
    let listeners = services().listeners();
    let user = if mechanism == "PLAIN" {
        users::PLAIN
    } else {
        users::SCRAM
    };
    let config = if over_tls {
        sasl_config(
            &listeners.sasl_ssl,
            mechanism,
            user,
            Some(&listeners.ca_file()),
        )
    } else {
        sasl_config(&listeners.sasl_plaintext, mechanism, user, None)
    };
    round_trip(test, &config)
}

#[test]
fn plain_over_sasl_plaintext_produces_and_consumes_and_warns_about_clear_text() {
    let logs = sasl_round_trip("plain_clear", "PLAIN", false);
    assert!(
        logs.contains("WARN") && logs.contains("clear text"),
        "PLAIN without TLS was not logged at warn:\n{logs}"
    );
}

#[test]
fn plain_over_sasl_ssl_verifies_the_broker_and_produces_and_consumes() {
    let logs = sasl_round_trip("plain_ssl", "PLAIN", true);
    assert!(
        !logs.contains("clear text"),
        "PLAIN over TLS was reported as clear text:\n{logs}"
    );
}

#[test]
fn scram_sha_256_over_sasl_plaintext_produces_and_consumes() {
    sasl_round_trip("scram_256", "SCRAM-SHA-256", false);
}

#[test]
fn scram_sha_512_over_sasl_plaintext_produces_and_consumes() {
    sasl_round_trip("scram_512", "SCRAM-SHA-512", false);
}

#[test]
fn scram_sha_256_over_sasl_ssl_produces_and_consumes() {
    sasl_round_trip("scram_256_ssl", "SCRAM-SHA-256", true);
}

#[test]
fn scram_sha_512_over_sasl_ssl_produces_and_consumes() {
    sasl_round_trip("scram_512_ssl", "SCRAM-SHA-512", true);
}

/// Against a topic that already holds three records: a client of `mechanism` with a wrong
/// password cannot produce (the topic still holds three), cannot consume in a group (and so
/// commits nothing), and reports a clear authentication error, with a handful of attempts and
/// not a retry storm. Then the right password in the same group reads all three: nothing was
/// lost. `broker_says` is the broker's reason for the refusal, as librdkafka reports it.
fn wrong_password_is_refused(
    test: &str,
    mechanism: &str,
    (user, password): (&str, &str),
    broker_says: &str,
) {
    let topic = new_topic(test, 1);
    let group = group_name(test);
    let bootstrap = &services().listeners().sasl_plaintext;
    let right = sasl_config(bootstrap, mechanism, (user, password), None);
    produce_ok(&right, &topic, &["one", "two", "three"]);

    let wrong_password = format!("{password}-but-wrong");
    let wrong = sasl_config(bootstrap, mechanism, (user, &wrong_password), None);
    let (result, recording) = produce(&wrong, &topic, &["never"]);
    let transcript = recording.transcript();
    assert!(
        result.is_err(),
        "a wrong {mechanism} password produced:\n{transcript}"
    );
    let errors = recording.errors();
    assert!(
        errors.iter().any(|e| e.contains("Authentication")
            && e.contains("SASL authentication error")
            && e.contains(broker_says)),
        "no clear authentication error reported:\n{transcript}"
    );
    // librdkafka backs off between attempts (reconnect.backoff.ms doubling up to 10 s) and folds
    // repeats into "N identical error(s) suppressed": count every attempt in the 8 s run.
    let attempts: usize = recording
        .logs()
        .iter()
        .filter(|line| line.contains("SASL authentication error"))
        .map(|line| 1 + suppressed(line))
        .sum();
    assert!(
        (1..=10).contains(&attempts),
        "{attempts} authentication attempts in 8 s is a retry storm:\n{transcript}"
    );
    assert_eq!(
        records_in(&topic, 0),
        3,
        "a refused producer changed the topic"
    );

    let (values, recording) = consume_in_group(&wrong, &topic, &group, 3, Duration::from_secs(6));
    assert!(
        values.is_empty(),
        "a wrong password consumed {values:?}:\n{}",
        recording.transcript()
    );
    assert!(
        recording
            .errors()
            .iter()
            .any(|e| e.contains("SASL authentication error")),
        "the refused consumer reported no authentication error:\n{}",
        recording.transcript()
    );

    let (values, recording) = consume_in_group(&right, &topic, &group, 3, Duration::from_secs(20));
    assert_eq!(
        values,
        ["one", "two", "three"],
        "the group lost records after the refused consumer:\n{}",
        recording.transcript()
    );
}

/// The `N` of "N identical error(s) suppressed" in a librdkafka log line, else 0.
fn suppressed(line: &str) -> usize {
    line.split(", ")
        .find_map(|part| part.strip_suffix(" identical error(s) suppressed)"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_wrong_scram_password_fails_with_a_clear_authentication_error_and_loses_nothing() {
    wrong_password_is_refused(
        "scram_wrong",
        "SCRAM-SHA-512",
        users::SCRAM,
        "invalid credentials with SASL mechanism SCRAM-SHA-512",
    );
}

#[test]
fn a_wrong_plain_password_fails_with_a_clear_authentication_error_and_loses_nothing() {
    wrong_password_is_refused(
        "plain_wrong",
        "PLAIN",
        users::PLAIN,
        "Authentication failed: Invalid username or password",
    );
}

#[test]
fn a_client_without_credentials_is_refused_by_the_sasl_listener() {
    let topic = new_topic("sasl_no_credentials", 1);
    let config = KafkaClientConfig::new(services().listeners().sasl_plaintext.clone());
    let (result, recording) = produce(&config, &topic, &["never"]);
    assert!(
        result.is_err(),
        "a client without credentials produced through the SASL listener:\n{}",
        recording.transcript()
    );
    // The broker hangs up on a request that is not the SASL handshake; how the client sees that
    // depends on timing, and librdkafka reports some of it as a log line only.
    let transcript = recording.transcript();
    assert!(
        transcript.contains(&services().listeners().sasl_plaintext)
            && ["Disconnected", "Broken pipe", "Connection reset"]
                .iter()
                .any(|hang_up| transcript.contains(hang_up))
            && !transcript.contains("Connection refused"),
        "the SASL listener did not hang up on a client without credentials:\n{}",
        recording.transcript()
    );
    assert_eq!(records_in(&topic, 0), 0);
}
