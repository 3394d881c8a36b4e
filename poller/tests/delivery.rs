//! The poller against a real broker (tansu) and the real Lambda emulator (`cargo lambda watch`
//! running `test-recorder`): delivery, order, batching limits, payload shape, restarts, crashes
//! and consumer-group scaling. Every test reconciles what was produced with what the function saw.

mod common;

use common::*;
use std::time::Duration;

const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);

fn value(p: i32, i: usize) -> String {
    format!(r#"{{"partition":{p},"index":{i},"pad":"{}"}}"#, "x".repeat(i % 50))
}

#[test]
fn delivers_every_record_in_order_per_partition_in_the_aws_event_shape() {
    let topic = topic_name("in-order");
    create_topic(&topic, 4);
    let produced = produce(&topic, 4, 150, value);
    let mut poller = Poller::start(&topic, &recorder_config(&topic, &group_name("in-order"), "batch_size = 40"));
    wait_until(DELIVERY_TIMEOUT, "every record is delivered", || seen_offsets(&topic).len() >= produced.len());
    let duplicates = reconcile(&topic, &produced);
    assert_eq!(duplicates, 0, "a clean run delivers each record once");

    let seen = seen(&topic);
    let one = &seen[0].0;
    assert_eq!(one["eventSource"], "SelfManagedKafka");
    assert!(one["eventSourceArn"].is_null(), "self-managed events carry no eventSourceArn");
    assert_eq!(one["bootstrapServers"].as_str(), Some(services().kafka_bootstrap_servers()));
    assert_eq!(one["group"].as_str(), Some(format!("{topic}-{}", one["partition"]).as_str()));
    assert_eq!(one["timestampType"], "CREATE_TIME");
    let age_ms = chrono_now_ms() - one["timestamp"].as_i64().unwrap();
    assert!((0..600_000).contains(&age_ms), "timestamp is the record's epoch ms, got {}", one["timestamp"]);
    let expected_key = format!("key-{}-", one["partition"]);
    assert!(one["key"].as_str().unwrap().starts_with(&expected_key));
    let headers = one["headers"].as_array().unwrap();
    assert_eq!(headers[0][0], "index");
    assert_eq!(headers[1][0], "binary");
    assert_eq!(headers[1][1], String::from_utf8_lossy(&[0u8, 200, 255]).as_ref());
    // One partition per invocation, never more than batch_size records.
    for s in &seen {
        assert!(s.0["batchRecords"].as_u64().unwrap() <= 40);
        assert_eq!(s.0["groupIndex"], 0);
    }
    assert_eq!(poller.terminate(Duration::from_secs(30)).code(), Some(0));
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

#[test]
fn batches_close_at_the_record_count_and_at_the_payload_byte_limit() {
    let by_count = topic_name("batch-count");
    let by_bytes = topic_name("batch-bytes");
    create_topic(&by_count, 1);
    create_topic(&by_bytes, 1);
    let produced_count = produce(&by_count, 1, 60, value);
    let kilobyte = |_: i32, i: usize| format!(r#"{{"i":{i},"pad":"{}"}}"#, "y".repeat(1000));
    let produced_bytes = produce(&by_bytes, 1, 30, kilobyte);
    let mut config = recorder_config(&by_count, &group_name("batch-count"), "batch_size = 7\nbatching_window_ms = 2000");
    config.push_str(&format!(
        "\n[[mapping]]\nfunction = \"test-recorder\"\ntopics = [\"{by_bytes}\"]\nconsumer_group = \"{}\"\nbatch_size = 1000\nbatching_window_ms = 2000\nmax_payload_bytes = 4096\n",
        group_name("batch-bytes")
    ));
    let mut poller = Poller::start(&by_count, &config);
    wait_until(DELIVERY_TIMEOUT, "both topics are delivered", || {
        seen_offsets(&by_count).len() >= produced_count.len() && seen_offsets(&by_bytes).len() >= produced_bytes.len()
    });
    reconcile(&by_count, &produced_count);
    reconcile(&by_bytes, &produced_bytes);

    let counts = batch_sizes(&by_count);
    assert!(counts.iter().all(|&n| n <= 7), "batch_size = 7 exceeded: {counts:?}");
    assert!(counts.iter().filter(|&&n| n == 7).count() >= 7, "a 2 s window should fill batches of 7: {counts:?}");
    for s in seen(&by_bytes) {
        let bytes = s.0["payloadBytes"].as_u64().unwrap();
        // The recorder measures a re-serialization of the same JSON, which is byte-identical.
        assert!(bytes <= 4096, "payload of {bytes} bytes exceeds max_payload_bytes = 4096");
    }
    let sizes = batch_sizes(&by_bytes);
    assert!(sizes.iter().all(|&n| (2..=3).contains(&n) || n == *sizes.last().unwrap()), "1 KB records in 4 KiB payloads: {sizes:?}");
    assert_eq!(poller.terminate(Duration::from_secs(30)).code(), Some(0));
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
    let topic = topic_name("restart");
    let group = group_name("restart");
    create_topic(&topic, 2);
    let first = produce(&topic, 2, 50, value);
    let config = recorder_config(&topic, &group, "batch_size = 10");
    let mut poller = Poller::start(&format!("{topic}-a"), &config);
    wait_until(DELIVERY_TIMEOUT, "the first records are delivered", || seen_offsets(&topic).len() >= first.len());
    let status = poller.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0; log:\n{}", poller.log_text());
    assert!(poller.log_text().contains("final offsets committed"), "log:\n{}", poller.log_text());

    let second = produce(&topic, 2, 50, value);
    let mut restarted = Poller::start(&format!("{topic}-b"), &config);
    let mut all = first.clone();
    all.extend(second);
    wait_until(DELIVERY_TIMEOUT, "the new records are delivered", || seen_offsets(&topic).len() >= all.len());
    assert_eq!(reconcile(&topic, &all), 0, "a restart after a clean stop redelivers nothing");
    assert_eq!(restarted.terminate(Duration::from_secs(30)).code(), Some(0));
}

#[test]
fn sigterm_lets_the_batch_in_flight_finish_before_exiting() {
    let topic = topic_name("drain");
    create_topic(&topic, 1);
    let slow = |_: i32, i: usize| format!(r#"{{"i":{i},"sleep_ms":1500}}"#);
    let produced = produce(&topic, 1, 5, slow);
    let config = recorder_config(&topic, &group_name("drain"), "batch_size = 5\nbatching_window_ms = 0");
    let mut poller = Poller::start(&topic, &config);
    wait_until(DELIVERY_TIMEOUT, "the batch is in flight", || poller.log_text().contains("partitions assigned"));
    std::thread::sleep(Duration::from_millis(800));
    let status = poller.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "log:\n{}", poller.log_text());
    // The batch in flight at SIGTERM was delivered before the process exited.
    assert_eq!(reconcile(&topic, &produced), 0);
}

#[test]
fn a_crash_mid_stream_then_a_restart_loses_nothing() {
    let topic = topic_name("crash");
    let group = group_name("crash");
    create_topic(&topic, 3);
    let produced = produce(&topic, 3, 400, value);
    let config = recorder_config(&topic, &group, "batch_size = 20");
    let mut poller = Poller::start(&format!("{topic}-a"), &config);
    wait_until(DELIVERY_TIMEOUT, "delivery is under way", || seen_offsets(&topic).len() >= 100);
    poller.kill9();
    let before = seen_offsets(&topic).len();
    assert!(before < produced.len(), "the crash should happen mid-stream ({before} of {} delivered)", produced.len());
    let mut restarted = Poller::start(&format!("{topic}-b"), &config);
    wait_until(DELIVERY_TIMEOUT, "everything is delivered after the restart", || {
        seen_offsets(&topic).len() >= produced.len()
    });
    let duplicates = reconcile(&topic, &produced);
    eprintln!("duplicates after kill -9: {duplicates}");
    assert_eq!(restarted.terminate(Duration::from_secs(30)).code(), Some(0));
}

#[test]
fn pollers_in_one_group_share_the_partitions_and_members_joining_and_leaving_lose_nothing() {
    let topic = topic_name("scale");
    let group = group_name("scale");
    create_topic(&topic, 4);
    let config = recorder_config(&topic, &group, "batch_size = 10");
    let mut a = Poller::start(&format!("{topic}-a"), &config);
    let mut b = Poller::start(&format!("{topic}-b"), &config);
    let first = produce(&topic, 4, 100, value);
    wait_until(DELIVERY_TIMEOUT, "the first wave is delivered", || seen_offsets(&topic).len() >= first.len());
    let split = |log: &str| log.contains("partitions assigned");
    assert!(split(&a.log_text()) && split(&b.log_text()), "both pollers got partitions");

    let mut c = Poller::start(&format!("{topic}-c"), &config);
    let second = produce(&topic, 4, 100, value);
    wait_until(DELIVERY_TIMEOUT, "the third poller joins", || c.log_text().contains("partitions assigned"));
    assert_eq!(c.terminate(Duration::from_secs(60)).code(), Some(0), "log:\n{}", c.log_text());
    let third = produce(&topic, 4, 100, value);
    let mut all = first;
    all.extend(second);
    all.extend(third);
    wait_until(DELIVERY_TIMEOUT, "every wave is delivered", || seen_offsets(&topic).len() >= all.len());
    let duplicates = reconcile(&topic, &all);
    eprintln!("duplicates across rebalances: {duplicates}");
    assert_eq!(a.terminate(Duration::from_secs(60)).code(), Some(0));
    assert_eq!(b.terminate(Duration::from_secs(60)).code(), Some(0));
}
