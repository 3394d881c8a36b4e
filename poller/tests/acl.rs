//! Authorization under Apache Kafka's StandardAuthorizer, with the real broker, the real poller
//! binary and `test-recorder` in the Lambda emulator. The poller authenticates as `kl-restricted`
//! (SCRAM-SHA-512 on the shared broker's SASL_PLAINTEXT listener), which may do only what a test
//! grants it; records are produced and read back by a super user on the PLAINTEXT listener.
//!
//! The rules under test (README, "what happens when…"): a principal without READ on a source
//! topic or on its consumer group gets an error naming the resource, the missing operation and
//! the ACL to add, and the poller exits non-zero after committing only what it delivered; one
//! without WRITE on the dead-letter topic gets such an error too, while the partition waits
//! (nothing is committed past the failed record) until WRITE is granted. Either way every
//! produced record is delivered or dead-lettered once the ACL is there: nothing is lost.

// Test helpers outside #[test] functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use kafka_lambda_tests::{AclResource, grant, unique_name, users};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);
const FAST_RETRIES: &str = "retry_backoff_base_ms = 10\nretry_backoff_max_ms = 100";

/// The principal the poller runs as in these tests.
fn principal() -> String {
    format!("User:{}", users::RESTRICTED.0)
}

/// Grants the restricted principal `operation` on `resource`, as a super user.
fn allow(operation: &str, resource: AclResource<'_>) {
    grant(
        services().kafka_bootstrap_servers(),
        &principal(),
        operation,
        resource,
    );
}

/// A poller configuration that reads `topics` in `group` as the restricted user over
/// SASL_PLAINTEXT (its password from a file, as `[kafka.auth]` requires) and invokes
/// `test-recorder`; `mapping_settings` are more lines of the `[[mapping]]` table.
fn restricted_config(topics: &[&str], group: &str, mapping_settings: &str) -> String {
    let (user, password) = users::RESTRICTED;
    let password_file = std::env::temp_dir()
        .join("kafka-lambda-poller-tests")
        .join(unique_name("restricted-password"));
    std::fs::create_dir_all(password_file.parent().unwrap()).unwrap();
    std::fs::write(&password_file, password).unwrap();
    format!(
        r#"
[kafka]
bootstrap_servers = "{bootstrap}"
fetch_wait_max_ms = 10
commit_interval_ms = 500

[kafka.auth.sasl]
mechanism = "SCRAM-SHA-512"
username = "{user}"
password = {{ file = "{password_file}" }}

[lambda]
region = "us-east-1"
endpoint_url = "{endpoint}"

[shutdown]
drain_timeout_ms = 20000

[[mapping]]
function = "test-recorder"
topics = {topics:?}
consumer_group = "{group}"
batching_window_ms = 20
{mapping_settings}
"#,
        bootstrap = services().listeners().sasl_plaintext,
        endpoint = services().lambda_endpoint(),
        password_file = password_file.display(),
    )
}

/// The offset `group` committed for `topic`'s `partition`, read by a super user; `None` when it
/// committed none.
fn committed_offset(group: &str, topic: &str, partition: i32) -> Option<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", services().kafka_bootstrap_servers())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut partitions = TopicPartitionList::new();
    partitions.add_partition(topic, partition);
    let committed = consumer
        .committed_offsets(partitions, Duration::from_secs(10))
        .unwrap();
    match committed.find_partition(topic, partition)?.offset() {
        Offset::Offset(offset) => Some(offset),
        _ => None,
    }
}

/// Runs a poller that must stop by itself on a missing permission: returns its log after
/// checking that it exited non-zero.
fn run_until_it_stops(name: &str, config: &str) -> String {
    let mut poller = Poller::start(name, config);
    let status = poller.wait(TIMEOUT);
    let log = poller.log_text();
    assert!(
        !status.success(),
        "the poller exits non-zero on a missing permission ({status}); log:\n{log}"
    );
    log
}

#[test]
fn a_topic_without_read_stops_the_poller_naming_the_acl_and_loses_nothing() {
    let readable = topic_name("acl-readable");
    let unreadable = topic_name("acl-unreadable");
    let group = group_name("acl-topic");
    create_topic(&readable, 1);
    create_topic(&unreadable, 2);
    let produced_readable = produce(&readable, 1, 20, |_, i| format!(r#"{{"i":{i}}}"#));
    let produced_unreadable = produce(&unreadable, 2, 10, |p, i| format!(r#"{{"p":{p},"i":{i}}}"#));
    allow("Read", AclResource::Group(&group));
    allow("Read", AclResource::Topic(&readable));
    // DESCRIBE without READ: the group assigns the partitions and only the fetches are refused.
    allow("Describe", AclResource::Topic(&unreadable));
    let config = restricted_config(&[&readable, &unreadable], &group, "batch_size = 5");

    let log = run_until_it_stops(&unreadable, &config);
    assert!(
        log.contains(&format!(
            "not authorized to read topic {unreadable}: grant {} READ on topic {unreadable}",
            principal()
        )) && log.contains(&format!(
            "--allow-principal {} --operation Read --topic {unreadable}",
            principal()
        )),
        "the error names the topic, the operation and the ACL; log:\n{log}"
    );
    assert!(
        !log.contains(&format!("not authorized to read topic {readable}")),
        "the readable topic is not blamed; log:\n{log}"
    );
    assert!(seen(&unreadable).is_empty(), "nothing was fetched");

    allow("Read", AclResource::Topic(&unreadable));
    let mut poller = Poller::start(&format!("{unreadable}-granted"), &config);
    wait_until(TIMEOUT, "every record of both topics is delivered", || {
        seen_offsets(&readable).len() >= produced_readable.len()
            && seen_offsets(&unreadable).len() >= produced_unreadable.len()
    });
    assert_eq!(poller.terminate(TIMEOUT).code(), Some(0));
    assert_eq!(
        reconcile(&readable, &produced_readable),
        0,
        "what the stopped poller delivered was committed, so it is not delivered again"
    );
    assert_eq!(reconcile(&unreadable, &produced_unreadable), 0);
}

#[test]
fn a_topic_without_even_describe_is_named_with_the_read_acl_to_add() {
    let topic = topic_name("acl-undescribed");
    let group = group_name("acl-undescribed");
    create_topic(&topic, 1);
    let produced = produce(&topic, 1, 5, |_, i| format!(r#"{{"i":{i}}}"#));
    allow("Read", AclResource::Group(&group));
    let config = restricted_config(&[&topic], &group, "");

    // Without DESCRIBE the broker refuses the topic's metadata, so the group never assigns it:
    // the refusal comes through the subscription, not through a fetch.
    let log = run_until_it_stops(&topic, &config);
    assert!(
        log.contains(&format!(
            "not authorized to read topic {topic}: grant {} READ on topic {topic}",
            principal()
        )) && log.contains(&format!("--operation Read --topic {topic}")),
        "the error names the topic, the operation and the ACL; log:\n{log}"
    );

    allow("Read", AclResource::Topic(&topic));
    let mut poller = Poller::start(&format!("{topic}-granted"), &config);
    wait_until(TIMEOUT, "every record is delivered", || {
        seen_offsets(&topic).len() >= produced.len()
    });
    assert_eq!(poller.terminate(TIMEOUT).code(), Some(0));
    assert_eq!(reconcile(&topic, &produced), 0);
}

#[test]
fn a_group_without_read_stops_the_poller_naming_the_group_and_the_acl() {
    let topic = topic_name("acl-group");
    let group = group_name("acl-group");
    create_topic(&topic, 1);
    let produced = produce(&topic, 1, 5, |_, i| format!(r#"{{"i":{i}}}"#));
    allow("Read", AclResource::Topic(&topic));
    let config = restricted_config(&[&topic], &group, "");

    let log = run_until_it_stops(&topic, &config);
    assert!(
        log.contains(&format!(
            "not authorized to use consumer group {group}: grant {} READ on group {group}",
            principal()
        )) && log.contains(&format!(
            "--allow-principal {} --operation Read --group {group}",
            principal()
        )),
        "the error names the group, the operation and the ACL; log:\n{log}"
    );
    assert!(
        seen(&topic).is_empty(),
        "nothing is delivered outside the group"
    );

    allow("Read", AclResource::Group(&group));
    let mut poller = Poller::start(&format!("{topic}-granted"), &config);
    wait_until(TIMEOUT, "every record is delivered", || {
        seen_offsets(&topic).len() >= produced.len()
    });
    assert_eq!(poller.terminate(TIMEOUT).code(), Some(0));
    assert_eq!(reconcile(&topic, &produced), 0);
}

#[test]
fn a_dead_letter_topic_without_write_blocks_the_partition_until_write_is_granted() {
    let topic = topic_name("acl-dlq-source");
    let dlq = topic_name("acl-dlq");
    let group = group_name("acl-dlq");
    create_topic(&topic, 1);
    create_topic(&dlq, 1);
    let produced = produce(&topic, 1, 6, |_, i| {
        if i == 2 {
            format!(r#"{{"i":{i},"fail":true}}"#)
        } else {
            format!(r#"{{"i":{i}}}"#)
        }
    });
    let poison = produced.keys().nth(2).copied().unwrap();
    allow("Read", AclResource::Topic(&topic));
    allow("Read", AclResource::Group(&group));
    let config = restricted_config(
        &[&topic],
        &group,
        &format!(
            "batch_size = 1\nmax_retry_attempts = 1\non_failure = \"kafka://{dlq}\"\n{FAST_RETRIES}"
        ),
    );
    let mut poller = Poller::start(&topic, &config);
    let denial = format!(
        "not authorized to write the on_failure topic {dlq}: grant {} WRITE on topic {dlq}",
        principal()
    );
    wait_until(TIMEOUT, "the missing WRITE is logged", || {
        poller.log_text().contains(&denial)
    });
    let log = poller.log_text();
    assert!(
        log.contains(&format!(
            "--allow-principal {} --operation Write --topic {dlq}",
            principal()
        )),
        "the error names the ACL to add; log:\n{log}"
    );
    // The partition waits at the failed record: nothing after it is delivered or committed.
    let seen = seen_offsets(&topic);
    assert!(
        seen.iter().all(|(_, offset)| *offset < poison.1),
        "nothing after the blocked record is delivered: {seen:?}"
    );
    let committed = committed_offset(&group, &topic, 0);
    assert!(
        committed.is_none_or(|next| next <= poison.1),
        "the commit ({committed:?}) does not pass the failed record at {}",
        poison.1
    );

    allow("Write", AclResource::Topic(&dlq));
    wait_until(
        TIMEOUT,
        "the records after the failed one are delivered",
        || seen_offsets(&topic).len() >= produced.len() - 1,
    );
    let dead = read_topic(&dlq, 1, TIMEOUT);
    assert_eq!(
        dead.len(),
        1,
        "the failed record is dead-lettered: {dead:?}"
    );
    assert_eq!(
        dead[0].header("kafka-lambda-source-offset"),
        Some(poison.1.to_string())
    );
    assert_eq!(dead[0].value.as_deref(), Some(produced[&poison].as_bytes()));
    let healthy: BTreeMap<_, _> = produced
        .iter()
        .filter(|(key, _)| **key != poison)
        .map(|(key, value)| (*key, value.clone()))
        .collect();
    assert_eq!(reconcile(&topic, &healthy), 0);
    assert_eq!(poller.terminate(TIMEOUT).code(), Some(0));
}
