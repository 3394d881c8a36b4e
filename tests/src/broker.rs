//! A second tansu broker of one test alone, for tests that need two clusters or a broker
//! with authentication.

use crate::tools::{free_port, tool_path, wait_until};
use crate::unique_name;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A tansu broker on a free port, stopped (and its store removed) on drop.
#[derive(Debug)]
pub struct Tansu {
    child: Child,
    address: String,
    /// The sqlite store of a broker with users, removed on drop.
    store: Option<PathBuf>,
}

impl Tansu {
    /// An in-memory broker without authentication.
    ///
    /// # Panics
    ///
    /// When tansu does not start or listen within 30 s.
    pub fn start() -> Tansu {
        Self::spawn(free_port(), "memory://tansu/", false, &std::env::temp_dir())
    }

    /// A broker that requires SASL/SCRAM-SHA-512 from `user`, with `topics` (one partition
    /// each). tansu keeps users in its storage: they are created on a sqlite store without
    /// authentication, then the broker is restarted on it with `--authentication`.
    ///
    /// # Panics
    ///
    /// When tansu does not start, or refuses the user or a topic.
    pub fn start_with_scram(user: &str, password: &str, topics: &[&str]) -> Tansu {
        let dir = std::env::temp_dir().join(unique_name("tansu-scram"));
        std::fs::create_dir_all(&dir).expect("create the broker's directory");
        let port = free_port();
        let setup = Self::spawn(port, "sqlite://tansu.db", false, &dir);
        setup.tansu(&["user", "create", user, password, "--mechanism", "scram512"]);
        for topic in topics {
            setup.tansu(&["topic", "create", topic, "--partitions", "1"]);
        }
        drop(setup);
        let mut broker = Self::spawn(port, "sqlite://tansu.db", true, &dir);
        broker.store = Some(dir);
        broker
    }

    fn spawn(port: u16, storage: &str, authentication: bool, dir: &Path) -> Tansu {
        let address = format!("127.0.0.1:{port}");
        let url = format!("tcp://{address}");
        let mut command = Command::new("tansu");
        command
            .env("PATH", tool_path())
            .args(["broker", "--storage-engine", storage])
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if authentication {
            command.arg("--authentication");
        }
        let child = command
            .spawn()
            .expect("tansu starts (scripts/services.sh install puts it in place)");
        let broker = Tansu {
            child,
            address,
            store: None,
        };
        wait_until(
            Duration::from_secs(30),
            "the private broker listens",
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        );
        broker
    }

    /// Its address, `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        self.address.clone()
    }

    /// Creates `topic` with `partitions` partitions on this broker.
    ///
    /// # Panics
    ///
    /// When tansu refuses it; the message carries tansu's output.
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        self.tansu(&[
            "topic",
            "create",
            topic,
            "--partitions",
            &partitions.to_string(),
        ]);
    }

    /// Runs the tansu command line against this broker.
    fn tansu(&self, args: &[&str]) {
        let output = Command::new("tansu")
            .env("PATH", tool_path())
            .args(args)
            .args(["--broker", &format!("tcp://{}", self.address)])
            .stdin(Stdio::null())
            .output()
            .expect("tansu runs");
        assert!(
            output.status.success(),
            "tansu {args:?} on {}: {}",
            self.address,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(store) = &self.store {
            let _ = std::fs::remove_dir_all(store);
        }
    }
}
