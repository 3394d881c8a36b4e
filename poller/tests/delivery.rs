//! The poller against a real broker (Apache Kafka) and the real Lambda emulator (`cargo lambda watch`
//! running `test-recorder`): delivery, order, batching limits, payload shape, restarts, crashes
//! and consumer-group scaling. Every test reconciles what was produced with what the function saw.

// Test helpers outside #[test] functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used)]

use kafka_lambda_tests::{
    Poller, create_topic, free_port, group_name, new_topic, produce, reconcile, recorder_config,
    resume_with_marker, seen, seen_offsets, services, topic_name, wait_for_seen, wait_until,
    with_kafka_setting,
};
use std::collections::BTreeMap;
use std::time::Duration;

const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);

/// A record produced after the others, for a poller that resumes after them.
const MARKER: &str = r#"{"marker":true}"#;

/// [`resume_with_marker`] with [`MARKER`] from `{topic}-b`, the group's next member.
fn resume(topic: &str, config: &str, produced: &mut BTreeMap<(i32, i64), String>, why: &str) {
    resume_with_marker(topic, config, MARKER, produced, DELIVERY_TIMEOUT, why);
}

fn value(p: i32, i: usize) -> String {
    format!(
        r#"{{"partition":{p},"index":{i},"pad":"{}"}}"#,
        "x".repeat(i % 50)
    )
}

#[test]
fn delivers_every_record_in_order_per_partition_in_the_aws_event_shape() {
    let topic = new_topic("in-order", 4);
    let produced = produce(&topic, 4, 150, value);
    let mut poller = Poller::start(
        &topic,
        &recorder_config(&topic, &group_name("in-order"), "batch_size = 40"),
    );
    wait_for_seen(
        DELIVERY_TIMEOUT,
        "every record is delivered",
        &topic,
        produced.len(),
    );
    let duplicates = reconcile(&topic, &produced);
    assert_eq!(duplicates, 0, "a clean run delivers each record once");

    let seen = seen(&topic);
    let one = &seen[0].0;
    assert_eq!(one["eventSource"], "SelfManagedKafka");
    assert!(
        one["eventSourceArn"].is_null(),
        "self-managed events carry no eventSourceArn"
    );
    assert_eq!(
        one["bootstrapServers"].as_str(),
        Some(services().kafka_bootstrap_servers())
    );
    assert_eq!(
        one["group"].as_str(),
        Some(format!("{topic}-{}", one["partition"]).as_str())
    );
    assert_eq!(one["timestampType"], "CREATE_TIME");
    let age_ms = chrono_now_ms() - one["timestamp"].as_i64().unwrap();
    assert!(
        (0..600_000).contains(&age_ms),
        "timestamp is the record's epoch ms, got {}",
        one["timestamp"]
    );
    let expected_key = format!("key-{}-", one["partition"]);
    assert!(one["key"].as_str().unwrap().starts_with(&expected_key));
    let headers = one["headers"].as_array().unwrap();
    assert_eq!(headers[0][0], "index");
    assert_eq!(headers[1][0], "binary");
    assert_eq!(
        headers[1][1],
        String::from_utf8_lossy(&[0u8, 200, 255]).as_ref()
    );
    // One partition per invocation, never more than batch_size records.
    for s in &seen {
        assert!(s.0["batchRecords"].as_u64().unwrap() <= 40);
        assert_eq!(s.0["groupIndex"], 0);
    }
    poller.terminate_cleanly(Duration::from_secs(30));
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn batches_close_at_the_record_count_and_at_the_payload_byte_limit() {
    let by_count = topic_name("batch-count");
    let by_bytes = topic_name("batch-bytes");
    create_topic(&by_count, 1);
    create_topic(&by_bytes, 1);
    let produced_count = produce(&by_count, 1, 60, value);
    let kilobyte = |_: i32, i: usize| format!(r#"{{"i":{i},"pad":"{}"}}"#, "y".repeat(1000));
    let mut produced_bytes = produce(&by_bytes, 1, 15, kilobyte);
    // A record that cannot fit any payload under the limit: reported and passed over, never a hang.
    let too_large = produce(&by_bytes, 1, 1, |_, _| {
        format!(r#"{{"pad":"{}"}}"#, "z".repeat(5000))
    });
    produced_bytes.extend(produce(&by_bytes, 1, 15, kilobyte));
    let mut config = recorder_config(
        &by_count,
        &group_name("batch-count"),
        "batch_size = 7\nbatching_window_ms = 2000",
    );
    config.push_str(&format!(
        "\n[[mapping]]\nfunction = \"test-recorder\"\ntopics = [\"{by_bytes}\"]\nconsumer_group = \"{}\"\nbatch_size = 1000\nbatching_window_ms = 2000\nmax_payload_bytes = 4096\n",
        group_name("batch-bytes")
    ));
    let mut poller = Poller::start(&by_count, &config);
    wait_until(DELIVERY_TIMEOUT, "both topics are delivered", || {
        seen_offsets(&by_count).len() >= produced_count.len()
            && seen_offsets(&by_bytes).len() >= produced_bytes.len()
    });
    reconcile(&by_count, &produced_count);
    reconcile(&by_bytes, &produced_bytes);
    let (&(_, big_offset), _) = too_large.iter().next().unwrap();
    assert!(!seen_offsets(&by_bytes).contains(&(0, big_offset)));
    let log = poller.log();
    assert!(
        log.lines()
            .any(|l| l.contains("too large for one invocation payload")
                && l.contains(&format!("offset={big_offset}"))),
        "the oversized record is reported with its offset; log:\n{log}"
    );

    let counts = batch_sizes(&by_count);
    assert!(
        counts.iter().all(|&n| n <= 7),
        "batch_size = 7 exceeded: {counts:?}"
    );
    assert!(
        counts.iter().filter(|&&n| n == 7).count() >= 7,
        "a 2 s window should fill batches of 7: {counts:?}"
    );
    for s in seen(&by_bytes) {
        let bytes = s.0["payloadBytes"].as_u64().unwrap();
        // The recorder measures a re-serialization of the same JSON, which is byte-identical.
        assert!(
            bytes <= 4096,
            "payload of {bytes} bytes exceeds max_payload_bytes = 4096"
        );
    }
    let sizes = batch_sizes(&by_bytes);
    assert!(
        sizes
            .iter()
            .all(|&n| (2..=3).contains(&n) || n == *sizes.last().unwrap()),
        "1 KB records in 4 KiB payloads: {sizes:?}"
    );
    poller.terminate_cleanly(Duration::from_secs(30));
}

/// Records per invocation, in delivery order.
fn batch_sizes(topic: &str) -> Vec<usize> {
    let mut sizes: Vec<(String, usize)> = Vec::new();
    for s in seen(topic) {
        match sizes.last_mut() {
            Some((inv, n)) if inv == s.invocation() => *n += 1,
            _ => sizes.push((s.invocation().to_owned(), 1)),
        }
    }
    sizes.into_iter().map(|(_, n)| n).collect()
}

#[test]
fn sigterm_drains_commits_and_a_restart_resumes_from_the_committed_offsets() {
    let topic = new_topic("restart", 2);
    let group = group_name("restart");
    let first = produce(&topic, 2, 50, value);
    let config = recorder_config(&topic, &group, "batch_size = 10");
    let mut poller = Poller::start(&format!("{topic}-a"), &config);
    wait_for_seen(
        DELIVERY_TIMEOUT,
        "the first records are delivered",
        &topic,
        first.len(),
    );
    poller.terminate_cleanly(Duration::from_secs(30));
    assert!(
        poller.log().contains("final offsets committed"),
        "log:\n{}",
        poller.log()
    );

    let second = produce(&topic, 2, 50, value);
    let mut restarted = Poller::start(&format!("{topic}-b"), &config);
    let mut all = first.clone();
    all.extend(second);
    wait_for_seen(
        DELIVERY_TIMEOUT,
        "the new records are delivered",
        &topic,
        all.len(),
    );
    assert_eq!(
        reconcile(&topic, &all),
        0,
        "a restart after a clean stop redelivers nothing"
    );
    restarted.terminate_cleanly(Duration::from_secs(30));
}

#[test]
fn sigterm_lets_the_batch_in_flight_finish_and_commits_it_before_exiting() {
    let topic = new_topic("drain", 1);
    let group = group_name("drain");
    let slow = |_: i32, i: usize| format!(r#"{{"i":{i},"sleep_ms":1500}}"#);
    let mut produced = produce(&topic, 1, 5, slow);
    let config = recorder_config(&topic, &group, "batch_size = 5\nbatching_window_ms = 0");
    let mut poller = Poller::start(&format!("{topic}-a"), &config);
    wait_until(DELIVERY_TIMEOUT, "the batch is in flight", || {
        poller.owns_partitions()
    });
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        seen(&topic).is_empty(),
        "the function answers only after 1.5 s, so the batch is still in flight"
    );
    poller.terminate_cleanly(Duration::from_secs(30));
    let log = poller.log();
    assert!(
        log.contains("outcome=\"success\"") || log.contains("outcome=success"),
        "the batch in flight finished before exit; log:\n{log}"
    );
    assert_eq!(reconcile(&topic, &produced), 0);

    // Its offset was committed: a new poller in the group starts after it.
    resume(
        &topic,
        &config,
        &mut produced,
        "the drained batch was not delivered twice",
    );
}

#[test]
fn sigterm_during_a_retry_backoff_lets_the_retry_finish_within_the_drain_window() {
    let topic = new_topic("drain-backoff", 1);
    let group = group_name("drain-backoff");
    // Fails its first invocation; the retry waits 3 s of backoff, then succeeds.
    let mut produced = produce(&topic, 1, 1, |_, _| r#"{"fail_times":1}"#.to_owned());
    let config = recorder_config(
        &topic,
        &group,
        "batch_size = 1\nretry_backoff_base_ms = 3000\nretry_backoff_max_ms = 3000",
    );
    let mut poller = Poller::start(&format!("{topic}-a"), &config);
    wait_until(DELIVERY_TIMEOUT, "the first invocation failed", || {
        poller.log().contains("function returned an error")
    });
    poller.terminate_cleanly(Duration::from_secs(30));
    let log = poller.log();
    assert_eq!(
        reconcile(&topic, &produced),
        0,
        "the retry ran within the drain window; log:\n{log}"
    );
    // And its offset was committed: a new poller starts after it.
    resume(
        &topic,
        &config,
        &mut produced,
        "the retried record was not delivered twice",
    );
}

#[test]
fn a_crash_mid_stream_then_a_restart_loses_nothing() {
    let topic = new_topic("crash", 3);
    let group = group_name("crash");
    // Invocations of at least 100 ms, as a real function's: much longer than a commit takes.
    let produced = produce(&topic, 3, 400, |p, i| {
        format!(r#"{{"p":{p},"i":{i},"sleep_ms":100}}"#)
    });
    // The default commit interval (5 s): what a crash repeats must not depend on it.
    let config = recorder_config(&topic, &group, "batch_size = 20")
        .replace("commit_interval_ms = 500\n", "");
    assert!(!config.contains("commit_interval_ms"));
    let mut poller = Poller::start(&format!("{topic}-a"), &config);
    wait_for_seen(DELIVERY_TIMEOUT, "delivery is under way", &topic, 300);
    poller.kill9();
    let before = seen_offsets(&topic).len();
    assert!(
        before < produced.len(),
        "the crash should happen mid-stream ({before} of {} delivered)",
        produced.len()
    );
    let mut restarted = Poller::start(&format!("{topic}-b"), &config);
    wait_for_seen(
        DELIVERY_TIMEOUT,
        "everything is delivered after the restart",
        &topic,
        produced.len(),
    );
    let duplicates = reconcile(&topic, &produced);
    eprintln!("records delivered again after one kill -9: {duplicates}");
    // Done offsets are committed soon after each batch: the crash repeats the batches in flight
    // (one per partition) and those finished within the commit that was on its way.
    let bound = 2 * 3 * 20;
    assert!(
        duplicates <= bound,
        "{duplicates} records delivered again after the crash, more than {bound}"
    );
    restarted.terminate_cleanly(Duration::from_secs(30));
}

#[test]
fn pollers_in_one_group_share_the_partitions_and_members_joining_and_leaving_lose_nothing() {
    members_join_and_leave_and_nothing_is_lost("classic");
}

#[test]
fn under_kip_848_pollers_share_the_partitions_and_members_joining_and_leaving_lose_nothing() {
    members_join_and_leave_and_nothing_is_lost("consumer");
}

/// Three pollers of one group with `[kafka] group_protocol = protocol`: two share the
/// partitions, a third joins while records flow and leaves again; every record is delivered,
/// in order per partition.
fn members_join_and_leave_and_nothing_is_lost(protocol: &str) {
    let topic = new_topic(&format!("scale-{protocol}"), 4);
    let group = group_name(&format!("scale-{protocol}"));
    let config = with_kafka_setting(
        &recorder_config(&topic, &group, "batch_size = 10"),
        &format!("group_protocol = \"{protocol}\""),
    );
    let mut a = Poller::start(&format!("{topic}-a"), &config);
    let mut b = Poller::start(&format!("{topic}-b"), &config);
    // The group rebalances when the second member joins: wait until both own partitions.
    wait_until(DELIVERY_TIMEOUT, "both pollers own partitions", || {
        a.owns_partitions() && b.owns_partitions()
    });
    let first = produce(&topic, 4, 100, value);
    wait_for_seen(
        DELIVERY_TIMEOUT,
        "the first wave is delivered",
        &topic,
        first.len(),
    );
    let delivered_by = |p: &Poller| p.log().matches("batch invoked").count();
    assert!(
        delivered_by(&a) > 0 && delivered_by(&b) > 0,
        "both pollers invoked the function"
    );

    let mut c = Poller::start(&format!("{topic}-c"), &config);
    let second = produce(&topic, 4, 100, value);
    wait_until(DELIVERY_TIMEOUT, "the third poller owns partitions", || {
        c.owns_partitions()
    });
    c.terminate_cleanly(Duration::from_secs(60));
    let third = produce(&topic, 4, 100, value);
    let mut all = first;
    all.extend(second);
    all.extend(third);
    wait_for_seen(
        DELIVERY_TIMEOUT,
        "every wave is delivered",
        &topic,
        all.len(),
    );
    let duplicates = reconcile(&topic, &all);
    eprintln!("duplicates across rebalances: {duplicates}");
    a.terminate_cleanly(Duration::from_secs(60));
    b.terminate_cleanly(Duration::from_secs(60));
}

#[test]
fn latest_and_at_timestamp_start_where_asked_when_the_group_has_no_offsets() {
    let topic = new_topic("start", 2);
    let old = produce(&topic, 2, 10, value);

    // LATEST: only records produced after the group joined.
    let latest_topic_config = recorder_config(
        &topic,
        &group_name("latest"),
        "starting_position = \"LATEST\"",
    );
    let latest = Poller::start(&format!("{topic}-latest"), &latest_topic_config);
    wait_until(
        DELIVERY_TIMEOUT,
        "the LATEST poller owns partitions",
        || latest.owns_partitions(),
    );
    std::thread::sleep(Duration::from_secs(1));
    let new = produce(&topic, 2, 5, value);
    delivers_only(latest, &topic, &new, &old, "LATEST");

    // AT_TIMESTAMP: from the first record at or after the timestamp.
    let other = new_topic("start-ts", 2);
    let before = produce(&other, 2, 10, value);
    std::thread::sleep(Duration::from_millis(1100));
    let since = chrono_now_ms() / 1000 + 1;
    while chrono_now_ms() / 1000 < since {
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = produce(&other, 2, 7, value);
    let config = recorder_config(
        &other,
        &group_name("at-ts"),
        &format!("starting_position = \"AT_TIMESTAMP\"\nstarting_position_timestamp = {since}"),
    );
    let at = Poller::start(&format!("{other}-at"), &config);
    delivers_only(at, &other, &after, &before, "AT_TIMESTAMP");
}

/// Waits until `poller` delivered `expected` of `topic`, and half a second more, then checks
/// that it delivered each once and none of `left_out`, the records before its
/// `starting_position`; then stops it.
fn delivers_only(
    mut poller: Poller,
    topic: &str,
    expected: &BTreeMap<(i32, i64), String>,
    left_out: &BTreeMap<(i32, i64), String>,
    starting_position: &str,
) {
    wait_for_seen(
        DELIVERY_TIMEOUT,
        &format!("the records since the {starting_position} start are delivered"),
        topic,
        expected.len(),
    );
    std::thread::sleep(Duration::from_millis(500));
    let seen = seen_offsets(topic);
    assert!(
        left_out.keys().all(|k| !seen.contains(k)),
        "{starting_position} delivered older records: {seen:?}"
    );
    assert_eq!(reconcile(topic, expected), 0);
    poller.terminate_cleanly(Duration::from_secs(30));
}

#[test]
fn msk_mappings_send_aws_kafka_with_the_cluster_arn() {
    let topic = new_topic("msk", 1);
    let produced = produce(&topic, 1, 3, value);
    let arn =
        "arn:aws:kafka:us-east-1:123456789012:cluster/demo/751d2973-a626-431c-9d4e-d7975eb44dd7-2";
    let config = recorder_config(
        &topic,
        &group_name("msk"),
        &format!("event_source = \"aws:kafka\"\nevent_source_arn = \"{arn}\""),
    );
    let mut poller = Poller::start(&topic, &config);
    wait_for_seen(
        DELIVERY_TIMEOUT,
        "the records are delivered",
        &topic,
        produced.len(),
    );
    assert_eq!(reconcile(&topic, &produced), 0);
    for s in seen(&topic) {
        assert_eq!(s.0["eventSource"], "aws:kafka");
        assert_eq!(s.0["eventSourceArn"], arn);
    }
    poller.terminate_cleanly(Duration::from_secs(30));
}

#[test]
fn an_unknown_function_is_logged_and_retried_without_committing() {
    let topic = new_topic("no-fn", 1);
    let group = group_name("no-fn");
    let produced = produce(&topic, 1, 3, value);
    let config = recorder_config(&topic, &group, "retry_backoff_max_ms = 500").replace(
        "function = \"test-recorder\"",
        "function = \"no-such-function\"",
    );
    let mut poller = Poller::start(&format!("{topic}-missing"), &config);
    wait_until(DELIVERY_TIMEOUT, "the rejection is logged twice", || {
        poller
            .log()
            .matches("invocation rejected; check the function name")
            .count()
            >= 2
    });
    assert!(poller.log().contains("no-such-function"));
    poller.terminate_cleanly(Duration::from_secs(30));

    // Nothing was committed: once the function exists, every record is delivered.
    let fixed = recorder_config(&topic, &group, "");
    let mut poller = Poller::start(&format!("{topic}-fixed"), &fixed);
    wait_for_seen(
        DELIVERY_TIMEOUT,
        "the records are delivered",
        &topic,
        produced.len(),
    );
    assert_eq!(reconcile(&topic, &produced), 0);
    poller.terminate_cleanly(Duration::from_secs(30));
}

#[test]
fn an_unreachable_broker_is_logged_and_retried_and_sigterm_still_exits_cleanly() {
    // A port nobody listens on.
    let port = free_port();
    let config = recorder_config("unreachable", "unreachable-group", "").replace(
        services().kafka_bootstrap_servers(),
        &format!("127.0.0.1:{port}"),
    );
    let mut poller = Poller::start(&topic_name("unreachable"), &config);
    wait_until(DELIVERY_TIMEOUT, "the connection failure is logged", || {
        let log = poller.log();
        log.contains(&format!("127.0.0.1:{port}")) && log.contains("Connection refused")
    });
    poller.terminate_cleanly(Duration::from_secs(30));
}

#[test]
fn the_batching_window_gathers_records_that_arrive_together_and_closes_before_later_ones() {
    let topic = new_topic("window", 1);
    let config = recorder_config(
        &topic,
        &group_name("window"),
        "batch_size = 1000\nbatching_window_ms = 1500",
    );
    let mut poller = Poller::start(&topic, &config);
    wait_until(DELIVERY_TIMEOUT, "the poller owns the partition", || {
        poller.owns_partitions()
    });
    let first = produce(&topic, 1, 20, value);
    // Well after the first batch's 1.5 s window closed.
    std::thread::sleep(Duration::from_secs(4));
    let second = produce(&topic, 1, 20, value);
    let mut all = first.clone();
    all.extend(second.clone());
    wait_for_seen(
        DELIVERY_TIMEOUT,
        "both waves are delivered",
        &topic,
        all.len(),
    );
    assert_eq!(reconcile(&topic, &all), 0);
    let invocation_of = |offsets: &std::collections::BTreeMap<(i32, i64), String>| -> std::collections::BTreeSet<String> {
        seen(&topic)
            .iter()
            .filter(|s| offsets.contains_key(&(s.partition(), s.offset())))
            .map(|s| s.invocation().to_owned())
            .collect()
    };
    let (a, b) = (invocation_of(&first), invocation_of(&second));
    assert_eq!(
        a.len(),
        1,
        "the window gathered the first wave into one invocation: {a:?}"
    );
    assert_eq!(b.len(), 1, "and the second wave into another: {b:?}");
    assert!(
        a.is_disjoint(&b),
        "the first window closed before the second wave arrived"
    );
    poller.terminate_cleanly(Duration::from_secs(30));
}
