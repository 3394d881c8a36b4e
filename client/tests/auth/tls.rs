//! TLS and mTLS against the shared Apache Kafka broker's own listeners: SSL (the broker's
//! certificate only, for 127.0.0.1 and localhost, from `$KAFKA_TLS_DIR/ca.pem`) and mTLS (a
//! client certificate from that CA required). The negative cases use a CA the test makes with
//! rcgen, which the broker never heard of, and a TCP relay on 127.0.0.2, an address the broker's
//! certificate does not name.

use kafka_lambda_client::KafkaClientConfig;
use kafka_lambda_tests::client::{self, consume, produce, produce_ok};
use kafka_lambda_tests::{
    OwnCa, Relay, capture_tracing, new_topic, records_in, services, unique_dir,
};
use std::path::Path;

fn tls_config(bootstrap: &str, tls_table: &str) -> KafkaClientConfig {
    let config = KafkaClientConfig::from_toml_str(&format!(
        "bootstrap_servers = \"{bootstrap}\"\n[auth.tls]\n{tls_table}\n"
    ))
    .expect("config parses");
    config.validate().expect("valid");
    config
}

/// [`tls_config`] for `bootstrap` that trusts the broker's CA and sets nothing else.
fn trusting_the_broker(bootstrap: &str) -> KafkaClientConfig {
    tls_config(bootstrap, &ca_line(&services().listeners().ca_file()))
}

fn ca_line(ca: &Path) -> String {
    format!("ca_file = \"{}\"", ca.display())
}

fn client_cert_lines(ca: &Path, (cert, key): (&Path, &Path)) -> String {
    format!(
        "{}\ncert_file = \"{}\"\nkey_file = \"{}\"",
        ca_line(ca),
        cert.display(),
        key.display()
    )
}

/// Asserts that producing through `config` fails with an error that contains every one of
/// `expected`, and that the topic stays empty.
fn refused(config: &KafkaClientConfig, topic: &str, what: &str, expected: &[&str]) {
    let (result, recording) = produce(config, topic, &["never"]);
    assert!(
        result.is_err(),
        "{what} was accepted:\n{}",
        recording.transcript()
    );
    let errors = recording.errors().join("\n");
    assert!(
        expected.iter().all(|part| errors.contains(part)),
        "{what}: no error saying {expected:?}; client reported:\n{}",
        recording.transcript()
    );
    assert_eq!(records_in(topic, 0), 0, "{what} wrote to {topic}");
}

#[test]
fn ssl_verifies_the_broker_against_its_ca_and_hostname_and_produces_and_consumes() {
    let topic = new_topic("ssl_ok", 1);
    let config = trusting_the_broker(&services().listeners().ssl);
    let (cc, _) = client::client_config(&config, &[]);
    assert_eq!(cc.get("security.protocol"), Some("SSL"));
    assert_eq!(
        cc.get("ssl.endpoint.identification.algorithm"),
        Some("https")
    );
    produce_ok(&config, &topic, &["over-tls"]);
    assert_eq!(consume(&config, &topic, 1), ["over-tls"]);
}

#[test]
fn a_broker_certificate_checked_against_another_ca_fails_verification_clearly() {
    let dir = unique_dir("ssl-wrong-ca");
    let other = OwnCa::create(&dir, "some-other-ca");
    let topic = new_topic("ssl_wrong_ca", 1);
    let config = tls_config(&services().listeners().ssl, &ca_line(&other.pem));
    refused(
        &config,
        &topic,
        "the broker's certificate checked against an unrelated CA",
        &["SSL handshake failed", "certificate verify failed"],
    );
}

#[test]
fn without_a_ca_file_only_the_system_roots_are_trusted() {
    let topic = new_topic("ssl_system_roots", 1);
    // The test CA is in no system store, so the default (system roots) must refuse it.
    let config = tls_config(&services().listeners().ssl, "");
    refused(
        &config,
        &topic,
        "a private CA trusted without ca_file",
        &["certificate verify failed"],
    );
}

#[test]
fn hostname_verification_is_on_by_default_and_rejects_an_address_the_certificate_does_not_name() {
    let topic = new_topic("ssl_wrong_host", 1);
    // The broker's certificate names 127.0.0.1 and localhost; reached as 127.0.0.2 it is the
    // right certificate from the right CA for the wrong host.
    let relay = Relay::to(&services().listeners().ssl);
    let config = trusting_the_broker(&relay.address);
    refused(
        &config,
        &topic,
        "a certificate for 127.0.0.1 reached as 127.0.0.2",
        &["certificate verify failed"],
    );
}

#[test]
fn turning_verification_off_is_explicit_and_logged_at_warn() {
    let dir = unique_dir("ssl-no-verify");
    let topic = new_topic("ssl_no_verify", 1);

    // The bootstrap connection goes through 127.0.0.2, which the certificate does not name: only
    // with the hostname check off does the client get the metadata it needs to produce.
    let relay = Relay::to(&services().listeners().ssl);
    let no_hostname = tls_config(
        &relay.address,
        &format!(
            "{}\nverify_hostname = false",
            ca_line(&services().listeners().ca_file())
        ),
    );
    let ((), logs) = capture_tracing(|| produce_ok(&no_hostname, &topic, &["name-unchecked"]));
    assert!(
        logs.contains("WARN") && logs.contains("TLS hostname verification is OFF"),
        "{logs}"
    );

    let other = OwnCa::create(&dir, "unrelated-ca");
    let no_verification = tls_config(
        &services().listeners().ssl,
        &format!("{}\nverify_certificate = false", ca_line(&other.pem)),
    );
    let ((), logs) = capture_tracing(|| produce_ok(&no_verification, &topic, &["unverified"]));
    assert!(
        logs.contains("WARN") && logs.contains("TLS certificate verification is OFF"),
        "{logs}"
    );
    assert_eq!(
        consume(&no_verification, &topic, 2),
        ["name-unchecked", "unverified"]
    );
}

#[test]
fn mtls_with_the_client_certificate_the_broker_trusts_produces_and_consumes() {
    let topic = new_topic("mtls_ok", 1);
    let (cert, key) = services().listeners().trusted_client_cert();
    let config = tls_config(
        &services().listeners().mtls,
        &client_cert_lines(&services().listeners().ca_file(), (&cert, &key)),
    );
    produce_ok(&config, &topic, &["mutual-1", "mutual-2"]);
    assert_eq!(consume(&config, &topic, 2), ["mutual-1", "mutual-2"]);
}

#[test]
fn mtls_refuses_a_client_without_a_certificate() {
    let topic = new_topic("mtls_no_cert", 1);
    // The client trusts the broker: the TLS alert that ends the handshake is the broker's.
    let config = trusting_the_broker(&services().listeners().mtls);
    refused(
        &config,
        &topic,
        "a client without a certificate on the mTLS listener",
        &["ssl://", "alert bad certificate"],
    );
}

#[test]
fn mtls_refuses_a_client_certificate_from_a_ca_the_broker_does_not_trust() {
    let dir = unique_dir("mtls-untrusted");
    let rogue = OwnCa::create(&dir, "rogue-ca");
    // The same common name as the trusted certificate: only the issuer differs.
    let (cert, key) = rogue.client_cert(&dir, "kafka-lambda-test-client", "rogue-client");
    let topic = new_topic("mtls_untrusted", 1);
    let config = tls_config(
        &services().listeners().mtls,
        &client_cert_lines(&services().listeners().ca_file(), (&cert, &key)),
    );
    refused(
        &config,
        &topic,
        "a client certificate from an untrusted CA on the mTLS listener",
        &["ssl://", "alert bad certificate"],
    );
}
