//! Talking to an Apache Kafka broker as an administrator: topics through the Admin API
//! (rdkafka), access-control lists and SCRAM users through Kafka's own command lines
//! (`scripts/kafka.sh run-class`), partition leaders, committed offsets and watermarks as the
//! broker reports them.

use crate::repo_root;
use crate::tools::{poll_until, wait_until, without_cargo_test_variables};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long [`create_topic_on`] waits for a new topic's partitions to have leaders.
const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Creates `topic` on the broker(s) at `bootstrap` (PLAINTEXT) with `partitions` partitions,
/// `replication` replicas each and the topic configs `configs` (`cleanup.policy`, …), then
/// waits until every partition has a leader, so that the test's first produce or fetch does
/// not race the topic's creation.
///
/// # Panics
///
/// When the broker refuses the topic (the message carries its reason) or the partitions get no
/// leader within a minute.
pub fn create_topic_on(
    bootstrap: &str,
    topic: &str,
    partitions: u32,
    replication: u32,
    configs: &[(&str, &str)],
) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap_or_else(|error| panic!("an admin client for {bootstrap}: {error}"));
    let partition_count = i32::try_from(partitions).expect("a partition count fits an i32");
    let replicas = i32::try_from(replication).expect("a replica count fits an i32");
    let mut new_topic = NewTopic::new(topic, partition_count, TopicReplication::Fixed(replicas));
    for (name, value) in configs {
        new_topic = new_topic.set(name, value);
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = futures::executor::block_on(admin.create_topics([&new_topic], &options))
        .unwrap_or_else(|error| panic!("creating topic {topic} on {bootstrap}: {error}"));
    for result in results {
        if let Err((name, code)) = result {
            panic!(
                "the broker at {bootstrap} refused topic {name} ({partitions} partitions, \
                 {replication} replicas, {configs:?}): {code}"
            );
        }
    }
    wait_for_leaders(bootstrap, topic, partitions);
}

fn wait_for_leaders(bootstrap: &str, topic: &str, partitions: u32) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap_or_else(|error| panic!("a metadata client for {bootstrap}: {error}"));
    let what =
        format!("every one of the {partitions} partitions of {topic} on {bootstrap} has a leader");
    wait_until(TOPIC_READY_TIMEOUT, &what, || {
        consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .ok()
            .and_then(|metadata| {
                let found = metadata.topics().iter().find(|t| t.name() == topic)?;
                let led = found
                    .partitions()
                    .iter()
                    .filter(|p| p.leader() >= 0 && p.error().is_none())
                    .count();
                Some(found.error().is_none() && led == partitions as usize)
            })
            .unwrap_or(false)
    });
}

/// The node id of the leader of `topic`'s `partition`, as the metadata at `bootstrap` says, or
/// `None` while it has none (its leader died and no other replica took over yet).
///
/// # Panics
///
/// When no metadata client can be made.
pub fn partition_leader(bootstrap: &str, topic: &str, partition: i32) -> Option<i32> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap_or_else(|error| panic!("a metadata client for {bootstrap}: {error}"));
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .ok()?;
    let found = metadata.topics().iter().find(|t| t.name() == topic)?;
    let leader = found
        .partitions()
        .iter()
        .find(|p| p.id() == partition)?
        .leader();
    (leader >= 0).then_some(leader)
}

/// The offset `group` committed for `topic`'s `partition`, as the broker(s) at `bootstrap`
/// (PLAINTEXT, a super user there) say; `None` when it committed none.
///
/// # Panics
///
/// When the committed offsets cannot be read.
pub fn committed_offset(bootstrap: &str, group: &str, topic: &str, partition: i32) -> Option<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .unwrap_or_else(|error| panic!("a consumer of group {group} at {bootstrap}: {error}"));
    let mut partitions = TopicPartitionList::new();
    partitions.add_partition(topic, partition);
    let committed = consumer
        .committed_offsets(partitions, Duration::from_secs(10))
        .unwrap_or_else(|error| panic!("the offsets {group} committed on {topic}: {error}"));
    match committed.find_partition(topic, partition)?.offset() {
        Offset::Offset(offset) => Some(offset),
        _ => None,
    }
}

/// The low and high watermarks of `topic`'s `partition` at `bootstrap`: the first offset it
/// holds and the offset after its last record (or transaction marker).
///
/// # Panics
///
/// When they cannot be read within 10 s.
pub fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> (i64, i64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap_or_else(|error| panic!("a metadata client for {bootstrap}: {error}"));
    consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .unwrap_or_else(|error| panic!("the watermarks of {topic}-{partition}: {error}"))
}

/// How many records partition `partition` of `topic` holds on the shared broker (its high
/// watermark less its low one), asked through the PLAINTEXT listener: what a refused client
/// cannot have changed.
///
/// # Panics
///
/// As [`watermarks`].
pub fn records_in(topic: &str, partition: i32) -> i64 {
    let (low, high) = watermarks(
        crate::services().kafka_bootstrap_servers(),
        topic,
        partition,
    );
    high - low
}

/// Runs one of Kafka's command-line classes (`org.apache.kafka.tools.AclCommand`, …) with the
/// broker's jars through `scripts/kafka.sh run-class`, and returns its standard output.
///
/// # Panics
///
/// When it exits unsuccessfully; the message carries its output.
pub fn kafka_tool(class: &str, args: &[&str]) -> String {
    let script = repo_root().join("scripts/kafka.sh");
    let mut command = Command::new("bash");
    command
        .arg(&script)
        .arg("run-class")
        .arg(class)
        .args(args)
        .stdin(Stdio::null());
    without_cargo_test_variables(&mut command);
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("run {}: {error}", script.display()));
    assert!(
        output.status.success(),
        "{class} {args:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Grants `principal` (`User:kl-restricted`, …) `operation` (`Read`, `Write`, `Describe`, …)
/// on `resource`, through the PLAINTEXT listener at `bootstrap` (a super user there), and
/// returns once the broker lists the grant.
///
/// # Panics
///
/// As [`kafka_tool`].
pub fn grant(bootstrap: &str, principal: &str, operation: &str, resource: AclResource<'_>) {
    let (flag, name) = resource.flag_and_name();
    kafka_tool(
        "org.apache.kafka.tools.AclCommand",
        &[
            "--bootstrap-server",
            bootstrap,
            "--add",
            "--allow-principal",
            principal,
            "--operation",
            operation,
            flag,
            name,
        ],
    );
    // The broker applies an ACL once its metadata log has it, a moment after the command
    // returns: wait until the broker itself lists it, so the test's next step sees it in force.
    let wanted = (
        format!("principal={principal}"),
        format!("operation={}", operation.to_ascii_uppercase()),
    );
    let mut listed = String::new();
    let in_force = poll_until(Duration::from_secs(30), || {
        listed = kafka_tool(
            "org.apache.kafka.tools.AclCommand",
            &["--bootstrap-server", bootstrap, "--list", flag, name],
        );
        listed
            .lines()
            .any(|line| line.contains(&wanted.0) && line.contains(&wanted.1))
    });
    assert!(
        in_force,
        "the broker at {bootstrap} does not list {principal} {operation} on {name} 30 s after \
         granting it:\n{listed}"
    );
}

/// What an ACL of [`grant`] applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclResource<'a> {
    /// A topic, by its literal name.
    Topic(&'a str),
    /// A consumer group, by its literal name.
    Group(&'a str),
}

impl AclResource<'_> {
    fn flag_and_name(&self) -> (&'static str, &str) {
        match self {
            AclResource::Topic(name) => ("--topic", name),
            AclResource::Group(name) => ("--group", name),
        }
    }
}
