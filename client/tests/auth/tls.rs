//! TLS and mTLS for real: tansu's own TLS listener is not wired up, so stunnel terminates TLS in
//! front of it and tansu advertises stunnel's port. Certificates are made by the test (rcgen).

use crate::scram::scram_config;
use crate::support::{
    Broker, Pki, Scram, Stunnel, capture_tracing, consume, free_port, produce, scratch_dir,
};
use kafka_lambda_client::KafkaClientConfig;
use std::path::{Path, PathBuf};

/// Which certificate stunnel presents and whether it asks for the client's.
struct Setup {
    wrong_host: bool,
    require_client_cert: bool,
    users: Vec<(&'static str, &'static str, Scram)>,
}

struct Cluster {
    dir: PathBuf,
    pki: Pki,
    broker: Broker,
    _stunnel: Stunnel,
    topic: &'static str,
}

fn cluster(test: &str, setup: Setup) -> Cluster {
    let dir = scratch_dir(test);
    let pki = Pki::create(&dir);
    let topic = "tls-topic";
    let tls_port = free_port();
    let broker = Broker::start(&dir, &setup.users, &[topic], Some(tls_port));
    let (cert, key) = if setup.wrong_host {
        (&pki.wrong_host_cert, &pki.wrong_host_key)
    } else {
        (&pki.server_cert, &pki.server_key)
    };
    let client_ca = setup.require_client_cert.then_some(pki.ca.as_path());
    let stunnel = Stunnel::start(&dir, tls_port, broker.port, cert, key, client_ca);
    Cluster {
        dir,
        pki,
        broker,
        _stunnel: stunnel,
        topic,
    }
}

fn plain_tls() -> Setup {
    Setup {
        wrong_host: false,
        require_client_cert: false,
        users: Vec::new(),
    }
}

fn tls_config(bootstrap: &str, tls_table: &str) -> KafkaClientConfig {
    let config = KafkaClientConfig::from_toml_str(&format!(
        "bootstrap_servers = \"{bootstrap}\"\n[auth.tls]\n{tls_table}\n"
    ))
    .expect("config parses");
    config.validate().expect("valid");
    config
}

fn ca_line(ca: &Path) -> String {
    format!("ca_file = \"{}\"", ca.display())
}

#[test]
fn tls_with_the_brokers_ca_verifies_certificate_and_hostname_and_round_trips() {
    let c = cluster("tls-ok", plain_tls());
    let config = tls_config(&c.broker.bootstrap(), &ca_line(&c.pki.ca));
    let (result, recording) = produce(&config, c.topic, &["over-tls"]);
    assert!(result.is_ok(), "{result:?}\n{}", recording.transcript());
    assert_eq!(consume(&config, c.topic, 1), ["over-tls"]);
}

#[test]
fn a_broker_certificate_from_another_ca_fails_verification_clearly() {
    let c = cluster("tls-wrong-ca", plain_tls());
    let config = tls_config(&c.broker.bootstrap(), &ca_line(&c.pki.other_ca));
    let (result, recording) = produce(&config, c.topic, &["never"]);
    assert!(result.is_err(), "an untrusted certificate was accepted");
    let errors = recording.errors().join("\n");
    assert!(
        errors.contains("SSL handshake failed") && errors.contains("certificate verify failed"),
        "no clear verification error:\n{}",
        recording.transcript()
    );
}

#[test]
fn without_a_ca_file_only_the_system_roots_are_trusted() {
    let c = cluster("tls-system-roots", plain_tls());
    // The test CA is in no system store, so the default (system roots) must refuse it.
    let config = tls_config(&c.broker.bootstrap(), "");
    let (result, recording) = produce(&config, c.topic, &["never"]);
    assert!(result.is_err(), "a private CA was trusted without ca_file");
    assert!(
        recording
            .errors()
            .join("\n")
            .contains("certificate verify failed"),
        "{}",
        recording.transcript()
    );
}

#[test]
fn hostname_verification_is_on_by_default_and_rejects_a_certificate_for_another_host() {
    let c = cluster(
        "tls-wrong-host",
        Setup {
            wrong_host: true,
            ..plain_tls()
        },
    );
    let config = tls_config(&c.broker.bootstrap(), &ca_line(&c.pki.ca));
    let (result, recording) = produce(&config, c.topic, &["never"]);
    assert!(
        result.is_err(),
        "a certificate for broker.elsewhere.example was accepted for 127.0.0.1"
    );
    assert!(
        recording
            .errors()
            .join("\n")
            .contains("certificate verify failed"),
        "{}",
        recording.transcript()
    );
}

#[test]
fn turning_verification_off_is_explicit_and_logged_at_warn() {
    let c = cluster(
        "tls-no-verify",
        Setup {
            wrong_host: true,
            ..plain_tls()
        },
    );
    let no_hostname = tls_config(
        &c.broker.bootstrap(),
        &format!("{}\nverify_hostname = false", ca_line(&c.pki.ca)),
    );
    let ((result, recording), logs) =
        capture_tracing(|| produce(&no_hostname, c.topic, &["name-unchecked"]));
    assert!(result.is_ok(), "{result:?}\n{}", recording.transcript());
    assert!(
        logs.contains("WARN") && logs.contains("TLS hostname verification is OFF"),
        "{logs}"
    );

    let no_verification = tls_config(
        &c.broker.bootstrap(),
        &format!("{}\nverify_certificate = false", ca_line(&c.pki.other_ca)),
    );
    let ((result, recording), logs) =
        capture_tracing(|| produce(&no_verification, c.topic, &["unverified"]));
    assert!(result.is_ok(), "{result:?}\n{}", recording.transcript());
    assert!(
        logs.contains("WARN") && logs.contains("TLS certificate verification is OFF"),
        "{logs}"
    );
}

#[test]
fn mtls_refuses_a_client_without_its_certificate_and_accepts_it_with_one() {
    let c = cluster(
        "mtls",
        Setup {
            require_client_cert: true,
            ..plain_tls()
        },
    );
    let without = tls_config(&c.broker.bootstrap(), &ca_line(&c.pki.ca));
    let (result, recording) = produce(&without, c.topic, &["never"]);
    assert!(
        result.is_err(),
        "the terminator accepted a client without a certificate"
    );
    assert!(
        !recording.errors().is_empty(),
        "no error reported:\n{}",
        recording.transcript()
    );

    let with = tls_config(
        &c.broker.bootstrap(),
        &format!(
            "{}\ncert_file = \"{}\"\nkey_file = \"{}\"",
            ca_line(&c.pki.ca),
            c.pki.client_cert.display(),
            c.pki.client_key.display()
        ),
    );
    let (result, recording) = produce(&with, c.topic, &["mutual"]);
    assert!(result.is_ok(), "{result:?}\n{}", recording.transcript());
    assert_eq!(consume(&with, c.topic, 1), ["mutual"]);
}

#[test]
fn scram_over_tls_round_trips() {
    let c = cluster(
        "scram-tls",
        Setup {
            users: vec![("dave", "dave-Password-4", Scram::Sha512)],
            ..plain_tls()
        },
    );
    let config = scram_config(
        &c.broker.bootstrap(),
        &c.dir,
        "SCRAM-SHA-512",
        "dave",
        "dave-Password-4",
        &format!("[auth.tls]\n{}", ca_line(&c.pki.ca)),
    );
    config.validate().expect("valid");
    let (result, recording) = produce(&config, c.topic, &["sasl-ssl"]);
    assert!(result.is_ok(), "{result:?}\n{}", recording.transcript());
    assert_eq!(consume(&config, c.topic, 1), ["sasl-ssl"]);
}
