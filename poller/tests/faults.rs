//! Broker faults under load, against private Apache Kafka clusters (`KafkaCluster`) and
//! `cargo lambda watch` (function `test-recorder`): a broker killed with SIGKILL while the
//! poller consumes, then started again. The function must see every record, in offset order
//! per partition (at-least-once: duplicates are allowed, gaps are not), the poller must never
//! exit, and `/readyz` must answer 503 while a partition the poller consumes has no reachable
//! broker, and 200 again once it has.

// Test helpers outside #[test] functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used)]

use kafka_lambda_tests::{
    KafkaCluster, Poller, create_topic, create_topic_on, free_port, group_name, reconcile,
    recorded_lines, recorder_config, seen, seen_offsets, services, topic_name, try_http_get,
    wait_until, with_kafka_setting, with_telemetry,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long any one wait of these tests may last before it fails: a leader election, a broker
/// restart (a JVM start on a shared two-core machine) or the delivery of 50,000 records through
/// the emulator's debug-built function.
const TIMEOUT: Duration = Duration::from_secs(300);

/// Records produced before the fault, while the broker is down, and after it is back.
const BEFORE: usize = 20_000;
const DURING: usize = 20_000;
const AFTER: usize = 10_000;

/// Records the function must have seen before the fault, so that the broker dies while the
/// poller is delivering.
const UNDER_WAY: usize = 2_000;

/// Three brokers, six partitions of three replicas: partition 0's leader dies while the poller
/// delivers. Its partitions get new leaders among the two left (which still make
/// `min.insync.replicas`), so producing goes on and `/readyz` is 200 again before the dead
/// broker is restarted; the restarted broker then rejoins as a follower.
#[test]
fn a_killed_partition_leader_loses_no_record_and_readyz_reports_it_until_a_new_leader_serves() {
    let mut cluster = KafkaCluster::start(3);
    let mut load = UnderLoad::start(&cluster, "leader-killed", 6);
    let victim = cluster
        .leader_of(&load.topic, 0)
        .expect("partition 0 has a leader");
    eprintln!(
        "killing node {victim} with {} of {} records delivered",
        recorded_lines(&load.topic),
        load.produced.len()
    );
    let mark = load.readiness.mark();
    cluster.kill(victim);
    // acks=all with two of three replicas in sync: the producer rides out the election.
    load.produce(BEFORE, DURING);
    let outage = load.readiness.wait_for(
        503,
        mark,
        &format!("/readyz reports that partition 0's leader (node {victim}) is unreachable"),
    );
    load.readiness.wait_for(
        200,
        outage,
        "/readyz recovers once the partitions of the dead broker have new leaders",
    );
    assert_ne!(
        cluster.leader_of(&load.topic, 0),
        Some(victim),
        "partition 0 has a new leader while node {victim} is down"
    );
    load.assert_poller_runs();

    cluster.restart(victim);
    load.finish("killing the leader of partition 0");
}

/// One broker, three partitions: the whole cluster dies while the poller delivers. Nothing can
/// be fetched, produced or committed until it restarts on its data; `/readyz` is 503 all that
/// time.
#[test]
fn the_only_broker_killed_and_restarted_loses_no_record_and_readyz_reports_the_outage() {
    let mut cluster = KafkaCluster::start(1);
    let mut load = UnderLoad::start(&cluster, "broker-killed", 3);
    eprintln!(
        "killing the broker with {} of {} records delivered",
        recorded_lines(&load.topic),
        load.produced.len()
    );
    let mark = load.readiness.mark();
    cluster.kill(1);
    let outage = load
        .readiness
        .wait_for(503, mark, "/readyz reports that no broker is reachable");
    // Readiness is re-evaluated every second: three evaluations while the broker is surely down
    // must all keep it 503.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        load.readiness.changes()[outage..],
        [Some(503)],
        "/readyz stays 503 while the only broker is down"
    );
    // Records produced while the broker is down wait in the producer until it is back.
    let during = {
        let (bootstrap, topic, partitions) =
            (load.bootstrap.clone(), load.topic.clone(), load.partitions);
        std::thread::spawn(move || produce_to(&bootstrap, &topic, partitions, BEFORE, DURING))
    };
    load.assert_poller_runs();
    cluster.restart(1);
    load.produced.extend(during.join().unwrap());
    load.readiness
        .wait_for(200, outage, "/readyz recovers once the broker is back");
    load.finish("killing the only broker");
}

/// A poller delivering a new topic of a private cluster while records flow, watched through
/// `/readyz`, for a fault to strike.
struct UnderLoad {
    bootstrap: String,
    topic: String,
    partitions: u32,
    poller: Poller,
    readiness: Readiness,
    /// What was produced so far, (partition, offset) → value.
    produced: BTreeMap<(i32, i64), String>,
}

impl UnderLoad {
    /// Creates topic `name` with `partitions` partitions on `cluster`, starts a poller on it and
    /// waits until it is ready, then produces [`BEFORE`] records and waits until [`UNDER_WAY`]
    /// of them are delivered.
    fn start(cluster: &KafkaCluster, name: &str, partitions: u32) -> UnderLoad {
        let topic = topic_name(name);
        cluster.create_topic(&topic, partitions);
        let port = free_port();
        let poller = Poller::start(&topic, &poller_config(cluster, &topic, port));
        let readiness = Readiness::watch(port);
        readiness.wait_for(200, 0, "the poller is ready before the fault");
        let mut load = UnderLoad {
            bootstrap: cluster.bootstrap_servers(),
            topic,
            partitions,
            poller,
            readiness,
            produced: BTreeMap::new(),
        };
        load.produce(0, BEFORE);
        wait_until(TIMEOUT, "delivery is under way", || {
            recorded_lines(&load.topic) >= UNDER_WAY
        });
        load
    }

    /// Produces records `first..first + count` (see [`produce_to`]).
    fn produce(&mut self, first: usize, count: usize) {
        let written = produce_to(&self.bootstrap, &self.topic, self.partitions, first, count);
        self.produced.extend(written);
    }

    fn assert_poller_runs(&mut self) {
        assert!(
            self.poller.is_running(),
            "the poller survives the outage; log:\n{}",
            self.poller.log()
        );
    }

    /// Once the cluster is whole again: produces [`AFTER`] more records, waits until every
    /// record is delivered, reconciles, and checks that the poller ran through `fault`.
    fn finish(mut self, fault: &str) {
        self.produce(BEFORE + DURING, AFTER);
        // One offset per acknowledged record: a write lost by the broker would show as a later
        // record acknowledged at its offset.
        assert_eq!(self.produced.len(), BEFORE + DURING + AFTER);
        wait_for_delivery(&self.topic, &self.produced, &self.poller);
        let duplicates = reconcile(&self.topic, &self.produced);
        eprintln!("duplicates after {fault}: {duplicates}");
        assert_survived(&mut self.poller, &self.readiness);
    }
}

/// Three pollers of one group join and leave while 50,000 records of six partitions flow: every
/// hand-over of a partition must be exact. Checked in delivery order, not only at the end: per
/// partition, no batch may start past the highest offset delivered so far plus one (going back
/// is a redelivery, allowed; going forward past a record is a skip, even if that record comes
/// later). The broker is Apache Kafka, whose fetches at an offset inside a batch return the
/// whole batch.
#[test]
fn pollers_joining_and_leaving_under_load_hand_partitions_over_without_a_gap() {
    members_join_and_leave_under_load("classic");
}

#[test]
fn under_kip_848_pollers_joining_and_leaving_under_load_hand_partitions_over_without_a_gap() {
    members_join_and_leave_under_load("consumer");
}

fn members_join_and_leave_under_load(protocol: &str) {
    let bootstrap = services().kafka_bootstrap_servers().to_owned();
    let topic = topic_name(&format!("handover-{protocol}"));
    let partitions = 6;
    create_topic(&topic, partitions);
    // Records flow the whole time: produced in rounds until the last member change is done and
    // at least 50,000 are written.
    let rebalanced = Arc::new(AtomicBool::new(false));
    let producer = {
        let (bootstrap, topic, rebalanced) = (bootstrap.clone(), topic.clone(), rebalanced.clone());
        std::thread::spawn(move || {
            let mut produced = BTreeMap::new();
            while produced.len() < 50_000 || !rebalanced.load(Ordering::Relaxed) {
                produced.extend(produce_to(
                    &bootstrap,
                    &topic,
                    partitions,
                    produced.len(),
                    500,
                ));
                std::thread::sleep(Duration::from_millis(100));
            }
            produced
        })
    };
    let config = with_kafka_setting(
        &recorder_config(
            &topic,
            &group_name(&format!("handover-{protocol}")),
            "batch_size = 200\nbatching_window_ms = 50",
        ),
        &format!("group_protocol = \"{protocol}\""),
    );
    let start = |name: &str| Poller::start(&format!("{topic}-{name}"), &config);
    // Each step waits for the group to settle and for more records to be delivered.
    let progress = |what: &str| {
        let before = recorded_lines(&topic);
        wait_until(TIMEOUT, what, || recorded_lines(&topic) >= before + 1_000);
    };
    let mut a = start("a");
    progress("a delivers");
    let mut b = start("b");
    wait_until(TIMEOUT, "b owns partitions", || b.owns_partitions());
    progress("a and b deliver");
    let mut c = start("c");
    wait_until(TIMEOUT, "c owns partitions", || c.owns_partitions());
    progress("a, b and c deliver");
    b.terminate_cleanly(Duration::from_secs(60));
    progress("a and c deliver");
    let mut b = start("b2");
    wait_until(TIMEOUT, "b2 owns partitions", || b.owns_partitions());
    progress("a, b2 and c deliver");
    a.terminate_cleanly(Duration::from_secs(60));
    progress("b2 and c deliver");
    rebalanced.store(true, Ordering::Relaxed);
    let produced = producer.join().unwrap();
    wait_for_delivery(&topic, &produced, &c);

    let mut highest: BTreeMap<i32, i64> = BTreeMap::new();
    let mut skips = Vec::new();
    for s in seen(&topic) {
        let (partition, offset) = (s.partition(), s.offset());
        let next = highest.get(&partition).map_or(0, |h| h + 1);
        if offset > next {
            skips.push((partition, next, offset));
        }
        highest
            .entry(partition)
            .and_modify(|h| *h = (*h).max(offset))
            .or_insert(offset);
    }
    assert!(
        skips.is_empty(),
        "a partition was read past records not yet delivered, (partition, expected, got): {:?}",
        &skips[..skips.len().min(20)]
    );
    let duplicates = reconcile(&topic, &produced);
    eprintln!("{protocol}: duplicates across the hand-overs: {duplicates}");
    b.terminate_cleanly(Duration::from_secs(60));
    c.terminate_cleanly(Duration::from_secs(60));
}

/// Three brokers, three partitions of one replica each: partition 0's broker is dead when a poller
/// starts with `AT_TIMESTAMP`. The start-offset lookup answers for the other partitions only; the
/// poller must look it up again until partition 0 has a leader — not take the missing answer as
/// "no record this recent", which commits a start past records that must be delivered.
#[test]
fn an_at_timestamp_start_waits_for_a_partition_without_a_leader_and_skips_none_of_it() {
    let mut cluster = KafkaCluster::start(3);
    let bootstrap = cluster.bootstrap_servers();
    let topic = topic_name("at-timestamp-leaderless");
    let partitions = 3;
    create_topic_on(
        &bootstrap,
        &topic,
        partitions,
        1,
        &[("min.insync.replicas", "1")],
    );
    let produced = produce_to(&bootstrap, &topic, partitions, 0, 300);
    let victim = cluster.leader_of(&topic, 0).unwrap();
    cluster.kill(victim);
    wait_until(TIMEOUT, "partition 0 has no leader", || {
        cluster.leader_of(&topic, 0).is_none()
    });
    let an_hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 3600;
    let config = poller_config(&cluster, &topic, free_port()).replace(
        "batch_size = 1000",
        &format!(
            "batch_size = 1000\nstarting_position = \"AT_TIMESTAMP\"\nstarting_position_timestamp = {an_hour_ago}"
        ),
    );
    let mut poller = Poller::start(&topic, &config);
    const RETRIED: &str = "cannot look up AT_TIMESTAMP start offsets";
    const COMMITTED: &str = "AT_TIMESTAMP start offsets committed";
    wait_until(TIMEOUT, "the start-offset lookup ends or fails", || {
        let log = poller.log();
        log.contains(RETRIED) || log.contains(COMMITTED)
    });
    let log = poller.log();
    assert!(
        log.contains(RETRIED) && !log.contains(COMMITTED),
        "start offsets were committed without partition 0's; log:\n{log}"
    );
    cluster.restart(victim);
    wait_for_delivery(&topic, &produced, &poller);
    assert_eq!(reconcile(&topic, &produced), 0);
    poller.terminate_cleanly(Duration::from_secs(60));
}

/// `test-recorder` on `topic` of `cluster`, in batches of up to 1,000 records (50,000 records
/// in a few dozen invocations), with `/readyz` on `telemetry_port` and readiness re-evaluated
/// every second (the lowest `lag_interval_ms`).
fn poller_config(cluster: &KafkaCluster, topic: &str, telemetry_port: u16) -> String {
    let config = recorder_config(
        topic,
        &group_name("faults"),
        "batch_size = 1000\nbatching_window_ms = 100",
    )
    .replace(
        services().kafka_bootstrap_servers(),
        &cluster.bootstrap_servers(),
    );
    with_telemetry(&config, telemetry_port, Some(1000))
}

/// Produces records `first..first + count` to `topic` at `bootstrap`, record `n` to partition
/// `n % partitions` with the value `{"n":<n>}`, and returns what was written, (partition,
/// offset) → value, from the delivery reports. Batched as any producer is (`linger.ms`),
/// idempotent and acknowledged by every in-sync replica; a record may wait up to three minutes
/// for its partition's leader, so a leader election or a broker restart delays it, never fails it.
fn produce_to(
    bootstrap: &str,
    topic: &str,
    partitions: u32,
    first: usize,
    count: usize,
) -> BTreeMap<(i32, i64), String> {
    let records = (first..first + count).map(|n| {
        let partition = i32::try_from(n % partitions as usize).unwrap();
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

/// Waits until the function has seen every record of `produced`. The recorder's file is parsed
/// only once it has as many lines, and at most every second.
fn wait_for_delivery(topic: &str, produced: &BTreeMap<(i32, i64), String>, poller: &Poller) {
    let start = Instant::now();
    loop {
        if recorded_lines(topic) >= produced.len() {
            let seen = seen_offsets(topic);
            let missing = produced.keys().filter(|key| !seen.contains(key)).count();
            if missing == 0 {
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

/// Checks that the poller ran through the fault: it is still running, `/readyz` answered every
/// time it was asked since it first answered, and is 200 now; then stops it, which must exit 0.
fn assert_survived(poller: &mut Poller, readiness: &Readiness) {
    assert!(
        poller.is_running(),
        "the poller never exits; log:\n{}",
        poller.log()
    );
    eprintln!(
        "/readyz answers, as they changed: {:?}",
        readiness.changes()
    );
    assert!(
        !readiness.went_unanswered(),
        "/readyz answered throughout: {:?}",
        readiness.changes()
    );
    // The last change, or a later one, is to 200.
    let last = readiness.mark().saturating_sub(1);
    readiness.wait_for(200, last, "/readyz is 200 at the end");
    poller.terminate_cleanly(Duration::from_secs(60));
}

/// The `/readyz` answers of one poller, asked every 50 ms on a thread of its own so that an
/// outage is seen while the test is busy producing: the statuses in the order they changed
/// (`None`: no answer).
struct Readiness {
    changes: Arc<Mutex<Vec<Option<u16>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Readiness {
    fn watch(port: u16) -> Readiness {
        let changes = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (changes, stop) = (changes.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let status = try_http_get(port, "/readyz").map(|(status, _)| status);
                    let mut changes = changes.lock().unwrap();
                    if changes.last() != Some(&status) {
                        changes.push(status);
                    }
                    drop(changes);
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        Readiness {
            changes,
            stop,
            thread: Some(thread),
        }
    }

    fn changes(&self) -> Vec<Option<u16>> {
        self.changes.lock().unwrap().clone()
    }

    /// The number of changes so far: what [`Readiness::wait_for`] looks past.
    fn mark(&self) -> usize {
        self.changes.lock().unwrap().len()
    }

    /// Waits until a change at position `after` or later is to `status`, and returns its
    /// position.
    fn wait_for(&self, status: u16, after: usize, what: &str) -> usize {
        let mut found = None;
        wait_until(TIMEOUT, what, || {
            found = self
                .changes()
                .iter()
                .enumerate()
                .skip(after)
                .find(|(_, change)| **change == Some(status))
                .map(|(position, _)| position);
            found.is_some()
        });
        found.unwrap()
    }

    /// Whether `/readyz` went unanswered after it had first answered: the poller exited or
    /// stopped serving.
    fn went_unanswered(&self) -> bool {
        self.changes()
            .iter()
            .skip_while(|change| change.is_none())
            .any(Option::is_none)
    }
}

impl Drop for Readiness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
