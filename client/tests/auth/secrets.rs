//! Secrets stay out of everything the client prints: SCRAM and PLAIN sessions against the
//! shared broker's SASL_PLAINTEXT listener with librdkafka's debug logging on (`security`,
//! `broker`, `protocol`, `conf`; right and wrong password), their `Debug` output, errors and
//! logs are scanned for the secret values, as are a TLS key password and a refused literal one.

use crate::sasl::sasl_config;
use kafka_lambda_client::KafkaClientConfig;
use kafka_lambda_tests::client::{client_config, produce};
use kafka_lambda_tests::{OwnCa, capture_tracing, new_topic, services, unique_dir, users};

const WRONG_PASSWORD: &str = "Scan-Me-Wrong-2291";
const KEY_PASSWORD: &str = "Scan-Me-Key-Password-5512";
const LITERAL: &str = "Scan-Me-Literal-6604";

#[test]
fn secrets_never_appear_in_debug_output_errors_or_client_logs() {
    let dir = unique_dir("secrets");
    let topic = new_topic("secrets_scan", 1);
    let mut seen = Vec::new();
    for (mechanism, (user, password)) in [("SCRAM-SHA-512", users::SCRAM), ("PLAIN", users::PLAIN)]
    {
        for (password, should_work) in [(password, true), (WRONG_PASSWORD, false)] {
            let mut config = sasl_config(
                &services().listeners().sasl_plaintext,
                mechanism,
                (user, password),
                None,
            );
            config.options.insert(
                "debug".to_owned(),
                "security,broker,protocol,conf".to_owned(),
            );
            seen.push(format!("{config:?}"));
            seen.push(format!("{:?}", config.auth.resolve_at("auth")));
            seen.push(format!("{:?}", client_config(&config, &[]).0));
            let ((result, recording), logs) = capture_tracing(|| produce(&config, &topic, &["x"]));
            assert_eq!(
                result.is_ok(),
                should_work,
                "{mechanism} with {}: {result:?}\n{}",
                if should_work {
                    "the right password"
                } else {
                    "a wrong password"
                },
                recording.transcript()
            );
            let transcript = recording.transcript();
            // The broker thread's own lines: the scan below covers the SASL exchange itself.
            assert!(
                transcript.contains(&format!("mechanisms {mechanism}, provider"))
                    && transcript.contains("Send SASL Kafka frame to broker"),
                "debug logging did not cover the {mechanism} exchange:\n{transcript}"
            );
            seen.extend([format!("{result:?}"), transcript, logs]);
        }
    }

    let key_password = dir.join("key-password");
    std::fs::write(&key_password, KEY_PASSWORD).expect("write");
    let (cert, key) = OwnCa::create(&dir, "secrets-ca").client_cert(&dir, "c", "client");
    let tls = KafkaClientConfig::from_toml_str(&format!(
        "bootstrap_servers = \"b:9093\"\n[auth.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n\
         key_password = {{ file = \"{}\" }}\n",
        cert.display(),
        key.display(),
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
    for secret in [
        users::SCRAM.1,
        users::PLAIN.1,
        WRONG_PASSWORD,
        KEY_PASSWORD,
        LITERAL,
    ] {
        assert!(!all.contains(secret), "`{secret}` leaked into:\n{all}");
    }
}
