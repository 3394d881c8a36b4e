//! The poller in front of AWS's own Lambda Runtime Interface Emulator (`aws-lambda-rie`, built
//! from its Go module by `scripts/rie.sh`), which answers a function error with HTTP 200 and the
//! error document as the body — no `X-Amz-Function-Error` — and a timeout with 200 and a line of
//! text. The poller must read both as failures (see `invoke::emulator_answer`), never as
//! records delivered. The emulator serves one invocation at a time, so each mapping here has one
//! partition (one batch in flight).

// Test helpers outside #[test] functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used)]

use kafka_lambda_tests::{
    FAST_RETRIES, Poller, RIE_FUNCTION, Rie, group_name, new_topic, produce, read_topic, reconcile,
    recorder_config, seen_offsets, services, wait_for_seen,
};
use std::collections::BTreeMap;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

/// A poller config for `topic` → the function behind `rie`, in a fresh group, with `settings`.
fn config(rie: &Rie, topic: &str, settings: &str) -> String {
    recorder_config(
        topic,
        &group_name("rie"),
        // The emulator serves one invocation at a time.
        &format!("{settings}\nmax_concurrency = 1\n{FAST_RETRIES}"),
    )
    .replace(
        &format!("endpoint_url = \"{}\"", services().lambda_endpoint()),
        &format!("endpoint_url = \"{}\"", rie.endpoint()),
    )
    .replace(
        "function = \"test-recorder\"",
        &format!("function = \"{RIE_FUNCTION}\""),
    )
}

#[test]
fn a_function_error_behind_the_runtime_interface_emulator_is_retried_and_dead_lettered_not_lost() {
    let rie = Rie::start("test-recorder", "test-recorder", &[]);
    let topic = new_topic("rie-poison", 1);
    let dlq = new_topic("rie-poison-dlq", 1);
    let produced = produce(&topic, 1, 10, |_, i| {
        if i == 4 {
            r#"{"i":4,"fail":true}"#.to_owned()
        } else {
            format!(r#"{{"i":{i}}}"#)
        }
    });
    let poison = *produced.keys().nth(4).unwrap();
    let mut poller = Poller::start(
        &topic,
        &config(
            &rie,
            &topic,
            &format!("batch_size = 1\nmax_retry_attempts = 1\non_failure = \"kafka://{dlq}\""),
        ),
    );
    wait_for_seen(TIMEOUT, "the healthy records are delivered", &topic, 9);
    let dead = read_topic(&dlq, 1, TIMEOUT);
    assert_eq!(dead.len(), 1, "{dead:?}; log:\n{}", poller.log());
    assert_eq!(
        dead[0].header("kafka-lambda-source-offset").as_deref(),
        Some(poison.1.to_string().as_str())
    );
    assert_eq!(
        dead[0].header("kafka-lambda-error-type").as_deref(),
        Some("RecordAskedToFail"),
        "the error type the runtime posted, read from the emulator's 200 body"
    );
    let mut healthy: BTreeMap<(i32, i64), String> = produced.clone();
    healthy.remove(&poison);
    assert_eq!(reconcile(&topic, &healthy), 0);
    assert!(!seen_offsets(&topic).contains(&poison));
    poller.terminate_cleanly(Duration::from_secs(30));
    drop(rie);
}

#[test]
fn log_etl_behind_the_runtime_interface_emulator_dead_letters_a_record_it_cannot_decode() {
    let rie = Rie::start("log-etl", "log-etl", &[]);
    let topic = new_topic("rie-log-etl", 1);
    let dlq = new_topic("rie-log-etl-dlq", 1);
    produce(&topic, 1, 3, |_, i| {
        if i == 1 {
            "not an error log".to_owned()
        } else {
            format!(
                r#"{{"version":1,"componentName":"trade","timestamp":1595944295,"eventId":{i},"returnValue":-1,"returnCode":101103,"returnMessage":"failed [seqId:abc{i}]"}}"#
            )
        }
    });
    let mut poller = Poller::start(
        &topic,
        &config(
            &rie,
            &topic,
            &format!("batch_size = 1\nmax_retry_attempts = 0\non_failure = \"kafka://{dlq}\""),
        ),
    );
    let dead = read_topic(&dlq, 1, TIMEOUT);
    assert_eq!(dead.len(), 1, "{dead:?}; log:\n{}", poller.log());
    assert_eq!(
        dead[0].value.as_deref(),
        Some(b"not an error log".as_slice())
    );
    assert_eq!(
        dead[0].header("kafka-lambda-error-type").as_deref(),
        Some("KafkaRecordUndecodable"),
        "poller log:\n{}\nemulator log:\n{}",
        poller.log(),
        rie.log_text()
    );
    poller.terminate_cleanly(Duration::from_secs(30));
}

#[test]
fn a_timeout_behind_the_runtime_interface_emulator_is_retried_until_the_record_is_delivered() {
    let rie = Rie::start(
        "test-recorder",
        "test-recorder",
        &[("AWS_LAMBDA_FUNCTION_TIMEOUT", "2")],
    );
    let topic = new_topic("rie-timeout", 1);
    let produced = produce(&topic, 1, 3, |_, i| {
        if i == 0 {
            r#"{"i":0,"sleep_ms":4000,"sleep_times":1}"#.to_owned()
        } else {
            format!(r#"{{"i":{i}}}"#)
        }
    });
    let mut poller = Poller::start(&topic, &config(&rie, &topic, "batch_size = 1"));
    wait_for_seen(TIMEOUT, "every record is delivered", &topic, 3);
    let log = poller.log();
    assert!(log.contains("Sandbox.Timedout"), "log:\n{log}");
    assert_eq!(reconcile(&topic, &produced), 0);
    poller.terminate_cleanly(Duration::from_secs(30));
}

/// A scripted record (`{"exit_times": 1}` or `{"panic_times": 1}`) on its first attempt, then
/// delivered: what the emulator answers for a runtime that exits (502, `Runtime.ExitError`, and
/// the runtime started again at the next invocation) and for a handler that panics
/// (lambda_runtime reports it as a function error: 200 with the error document) is retried, and
/// nothing is lost or skipped.
fn a_failure_of_the_runtime_is_retried_and_the_record_delivered(script: &str, logged: &str) {
    let rie = Rie::start("test-recorder", "test-recorder", &[]);
    let topic = new_topic(&format!("rie-{script}"), 1);
    let produced = produce(&topic, 1, 3, |_, i| {
        if i == 1 {
            format!(r#"{{"i":1,"{script}":1}}"#)
        } else {
            format!(r#"{{"i":{i}}}"#)
        }
    });
    let mut poller = Poller::start(&topic, &config(&rie, &topic, "batch_size = 1"));
    wait_for_seen(TIMEOUT, "every record is delivered", &topic, 3);
    let log = poller.log();
    assert!(
        log.contains(logged),
        "the failure is reported as {logged}; poller log:\n{log}\nemulator log:\n{}",
        rie.log_text()
    );
    assert_eq!(reconcile(&topic, &produced), 0);
    poller.terminate_cleanly(Duration::from_secs(30));
}

#[test]
fn a_runtime_that_exits_behind_the_runtime_interface_emulator_is_retried_and_the_record_delivered()
{
    a_failure_of_the_runtime_is_retried_and_the_record_delivered("exit_times", "Runtime.ExitError");
}

#[test]
fn a_handler_that_panics_behind_the_runtime_interface_emulator_is_retried_and_the_record_delivered()
{
    a_failure_of_the_runtime_is_retried_and_the_record_delivered("panic_times", "asked to panic");
}
