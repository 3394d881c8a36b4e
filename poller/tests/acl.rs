//! Authorization under Apache Kafka's StandardAuthorizer, with the real broker, the real poller
//! binary and `test-recorder` in the Lambda emulator. The poller authenticates with SCRAM-SHA-512
//! on the shared broker's SASL_PLAINTEXT listener as a user that may do only what a test grants
//! it: `kl-restricted`, or for the dead-letter tests a user of their own, whose grants no earlier
//! run has touched. Records are produced and read back by a super user on the PLAINTEXT listener.
//!
//! The rules under test (README, "what happens when…"): a principal without READ on a source
//! topic or on its consumer group gets an error naming the resource, the missing operation and
//! the ACL to add, and the poller exits non-zero after committing only what it delivered; one
//! without WRITE on the dead-letter topic gets such an error too, while the partition waits
//! (nothing is committed past the failed record) until WRITE is granted. Either way every
//! produced record is delivered or dead-lettered once the ACL is there: nothing is lost.

// Test helpers outside #[test] functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used)]

use kafka_lambda_tests::{
    AclResource, FAST_RETRIES, Poller, committed_offset, create_topic, grant, group_name,
    kafka_tool, new_topic, produce, read_topic, reconcile, recorder_config_of_topics, sasl_table,
    secret_file, seen, seen_offsets, services, topic_name, unique_name, users, wait_for_seen,
    wait_until, with_kafka_auth, with_kafka_setting,
};
use std::collections::BTreeMap;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

/// A principal of the shared broker that may do only what ACLs grant it, as the poller logs in.
struct Restricted {
    name: String,
    password: String,
}

impl Restricted {
    /// `kl-restricted`, the broker's own restricted user.
    fn shared() -> Restricted {
        let (name, password) = users::RESTRICTED;
        Restricted {
            name: name.to_owned(),
            password: password.to_owned(),
        }
    }

    /// A SCRAM-SHA-512 user made for one test (not a super user, so restricted too). Unlike
    /// `kl-restricted`, which earlier tests leave with grants on the broker, it starts with no
    /// ACL at all, so whether it may WRITE any topic is the test's own choice. It stays until
    /// the broker's next start, which formats its storage.
    fn fresh(test: &str) -> Restricted {
        let user = Restricted {
            name: unique_name(&format!("kl-{test}")),
            password: unique_name("secret"),
        };
        kafka_tool(
            "org.apache.kafka.tools.ConfigCommand",
            &[
                "--bootstrap-server",
                services().kafka_bootstrap_servers(),
                "--alter",
                "--add-config",
                &format!("SCRAM-SHA-512=[password={}]", user.password),
                "--entity-type",
                "users",
                "--entity-name",
                &user.name,
            ],
        );
        user
    }

    /// The principal ACLs name: `User:<name>`.
    fn principal(&self) -> String {
        format!("User:{}", self.name)
    }

    /// Grants the principal `operation` on `resource`, as a super user.
    fn allow(&self, operation: &str, resource: AclResource<'_>) {
        grant(
            services().kafka_bootstrap_servers(),
            &self.principal(),
            operation,
            resource,
        );
    }

    /// Checks that `log` says this user may not `what` (`read topic t`, …), naming what to
    /// `grant` (`READ on topic t`) and the ACL that does it (`--operation Read --topic t`).
    fn assert_denied(&self, log: &str, what: &str, grant: &str, acl: &str) {
        let principal = self.principal();
        assert!(
            log.contains(&format!(
                "not authorized to {what}: grant {principal} {grant}"
            )) && log.contains(&format!("--allow-principal {principal} {acl}")),
            "the error names the resource, the operation and the ACL; log:\n{log}"
        );
    }

    /// A poller configuration that reads `topics` in `group` as this user with SCRAM-SHA-512 on
    /// the SASL_PLAINTEXT listener (the password from a file, as `[kafka.auth]` requires) and
    /// invokes `test-recorder`; `mapping_settings` are more lines of the `[[mapping]]` table.
    fn config(&self, topics: &[&str], group: &str, mapping_settings: &str) -> String {
        with_kafka_auth(
            &recorder_config_of_topics(topics, group, mapping_settings),
            &services().listeners().sasl_plaintext,
            &sasl_table(
                "kafka.auth.sasl",
                "SCRAM-SHA-512",
                &self.name,
                &secret_file(&self.password),
            ),
        )
    }
}

/// The offset `group` committed for `topic`'s `partition`, read by a super user; `None` when it
/// committed none.
fn committed_by_group(group: &str, topic: &str, partition: i32) -> Option<i64> {
    committed_offset(
        services().kafka_bootstrap_servers(),
        group,
        topic,
        partition,
    )
}

/// Runs a poller that must stop by itself on a missing permission: returns its log after
/// checking that it exited 1.
fn run_until_it_stops(name: &str, config: &str) -> String {
    let mut poller = Poller::start(name, config);
    let status = poller.wait(TIMEOUT);
    let log = poller.log();
    assert_eq!(
        status.code(),
        Some(1),
        "the poller exits 1 on a missing permission; log:\n{log}"
    );
    log
}

#[test]
fn a_topic_without_read_stops_the_poller_naming_the_acl_and_loses_nothing() {
    let user = Restricted::shared();
    let readable = topic_name("acl-readable");
    let unreadable = topic_name("acl-unreadable");
    let group = group_name("acl-topic");
    create_topic(&readable, 1);
    create_topic(&unreadable, 2);
    let produced_readable = produce(&readable, 1, 20, |_, i| format!(r#"{{"i":{i}}}"#));
    let produced_unreadable = produce(&unreadable, 2, 10, |p, i| format!(r#"{{"p":{p},"i":{i}}}"#));
    user.allow("Read", AclResource::Group(&group));
    user.allow("Read", AclResource::Topic(&readable));
    // DESCRIBE without READ: the group assigns the partitions and only the fetches are refused.
    user.allow("Describe", AclResource::Topic(&unreadable));
    let config = user.config(&[&readable, &unreadable], &group, "batch_size = 5");

    let log = run_until_it_stops(&unreadable, &config);
    user.assert_denied(
        &log,
        &format!("read topic {unreadable}"),
        &format!("READ on topic {unreadable}"),
        &format!("--operation Read --topic {unreadable}"),
    );
    assert!(
        !log.contains(&format!("not authorized to read topic {readable}")),
        "the readable topic is not blamed; log:\n{log}"
    );
    assert!(seen(&unreadable).is_empty(), "nothing was fetched");

    user.allow("Read", AclResource::Topic(&unreadable));
    let mut poller = Poller::start(&format!("{unreadable}-granted"), &config);
    wait_until(TIMEOUT, "every record of both topics is delivered", || {
        seen_offsets(&readable).len() >= produced_readable.len()
            && seen_offsets(&unreadable).len() >= produced_unreadable.len()
    });
    poller.terminate_cleanly(TIMEOUT);
    assert_eq!(
        reconcile(&readable, &produced_readable),
        0,
        "no record of the readable topic is delivered twice across the stop (whatever the stopped \
         poller delivered, if anything, was committed)"
    );
    assert_eq!(reconcile(&unreadable, &produced_unreadable), 0);
}

#[test]
fn a_topic_without_even_describe_is_named_with_the_read_acl_to_add() {
    let user = Restricted::shared();
    let topic = new_topic("acl-undescribed", 1);
    let group = group_name("acl-undescribed");
    let produced = produce(&topic, 1, 5, |_, i| format!(r#"{{"i":{i}}}"#));
    user.allow("Read", AclResource::Group(&group));
    let config = user.config(&[&topic], &group, "");

    // Without DESCRIBE the broker refuses the topic's metadata, so the group never assigns it:
    // the refusal comes through the subscription, not through a fetch.
    let log = run_until_it_stops(&topic, &config);
    user.assert_denied(
        &log,
        &format!("read topic {topic}"),
        &format!("READ on topic {topic}"),
        &format!("--operation Read --topic {topic}"),
    );

    user.allow("Read", AclResource::Topic(&topic));
    let mut poller = Poller::start(&format!("{topic}-granted"), &config);
    wait_for_seen(TIMEOUT, "every record is delivered", &topic, produced.len());
    poller.terminate_cleanly(TIMEOUT);
    assert_eq!(reconcile(&topic, &produced), 0);
}

/// A group without READ under `[kafka] group_protocol = protocol`: librdkafka refuses it in
/// FindCoordinator under both protocols, and under KIP-848's also in the heartbeat, where it is
/// a fatal error of the consumer.
fn a_group_without_read_stops_the_poller(protocol: &str) {
    let user = Restricted::shared();
    let topic = new_topic(&format!("acl-group-{protocol}"), 1);
    let group = group_name(&format!("acl-group-{protocol}"));
    let produced = produce(&topic, 1, 5, |_, i| format!(r#"{{"i":{i}}}"#));
    user.allow("Read", AclResource::Topic(&topic));
    let config = with_kafka_setting(
        &user.config(&[&topic], &group, ""),
        &format!("group_protocol = \"{protocol}\""),
    );

    let log = run_until_it_stops(&topic, &config);
    user.assert_denied(
        &log,
        &format!("use consumer group {group}"),
        &format!("READ on group {group}"),
        &format!("--operation Read --group {group}"),
    );
    assert!(
        seen(&topic).is_empty(),
        "nothing is delivered outside the group"
    );

    user.allow("Read", AclResource::Group(&group));
    let mut poller = Poller::start(&format!("{topic}-granted"), &config);
    wait_for_seen(TIMEOUT, "every record is delivered", &topic, produced.len());
    poller.terminate_cleanly(TIMEOUT);
    assert_eq!(reconcile(&topic, &produced), 0);
}

#[test]
fn a_group_without_read_stops_the_poller_naming_the_group_and_the_acl() {
    a_group_without_read_stops_the_poller("classic");
}

#[test]
fn a_group_without_read_stops_the_poller_under_the_kip_848_protocol_too() {
    a_group_without_read_stops_the_poller("consumer");
}

/// A function that fails one record, whose dead-letter topic `user` may not WRITE: the error
/// names the topic, WRITE and the ACL; the partition waits at the record (nothing after it is
/// delivered or committed) while the poller keeps running; once WRITE is granted the record is
/// dead-lettered and the rest delivered.
fn a_dead_letter_topic_without_write_blocks_the_partition(user: &Restricted) {
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
    user.allow("Read", AclResource::Topic(&topic));
    user.allow("Read", AclResource::Group(&group));
    let config = user.config(
        &[&topic],
        &group,
        &format!(
            "batch_size = 1\nmax_retry_attempts = 1\non_failure = \"kafka://{dlq}\"\n{FAST_RETRIES}"
        ),
    );
    let mut poller = Poller::start(&topic, &config);
    let denial = format!(
        "not authorized to write the on_failure topic {dlq}: grant {} WRITE on topic {dlq}",
        user.principal()
    );
    wait_until(TIMEOUT, "the missing WRITE is logged", || {
        poller.log().contains(&denial)
    });
    let log = poller.log();
    user.assert_denied(
        &log,
        &format!("write the on_failure topic {dlq}"),
        &format!("WRITE on topic {dlq}"),
        &format!("--operation Write --topic {dlq}"),
    );
    assert!(
        poller.is_running(),
        "the poller waits for the ACL; log:\n{log}"
    );
    // The partition waits at the failed record: nothing after it is delivered or committed.
    let seen = seen_offsets(&topic);
    assert!(
        seen.iter().all(|(_, offset)| *offset < poison.1),
        "nothing after the blocked record is delivered: {seen:?}"
    );
    let committed = committed_by_group(&group, &topic, 0);
    assert!(
        committed.is_none_or(|next| next <= poison.1),
        "the commit ({committed:?}) does not pass the failed record at {}",
        poison.1
    );

    user.allow("Write", AclResource::Topic(&dlq));
    wait_for_seen(
        TIMEOUT,
        "the records after the failed one are delivered",
        &topic,
        produced.len() - 1,
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
    poller.terminate_cleanly(TIMEOUT);
}

/// A principal that may WRITE no topic at all is refused the idempotent dead-letter producer's
/// producer id (`CLUSTER_AUTHORIZATION_FAILED`), which stops that librdkafka producer for good:
/// only a new one sees the grant.
#[test]
fn a_dead_letter_topic_without_write_blocks_the_partition_until_write_is_granted() {
    a_dead_letter_topic_without_write_blocks_the_partition(&Restricted::fresh("acl-no-write"));
}

/// A principal that may WRITE another topic gets its producer id; only the dead-letter topic
/// is refused (`TOPIC_AUTHORIZATION_FAILED`).
#[test]
fn a_dead_letter_topic_without_write_blocks_the_partition_when_other_topics_are_writable() {
    let user = Restricted::fresh("acl-other-write");
    let other = new_topic("acl-writable", 1);
    user.allow("Write", AclResource::Topic(&other));
    a_dead_letter_topic_without_write_blocks_the_partition(&user);
}
