//! The consumer group's coordinator not there yet or moving, against private Apache Kafka
//! clusters (`KafkaCluster`) and `cargo lambda watch` (function `test-recorder`): a brand-new
//! cluster, whose offsets topic is created and loaded at the first group lookup, and a
//! coordinator killed with SIGKILL (its offsets partition moves to another broker) and started
//! again. The poller must wait out the broker's transient answers (`NOT_COORDINATOR`,
//! `COORDINATOR_NOT_AVAILABLE`, `COORDINATOR_LOAD_IN_PROGRESS`, leader elections), deliver every
//! record, exit 0 when it is done or told to stop, and leave the group committed at the end of
//! every partition.

// Test helpers outside #[test] functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used)]

use kafka_lambda_tests::{
    KafkaCluster, Poller, group_name, poll_until, reconcile, recorded_lines, recorder_config,
    seen_offsets, services, topic_name, wait_until, watermarks,
};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long any one wait of these tests may last: a poller waiting out a coordinator (within its
/// own budget), a broker restart or a delivery, on a shared two-core machine.
const TIMEOUT: Duration = Duration::from_secs(180);

/// `--until-caught-up` jobs started on the brand-new cluster, and the time between their starts.
const JOBS: usize = 4;
const JOB_STAGGER: Duration = Duration::from_millis(20);

/// Partitions of every topic here.
const PARTITIONS: u32 = 3;

/// `offsets.topic.num.partitions` of a `KafkaCluster` (tests/src/broker.rs).
const OFFSETS_TOPIC_PARTITIONS: i32 = 5;

/// What the poller logs when it waits out a transient answer.
const WAITED: &str = "the broker answered with a transient error";

/// A new single-broker cluster has no offsets topic: the first group lookup (the end offsets'
/// committed offsets) makes the broker create it, and answers "coordinator not available" or
/// "not coordinator" until it is loaded. `--until-caught-up` must wait that out, not exit 1.
/// Several jobs (a topic and a group each) start a moment apart, as a scheduler starts them: each
/// one's first lookup is another chance to meet the offsets topic while it is being loaded.
#[test]
fn until_caught_up_on_a_brand_new_cluster_waits_for_the_offsets_topic_and_delivers_everything() {
    let cluster = KafkaCluster::start(1);
    let jobs: Vec<Job> = (0..JOBS)
        .map(|job| {
            let topic = topic_name(&format!("fresh-until-caught-up-{job}"));
            cluster.create_topic(&topic, PARTITIONS);
            Job {
                produced: produce(&cluster, &topic, 0, 300),
                group: group_name(&format!("fresh-until-caught-up-{job}")),
                topic,
            }
        })
        .collect();
    let mut pollers: Vec<Poller> = jobs
        .iter()
        .map(|job| {
            let poller = Poller::start_with(
                &job.topic,
                &poller_config(&cluster, &job.topic, &job.group),
                &["--until-caught-up"],
            );
            std::thread::sleep(JOB_STAGGER);
            poller
        })
        .collect();
    for (job, poller) in jobs.iter().zip(&mut pollers) {
        let status = poller.wait(TIMEOUT);
        let log = poller.log();
        assert_eq!(status.code(), Some(0), "{}: log:\n{log}", job.topic);
        assert!(log.contains("caught up"), "{}: log:\n{log}", job.topic);
        report_waits(&log);
        let duplicates = reconcile(&job.topic, &job.produced);
        eprintln!("duplicates: {duplicates}");
        assert_committed_at_the_end(&cluster, &job.group, &job.topic);
    }
}

/// One `--until-caught-up` job of the brand-new cluster: its topic, its group and what was
/// produced to the topic, (partition, offset) → value.
struct Job {
    topic: String,
    group: String,
    produced: BTreeMap<(i32, i64), String>,
}

/// A plain `run` on a new cluster: joining the group creates the offsets topic. Every record
/// is delivered, SIGTERM ends the poller with 0, and its last commit is at the end offsets.
#[test]
fn run_on_a_brand_new_cluster_delivers_everything_and_commits() {
    let cluster = KafkaCluster::start(1);
    let topic = topic_name("fresh-run");
    let group = group_name("fresh-run");
    cluster.create_topic(&topic, PARTITIONS);
    let produced = produce(&cluster, &topic, 0, 600);
    let mut poller = Poller::start(&topic, &poller_config(&cluster, &topic, &group));
    wait_for_delivery(&topic, &produced, &poller);
    assert!(
        poller.is_running(),
        "the poller never exits by itself; log:\n{}",
        poller.log()
    );
    poller.terminate_cleanly(Duration::from_secs(60));
    report_waits(&poller.log());
    let duplicates = reconcile(&topic, &produced);
    eprintln!("duplicates: {duplicates}");
    assert_committed_at_the_end(&cluster, &group, &topic);
}

/// Three brokers: the group committed an earlier run's progress, then its coordinator dies just
/// as a `--until-caught-up` run starts. Until the controller moves the offsets partition (and
/// the new leader loads it) the lookups time out, lose their connection or are answered "not
/// coordinator"; the broker is started again a few seconds later. The run must read the earlier
/// commits through the new coordinator (nothing before them is delivered again), deliver the
/// rest and exit 0.
#[test]
fn until_caught_up_rides_out_a_coordinator_moved_by_a_broker_restart() {
    let mut cluster = KafkaCluster::start(3);
    let topic = topic_name("moved-until-caught-up");
    let group = group_name("moved-until-caught-up");
    cluster.create_topic(&topic, PARTITIONS);
    // What an earlier run delivered and committed: the coordinator has the group loaded.
    let earlier = produce(&cluster, &topic, 0, 300);
    commit(&cluster, &group, &topic, &end_offsets(&cluster, &topic));
    let produced = produce(&cluster, &topic, 300, 600);
    let victim = coordinator(&cluster, &group);
    eprintln!(
        "killing node {victim}, the coordinator of {group} (partition {} of __consumer_offsets)",
        offsets_partition(&group)
    );
    cluster.kill(victim);
    let mut poller = Poller::start_with(
        &topic,
        &poller_config(&cluster, &topic, &group),
        &["--until-caught-up"],
    );
    std::thread::sleep(Duration::from_secs(5));
    cluster.restart(victim);
    let status = poller.wait(TIMEOUT);
    let log = poller.log();
    assert_eq!(status.code(), Some(0), "log:\n{log}");
    assert!(log.contains("caught up"), "log:\n{log}");
    report_waits(&log);
    let duplicates = reconcile(&topic, &produced);
    eprintln!("duplicates: {duplicates}");
    let seen = seen_offsets(&topic);
    let again: Vec<_> = earlier.keys().filter(|key| seen.contains(key)).collect();
    assert!(
        again.is_empty(),
        "records the group had committed before the coordinator moved were delivered again \
         (first 20): {:?}; log:\n{log}",
        &again[..again.len().min(20)]
    );
    assert_committed_at_the_end(&cluster, &group, &topic);
}

/// Three brokers, a `run` poller delivering while records keep coming: its group's coordinator
/// is killed, the offsets partition moves, delivery goes on, and the broker is started again.
/// Every record is delivered, the poller never exits, SIGTERM ends it with 0 and its last commit
/// is at the end offsets.
#[test]
fn run_rides_out_a_coordinator_moved_by_a_broker_restart() {
    let mut cluster = KafkaCluster::start(3);
    let topic = topic_name("moved-run");
    let group = group_name("moved-run");
    cluster.create_topic(&topic, PARTITIONS);
    let mut poller = Poller::start(&topic, &poller_config(&cluster, &topic, &group));
    let load = Load::start(&cluster, &topic);
    wait_until(TIMEOUT, "delivery is under way", || {
        recorded_lines(&topic) >= 500
    });
    let victim = coordinator(&cluster, &group);
    let partition = offsets_partition(&group);
    eprintln!(
        "killing node {victim}, the coordinator of {group} (partition {partition} of \
         __consumer_offsets), with {} records delivered",
        recorded_lines(&topic)
    );
    cluster.kill(victim);
    wait_until(
        TIMEOUT,
        "the group's offsets partition has a new leader",
        || {
            cluster
                .leader_of("__consumer_offsets", partition)
                .is_some_and(|leader| leader != victim)
        },
    );
    let before = recorded_lines(&topic);
    wait_until(
        TIMEOUT,
        "delivery goes on while the old coordinator is down",
        || recorded_lines(&topic) >= before + 500,
    );
    assert!(
        poller.is_running(),
        "the poller survives the coordinator's death; log:\n{}",
        poller.log()
    );
    cluster.restart(victim);
    let produced = load.stop();
    wait_for_delivery(&topic, &produced, &poller);
    assert!(
        poller.is_running(),
        "the poller never exits by itself; log:\n{}",
        poller.log()
    );
    poller.terminate_cleanly(Duration::from_secs(60));
    report_waits(&poller.log());
    let duplicates = reconcile(&topic, &produced);
    eprintln!("duplicates: {duplicates}");
    assert_committed_at_the_end(&cluster, &group, &topic);
}

/// `test-recorder` on `topic` of `cluster` in consumer group `group`, in batches of up to 50
/// records.
fn poller_config(cluster: &KafkaCluster, topic: &str, group: &str) -> String {
    recorder_config(topic, group, "batch_size = 50").replace(
        services().kafka_bootstrap_servers(),
        &cluster.bootstrap_servers(),
    )
}

/// Produces records `first..first + count` to `topic` of `cluster`, record `n` to partition
/// `n % PARTITIONS` with the value `{"n":<n>}`, acknowledged by every in-sync replica; a record
/// may wait up to three minutes for its partition's leader. Returns (partition, offset) → value.
fn produce(
    cluster: &KafkaCluster,
    topic: &str,
    first: usize,
    count: usize,
) -> BTreeMap<(i32, i64), String> {
    produce_to(&cluster.bootstrap_servers(), topic, first, count)
}

fn produce_to(
    bootstrap: &str,
    topic: &str,
    first: usize,
    count: usize,
) -> BTreeMap<(i32, i64), String> {
    let records = (first..first + count).map(|n| {
        let partition = i32::try_from(n % PARTITIONS as usize).unwrap();
        (
            partition,
            format!("key-{n}"),
            format!(r#"{{"n":{n}}}"#),
            None,
        )
    });
    kafka_lambda_tests::produce_to(
        bootstrap,
        &[
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("linger.ms", "20"),
            ("message.timeout.ms", "180000"),
        ],
        topic,
        records,
    )
}

/// Records produced on a thread of their own, 60 every 200 ms, until [`Load::stop`].
struct Load {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<BTreeMap<(i32, i64), String>>,
}

impl Load {
    fn start(cluster: &KafkaCluster, topic: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (bootstrap, topic, stop) =
                (cluster.bootstrap_servers(), topic.to_owned(), stop.clone());
            std::thread::spawn(move || {
                let mut produced = BTreeMap::new();
                while !stop.load(Ordering::Relaxed) {
                    produced.extend(produce_to(&bootstrap, &topic, produced.len(), 60));
                    std::thread::sleep(Duration::from_millis(200));
                }
                produced
            })
        };
        Load { stop, thread }
    }

    /// Stops producing; everything produced, (partition, offset) → value.
    fn stop(self) -> BTreeMap<(i32, i64), String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// The `__consumer_offsets` partition that holds `group`: Kafka's `Utils.abs(groupId.hashCode())
/// % offsets.topic.num.partitions`, with Java's `String.hashCode` over UTF-16 code units.
fn offsets_partition(group: &str) -> i32 {
    let hash = group.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % OFFSETS_TOPIC_PARTITIONS
}

/// The node coordinating `group`: the leader of its `__consumer_offsets` partition.
fn coordinator(cluster: &KafkaCluster, group: &str) -> i32 {
    let partition = offsets_partition(group);
    let mut leader = None;
    wait_until(
        TIMEOUT,
        &format!("partition {partition} of __consumer_offsets has a leader"),
        || {
            leader = cluster.leader_of("__consumer_offsets", partition);
            leader.is_some()
        },
    );
    leader.unwrap()
}

/// Commits `offsets` (partition → offset of `topic`) for `group` as a consumer outside the group
/// would, trying again while the new cluster's offsets topic is not ready, until the broker
/// gives them back.
fn commit(cluster: &KafkaCluster, group: &str, topic: &str, offsets: &BTreeMap<i32, i64>) {
    let consumer = group_client(cluster, group);
    let mut list = TopicPartitionList::new();
    for (partition, offset) in offsets {
        list.add_partition_offset(topic, *partition, Offset::Offset(*offset))
            .unwrap();
    }
    let mut last = None;
    let committed = poll_until(TIMEOUT, || {
        last = consumer.commit(&list, CommitMode::Sync).err();
        last.is_none() && read_committed(&consumer, topic).is_ok_and(|c| c == *offsets)
    });
    assert!(
        committed,
        "{group} could not commit {offsets:?} on {topic}: {last:?}"
    );
}

/// Each partition's high watermark.
fn end_offsets(cluster: &KafkaCluster, topic: &str) -> BTreeMap<i32, i64> {
    partitions()
        .map(|p| (p, watermarks(&cluster.bootstrap_servers(), topic, p).1))
        .collect()
}

/// The offsets `group` committed on each partition of `topic` (-1 for none), read again while
/// the broker answers with an error: the coordinator may still be settling after a restart.
fn committed_offsets(cluster: &KafkaCluster, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    let consumer = group_client(cluster, group);
    let mut last = Err(KafkaError::NoMessageReceived);
    let read = poll_until(TIMEOUT, || {
        last = read_committed(&consumer, topic);
        last.is_ok()
    });
    assert!(read, "{group}'s committed offsets on {topic}: {last:?}");
    last.unwrap()
}

/// A client of `group` on `cluster` that reads and commits offsets without joining the group.
fn group_client(cluster: &KafkaCluster, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}

fn read_committed(consumer: &BaseConsumer, topic: &str) -> Result<BTreeMap<i32, i64>, KafkaError> {
    let mut list = TopicPartitionList::new();
    for p in partitions() {
        list.add_partition(topic, p);
    }
    let committed = consumer.committed_offsets(list, Duration::from_secs(10))?;
    Ok(partitions()
        .map(|p| {
            let offset = match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(offset)) => offset,
                _ => -1,
            };
            (p, offset)
        })
        .collect())
}

fn partitions() -> impl Iterator<Item = i32> {
    0..i32::try_from(PARTITIONS).unwrap()
}

/// The group's commits are at the end of every partition: a later run has nothing to redo.
fn assert_committed_at_the_end(cluster: &KafkaCluster, group: &str, topic: &str) {
    assert_eq!(
        committed_offsets(cluster, group, topic),
        end_offsets(cluster, topic),
        "{group}'s committed offsets (left) are the end offsets of {topic} (right)"
    );
}

/// Shows the transient answers the poller waited out (none is not a failure: the broker may
/// have been ready in time).
fn report_waits(log: &str) {
    let waits: Vec<&str> = log.lines().filter(|line| line.contains(WAITED)).collect();
    eprintln!("the poller waited out {} transient answers", waits.len());
    for wait in waits {
        eprintln!("  {wait}");
    }
}

/// Waits until the function has seen every record of `produced`.
fn wait_for_delivery(topic: &str, produced: &BTreeMap<(i32, i64), String>, poller: &Poller) {
    let start = Instant::now();
    loop {
        if recorded_lines(topic) >= produced.len() {
            let seen = seen_offsets(topic);
            if produced.keys().all(|key| seen.contains(key)) {
                return;
            }
        }
        if start.elapsed() >= TIMEOUT {
            let seen = seen_offsets(topic);
            let missing: Vec<_> = produced.keys().filter(|key| !seen.contains(key)).collect();
            panic!(
                "the function saw {} of the {} records within {TIMEOUT:?}; the first missing \
                 (partition, offset): {:?}; poller log:\n{}",
                produced.len() - missing.len(),
                produced.len(),
                &missing[..missing.len().min(10)],
                poller.log()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}
