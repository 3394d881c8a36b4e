//! Failure handling against the real broker and `cargo lambda watch` (function `test-recorder`,
//! whose failures are scripted by record content): retries, bisecting, partial batch responses,
//! record age, dead-letter topics. Every scenario reconciles produced offsets against
//! delivered ∪ dead-lettered ∪ skipped-and-logged.

// Test helpers outside #[test] functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used)]

use kafka_lambda_tests::{
    FAST_RETRIES, KafkaCluster, Poller, ReadRecord, attempts, create_topic_on, free_port,
    group_name, http_get, kafka_tool, metric, new_topic, produce, produce_one, read_topic,
    read_topic_from, reconcile, recorder_config, sasl_table, secret_file, seen, seen_offsets,
    send_each, services, topic_name, users, wait_for_seen, wait_until, with_telemetry,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A config for `topic` → `test-recorder` in a fresh group named after `group`, with `settings`
/// and fast retries in its mapping.
fn config(topic: &str, group: &str, settings: &str) -> String {
    recorder_config(
        topic,
        &group_name(group),
        &format!("{settings}\n{FAST_RETRIES}"),
    )
}

/// A poller of [`config`].
fn start(topic: &str, group: &str, settings: &str) -> Poller {
    Poller::start(topic, &config(topic, group, settings))
}

/// A config for `topic` → `test-recorder`, one record per batch: a record that fails once is
/// dead-lettered to `dlq` at once.
fn one_try_then_dead_letter(topic: &str, group: &str, dlq: &str) -> String {
    config(
        topic,
        group,
        &format!("batch_size = 1\nmax_retry_attempts = 0\non_failure = \"kafka://{dlq}\""),
    )
}

/// `config` with invocations that time out after 1 s.
fn with_one_second_invoke_timeout(config: &str) -> String {
    config.replace(
        "region = \"us-east-1\"",
        "region = \"us-east-1\"\ninvoke_timeout_s = 1",
    )
}

/// Produces `n` plain records to partition 0, with `special` values at the given indices.
fn produce_with(topic: &str, n: usize, special: &[(usize, &str)]) -> BTreeMap<(i32, i64), String> {
    produce(topic, 1, n, |_, i| {
        special.iter().find(|(at, _)| *at == i).map_or_else(
            || format!(r#"{{"i":{i}}}"#),
            |(_, value)| (*value).to_owned(),
        )
    })
}

/// The (partition, offset) of the `index`th record of `produced`.
fn nth(produced: &BTreeMap<(i32, i64), String>, index: usize) -> (i32, i64) {
    produced.keys().nth(index).copied().unwrap()
}

/// Checks that every record of `produced` but `poison` was delivered exactly once, and the
/// `poison` ones never.
fn assert_delivered_once_but(
    topic: &str,
    produced: &BTreeMap<(i32, i64), String>,
    poison: &[(i32, i64)],
) {
    let mut healthy = produced.clone();
    for p in poison {
        healthy.remove(p);
    }
    assert_eq!(
        reconcile(topic, &healthy),
        0,
        "the healthy records are delivered once each"
    );
    let seen = seen_offsets(topic);
    for p in poison {
        assert!(!seen.contains(p), "{p:?} was never processed");
    }
}

/// The one record on `dlq` (read within [`TIMEOUT`]).
fn the_dead_letter(dlq: &str, poller: &Poller) -> ReadRecord {
    let mut dead = read_topic(dlq, 1, TIMEOUT);
    assert_eq!(dead.len(), 1, "{dead:?}; log:\n{}", poller.log());
    dead.remove(0)
}

/// The source offset a dead letter's failure headers name.
fn source_offset(dead: &ReadRecord) -> i64 {
    dead.header("kafka-lambda-source-offset")
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_poison_record_is_isolated_by_bisection_and_dead_lettered_with_failure_headers() {
    let topic = new_topic("poison", 1);
    let dlq = new_topic("poison-dlq", 1);
    let produced = produce_with(&topic, 12, &[(5, r#"{"i":5,"fail":true}"#)]);
    let poison = nth(&produced, 5);
    let mut poller = start(
        &topic,
        "poison",
        &format!(
            "batch_size = 12\nbatching_window_ms = 1000\nmax_retry_attempts = 2\nbisect_batch_on_function_error = true\non_failure = \"kafka://{dlq}\""
        ),
    );
    wait_for_seen(
        TIMEOUT,
        "the healthy records are delivered",
        &topic,
        produced.len() - 1,
    );
    let dead = read_topic(&dlq, 1, TIMEOUT);
    assert_eq!(
        dead.len(),
        1,
        "exactly the poison record is dead-lettered: {dead:?}"
    );
    let d = &dead[0];
    assert_eq!(d.value.as_deref(), Some(produced[&poison].as_bytes()));
    assert_eq!(d.key.as_deref(), Some("key-0-5".as_bytes()));
    assert_eq!(
        d.header("index").as_deref(),
        Some("5"),
        "original headers are kept"
    );
    assert_eq!(
        d.header("kafka-lambda-source-topic").as_deref(),
        Some(topic.as_str())
    );
    assert_eq!(
        d.header("kafka-lambda-source-partition").as_deref(),
        Some("0")
    );
    assert_eq!(source_offset(d), poison.1);
    assert_eq!(
        d.header("kafka-lambda-function").as_deref(),
        Some("test-recorder")
    );
    assert!(
        d.header("kafka-lambda-error-message")
            .unwrap()
            .contains("asked to fail"),
        "{:?}",
        d.headers()
    );
    assert_eq!(
        d.header("kafka-lambda-error-type").as_deref(),
        Some("RecordAskedToFail"),
        "the error type the function answered with"
    );
    // Bisection: 12 → 6 → 3 → 2 → 1 records (4 failed invocations), then the isolated record's
    // first invocation and its 2 retries: 7 invocations carried it, and the header says so.
    assert_eq!(attempts(&topic)[&poison], 7);
    assert_eq!(d.header("kafka-lambda-attempts").as_deref(), Some("7"));
    let others: Vec<usize> = attempts(&topic)
        .iter()
        .filter(|(k, _)| **k != poison)
        .map(|(_, n)| *n)
        .collect();
    assert!(
        others.iter().all(|&n| n <= 5),
        "healthy records are only retried while bisecting: {others:?}"
    );
    let failed_at: i64 = d.header("kafka-lambda-failed-at").unwrap().parse().unwrap();
    assert!((now_ms() - failed_at).abs() < 120_000);

    // Reconcile: every other record delivered exactly once, the poison one never.
    assert_delivered_once_but(&topic, &produced, &[poison]);
    poller.terminate_cleanly(Duration::from_secs(30));
}

#[test]
fn partial_batch_responses_retry_from_the_first_failed_record_only() {
    let topic = new_topic("partial", 1);
    let produced = produce_with(&topic, 10, &[(6, r#"{"i":6,"partial_times":2}"#)]);
    let failed = nth(&produced, 6);
    let mut poller = start(
        &topic,
        "partial",
        "batch_size = 10\nbatching_window_ms = 1000\nreport_batch_item_failures = true",
    );
    wait_for_seen(TIMEOUT, "everything is delivered", &topic, produced.len());
    assert_eq!(
        reconcile(&topic, &produced),
        0,
        "records are delivered once each"
    );
    let counts = attempts(&topic);
    for (key, n) in &counts {
        let expected = if key.1 < failed.1 { 1 } else { 3 };
        assert_eq!(
            *n, expected,
            "record {key:?} invoked {n} times; records before the failed offset once, the rest 3 times"
        );
    }
    assert_eq!(counts.len(), produced.len());
    poller.terminate_cleanly(Duration::from_secs(30));
}

#[test]
fn partial_responses_are_ignored_unless_report_batch_item_failures_is_on() {
    let topic = new_topic("partial-off", 1);
    // Three batches (one record each) whose response names their record as failed.
    let produced = produce_with(
        &topic,
        5,
        &[
            (1, r#"{"i":1,"partial_times":5}"#),
            (2, r#"{"i":2,"partial_times":5}"#),
            (3, r#"{"i":3,"partial_times":5}"#),
        ],
    );
    let mut poller = Poller::start(
        &topic,
        &recorder_config(&topic, &group_name("partial-off"), "batch_size = 1"),
    );
    // The recorder records a record it reports as failed only among its attempts.
    wait_until(TIMEOUT, "every record is invoked", || {
        attempts(&topic).len() >= produced.len()
    });
    assert!(
        attempts(&topic).values().all(|&n| n == 1),
        "a success is a success: {:?}",
        attempts(&topic)
    );
    poller.terminate_cleanly(Duration::from_secs(30));
    let log = poller.log();
    assert_eq!(
        log.matches("the function returned batchItemFailures, which are ignored")
            .count(),
        1,
        "the ignored failures are logged at warn, once per mapping; log:\n{log}"
    );
}

#[test]
fn max_retry_attempts_stops_retries_and_without_a_destination_the_record_is_skipped_and_logged() {
    let topic = new_topic("max-attempts", 1);
    let produced = produce_with(&topic, 6, &[(3, r#"{"i":3,"fail":true}"#)]);
    let poison = nth(&produced, 3);
    let mut poller = start(
        &topic,
        "max-attempts",
        "batch_size = 1\nmax_retry_attempts = 3",
    );
    wait_for_seen(
        TIMEOUT,
        "the records after the poison one are delivered",
        &topic,
        produced.len() - 1,
    );
    assert_eq!(attempts(&topic)[&poison], 4, "1 invocation + 3 retries");
    let log = poller.log();
    assert!(
        log.lines().any(|l| l.contains("giving up on records")
            && l.contains(&format!("first_offset={}", poison.1))),
        "the skip is logged at error with its offsets; log:\n{log}"
    );
    assert_delivered_once_but(&topic, &produced, &[poison]);
    poller.terminate_cleanly(Duration::from_secs(30));
}

#[test]
fn records_older_than_max_record_age_are_not_retried_but_dead_lettered() {
    let topic = new_topic("max-age", 1);
    let dlq = new_topic("max-age-dlq", 1);
    let old = produce_one(&topic, 0, r#"{"fail":true}"#, Some(now_ms() - 120_000), &[]);
    let fresh = produce_one(&topic, 0, r#"{"ok":true}"#, None, &[]);
    let mut poller = start(
        &topic,
        "max-age",
        &format!("batch_size = 1\nmax_record_age_s = 60\non_failure = \"kafka://{dlq}\""),
    );
    wait_until(TIMEOUT, "the fresh record is delivered", || {
        seen_offsets(&topic).contains(&(0, fresh))
    });
    let dead = the_dead_letter(&dlq, &poller);
    assert_eq!(
        dead.header("kafka-lambda-error-type").as_deref(),
        Some("RecordAgeExceeded")
    );
    assert_eq!(source_offset(&dead), old);
    assert_eq!(
        attempts(&topic)[&(0, old)],
        1,
        "an expired record is not invoked again"
    );
    poller.terminate_cleanly(Duration::from_secs(30));
}

#[test]
fn record_age_is_checked_while_invocations_keep_timing_out() {
    let topic = new_topic("max-age-timeout", 1);
    let dlq = new_topic("max-age-timeout-dlq", 1);
    // Two minutes old, and every invocation of it outlasts the 1 s invoke timeout: a service
    // failure each time, which uses no retry, so only its age can end it.
    let old = produce_one(
        &topic,
        0,
        r#"{"sleep_ms":2500}"#,
        Some(now_ms() - 120_000),
        &[],
    );
    let mut poller = Poller::start(
        &topic,
        &with_one_second_invoke_timeout(&config(
            &topic,
            "max-age-timeout",
            &format!("batch_size = 1\nmax_record_age_s = 60\non_failure = \"kafka://{dlq}\""),
        )),
    );
    let dead = the_dead_letter(&dlq, &poller);
    assert_eq!(source_offset(&dead), old);
    assert_eq!(
        dead.header("kafka-lambda-error-type").as_deref(),
        Some("RecordAgeExceeded")
    );
    poller.terminate_cleanly(Duration::from_secs(30));
}

#[test]
fn an_unavailable_destination_blocks_the_partition_until_it_is_back_and_loses_nothing() {
    let topic = new_topic("dlq-down", 1);
    let dlq = topic_name("dlq-down-dlq");
    let produced = produce_with(&topic, 6, &[(2, r#"{"i":2,"fail":true}"#)]);
    let poison = nth(&produced, 2);
    // The destination is another cluster, down at first: its only broker is killed once the
    // dead-letter topic exists, and restarted on the same data later.
    let mut destination = KafkaCluster::start(1);
    destination.create_topic(&dlq, 1);
    let destination_servers = destination.bootstrap_servers();
    destination.kill(1);
    let mut poller = start(
        &topic,
        "dlq-down",
        &format!(
            "batch_size = 1\nmax_retry_attempts = 1\non_failure = \"kafka://{dlq}\"\non_failure_bootstrap_servers = \"{destination_servers}\""
        ),
    );
    wait_until(TIMEOUT, "the destination failure is logged", || {
        poller
            .log()
            .contains("cannot write to the on_failure destination")
    });
    let seen = seen_offsets(&topic);
    assert!(
        seen.iter().all(|k| k.1 < poison.1),
        "nothing after the blocked record is delivered: {seen:?}"
    );

    // The destination comes back: the record is dead-lettered there and the partition moves on.
    destination.restart(1);
    wait_for_seen(TIMEOUT, "the rest is delivered", &topic, produced.len() - 1);
    let dead = read_topic_from(&destination_servers, &dlq, 1, TIMEOUT);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(source_offset(&dead[0]), poison.1);
    assert_delivered_once_but(&topic, &produced, &[poison]);
    poller.terminate_cleanly(Duration::from_secs(30));
}

#[test]
fn a_malformed_partial_response_fails_the_whole_batch() {
    let topic = new_topic("bad-response", 1);
    produce_with(&topic, 4, &[(1, r#"{"i":1,"bad_response":true}"#)]);
    let mut poller = start(
        &topic,
        "bad-response",
        "batch_size = 4\nbatching_window_ms = 1000\nreport_batch_item_failures = true\nmax_retry_attempts = 1",
    );
    wait_until(TIMEOUT, "the batch is given up", || {
        poller.log().contains("giving up on records")
    });
    let log = poller.log();
    assert!(
        log.contains("malformed partial batch response"),
        "log:\n{log}"
    );
    assert!(
        attempts(&topic).values().all(|&n| n == 2),
        "the whole batch was retried once: {:?}",
        attempts(&topic)
    );
    poller.terminate_cleanly(Duration::from_secs(30));
}

#[test]
fn an_invocation_that_times_out_is_retried_not_dropped() {
    let topic = new_topic("timeout", 1);
    let produced = produce_with(
        &topic,
        3,
        &[(0, r#"{"i":0,"sleep_ms":2500,"sleep_times":1}"#)],
    );
    let mut poller = Poller::start(
        &topic,
        &with_one_second_invoke_timeout(&config(
            &topic,
            "timeout",
            "batch_size = 3\nbatching_window_ms = 500",
        )),
    );
    wait_for_seen(TIMEOUT, "every record is delivered", &topic, produced.len());
    let log = poller.log();
    assert!(
        log.contains("timed out"),
        "the timeout is logged; log:\n{log}"
    );
    // The timed-out invocation may still have completed in the function: at-least-once.
    reconcile(&topic, &produced);
    let retried: BTreeSet<_> = attempts(&topic)
        .into_iter()
        .filter(|(_, n)| *n >= 2)
        .map(|(k, _)| k)
        .collect();
    assert!(
        !retried.is_empty(),
        "the batch was invoked again after the timeout"
    );
    poller.terminate_cleanly(Duration::from_secs(30));
}

/// A running scenario of [`poison_in_partial_responses`].
struct PoisonScenario {
    topic: String,
    produced: BTreeMap<(i32, i64), String>,
    /// The records the function always reports as failed.
    poison: Vec<(i32, i64)>,
    poller: Poller,
}

/// Records 0..=9 of one partition, invoked as one batch; the function reports the records at
/// `poison` as failed in every partial batch response, and `max_retry_attempts = 1`.
fn poison_in_partial_responses(
    name: &str,
    poison: &[usize],
    on_failure: Option<&str>,
) -> PoisonScenario {
    let topic = new_topic(name, 1);
    let values: Vec<(usize, String)> = poison
        .iter()
        .map(|&i| (i, format!(r#"{{"i":{i},"partial_times":1000}}"#)))
        .collect();
    let special: Vec<(usize, &str)> = values.iter().map(|(i, v)| (*i, v.as_str())).collect();
    let produced = produce_with(&topic, 10, &special);
    let poison = poison.iter().map(|&i| nth(&produced, i)).collect();
    let destination = on_failure
        .map(|dlq| format!("on_failure = \"kafka://{dlq}\""))
        .unwrap_or_default();
    let poller = Poller::start(
        &topic,
        &config(
            &topic,
            name,
            &format!(
                "batch_size = 10\nbatching_window_ms = 1000\nreport_batch_item_failures = true\nmax_retry_attempts = 1\n{destination}"
            ),
        ),
    );
    PoisonScenario {
        topic,
        produced,
        poison,
        poller,
    }
}

/// Waits until every record but the poison ones is delivered, and checks each was delivered once
/// and the poison ones never.
fn expect_all_but(produced: &BTreeMap<(i32, i64), String>, poison: &[(i32, i64)], topic: &str) {
    wait_for_seen(
        TIMEOUT,
        "every healthy record is delivered",
        topic,
        produced.len() - poison.len(),
    );
    assert_delivered_once_but(topic, produced, poison);
    for (i, p) in poison.iter().enumerate() {
        // Each earlier poison record costs two invocations that carry this one too; then its
        // own failure and its one retry.
        assert_eq!(
            attempts(topic)[p],
            2 * i + 2,
            "{p:?}: invocations carrying it ({:?})",
            attempts(topic)
        );
    }
}

/// The source offsets of the records on a dead-letter topic.
fn dead_offsets(dead: &[ReadRecord]) -> Vec<i64> {
    dead.iter().map(source_offset).collect()
}

#[test]
fn a_record_failed_in_partial_responses_is_dead_lettered_alone_and_the_rest_delivered() {
    let dlq = new_topic("partial-poison-dlq", 1);
    let PoisonScenario {
        topic,
        produced,
        poison,
        mut poller,
    } = poison_in_partial_responses("partial-poison", &[3], Some(&dlq));
    expect_all_but(&produced, &poison, &topic);
    let dead = read_topic(&dlq, 1, TIMEOUT);
    assert_eq!(
        dead_offsets(&dead),
        [poison[0].1],
        "exactly the poison record is dead-lettered"
    );
    assert_eq!(
        dead[0].header("kafka-lambda-error-type").as_deref(),
        Some("PartialBatchFailure")
    );
    poller.terminate_cleanly(Duration::from_secs(30));
    assert_eq!(
        read_topic(&dlq, 2, Duration::from_secs(2)).len(),
        1,
        "nothing else reached the dead-letter topic"
    );
}

#[test]
fn a_record_failed_in_partial_responses_without_a_destination_is_skipped_alone_and_logged() {
    let PoisonScenario {
        topic,
        produced,
        poison,
        mut poller,
    } = poison_in_partial_responses("partial-poison-skip", &[3], None);
    expect_all_but(&produced, &poison, &topic);
    let log = poller.log();
    let skips: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("giving up on records"))
        .collect();
    assert_eq!(skips.len(), 1, "one skip logged; log:\n{log}");
    assert!(
        skips[0].contains(&format!("first_offset={}", poison[0].1))
            && skips[0].contains(&format!("last_offset={}", poison[0].1)),
        "the skip names the record alone: {}",
        skips[0]
    );
    poller.terminate_cleanly(Duration::from_secs(30));
}

#[test]
fn two_records_failed_in_partial_responses_are_dead_lettered_each_alone() {
    let dlq = new_topic("partial-poison2-dlq", 1);
    let PoisonScenario {
        topic,
        produced,
        poison,
        mut poller,
    } = poison_in_partial_responses("partial-poison2", &[3, 6], Some(&dlq));
    expect_all_but(&produced, &poison, &topic);
    let dead = read_topic(&dlq, 2, TIMEOUT);
    assert_eq!(
        dead_offsets(&dead),
        [poison[0].1, poison[1].1],
        "exactly the two poison records are dead-lettered, in order"
    );
    poller.terminate_cleanly(Duration::from_secs(30));
    assert_eq!(read_topic(&dlq, 3, Duration::from_secs(2)).len(), 2);
}

#[test]
fn a_dead_letter_is_the_original_record_not_the_value_the_input_template_made() {
    let topic = new_topic("template-dlq-original", 1);
    let dlq = new_topic("template-dlq-original-dlq", 1);
    // Whitespace, key order and a field the template drops: a reshaped value differs from it.
    let original = r#"{ "extra": [1, 2],   "eventId": 1 }"#;
    produce_one(&topic, 0, r#"{"eventId":0}"#, None, &[]);
    let poison = produce_one(
        &topic,
        0,
        original,
        None,
        &[("x-fail", "true"), ("trace", "abc")],
    );
    produce_one(&topic, 0, r#"{"eventId":2}"#, None, &[]);
    let mut poller = start(
        &topic,
        "template-dlq-original",
        &format!(
            "batch_size = 1\nmax_retry_attempts = 0\ninput_template = '{{\"id\": \"$.eventId\"}}'\non_failure = \"kafka://{dlq}\""
        ),
    );
    wait_for_seen(TIMEOUT, "the other records are delivered", &topic, 2);
    let d = the_dead_letter(&dlq, &poller);
    assert_eq!(source_offset(&d), poison);
    assert_eq!(
        d.value.as_deref(),
        Some(original.as_bytes()),
        "the value as produced, byte for byte"
    );
    assert_eq!(d.key.as_deref(), Some(b"k".as_slice()));
    assert_eq!(d.header("x-fail").as_deref(), Some("true"));
    assert_eq!(d.header("trace").as_deref(), Some("abc"));
    assert_eq!(
        &d.headers()[..2],
        &[
            ("x-fail".to_owned(), b"true".to_vec()),
            ("trace".to_owned(), b"abc".to_vec())
        ],
        "the original headers come first, in order"
    );
    poller.terminate_cleanly(Duration::from_secs(30));
}

/// Source topics whose records may be up to 3 MB (above the broker's 1 MB default).
const LARGE_TOPIC: &[(&str, &str)] = &[("max.message.bytes", "3000000")];

/// Produces to partition 0 of `topic`, with a producer that takes records up to 3 MB:
/// `values[i]` with header `x-fail: true` where `fail[i]`. Returns the offsets.
fn produce_large(topic: &str, values: &[Vec<u8>], fail: &[bool]) -> Vec<i64> {
    use rdkafka::message::{Header, OwnedHeaders};
    let records = values.iter().zip(fail).map(|(value, fail)| {
        let headers = OwnedHeaders::new().insert(Header {
            key: "x-fail",
            value: Some(if *fail { "true" } else { "false" }),
        });
        rdkafka::producer::FutureRecord::to(topic)
            .partition(0)
            .key("k")
            .payload(value.as_slice())
            .headers(headers)
    });
    send_each(&[("message.max.bytes", "3000000")], records)
}

/// A 2 MB value that is not JSON (its bytes cover every byte value).
fn two_megabytes() -> Vec<u8> {
    (0..2_000_000u32).map(|i| (i % 251) as u8).collect()
}

#[test]
fn a_two_megabyte_record_given_up_is_dead_lettered_whole() {
    let topic = topic_name("large-poison");
    let dlq = topic_name("large-poison-dlq");
    let bootstrap = services().kafka_bootstrap_servers();
    create_topic_on(bootstrap, &topic, 1, 1, LARGE_TOPIC);
    create_topic_on(bootstrap, &dlq, 1, 1, LARGE_TOPIC);
    let large = two_megabytes();
    let offsets = produce_large(
        &topic,
        &[b"{}".to_vec(), large.clone(), b"{}".to_vec()],
        &[false, true, false],
    );
    let mut poller = Poller::start(
        &topic,
        &one_try_then_dead_letter(&topic, "large-poison", &dlq),
    );
    wait_for_seen(
        TIMEOUT,
        "the records around the large one are delivered",
        &topic,
        2,
    );
    let dead = the_dead_letter(&dlq, &poller);
    assert_eq!(source_offset(&dead), offsets[1]);
    assert!(
        dead.value.as_deref() == Some(large.as_slice()),
        "the 2 MB value, byte for byte"
    );
    assert!(
        !poller.log().contains("max.message.bytes = "),
        "no size warning: the topics agree"
    );
    poller.terminate_cleanly(Duration::from_secs(30));
}

#[test]
fn a_dead_letter_topic_too_small_for_a_record_is_warned_about_and_reported_until_raised() {
    let topic = topic_name("small-dlq");
    let bootstrap = services().kafka_bootstrap_servers();
    create_topic_on(bootstrap, &topic, 1, 1, LARGE_TOPIC);
    // The broker's default limit (about 1 MB): the 2 MB record cannot be written there.
    let dlq = new_topic("small-dlq-dlq", 1);
    let offsets = produce_large(
        &topic,
        &[b"{}".to_vec(), two_megabytes(), b"{}".to_vec()],
        &[false, true, false],
    );
    let port = free_port();
    let mut poller = Poller::start(
        &topic,
        &with_telemetry(
            &one_try_then_dead_letter(&topic, "small-dlq", &dlq),
            port,
            None,
        ),
    );
    // At start: the mismatch is named, with the topic, its limit and the mapping.
    wait_until(TIMEOUT, "the size warning", || {
        poller.log().lines().any(|l| {
            l.contains("WARN")
                && l.contains(&dlq)
                && l.contains("max.message.bytes = ")
                && l.contains("mapping[0] test-recorder")
        })
    });
    // The write is refused for good: logged with what to fix, counted, retried; /readyz says so.
    wait_until(TIMEOUT, "the refused write is logged", || {
        poller.log().lines().any(|l| {
            l.contains("ERROR")
                && l.contains("cannot write to the on_failure destination")
                && l.contains("raise the topic's max.message.bytes")
        })
    });
    wait_until(TIMEOUT, "/readyz reports the stuck partition", || {
        let (status, body) = http_get(port, "/readyz");
        status == 503 && body.contains("on_failure destination")
    });
    wait_until(TIMEOUT, "the refusals are counted", || {
        let (_, body) = http_get(port, "/metrics");
        metric(
            &body,
            "kafka_lambda_dead_letter_write_errors_total",
            &["reason=\"too_large\""],
        )
        .is_some_and(|n| n >= 2.0)
    });
    assert!(
        !seen_offsets(&topic).contains(&(0, offsets[2])),
        "nothing after the stuck record is delivered"
    );

    // The operator raises the limit: the record goes through and the partition moves on.
    kafka_tool(
        "org.apache.kafka.tools.ConfigCommand",
        &[
            "--bootstrap-server",
            bootstrap,
            "--alter",
            "--entity-type",
            "topics",
            "--entity-name",
            &dlq,
            "--add-config",
            "max.message.bytes=3000000",
        ],
    );
    let dead = the_dead_letter(&dlq, &poller);
    assert_eq!(source_offset(&dead), offsets[1]);
    wait_until(TIMEOUT, "the record after it is delivered", || {
        seen_offsets(&topic).contains(&(0, offsets[2]))
    });
    wait_until(TIMEOUT, "/readyz is 200 again", || {
        http_get(port, "/readyz").0 == 200
    });
    poller.terminate_cleanly(Duration::from_secs(30));
}

/// Produces one record per entry of `headers` to partition 0 of `topic`, each with those
/// headers, names given as bytes (any bytes, as a client other than librdkafka may write them).
fn produce_with_raw_header_names(topic: &str, headers: &[Vec<(&[u8], &str)>]) -> Vec<i64> {
    let values: Vec<String> = (0..headers.len())
        .map(|i| format!(r#"{{"i":{i}}}"#))
        .collect();
    let records = headers.iter().zip(&values).map(|(record_headers, value)| {
        let owned = record_headers.iter().fold(
            rdkafka::message::OwnedHeaders::new(),
            |hs, (name, value)| {
                kafka_lambda_client::add_raw_header(hs, name, Some(value.as_bytes()))
            },
        );
        rdkafka::producer::FutureRecord::to(topic)
            .partition(0)
            .key("k")
            .payload(value.as_bytes())
            .headers(owned)
    });
    send_each(&[], records)
}

#[test]
fn header_names_that_are_not_utf8_reach_the_function_and_the_dead_letter_topic_byte_for_byte() {
    let topic = new_topic("foreign-headers", 1);
    let dlq = new_topic("foreign-headers-dlq", 1);
    let offsets = produce_with_raw_header_names(
        &topic,
        &[
            vec![(b"ok".as_slice(), "1")],
            vec![
                (b"trace\xff\xfe".as_slice(), "t"),
                (b"x-fail".as_slice(), "true"),
            ],
            vec![(b"\xc3".as_slice(), ""), (b"caf\xc3\xa9".as_slice(), "v")],
        ],
    );
    let mut poller = Poller::start(
        &topic,
        &one_try_then_dead_letter(&topic, "foreign-headers", &dlq),
    );
    wait_for_seen(
        TIMEOUT,
        "the records that do not fail are delivered",
        &topic,
        2,
    );
    // The function got the name's bytes back from the event (the recorder writes them out).
    let third = seen(&topic)
        .into_iter()
        .find(|s| s.offset() == offsets[2])
        .unwrap();
    let names: Vec<Vec<u8>> = third.0["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| serde_json::from_value(h[2].clone()).unwrap())
        .collect();
    assert_eq!(names, [b"\xc3".to_vec(), "café".as_bytes().to_vec()]);
    // The dead letter carries the failed record's header names as they were written.
    let dead = the_dead_letter(&dlq, &poller);
    assert_eq!(source_offset(&dead), offsets[1]);
    assert_eq!(
        &dead.header_names()[..2],
        [b"trace\xff\xfe".to_vec(), b"x-fail".to_vec()]
    );
    assert!(poller.is_running(), "log:\n{}", poller.log());
    assert!(!poller.log().contains("panicked"));
    poller.terminate_cleanly(Duration::from_secs(30));
}

#[test]
fn a_dead_letter_topic_on_another_cluster_is_written_with_that_clusters_own_credentials() {
    let topic = new_topic("dlq-elsewhere", 1);
    let dlq = new_topic("dlq-elsewhere-dlq", 1);
    let poison = produce_one(&topic, 0, r#"{"fail":true}"#, None, &[]);
    // "Another cluster": the broker's SCRAM listener, while the source is read without
    // authentication. The source's (absent) credentials would be refused there.
    let (user, password) = users::SCRAM;
    let destination = &services().listeners().sasl_plaintext;
    // The table of the destination's credentials ends the mapping: what follows would be in it.
    let config = format!(
        "{}\n{}",
        config(
            &topic,
            "dlq-elsewhere",
            &format!(
                "batch_size = 1\nmax_retry_attempts = 0\non_failure = \"kafka://{dlq}\"\non_failure_bootstrap_servers = \"{destination}\""
            ),
        ),
        sasl_table(
            "mapping.on_failure_auth.sasl",
            "SCRAM-SHA-512",
            user,
            &secret_file(password)
        )
    );
    let mut poller = Poller::start(&topic, &config);
    let dead = the_dead_letter(&dlq, &poller);
    assert_eq!(source_offset(&dead), poison);
    assert!(
        !poller.log().contains(password),
        "the password is not logged"
    );
    poller.terminate_cleanly(Duration::from_secs(30));
}
