//! The real `kafka-lambda-poller` binary, run with a test's configuration.

use crate::tools::{binary, cargo_build, scratch_dir};
use crate::unique_name;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `kafka-lambda-poller run`, killed on drop; [`Poller::stop`] stops it the way a
/// deployment does (SIGTERM, drain, commit).
#[derive(Debug)]
pub struct Poller {
    child: Option<Child>,
    log: PathBuf,
}

impl Poller {
    /// Builds the poller (once per test process), writes `config` (the TOML of
    /// `poller.toml`) to a scratch file named after `name` and runs the poller on it, with
    /// dummy AWS credentials (the local emulator checks none) and its log in a file.
    ///
    /// # Panics
    ///
    /// When the poller does not build or start.
    pub fn start(name: &str, config: &str) -> Poller {
        cargo_build(&["kafka-lambda-poller"]);
        let dir = scratch_dir().join(unique_name(name));
        std::fs::create_dir_all(&dir).expect("create the poller's scratch directory");
        let config_path = dir.join("poller.toml");
        std::fs::write(&config_path, config).expect("write the poller's config");
        let log = dir.join("poller.log");
        let child = Command::new(binary("kafka-lambda-poller"))
            .args(["run", "--config"])
            .arg(&config_path)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", "info,kafka_lambda_poller=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create the poller's log"))
            .spawn()
            .expect("start kafka-lambda-poller");
        Poller {
            child: Some(child),
            log,
        }
    }

    /// What the poller logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits for the drain (at most 30 s) before killing it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The poller's configuration for one mapping: `topic` on the test broker to `function`
/// behind the invoke API at `lambda_endpoint`, in a fresh consumer group, with short fetch
/// waits and commits every 500 ms, then `mapping_settings` (more `key = value` lines of the
/// `[[mapping]]` table, e.g. `"batch_size = 5\nreport_batch_item_failures = true"`).
///
/// # Panics
///
/// When the test services are not available.
pub fn mapping_config(
    function: &str,
    topic: &str,
    lambda_endpoint: &str,
    mapping_settings: &str,
) -> String {
    format!(
        r#"[kafka]
bootstrap_servers = "{bootstrap}"
fetch_wait_max_ms = 10
commit_interval_ms = 500

[lambda]
region = "us-east-1"
endpoint_url = "{lambda_endpoint}"

[[mapping]]
function = "{function}"
topics = ["{topic}"]
consumer_group = "{group}"
{mapping_settings}
"#,
        bootstrap = crate::services().kafka_bootstrap_servers(),
        group = crate::group_name(function),
    )
}
