//! Private Apache Kafka clusters of one test alone: a second cluster (topic migration), or three
//! brokers to kill and restart (fault tests). Each node is broker and controller at once (KRaft
//! combined mode, static voters), runs from the jars `scripts/kafka.sh install` put in place, and
//! keeps its data in a scratch directory, so a node killed with SIGKILL restarts on what it had.

use crate::kafka::{create_topic_on, partition_leader};
use crate::tools::{free_stable_ports, poll_until, scratch_dir, without_cargo_test_variables};
use crate::{repo_root, unique_name};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a node may take to start (format included) before the test fails.
const NODE_START_TIMEOUT: Duration = Duration::from_secs(120);

/// A private cluster of Apache Kafka brokers on free loopback ports, every node stopped and its
/// data removed on drop.
#[derive(Debug)]
pub struct KafkaCluster {
    dir: PathBuf,
    nodes: Vec<Node>,
}

#[derive(Debug)]
struct Node {
    id: i32,
    port: u16,
    config: PathBuf,
    log: PathBuf,
    /// None while the node is stopped.
    process: Option<Child>,
}

impl KafkaCluster {
    /// A cluster of `size` nodes (1 to 9). With three or more, internal topics and
    /// [`KafkaCluster::create_topic`]'s topics have three replicas and `min.insync.replicas` is
    /// 2, as in a production cluster; with fewer, every replica count is the node count.
    ///
    /// # Panics
    ///
    /// When a node does not format or start within two minutes; the message carries its log.
    pub fn start(size: usize) -> KafkaCluster {
        assert!(
            (1..=9).contains(&size),
            "a cluster of 1 to 9 nodes, not {size}"
        );
        let dir = scratch_dir().join(unique_name("kafka-cluster"));
        std::fs::create_dir_all(&dir).expect("create the cluster's directory");
        let ports: Vec<(u16, u16)> = free_stable_ports(2 * size)
            .chunks(2)
            .map(|pair| (pair[0], pair[1]))
            .collect();
        let voters = ports
            .iter()
            .enumerate()
            .map(|(i, (_, controller))| format!("{}@127.0.0.1:{controller}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let replicas = size.min(3);
        let min_insync = replicas.min(2);
        let cluster_id = cluster_id();
        let mut nodes = Vec::new();
        let mut formats = Vec::new();
        for (i, (port, controller)) in ports.iter().enumerate() {
            let id = i32::try_from(i + 1).expect("a node id");
            let node_dir = dir.join(format!("node-{id}"));
            std::fs::create_dir_all(&node_dir).expect("create a node's directory");
            let config = node_dir.join("server.properties");
            std::fs::write(
                &config,
                node_config(
                    id,
                    *port,
                    *controller,
                    &voters,
                    &node_dir,
                    replicas,
                    min_insync,
                ),
            )
            .expect("write a node's config");
            formats.push((
                id,
                kafka_script(&["format", &path_str(&config), "--cluster-id", &cluster_id])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("run scripts/kafka.sh format"),
            ));
            nodes.push(Node {
                id,
                port: *port,
                config,
                log: node_dir.join("broker.log"),
                process: None,
            });
        }
        for (id, format) in formats {
            let output = format.wait_with_output().expect("wait for the format");
            assert!(
                output.status.success(),
                "formatting node {id}'s storage failed:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let mut cluster = KafkaCluster { dir, nodes };
        for node in &mut cluster.nodes {
            node.spawn();
        }
        for id in 1..=cluster.nodes.len() {
            cluster.wait_for_node(i32::try_from(id).expect("a node id"));
        }
        cluster
    }

    /// Every node's PLAINTEXT `host:port`, comma-separated, as `bootstrap.servers` takes them.
    pub fn bootstrap_servers(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Creates `topic` with `partitions` partitions, replicated as [`KafkaCluster::start`] says,
    /// and waits until each has a leader.
    ///
    /// # Panics
    ///
    /// When the cluster refuses it.
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let replicas = u32::try_from(self.nodes.len().min(3)).expect("a replica count");
        create_topic_on(&self.bootstrap_servers(), topic, partitions, replicas, &[]);
    }

    /// The node id (1, 2, …) leading `topic`'s `partition` now, if any.
    pub fn leader_of(&self, topic: &str, partition: i32) -> Option<i32> {
        partition_leader(&self.bootstrap_servers(), topic, partition)
    }

    /// Ends node `id` with SIGKILL: no shutdown, no flush, as a crashed machine.
    ///
    /// # Panics
    ///
    /// When there is no such node or it is not running.
    pub fn kill(&mut self, id: i32) {
        let node = self.node_mut(id);
        let mut child = node
            .process
            .take()
            .unwrap_or_else(|| panic!("node {id} is not running"));
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts node `id` again on its data and waits until the cluster lists it.
    ///
    /// # Panics
    ///
    /// When it is running already, or does not come back within two minutes.
    pub fn restart(&mut self, id: i32) {
        let node = self.node_mut(id);
        assert!(node.process.is_none(), "node {id} is running already");
        node.spawn();
        self.wait_for_node(id);
    }

    /// What node `id` logged (warnings and errors).
    pub fn log(&self, id: i32) -> String {
        let node = self.nodes.iter().find(|node| node.id == id);
        node.and_then(|node| std::fs::read_to_string(&node.log).ok())
            .unwrap_or_default()
    }

    fn node_mut(&mut self, id: i32) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|node| node.id == id)
            .unwrap_or_else(|| panic!("the cluster has no node {id}"))
    }

    /// Waits until node `id` answers Metadata itself and names every running node.
    fn wait_for_node(&mut self, id: i32) {
        let running = self
            .nodes
            .iter()
            .filter(|node| node.process.is_some())
            .count();
        let node = self.node_mut(id);
        let address = format!("127.0.0.1:{}", node.port);
        let client: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &address)
            .create()
            .expect("a metadata client");
        let answered = poll_until(NODE_START_TIMEOUT, || {
            if let Some(Ok(Some(status))) = node.process.as_mut().map(Child::try_wait) {
                panic!(
                    "Kafka node {id} exited ({status}) while starting:\n{}",
                    std::fs::read_to_string(&node.log).unwrap_or_default()
                );
            }
            client
                .fetch_metadata(None, Duration::from_secs(2))
                .is_ok_and(|metadata| metadata.brokers().len() >= running)
        });
        assert!(
            answered,
            "Kafka node {id} did not answer on {address} within {NODE_START_TIMEOUT:?}:\n{}",
            std::fs::read_to_string(&node.log).unwrap_or_default()
        );
    }
}

impl Node {
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open a node's log");
        let err = log.try_clone().expect("clone a node's log");
        let child = kafka_script(&["broker", &path_str(&self.config)])
            // A small heap: three nodes, a poller and the emulator share the machine.
            .env("KL_KAFKA_HEAP", "-Xms128m -Xmx512m")
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("start a Kafka node (scripts/kafka.sh install puts the broker in place)");
        self.process = Some(child);
    }
}

impl Drop for KafkaCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.process.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn kafka_script(args: &[&str]) -> Command {
    let mut command = Command::new("bash");
    command
        .arg(repo_root().join("scripts/kafka.sh"))
        .args(args)
        .stdin(Stdio::null());
    without_cargo_test_variables(&mut command);
    command
}

fn path_str(path: &Path) -> String {
    path.to_str()
        .expect("the scratch directory's path is UTF-8")
        .to_owned()
}

/// A KRaft cluster id: 16 random bytes in URL-safe base64 without padding.
fn cluster_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let seed = unique_name("id");
    let mut bits = u128::from_str_radix(seed.rsplit('-').next().unwrap_or("0"), 16).unwrap_or(0);
    bits = bits.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)
        ^ u128::from(std::process::id());
    // 22 characters of 6 bits carry 128 bits (the last character holds 2). The first one holds
    // 5, so it is never '-': the storage tool would read `--cluster-id -…` as an option (Kafka's
    // own Uuid.randomUuid draws again for the same reason).
    (0..22)
        .map(|i| {
            let index = if i == 0 {
                (bits >> 122) & 0x1f
            } else if i < 21 {
                (bits >> (122 - 6 * i)) & 0x3f
            } else {
                (bits & 0x3) << 4
            };
            char::from(ALPHABET[usize::try_from(index).expect("6 bits")])
        })
        .collect()
}

fn node_config(
    id: i32,
    port: u16,
    controller: u16,
    voters: &str,
    dir: &Path,
    replicas: usize,
    min_insync: usize,
) -> String {
    format!(
        "process.roles=broker,controller
node.id={id}
controller.quorum.voters={voters}
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={data}
default.replication.factor={replicas}
min.insync.replicas={min_insync}
offsets.topic.replication.factor={replicas}
offsets.topic.num.partitions=5
transaction.state.log.replication.factor={replicas}
transaction.state.log.min.isr={min_insync}
transaction.state.log.num.partitions=5
share.coordinator.state.topic.replication.factor={replicas}
share.coordinator.state.topic.min.isr={min_insync}
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
num.partitions=1
",
        data = dir.join("data").display(),
    )
}
