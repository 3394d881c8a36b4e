//! Operating the poller: filtering, input templates, metrics and health endpoints, and
//! run-until-caught-up — against the real broker and `cargo lambda watch` (`test-recorder`).

// Test helpers outside #[test] functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used)]

use kafka_lambda_tests::{
    Poller, committed_offset, create_topic, free_port, group_name, http_get, metric, new_topic,
    poller_check, produce, read_topic, reconcile, recorder_config, resume_with_marker, seen,
    seen_offsets, services, topic_name, wait_for_seen, wait_until, watermarks, with_telemetry,
};
use std::collections::BTreeMap;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

fn log_value(p: i32, i: usize) -> String {
    let code = if i.is_multiple_of(3) { 0 } else { 101103 };
    format!(
        r#"{{"eventId":{},"returnCode":{code},"componentName":"trade","partition":{p}}}"#,
        1000 + i
    )
}

#[test]
fn only_records_matching_the_filters_reach_the_function_and_the_rest_are_committed() {
    let topic = new_topic("filter", 2);
    let group = group_name("filter");
    let produced = produce(&topic, 2, 30, log_value);
    let config = recorder_config(
        &topic,
        &group,
        r#"filters = ['{"value": {"returnCode": [{"anything-but": 0}]}}', '{"headers": {"index": ["0"]}}']"#,
    );
    let matching: BTreeMap<_, _> = produced
        .iter()
        .filter(|(_, v)| !v.contains(r#""returnCode":0"#) || v.contains(r#""eventId":1000,"#))
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    assert!(matching.len() < produced.len());
    let mut poller = Poller::start(&format!("{topic}-a"), &config);
    wait_for_seen(
        TIMEOUT,
        "the matching records are delivered",
        &topic,
        matching.len(),
    );
    assert_eq!(reconcile(&topic, &matching), 0);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        seen_offsets(&topic).len(),
        matching.len(),
        "filtered records never reach the function"
    );
    poller.terminate_cleanly(Duration::from_secs(30));

    // Filtered records were committed too: a restart delivers only what is new.
    let mut expected = matching.clone();
    resume_with_marker(
        &topic,
        &config,
        r#"{"returnCode":5,"marker":true}"#,
        &mut expected,
        TIMEOUT,
        "nothing was delivered twice",
    );
}

#[test]
fn invalid_filters_and_templates_are_rejected_at_config_time_with_their_position() {
    let base = recorder_config("t", "g", "");
    let check = |extra: &str| {
        let out = poller_check(&format!("{base}{extra}\n"), &[]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = check(r#"filters = ['{"value": {"code": [{"numeric": [">"]}]}}']"#);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("mapping[0].filters") && err.contains("value.code"),
        "{err}"
    );
    let (code, err) = check(r#"input_template = '{"id": "$.a[x]"}'"#);
    assert_eq!(code, Some(2));
    assert!(err.contains("mapping[0].input_template"), "{err}");
}

#[test]
fn an_input_template_reshapes_values_and_records_it_cannot_apply_to_follow_the_failure_policy() {
    let topic = topic_name("template");
    let dlq = topic_name("template-dlq");
    create_topic(&topic, 1);
    create_topic(&dlq, 1);
    let produced = produce(&topic, 1, 5, |_, i| {
        if i == 2 {
            "not json".to_owned()
        } else {
            format!(
                r#"{{"eventId":{i},"returnCode":7,"big":"{}"}}"#,
                "x".repeat(500)
            )
        }
    });
    let config = recorder_config(
        &topic,
        &group_name("template"),
        &format!(
            "input_template = '{{\"id\": \"$.eventId\", \"code\": \"$.returnCode\"}}'\non_failure = \"kafka://{dlq}\""
        ),
    );
    let mut poller = Poller::start(&topic, &config);
    wait_for_seen(TIMEOUT, "the JSON records are delivered", &topic, 4);
    for s in seen(&topic) {
        let v: serde_json::Value = serde_json::from_str(s.value()).unwrap();
        // The id the producer wrote into this very record.
        let written: serde_json::Value =
            serde_json::from_str(&produced[&(s.partition(), s.offset())]).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"id": written["eventId"], "code": 7}),
            "reshaped: {v}"
        );
    }
    let dead = read_topic(&dlq, 1, TIMEOUT);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].value.as_deref(), Some(b"not json".as_slice()));
    assert_eq!(
        dead[0].header("kafka-lambda-error-type").as_deref(),
        Some("InputTemplateError")
    );
    let bad = produced.keys().nth(2).copied().unwrap();
    assert!(!seen_offsets(&topic).contains(&bad));
    poller.terminate_cleanly(Duration::from_secs(30));
}

#[test]
fn metrics_and_health_endpoints_add_up_to_what_was_produced() {
    let topic = new_topic("metrics", 2);
    let group = group_name("metrics");
    let port = free_port();
    let config = with_telemetry(
        &recorder_config(
            &topic,
            &group,
            r#"batch_size = 10
filters = ['{"value": {"returnCode": [{"anything-but": 0}]}}']"#,
        ),
        port,
        Some(1000),
    );
    let mut poller = Poller::start(&topic, &config);
    wait_until(TIMEOUT, "the endpoint answers", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert_eq!(http_get(port, "/healthz").0, 200);
    wait_until(TIMEOUT, "the poller is ready", || {
        http_get(port, "/readyz").0 == 200
    });
    let produced = produce(&topic, 2, 60, log_value);
    let matching = produced
        .values()
        .filter(|v| !v.contains(r#""returnCode":0"#))
        .count();
    wait_for_seen(
        TIMEOUT,
        "the matching records are delivered",
        &topic,
        matching,
    );
    let g = format!("group=\"{group}\"");
    wait_until(
        TIMEOUT,
        "the lag drops to zero once offsets are committed",
        || {
            let (_, body) = http_get(port, "/metrics");
            let lag = metric(&body, "kafka_lambda_offset_lag", &[&g]);
            lag == Some(0.0) && body.matches("kafka_lambda_offset_lag{").count() >= 2
        },
    );
    let (status, body) = http_get(port, "/metrics");
    assert_eq!(status, 200);
    let value = |name: &str| metric(&body, name, &[&g]).unwrap_or(-1.0);
    assert_eq!(
        value("kafka_lambda_records_received_total"),
        produced.len() as f64,
        "{body}"
    );
    assert_eq!(
        value("kafka_lambda_records_delivered_total"),
        matching as f64
    );
    assert_eq!(
        value("kafka_lambda_records_filtered_total"),
        (produced.len() - matching) as f64
    );
    assert_eq!(value("kafka_lambda_records_failed_total"), 0.0);
    assert_eq!(value("kafka_lambda_records_dead_lettered_total"), 0.0);
    let invocations = metric(
        &body,
        "kafka_lambda_invocations_total",
        &[&g, "outcome=\"success\""],
    )
    .unwrap();
    let batches = value("kafka_lambda_batch_records_count");
    assert_eq!(invocations, batches, "one batch size sample per invocation");
    assert_eq!(value("kafka_lambda_batch_records_sum"), matching as f64);
    assert!(value("kafka_lambda_invoke_duration_seconds_count") >= invocations);
    assert_eq!(value("kafka_lambda_invocations_in_flight"), 0.0);
    assert!(
        metric(
            &body,
            "kafka_lambda_rebalances_total",
            &[&g, "kind=\"assign\""]
        )
        .unwrap()
            >= 1.0
    );
    poller.terminate_cleanly(Duration::from_secs(30));
}

#[test]
fn until_caught_up_processes_what_was_there_at_start_commits_and_exits_zero() {
    let topic = new_topic("caught-up", 3);
    let group = group_name("caught-up");
    let produced = produce(&topic, 3, 40, log_value);
    let config = recorder_config(&topic, &group, "batch_size = 25");
    let mut poller = Poller::start_with(&format!("{topic}-a"), &config, &["--until-caught-up"]);
    let status = poller.wait(TIMEOUT);
    assert_eq!(status.code(), Some(0), "log:\n{}", poller.log());
    assert!(poller.log().contains("caught up"), "log:\n{}", poller.log());
    assert_eq!(reconcile(&topic, &produced), 0);

    // Committed: a second run finds nothing to do and exits at once, delivering nothing again.
    let mut again = Poller::start_with(&format!("{topic}-b"), &config, &["--until-caught-up"]);
    assert_eq!(
        again.wait(Duration::from_secs(60)).code(),
        Some(0),
        "log:\n{}",
        again.log()
    );
    assert_eq!(reconcile(&topic, &produced), 0);
}

#[test]
fn until_caught_up_ends_when_the_partitions_another_member_owns_are_committed_too() {
    let topic = new_topic("caught-up-shared", 4);
    let group = group_name("caught-up-shared");
    let config = recorder_config(&topic, &group, "batch_size = 1");
    let mut long_running = Poller::start(&format!("{topic}-run"), &config);
    let first = produce(&topic, 4, 5, log_value);
    wait_for_seen(TIMEOUT, "the first wave is delivered", &topic, first.len());
    // A slow second wave: both members are still at work when the second one has joined.
    let second = produce(&topic, 4, 10, |p, i| {
        format!(r#"{{"partition":{p},"index":{i},"sleep_ms":300}}"#)
    });
    let mut until = Poller::start_with(&format!("{topic}-until"), &config, &["--until-caught-up"]);
    let status = until.wait(TIMEOUT);
    // Read at once: the group as a whole must have committed every partition to its end when
    // the run ended, the partitions the long-running member owns included.
    let bootstrap = services().kafka_bootstrap_servers();
    let short: Vec<(i32, Option<i64>, i64)> = (0..4)
        .map(|p| {
            (
                p,
                committed_offset(bootstrap, &group, &topic, p),
                watermarks(bootstrap, &topic, p).1,
            )
        })
        .filter(|(_, committed, end)| committed.is_none_or(|c| c < *end))
        .collect();
    assert_eq!(status.code(), Some(0), "log:\n{}", until.log());
    assert!(
        short.is_empty(),
        "partitions (partition, committed, end) short of their end when the run ended: {short:?}"
    );
    assert!(
        until
            .log()
            .contains("caught up: every partition reached its end offset"),
        "log:\n{}",
        until.log()
    );
    let mut all = first;
    all.extend(second);
    wait_for_seen(TIMEOUT, "every record is delivered", &topic, all.len());
    reconcile(&topic, &all);
    long_running.terminate_cleanly(Duration::from_secs(60));
}

#[test]
fn until_caught_up_on_a_topic_that_does_not_exist_exits_non_zero_naming_it() {
    let topic = topic_name("caught-up-missing");
    let config = recorder_config(&topic, &group_name("caught-up-missing"), "");
    let mut poller = Poller::start_with(&topic, &config, &["--until-caught-up"]);
    let status = poller.wait(TIMEOUT);
    let log = poller.log();
    assert_eq!(status.code(), Some(1), "log:\n{log}");
    assert!(
        log.contains("cannot read the end offsets")
            && log.contains(&topic)
            && log.contains("Unknown topic or partition"),
        "the error names the topic and the cause; log:\n{log}"
    );
}

#[test]
fn until_caught_up_with_an_unreachable_broker_exits_non_zero_naming_it() {
    let topic = topic_name("caught-up-unreachable");
    let config = recorder_config(&topic, &group_name("caught-up-unreachable"), "").replacen(
        &format!(
            "bootstrap_servers = \"{}\"",
            services().kafka_bootstrap_servers()
        ),
        "bootstrap_servers = \"127.0.0.1:1\"",
        1,
    );
    let mut poller = Poller::start_with(&topic, &config, &["--until-caught-up"]);
    let status = poller.wait(TIMEOUT);
    let log = poller.log();
    assert_eq!(status.code(), Some(1), "log:\n{log}");
    assert!(
        log.contains("cannot read the end offsets") && log.contains(&topic),
        "the error says what failed; log:\n{log}"
    );
}

#[test]
fn the_lag_of_a_partition_handed_to_another_poller_is_no_longer_reported() {
    let topic = new_topic("lag-handover", 2);
    let group = group_name("lag-handover");
    // A backlog that drains slowly: the lag of both partitions stays well above zero.
    produce(&topic, 2, 200, |_, i| {
        format!(r#"{{"i":{i},"sleep_ms":200}}"#)
    });
    let port = kafka_lambda_tests::free_port();
    let other = recorder_config(&topic, &group, "batch_size = 1");
    let config = with_telemetry(&other, port, Some(1000));
    let lag = |partition: i32| {
        let (_, body) = http_get(port, "/metrics");
        metric(
            &body,
            "kafka_lambda_offset_lag",
            &[
                &format!("partition=\"{partition}\""),
                &format!("topic=\"{topic}\""),
            ],
        )
    };
    let mut a = Poller::start(&format!("{topic}-a"), &config);
    wait_until(TIMEOUT, "the telemetry endpoint listens", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    wait_until(TIMEOUT, "both partitions report lag", || {
        lag(0).is_some_and(|l| l > 50.0) && lag(1).is_some_and(|l| l > 50.0)
    });
    // A second member takes one partition over.
    let mut b = Poller::start(&format!("{topic}-b"), &other);
    wait_until(
        TIMEOUT,
        "a partition is revoked from the first poller",
        || a.log().contains("partitions revoked"),
    );
    let log = a.log();
    let revoked_line = log
        .lines()
        .find(|l| l.contains("partitions revoked"))
        .unwrap();
    let revoked = if revoked_line.contains(&format!("(\"{topic}\", 0)")) {
        0
    } else {
        1
    };
    wait_until(
        TIMEOUT,
        "the revoked partition's lag is no longer counted",
        || lag(revoked).is_none_or(|l| l == 0.0),
    );
    // The partition it kept is still reported, from later statistics.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        lag(1 - revoked).is_some_and(|l| l > 0.0),
        "the kept partition's lag is reported"
    );
    assert_eq!(lag(revoked).unwrap_or(0.0), 0.0, "and stays unreported");
    b.terminate_cleanly(Duration::from_secs(60));
    a.terminate_cleanly(Duration::from_secs(60));
}

/// Runs a poller with the fault `fault` injected (`KAFKA_LAMBDA_POLLER_FAULT`, see
/// `mapping::FAULT_VARIABLE`): neither a refused subscription nor a panicking driver can be
/// caused from outside the process.
fn run_with_fault(fault: &str) -> (Option<i32>, String) {
    let topic = new_topic(&format!("fault-{fault}"), 1);
    let config = recorder_config(&topic, &group_name("fault"), "");
    let mut poller = Poller::start_with_env(
        &topic,
        &config,
        &[],
        &[("KAFKA_LAMBDA_POLLER_FAULT", fault)],
    );
    let status = poller.wait(TIMEOUT);
    (status.code(), poller.log())
}

/// Runs the poller with `fault` and checks that it exits with 1, logging `message` and the fault.
fn exits_naming(fault: &str, message: &str) {
    let (code, log) = run_with_fault(fault);
    assert_eq!(code, Some(1), "log:\n{log}");
    assert!(log.contains(message) && log.contains(fault), "log:\n{log}");
}

#[test]
fn a_refused_subscription_exits_non_zero_naming_it() {
    exits_naming("subscribe-error", "cannot subscribe to");
}

#[test]
fn a_panic_in_the_driver_exits_non_zero_naming_it() {
    exits_naming("driver-panic", "the consumer's driver stopped unexpectedly");
}
