//! `kafka-lambda-poller check` validates configurations and names the offending field.

// Test helpers outside #[test] functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used)]

use kafka_lambda_tests::{poller_binary, poller_check, scratch_file};
use std::process::Command;

fn check(config: &str) -> (i32, String, String) {
    let out = poller_check(config, &[]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Checks that `check` refuses `config` with a message naming each of `names`.
fn assert_refused(config: &str, names: &[&str]) {
    let (code, _, stderr) = check(config);
    assert_ne!(code, 0, "refused: {stderr}");
    for name in names {
        assert!(stderr.contains(name), "names {name}: {stderr}");
    }
}

const BASE: &str = r#"
[kafka]
bootstrap_servers = "127.0.0.1:19092"

[[mapping]]
function = "my-fn"
topics = ["orders"]
"#;

#[test]
fn a_valid_config_prints_the_effective_values_with_defaults() {
    let (code, stdout, stderr) = check(BASE);
    assert_eq!(code, 0, "{stderr}");
    for expected in [
        "batch_size = 100",
        "batching_window_ms = 500",
        "max_payload_bytes = 6291456",
        "starting_position = \"TRIM_HORIZON\"",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected} in:\n{stdout}"
        );
    }
}

#[test]
fn secrets_in_librdkafka_options_are_redacted() {
    let config = BASE.replacen(
        "bootstrap_servers = \"127.0.0.1:19092\"\n",
        "bootstrap_servers = \"127.0.0.1:19092\"\noptions = { \"sasl.password\" = \"hunter2-secret-value\" }\n",
        1,
    );
    let (code, stdout, stderr) = check(&config);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !stdout.contains("hunter2") && !stderr.contains("hunter2"),
        "secret leaked:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("<redacted>"), "{stdout}");
}

#[test]
fn invalid_values_are_rejected_naming_the_field_and_the_allowed_range() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "topics = [\"orders\"]",
            "topics = [\"orders\"]\nbatch_size = 0",
            "mapping[0].batch_size` is 0; allowed: 1..=10000",
        ),
        (
            "topics = [\"orders\"]",
            "topics = [\"orders\"]\nbatch_size = 10001",
            "allowed: 1..=10000",
        ),
        (
            "topics = [\"orders\"]",
            "topics = [\"orders\"]\nbatching_window_ms = 300001",
            "mapping[0].batching_window_ms` is 300001; allowed: 0..=300000",
        ),
        (
            "topics = [\"orders\"]",
            "topics = [\"orders\"]\nmax_payload_bytes = 7000000",
            "mapping[0].max_payload_bytes",
        ),
        (
            "topics = [\"orders\"]",
            "topics = []",
            "mapping[0].topics` is empty",
        ),
        (
            "topics = [\"orders\"]",
            "topics = [\"bad topic\"]",
            "not a Kafka topic name",
        ),
        (
            "topics = [\"orders\"]",
            "topics = [\"orders\"]\nstarting_position = \"AT_TIMESTAMP\"",
            "starting_position_timestamp` is required",
        ),
        (
            "topics = [\"orders\"]",
            "topics = [\"orders\"]\nstarting_position = \"SOMEWHERE\"",
            "unknown variant `SOMEWHERE`",
        ),
        (
            "topics = [\"orders\"]",
            "topics = [\"orders\"]\nevent_source = \"aws:kafka\"",
            "event_source_arn` is required",
        ),
        (
            "topics = [\"orders\"]",
            "topics = [\"orders\"]\nbatch_sise = 10",
            "unknown field `batch_sise`",
        ),
        (
            "bootstrap_servers = \"127.0.0.1:19092\"",
            "bootstrap_servers = \"localhost\"",
            "kafka.bootstrap_servers` has `localhost`, which is not host:port",
        ),
        (
            "bootstrap_servers = \"127.0.0.1:19092\"",
            "bootstrap_servers = \"127.0.0.1:19092\"\noptions = { \"enable.auto.offset.store\" = \"true\" }",
            "managed by the poller",
        ),
    ];
    for (from, to, expected) in cases {
        let config = BASE.replacen(from, to, 1);
        let (code, stdout, stderr) = check(&config);
        assert_eq!(
            code, 2,
            "config should be rejected:\n{config}\nstdout: {stdout}"
        );
        assert!(
            stderr.contains(expected),
            "expected `{expected}` in the error, got:\n{stderr}"
        );
    }
    let (code, _, stderr) = check("[kafka]\nbootstrap_servers = \"k:1\"\n");
    assert_eq!(code, 2);
    assert!(stderr.contains("`mapping` is missing"), "{stderr}");
    let missing = std::env::temp_dir().join("does-not-exist/poller.toml");
    let out = Command::new(poller_binary())
        .args(["check", "--config"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
}

#[test]
fn the_default_consumer_group_is_the_functions_name_without_alias_or_arn_and_check_prints_it() {
    for function in [
        "test-recorder:live",
        "arn:aws:lambda:eu-west-1:123456789012:function:test-recorder:live",
    ] {
        let (code, stdout, stderr) = check(&BASE.replace("my-fn", function));
        assert_eq!(code, 0, "{stderr}");
        assert!(
            stdout.contains("consumer_group = \"kafka-lambda-test-recorder\""),
            "{function}: the effective group is not printed as kafka-lambda-test-recorder:\n{stdout}"
        );
    }
    // Two functions behind aliases of the same name get groups of their own.
    let two = format!("{BASE}\n[[mapping]]\nfunction = \"shipping:prod\"\ntopics = [\"orders\"]\n")
        .replace("my-fn", "billing:prod");
    let (code, stdout, stderr) = check(&two);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("consumer_group = \"kafka-lambda-billing\"")
            && stdout.contains("consumer_group = \"kafka-lambda-shipping\""),
        "{stdout}"
    );
}

/// Runs `kafka-lambda-poller <command> --config <config>` with a broker nothing listens on and
/// returns its exit code and stderr; a `run` that starts after all is stopped after 10 s.
fn poller_stderr(command: &str, config: &str) -> (Option<i32>, String) {
    let path = scratch_file(command, config);
    let mut child = Command::new(poller_binary())
        .args([command, "--config"])
        .arg(&path)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() && start.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_secret_never_reaches_stderr_when_librdkafka_or_toml_refuses_it() {
    const SECRET: &str = "TopSecret-4242";
    // librdkafka has no such property: its refusal quotes the value.
    let unknown = BASE.replacen(
        "bootstrap_servers = \"127.0.0.1:19092\"",
        &format!(
            "bootstrap_servers = \"127.0.0.1:1\"\n[kafka.options]\n\"ssl.truststore.password\" = \"{SECRET}\""
        ),
        1,
    );
    let (code, stderr) = poller_stderr("run", &unknown);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(stderr.contains("ssl.truststore.password"), "{stderr}");
    assert!(
        !stderr.contains(SECRET),
        "the secret is on stderr:\n{stderr}"
    );
    let (_, stderr) = poller_stderr("check", &unknown);
    assert!(
        !stderr.contains(SECRET),
        "the secret is on stderr:\n{stderr}"
    );

    // Not a string: TOML's message quotes the value.
    let typed = BASE.replacen(
        "bootstrap_servers = \"127.0.0.1:19092\"",
        "bootstrap_servers = \"127.0.0.1:1\"\n[kafka.options]\n\"ssl.key.password\" = 4242424242",
        1,
    );
    for command in ["run", "check"] {
        let (code, stderr) = poller_stderr(command, &typed);
        assert_ne!(code, Some(0), "{command}: {stderr}");
        assert!(stderr.contains("line "), "{command}: {stderr}");
        assert!(
            !stderr.contains("4242424242"),
            "{command}: the secret is on stderr:\n{stderr}"
        );
    }
}

#[test]
fn a_drain_timeout_not_below_max_poll_interval_is_refused_naming_both() {
    let config = format!("{BASE}\n[shutdown]\ndrain_timeout_ms = 300000\n");
    assert_refused(
        &config,
        &["shutdown.drain_timeout_ms", "max.poll.interval.ms (300000)"],
    );
    // Allowed once the poll interval is raised above it.
    let raised = config.replacen(
        "[kafka]\n",
        "[kafka]\noptions = { \"max.poll.interval.ms\" = \"600000\" }\n",
        1,
    );
    let (code, _, stderr) = check(&raised);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn on_failure_auth_needs_another_cluster() {
    let config = format!(
        "{BASE}on_failure = \"kafka://dlq\"\n[mapping.on_failure_auth.sasl]\nmechanism = \"SCRAM-SHA-512\"\nusername = \"u\"\npassword = {{ env = \"KL_UNSET_PASSWORD\" }}\n"
    );
    assert_refused(
        &config,
        &["mapping[0].on_failure_auth", "on_failure_bootstrap_servers"],
    );
}
