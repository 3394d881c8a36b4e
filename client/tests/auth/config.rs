//! What a configuration turns into for librdkafka, and how a bad one is reported, without a
//! broker: the settings librdkafka receives for each `[auth]` table, and each invalid value
//! refused naming its field. `sasl.rs` and `tls.rs` then show those settings working against
//! the real broker's listeners.

use kafka_lambda_client::KafkaClientConfig;
use kafka_lambda_tests::{OwnCa, capture_tracing, unique_dir};
use rdkafka::ClientConfig;
use std::path::Path;

fn parse(text: &str) -> KafkaClientConfig {
    KafkaClientConfig::from_toml_str(text).expect("config parses")
}

fn applied(config: &KafkaClientConfig) -> ClientConfig {
    let mut cc = ClientConfig::new();
    config.apply(&mut cc).expect("valid config");
    cc
}

fn secret_file(dir: &Path, name: &str, value: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, value).expect("write secret");
    path.display().to_string()
}

#[test]
fn plain_over_tls_gives_librdkafka_the_mechanism_username_and_password() {
    let dir = unique_dir("plain");
    let password = secret_file(&dir, "pw", "plain-Password-5\n");
    let config = parse(&format!(
        "bootstrap_servers = \"b1:9096,b2:9096\"\n[auth.tls]\n[auth.sasl]\nmechanism = \"PLAIN\"\n\
         username = \"erin\"\npassword = {{ file = \"{password}\" }}\n"
    ));
    let (cc, logs) = capture_tracing(|| applied(&config));
    assert_eq!(cc.get("bootstrap.servers"), Some("b1:9096,b2:9096"));
    assert_eq!(cc.get("security.protocol"), Some("SASL_SSL"));
    assert_eq!(cc.get("sasl.mechanism"), Some("PLAIN"));
    assert_eq!(cc.get("sasl.username"), Some("erin"));
    assert_eq!(cc.get("sasl.password"), Some("plain-Password-5"));
    // System roots and full verification.
    assert_eq!(cc.get("ssl.ca.location"), None);
    assert_eq!(cc.get("enable.ssl.certificate.verification"), Some("true"));
    assert_eq!(
        cc.get("ssl.endpoint.identification.algorithm"),
        Some("https")
    );
    assert!(!logs.contains("WARN"), "{logs}");
}

#[test]
fn plain_without_tls_is_allowed_but_logged_at_warn() {
    let dir = unique_dir("plain-clear");
    let password = secret_file(&dir, "pw", "x");
    let config = parse(&format!(
        "bootstrap_servers = \"b:9092\"\n[auth.sasl]\nmechanism = \"PLAIN\"\nusername = \"u\"\n\
         password = {{ file = \"{password}\" }}\n"
    ));
    let (cc, logs) = capture_tracing(|| applied(&config));
    assert_eq!(cc.get("security.protocol"), Some("SASL_PLAINTEXT"));
    assert!(
        logs.contains("WARN") && logs.contains("clear text"),
        "{logs}"
    );
}

#[test]
fn tls_files_and_the_key_password_reach_librdkafka() {
    let dir = unique_dir("tls-files");
    let ca = OwnCa::create(&dir, "files-ca");
    let (client_cert, client_key) = ca.client_cert(&dir, "files-client", "client");
    let key_password = secret_file(&dir, "key-pw", "key-Password-6");
    let config = parse(&format!(
        "bootstrap_servers = \"b:9093\"\n[auth.tls]\nca_file = \"{}\"\ncert_file = \"{}\"\n\
         key_file = \"{}\"\nkey_password = {{ file = \"{key_password}\" }}\n",
        ca.pem.display(),
        client_cert.display(),
        client_key.display()
    ));
    let cc = applied(&config);
    assert_eq!(cc.get("security.protocol"), Some("SSL"));
    assert_eq!(
        cc.get("ssl.ca.location"),
        Some(ca.pem.to_str().expect("utf-8"))
    );
    assert_eq!(
        cc.get("ssl.certificate.location"),
        Some(client_cert.to_str().expect("utf-8"))
    );
    assert_eq!(
        cc.get("ssl.key.location"),
        Some(client_key.to_str().expect("utf-8"))
    );
    assert_eq!(cc.get("ssl.key.password"), Some("key-Password-6"));
}

#[test]
fn no_auth_leaves_the_security_settings_to_librdkafka_and_options() {
    let config =
        parse("bootstrap_servers = \"b:9092\"\n[options]\n\"security.protocol\" = \"ssl\"\n");
    let cc = applied(&config);
    assert_eq!(cc.get("security.protocol"), Some("ssl"));
    assert_eq!(cc.get("sasl.mechanism"), None);
}

#[test]
fn every_invalid_value_is_rejected_naming_its_field() {
    let dir = unique_dir("invalid");
    let not_pem = secret_file(&dir, "not.pem", "hello");
    let missing = dir.join("missing.pem").display().to_string();
    let (cert, key) = OwnCa::create(&dir, "invalid-ca").client_cert(&dir, "c", "client");
    let (cert, key) = (cert.display(), key.display());
    let sasl = "[auth.sasl]\nmechanism = \"SCRAM-SHA-512\"\nusername = \"u\"\n";
    let cases: Vec<(String, &str, &str)> = vec![
        (String::new(), "bootstrap_servers", "is empty"),
        (
            "[auth.tls]\nca_file = \"MISSING\"".replace("MISSING", &missing),
            "auth.tls.ca_file",
            "cannot be read",
        ),
        (
            format!("[auth.tls]\nca_file = \"{not_pem}\""),
            "auth.tls.ca_file",
            "no PEM `CERTIFICATE` block",
        ),
        (
            format!("[auth.tls]\ncert_file = \"{cert}\""),
            "auth.tls.key_file",
            "is missing",
        ),
        (
            format!("[auth.tls]\nkey_file = \"{key}\""),
            "auth.tls.cert_file",
            "is missing",
        ),
        (
            format!("[auth.tls]\ncert_file = \"{cert}\"\nkey_file = \"{cert}\""),
            "auth.tls.key_file",
            "no PEM `PRIVATE KEY` block",
        ),
        (
            "[auth.tls]\nkey_password = { env = \"X\" }".to_owned(),
            "auth.tls.key_password",
            "only used with key_file",
        ),
        (
            format!("{sasl}password = {{ env = \"KL_SURELY_UNSET_PASSWORD_VARIABLE\" }}"),
            "auth.sasl.password",
            "`KL_SURELY_UNSET_PASSWORD_VARIABLE`, which is not set",
        ),
        (
            format!("{sasl}password = {{ file = \"{missing}\" }}"),
            "auth.sasl.password",
            "cannot be read",
        ),
        (
            format!(
                "[auth.sasl]\nmechanism = \"PLAIN\"\nusername = \"\"\npassword = {{ file = \"{not_pem}\" }}"
            ),
            "auth.sasl.username",
            "is empty",
        ),
        (
            format!("[auth.tls]\n[options]\n\"ssl.ca.location\" = \"{missing}\""),
            "options.\"ssl.ca.location\"",
            "set by the [auth] table",
        ),
    ];
    for (tail, field, problem) in cases {
        let bootstrap = if field == "bootstrap_servers" {
            ""
        } else {
            "b:9092"
        };
        let text = format!("bootstrap_servers = \"{bootstrap}\"\n{tail}\n");
        let error = parse(&text).validate().expect_err(&text);
        assert_eq!(error.field(), Some(field), "{text}\n{error}");
        assert!(error.to_string().contains(problem), "{text}\n{error}");
    }
}

#[test]
fn unknown_fields_and_mechanisms_are_parse_errors_naming_them() {
    for (text, expected) in [
        (
            "bootstrap_servers = \"b:1\"\n[auth.tls]\nverify = false\n",
            "unknown field `verify`",
        ),
        (
            "bootstrap_servers = \"b:1\"\n[auth.sasl]\nmechanism = \"GSSAPI\"\n",
            "unknown variant `GSSAPI`",
        ),
        (
            "bootstrap_servers = \"b:1\"\n[auth.sasl]\nmechanism = \"PLAIN\"\nusername = \"u\"\npassword = { env = \"P\" }\nuser = \"x\"\n",
            "unknown field `user`",
        ),
    ] {
        let error = KafkaClientConfig::from_toml_str(text)
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{text}\n{error}");
    }
}
