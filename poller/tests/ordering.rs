//! `ordering = "key"` and `"none"` against the real broker, the real poller binary and
//! `test-recorder` under `cargo lambda watch`: records of one key reach the function in offset
//! order while keys go concurrently, a failing key holds back only itself, and nothing is lost
//! across a crash or a rebalance.

// Test helpers outside #[test] functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used)]

use kafka_lambda_tests::{
    FAST_RETRIES, Poller, Seen, committed_offset, create_topic, group_name, new_topic, produce_all,
    read_topic, recorder_config, seen, services, topic_name, wait_until,
};
use rdkafka::producer::BaseRecord;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(180);

/// Produces `count` records per partition of `topic` with keys `key(partition, i)` and values
/// `value(partition, i)`, in order; returns the (partition, key) of each record by its value's
/// index `"i"`, which the values carry.
fn produce_keyed(
    topic: &str,
    partitions: i32,
    count: usize,
    key: impl Fn(i32, usize) -> String,
    value: impl Fn(i32, usize) -> String,
) {
    let records: Vec<(i32, String, String)> = (0..partitions)
        .flat_map(|p| (0..count).map(move |i| (p, i)))
        .map(|(p, i)| (p, key(p, i), value(p, i)))
        .collect();
    produce_all(
        &[("linger.ms", "5"), ("enable.idempotence", "true")],
        records
            .iter()
            .map(|(p, k, v)| BaseRecord::to(topic).partition(*p).key(k).payload(v)),
    );
}

/// Values `{"i":i}`, with `extra` fields added to every record whose index `special` selects.
fn values_with(
    extra: &'static str,
    special: impl Fn(usize) -> bool,
) -> impl Fn(i32, usize) -> String {
    move |_, i| {
        if special(i) {
            format!(r#"{{"i":{i},{extra}}}"#)
        } else {
            format!(r#"{{"i":{i}}}"#)
        }
    }
}

/// A poller configuration for `topic` → `test-recorder` in group `group`, with the mapping
/// `settings` and fast retries.
fn config(topic: &str, group: &str, settings: &str) -> String {
    recorder_config(topic, group, &format!("{settings}\n{FAST_RETRIES}"))
}

/// The key test-recorder saw for a record.
fn key_of(s: &Seen) -> String {
    s.0["key"].as_str().unwrap_or_default().to_owned()
}

/// Checks that no key was reordered: every time a record of a key was processed, every record
/// of that key with a lower offset had been processed before (redeliveries after a crash or a
/// rebalance repeat a prefix, which keeps this true). Returns the records processed, without
/// repeats.
fn assert_each_key_in_order(seen: &[Seen]) -> BTreeSet<(i32, i64)> {
    let mut by_key: HashMap<(i32, String), BTreeSet<i64>> = HashMap::new();
    let mut all: HashMap<(i32, String), BTreeSet<i64>> = HashMap::new();
    for s in seen {
        all.entry((s.partition(), key_of(s)))
            .or_default()
            .insert(s.offset());
    }
    for s in seen {
        let lane = (s.partition(), key_of(s));
        let done = by_key.entry(lane.clone()).or_default();
        let lower = all[&lane].range(..s.offset());
        for o in lower {
            assert!(
                done.contains(o),
                "key {lane:?}: offset {} was processed before offset {o} of the same key",
                s.offset()
            );
        }
        done.insert(s.offset());
    }
    seen.iter().map(|s| (s.partition(), s.offset())).collect()
}

/// A key per record from a small pseudo-random generator: `keys` keys, unevenly used.
fn scattered_key(keys: usize) -> impl Fn(i32, usize) -> String {
    move |p, i| {
        let mut x = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (p as u64) << 32;
        x ^= x >> 29;
        format!("key-{}", x % keys as u64)
    }
}

#[test]
fn records_of_a_key_keep_their_order_while_keys_run_concurrently_through_failures() {
    let topic = new_topic("order-by-key", 2);
    // About one record in 20 fails its first invocation: the batch fails, and every key of it
    // is retried on its own.
    produce_keyed(&topic, 2, 600, scattered_key(40), |p, i| {
        if (i * 7 + p as usize) % 20 == 3 {
            format!(r#"{{"i":{i},"fail_times":1}}"#)
        } else {
            format!(r#"{{"i":{i}}}"#)
        }
    });
    let config = config(
        &topic,
        &group_name("order-by-key"),
        "ordering = \"key\"\nbatch_size = 10\nbatching_window_ms = 20\nmax_concurrency = 16",
    );
    let mut poller = Poller::start(&topic, &config);
    wait_until(TIMEOUT, "every record is processed", || {
        seen(&topic).len() >= 1200
    });
    let seen = seen(&topic);
    let processed = assert_each_key_in_order(&seen);
    assert_eq!(processed.len(), 1200, "every record once");
    assert_eq!(seen.len(), 1200, "no record processed twice");
    let batches: BTreeSet<&str> = seen.iter().map(Seen::invocation).collect();
    let keys_per_batch = seen.len() as f64 / batches.len() as f64;
    assert!(
        keys_per_batch > 1.0,
        "batches hold several records (and keys): {keys_per_batch}"
    );
    assert_eq!(poller.terminate(Duration::from_secs(30)).code(), Some(0));
}

#[test]
fn a_failing_key_holds_back_only_its_own_records_and_the_commit() {
    let topic = new_topic("poison-key", 1);
    // Record 5 (key k5) always fails, with no retry limit and no destination: it never ends.
    produce_keyed(
        &topic,
        1,
        100,
        |_, i| format!("k{}", i % 10),
        values_with(r#""fail":true"#, |i| i == 5),
    );
    let group = group_name("poison-key");
    let config = config(
        &topic,
        &group,
        "ordering = \"key\"\nbatch_size = 5\nbatching_window_ms = 10\nmax_concurrency = 8",
    );
    let mut poller = Poller::start(&topic, &config);
    let others: BTreeSet<i64> = (0..100).filter(|i| i % 10 != 5).collect();
    wait_until(
        TIMEOUT,
        "every record of the other keys is processed",
        || {
            let offsets: BTreeSet<i64> = seen(&topic).iter().map(Seen::offset).collect();
            others.is_subset(&offsets)
        },
    );
    let seen = seen(&topic);
    assert_each_key_in_order(&seen);
    let k5: Vec<i64> = seen
        .iter()
        .filter(|s| key_of(s) == "k5")
        .map(Seen::offset)
        .collect();
    assert!(
        k5.is_empty(),
        "nothing of k5 passes its failing record: {k5:?}"
    );
    // Committed up to the record before the first one not done, and no further.
    wait_until(Duration::from_secs(30), "offset 5 is committed", || {
        committed_offset(services().kafka_bootstrap_servers(), &group, &topic, 0) == Some(5)
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        committed_offset(services().kafka_bootstrap_servers(), &group, &topic, 0),
        Some(5)
    );
    assert_eq!(poller.terminate(Duration::from_secs(30)).code(), Some(0));
}

#[test]
fn a_poison_record_is_dead_lettered_alone_and_its_key_goes_on() {
    let topic = new_topic("poison-key-dlq", 1);
    let dlq = topic_name("poison-key-dlq-dlq");
    create_topic(&dlq, 1);
    // Record 5 (key k5) always fails; k5's later records and every other key are fine.
    produce_keyed(
        &topic,
        1,
        60,
        |_, i| format!("k{}", i % 10),
        values_with(r#""fail":true"#, |i| i == 5),
    );
    let config = config(
        &topic,
        &group_name("poison-key-dlq"),
        &format!(
            "ordering = \"key\"\nbatch_size = 5\nbatching_window_ms = 10\nmax_concurrency = 8\n\
             max_retry_attempts = 1\non_failure = \"kafka://{dlq}\""
        ),
    );
    let mut poller = Poller::start(&topic, &config);
    let dead = read_topic(&dlq, 1, TIMEOUT);
    let dead: Vec<String> = dead
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(dead, [r#"{"i":5,"fail":true}"#], "the poison record alone");
    let everything_else: BTreeSet<i64> = (0..60).filter(|i| *i != 5).collect();
    wait_until(TIMEOUT, "every other record is processed", || {
        let offsets: BTreeSet<i64> = seen(&topic).iter().map(Seen::offset).collect();
        everything_else.is_subset(&offsets)
    });
    let seen = seen(&topic);
    assert_each_key_in_order(&seen);
    assert!(
        seen.iter().all(|s| s.offset() != 5),
        "the poison record was never processed"
    );
    assert_eq!(poller.terminate(Duration::from_secs(30)).code(), Some(0));
}

#[test]
fn ordering_none_delivers_every_record() {
    let topic = new_topic("order-none", 2);
    produce_keyed(
        &topic,
        2,
        400,
        |p, i| format!("key-{p}-{i}"),
        |_, i| format!(r#"{{"i":{i}}}"#),
    );
    let config = config(
        &topic,
        &group_name("order-none"),
        "ordering = \"none\"\nbatch_size = 25\nbatching_window_ms = 20\nmax_concurrency = 8",
    );
    let mut poller = Poller::start(&topic, &config);
    wait_until(TIMEOUT, "every record is processed", || {
        seen(&topic).len() >= 800
    });
    let offsets: BTreeSet<(i32, i64)> = seen(&topic)
        .iter()
        .map(|s| (s.partition(), s.offset()))
        .collect();
    assert_eq!(offsets.len(), 800);
    assert_eq!(poller.terminate(Duration::from_secs(30)).code(), Some(0));
}

/// Runs `disturb` once 600 of `topic`'s 2 × 3000 keyed records are processed by a first poller
/// (`disturb` returns the pollers left running), then checks that every record is processed
/// with no key reordered; returns the logs of the pollers left running, stopped.
fn through_a_disturbance(
    name: &str,
    disturb: impl FnOnce(Poller, &str, &str) -> Vec<Poller>,
) -> Vec<String> {
    let topic = new_topic(name, 2);
    // 20 ms per invocation and 4 in flight: about 2,000 records/s, so that the disturbance
    // lands with most records still to go.
    produce_keyed(&topic, 2, 3000, scattered_key(50), |_, i| {
        format!(r#"{{"i":{i},"sleep_ms":20}}"#)
    });
    let config = config(
        &topic,
        &group_name(name),
        "ordering = \"key\"\nbatch_size = 10\nbatching_window_ms = 20\nmax_concurrency = 4\n\
         max_records_in_flight_per_partition = 100",
    );
    let first = Poller::start(&topic, &config);
    wait_until(TIMEOUT, "600 records are processed", || {
        seen(&topic).len() >= 600
    });
    let mut running = disturb(first, &topic, &config);
    wait_until(TIMEOUT, "every record is processed", || {
        let offsets: BTreeSet<(i32, i64)> = seen(&topic)
            .iter()
            .map(|s| (s.partition(), s.offset()))
            .collect();
        offsets.len() >= 6000
    });
    let seen = seen(&topic);
    let processed = assert_each_key_in_order(&seen);
    let repeated = seen.len() - processed.len();
    eprintln!("{name}: {repeated} records processed again");
    assert!(
        repeated <= 2 * 100,
        "a crash or a hand-over repeats at most the look-ahead of each partition (2 × 100): {repeated}"
    );
    let expected: BTreeMap<i32, usize> = [(0, 3000), (1, 3000)].into();
    let mut per_partition: BTreeMap<i32, usize> = BTreeMap::new();
    for (p, _) in &processed {
        *per_partition.entry(*p).or_default() += 1;
    }
    assert_eq!(per_partition, expected);
    running
        .iter_mut()
        .map(|poller| {
            assert_eq!(poller.terminate(Duration::from_secs(60)).code(), Some(0));
            poller.log()
        })
        .collect()
}

#[test]
fn a_crash_mid_run_loses_nothing_and_reorders_no_key() {
    through_a_disturbance("key-crash", |mut first, topic, config| {
        first.kill9();
        vec![Poller::start(topic, config)]
    });
}

#[test]
fn a_rebalance_between_two_pollers_mid_run_reorders_no_key() {
    let logs = through_a_disturbance("key-rebalance", |first, topic, config| {
        vec![first, Poller::start(&format!("{topic}-second"), config)]
    });
    assert!(
        logs[0].contains("partitions revoked"),
        "the first poller handed a partition over; log:\n{}",
        logs[0]
    );
    assert!(
        logs[1].contains("partitions assigned"),
        "the second poller took one; log:\n{}",
        logs[1]
    );
}

#[test]
fn until_caught_up_by_key_ends_once_every_record_is_done_and_committed() {
    let topic = new_topic("key-until", 2);
    // Some records sleep: the last offsets of a partition finish before earlier ones, and the
    // run may end only when the committed offset covers them all.
    produce_keyed(
        &topic,
        2,
        300,
        scattered_key(30),
        values_with(r#""sleep_ms":300"#, |i| i % 50 == 7),
    );
    let group = group_name("key-until");
    let config = config(
        &topic,
        &group,
        "ordering = \"key\"\nbatch_size = 10\nbatching_window_ms = 20\nmax_concurrency = 16",
    );
    let mut poller = Poller::start_with(&topic, &config, &["--until-caught-up"]);
    let status = poller.wait(TIMEOUT);
    assert_eq!(status.code(), Some(0), "log:\n{}", poller.log());
    let processed = assert_each_key_in_order(&seen(&topic));
    assert_eq!(processed.len(), 600, "every record before the run ended");
    for partition in 0..2 {
        assert_eq!(
            committed_offset(
                services().kafka_bootstrap_servers(),
                &group,
                &topic,
                partition
            ),
            Some(300),
            "partition {partition} committed to its end"
        );
    }
}
