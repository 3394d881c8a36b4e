//! Secrets stay out of everything the client prints: a SCRAM session with librdkafka's debug
//! logging on (right and wrong password), its `Debug` output, errors and logs are scanned for the
//! secret values.

use crate::scram::scram_config;
use crate::support::{Broker, Scram, capture_tracing, client_config, produce, scratch_dir};
use kafka_lambda_client::KafkaClientConfig;

const PASSWORD: &str = "Scan-Me-Password-8731";
const WRONG_PASSWORD: &str = "Scan-Me-Wrong-2291";
const KEY_PASSWORD: &str = "Scan-Me-Key-Password-5512";
const LITERAL: &str = "Scan-Me-Literal-6604";

#[test]
fn secrets_never_appear_in_debug_output_errors_or_client_logs() {
    let dir = scratch_dir("secrets");
    let topic = "secrets-scan";
    let broker = Broker::start(&dir, &[("frank", PASSWORD, Scram::Sha512)], &[topic], None);
    let mut seen = Vec::new();
    for (password, should_work) in [(PASSWORD, true), (WRONG_PASSWORD, false)] {
        let mut config = scram_config(
            &broker.bootstrap(),
            &dir,
            "SCRAM-SHA-512",
            "frank",
            password,
            "",
        );
        config.options.insert(
            "debug".to_owned(),
            "security,broker,protocol,conf".to_owned(),
        );
        seen.push(format!("{config:?}"));
        seen.push(format!("{:?}", config.auth.resolve_at("auth")));
        seen.push(format!("{:?}", client_config(&config, &[]).0));
        let ((result, recording), logs) = capture_tracing(|| produce(&config, topic, &["x"]));
        assert_eq!(
            result.is_ok(),
            should_work,
            "{result:?}\n{}",
            recording.transcript()
        );
        let transcript = recording.transcript();
        assert!(
            transcript.contains("SCRAM"),
            "debug logging did not cover SASL:\n{transcript}"
        );
        seen.extend([format!("{result:?}"), transcript, logs]);
    }

    let key_password = dir.join("key-password");
    std::fs::write(&key_password, KEY_PASSWORD).expect("write");
    let pki = crate::support::Pki::create(&dir);
    let tls = KafkaClientConfig::from_toml_str(&format!(
        "bootstrap_servers = \"b:9093\"\n[auth.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n\
         key_password = {{ file = \"{}\" }}\n",
        pki.client_cert.display(),
        pki.client_key.display(),
        key_password.display()
    ))
    .expect("parses");
    seen.push(format!("{:?}", tls.auth.resolve_at("auth")));
    seen.push(format!("{:?}", client_config(&tls, &[]).0));

    let literal = KafkaClientConfig::from_toml_str(&format!(
        "bootstrap_servers = \"b:1\"\n[auth.sasl]\nmechanism = \"PLAIN\"\nusername = \"u\"\n\
         password = \"{LITERAL}\"\n"
    ))
    .expect_err("a literal password is refused");
    seen.push(format!("{literal} {literal:?}"));

    let all = seen.join("\n");
    for secret in [PASSWORD, WRONG_PASSWORD, KEY_PASSWORD, LITERAL] {
        assert!(!all.contains(secret), "`{secret}` leaked into:\n{all}");
    }
}
