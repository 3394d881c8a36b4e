//! Talking to an Apache Kafka broker as an administrator: topics through the Admin API
//! (rdkafka), access-control lists and SCRAM users through Kafka's own command lines
//! (`scripts/kafka.sh run-class`), partition leaders from the metadata.

use crate::repo_root;
use crate::tools::without_cargo_test_variables;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    let start = Instant::now();
    loop {
        let ready = consumer
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
            .unwrap_or(false);
        if ready {
            return;
        }
        assert!(
            start.elapsed() < TOPIC_READY_TIMEOUT,
            "topic {topic} on {bootstrap}: not every one of its {partitions} partitions has a \
             leader within {TOPIC_READY_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
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
    let start = Instant::now();
    loop {
        let listed = kafka_tool(
            "org.apache.kafka.tools.AclCommand",
            &["--bootstrap-server", bootstrap, "--list", flag, name],
        );
        if listed
            .lines()
            .any(|line| line.contains(&wanted.0) && line.contains(&wanted.1))
        {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the broker at {bootstrap} does not list {principal} {operation} on {name} 30 s after \
             granting it:\n{listed}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
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
