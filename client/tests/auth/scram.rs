//! SASL/SCRAM against a tansu broker that requires authentication.

use crate::support::{Broker, Scram, consume, produce, scratch_dir};
use kafka_lambda_client::KafkaClientConfig;
use std::path::Path;

/// A client config for `broker` with SCRAM `mechanism`, the password read from a file.
pub(crate) fn scram_config(
    bootstrap: &str,
    dir: &Path,
    mechanism: &str,
    user: &str,
    password: &str,
    extra_auth: &str,
) -> KafkaClientConfig {
    let file = dir.join(format!("{user}-{}.password", password.len()));
    std::fs::write(&file, format!("{password}\n")).expect("write password file");
    KafkaClientConfig::from_toml_str(&format!(
        r#"
bootstrap_servers = "{bootstrap}"
{extra_auth}
[auth.sasl]
mechanism = "{mechanism}"
username = "{user}"
password = {{ file = "{}" }}
"#,
        file.display()
    ))
    .expect("config parses")
}

fn round_trip(scram: Scram, mechanism: &str) {
    let dir = scratch_dir("scram");
    let topic = "scram-round-trip";
    let broker = Broker::start(&dir, &[("alice", "alice-Secret-77", scram)], &[topic], None);
    let config = scram_config(
        &broker.bootstrap(),
        &dir,
        mechanism,
        "alice",
        "alice-Secret-77",
        "",
    );
    config.validate().expect("valid");
    let (result, recording) = produce(&config, topic, &["one", "two", "three"]);
    assert!(
        result.is_ok(),
        "produce over {mechanism} failed: {result:?}\nclient reported:\n{}\nbroker log:\n{}",
        recording.transcript(),
        broker.log()
    );
    assert_eq!(consume(&config, topic, 3), ["one", "two", "three"]);
}

#[test]
fn scram_sha_512_authenticates_produces_and_consumes() {
    round_trip(Scram::Sha512, "SCRAM-SHA-512");
}

#[test]
fn scram_sha_256_authenticates_produces_and_consumes() {
    round_trip(Scram::Sha256, "SCRAM-SHA-256");
}

#[test]
fn a_wrong_password_fails_with_a_clear_authentication_error_and_backs_off() {
    let dir = scratch_dir("scram-wrong");
    let topic = "scram-wrong-password";
    let broker = Broker::start(
        &dir,
        &[("bob", "right-Password-1", Scram::Sha512)],
        &[topic],
        None,
    );
    let config = scram_config(
        &broker.bootstrap(),
        &dir,
        "SCRAM-SHA-512",
        "bob",
        "wrong-Password-2",
        "",
    );
    let (result, recording) = produce(&config, topic, &["never"]);
    assert!(
        result.is_err(),
        "a wrong password produced: {}",
        recording.transcript()
    );
    let transcript = recording.transcript();
    let errors = recording.errors();
    assert!(
        errors.iter().any(|e| e.contains("Authentication")
            && e.contains("SASL SCRAM authentication failed")
            && e.contains("invalid-proof")),
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
}

/// The `N` of "N identical error(s) suppressed" in a librdkafka log line, else 0.
fn suppressed(line: &str) -> usize {
    line.split(", ")
        .find_map(|part| part.strip_suffix(" identical error(s) suppressed)"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_client_without_credentials_is_refused_by_the_authenticating_broker() {
    let dir = scratch_dir("scram-none");
    let topic = "scram-no-credentials";
    let broker = Broker::start(
        &dir,
        &[("carol", "carol-Password-3", Scram::Sha512)],
        &[topic],
        None,
    );
    let config = KafkaClientConfig::new(broker.bootstrap());
    let (result, recording) = produce(&config, topic, &["never"]);
    assert!(
        result.is_err(),
        "an unauthenticated client produced, so the broker does not check: {}",
        recording.transcript()
    );
}
