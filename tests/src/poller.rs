//! The real `kafka-lambda-poller` binary: run with a test's configuration, checked with `check`,
//! and its telemetry endpoint read.

use crate::tools::{cargo, cargo_metadata, command_output, newest_modification, output_text};
use crate::tools::{scratch_file, unique_dir};
use crate::{repo_root, services};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Set (to `fetch,cgrp`, say) to turn on librdkafka's debug contexts in the log of every poller
/// a test starts with [`recorder_config`](crate::recorder_config).
pub const RDKAFKA_DEBUG_VARIABLE: &str = "KL_TEST_RDKAFKA_DEBUG";

/// The `kafka-lambda-poller` executable the tests run.
///
/// For the poller package's own tests it is the one cargo built for them
/// (`CARGO_BIN_EXE_kafka-lambda-poller`, which `cargo test` and nextest set). Otherwise it is
/// the one in the workspace's target directory, where the workspace build that precedes the
/// tests puts it (`scripts/test.sh`, `cargo test --workspace`), built here only when it is
/// missing or older than a source file of the poller or of its path dependencies: building it
/// alone unifies dependency features differently from the workspace build, so an unconditional
/// `cargo build -p` would rebuild and replace the binary the poller's own tests are running.
///
/// # Panics
///
/// When it has to be built and the build fails.
pub fn poller_binary() -> PathBuf {
    if let Some(built_for_this_test) = std::env::var_os("CARGO_BIN_EXE_kafka-lambda-poller") {
        return PathBuf::from(built_for_this_test);
    }
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(workspace_poller_binary).clone()
}

fn workspace_poller_binary() -> PathBuf {
    let metadata = cargo_metadata();
    let target_dir = metadata["target_directory"]
        .as_str()
        .expect("cargo metadata names the target directory");
    let binary = Path::new(target_dir).join("debug").join(format!(
        "kafka-lambda-poller{}",
        std::env::consts::EXE_SUFFIX
    ));
    let built = std::fs::metadata(&binary).and_then(|m| m.modified()).ok();
    let newest_source = poller_source_dirs(&metadata)
        .iter()
        .chain([&repo_root().join("Cargo.lock")])
        .filter_map(|path| newest_modification(path))
        .max();
    if built.is_some() && built >= newest_source {
        return binary;
    }
    let mut command = Command::new(cargo());
    command
        .args([
            "build",
            "-p",
            "kafka-lambda-poller",
            "--bin",
            "kafka-lambda-poller",
        ])
        .current_dir(repo_root());
    crate::tools::without_cargo_test_variables(&mut command);
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        command.arg("--locked");
    }
    let output = command_output(&mut command);
    assert!(
        output.status.success(),
        "cargo build -p kafka-lambda-poller:\n{}",
        output_text(&output)
    );
    assert!(binary.is_file(), "cargo build made no {}", binary.display());
    binary
}

/// The directories of the poller package and of its path dependencies (not dev-dependencies),
/// recursively.
fn poller_source_dirs(metadata: &Value) -> Vec<PathBuf> {
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    let mut dirs = Vec::new();
    let mut pending = vec!["kafka-lambda-poller".to_owned()];
    let mut seen = BTreeSet::new();
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let Some(package) = packages.iter().find(|p| p["name"] == name.as_str()) else {
            continue;
        };
        if let Some(dir) = Path::new(package["manifest_path"].as_str().unwrap_or_default()).parent()
        {
            dirs.push(dir.to_path_buf());
        }
        for dependency in package["dependencies"].as_array().into_iter().flatten() {
            if dependency["path"].is_string()
                && dependency["kind"] != "dev"
                && let Some(name) = dependency["name"].as_str()
            {
                pending.push(name.to_owned());
            }
        }
    }
    dirs
}

/// Writes `config` to a scratch file and runs `kafka-lambda-poller check --config <file>` on it,
/// with `env` added to the test's environment; what it printed.
///
/// # Panics
///
/// When the poller cannot be built or started.
pub fn poller_check(config: &str, env: &[(&str, &str)]) -> Output {
    let path = scratch_file("check", config);
    let output = command_output(
        Command::new(poller_binary())
            .args(["check", "--config"])
            .arg(&path)
            .envs(env.iter().copied()),
    );
    let _ = std::fs::remove_file(&path);
    output
}

/// A running `kafka-lambda-poller run`, killed on drop; [`Poller::terminate`] and
/// [`Poller::stop`] stop it the way a deployment does (SIGTERM, drain, commit).
#[derive(Debug)]
pub struct Poller {
    child: Option<Child>,
    log: PathBuf,
}

impl Poller {
    /// Writes `config` (the TOML of `poller.toml`) to a scratch directory named after `name`
    /// and runs [`poller_binary`] on it, with dummy AWS credentials (the local emulator checks
    /// none), debug logs of its own and librdkafka's as [`RDKAFKA_DEBUG_VARIABLE`] asks, and its
    /// log in a file.
    ///
    /// # Panics
    ///
    /// When the poller does not build or start.
    pub fn start(name: &str, config: &str) -> Poller {
        Self::start_with_env(name, config, &[], &[])
    }

    /// [`Poller::start`] with more `run` arguments (`--until-caught-up`).
    ///
    /// # Panics
    ///
    /// As [`Poller::start`].
    pub fn start_with(name: &str, config: &str, args: &[&str]) -> Poller {
        Self::start_with_env(name, config, args, &[])
    }

    /// [`Poller::start_with`] with environment variables `env`, which win over the defaults
    /// (`RUST_LOG`, the AWS keys).
    ///
    /// # Panics
    ///
    /// As [`Poller::start`].
    pub fn start_with_env(name: &str, config: &str, args: &[&str], env: &[(&str, &str)]) -> Poller {
        let dir = unique_dir(name);
        let config_path = dir.join("poller.toml");
        std::fs::write(&config_path, config).expect("write the poller's config");
        let log = dir.join("poller.log");
        let rust_log = if std::env::var_os(RDKAFKA_DEBUG_VARIABLE).is_some() {
            "info,kafka_lambda_poller=debug,librdkafka=debug"
        } else {
            "info,kafka_lambda_poller=debug"
        };
        let child = Command::new(poller_binary())
            .args(["run", "--config"])
            .arg(&config_path)
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", rust_log)
            .envs(env.iter().copied())
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

    /// Whether the poller's log shows a non-empty assignment.
    pub fn owns_partitions(&self) -> bool {
        self.log()
            .lines()
            .any(|l| l.contains("partitions assigned") && l.contains("partitions=[(\""))
    }

    /// Whether the process is still running: false once it exited on its own (or was stopped).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// SIGTERM, then waits for the drain (at most 30 s) before killing it.
    pub fn stop(&mut self) {
        self.send_sigterm();
        if self.exit_within(Duration::from_secs(30)).is_none() {
            self.kill9();
        }
    }

    /// SIGTERM, then waits for the exit.
    ///
    /// # Panics
    ///
    /// When it is not running, or has not exited within `timeout` (it is killed then).
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        assert!(
            self.send_sigterm(),
            "the poller is not running; log:\n{}",
            self.log()
        );
        self.wait(timeout)
    }

    /// [`Poller::terminate`], which must exit 0.
    ///
    /// # Panics
    ///
    /// When it does not exit within `timeout` or exits with another status.
    pub fn terminate_cleanly(&mut self, timeout: Duration) {
        let status = self.terminate(timeout);
        assert_eq!(status.code(), Some(0), "log:\n{}", self.log());
    }

    /// Waits for the poller to exit by itself.
    ///
    /// # Panics
    ///
    /// When it is not running, or has not exited within `timeout` (it is killed then).
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        assert!(self.child.is_some(), "the poller is not running");
        self.exit_within(timeout).unwrap_or_else(|| {
            let log = self.log();
            self.kill9();
            panic!("the poller did not exit within {timeout:?}; log:\n{log}")
        })
    }

    /// SIGKILL: a crash.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM; whether there was a process to send it to.
    fn send_sigterm(&self) -> bool {
        let Some(child) = &self.child else {
            return false;
        };
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .is_ok_and(|status| status.success())
    }

    /// The exit status, once the process exits within `timeout`.
    fn exit_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.kill9();
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
        bootstrap = services().kafka_bootstrap_servers(),
        group = crate::group_name(function),
    )
}

/// `config` with a `[telemetry]` table listening on 127.0.0.1:`port`, statistics every
/// `lag_interval_ms` when given, placed before its `[shutdown]` table.
///
/// # Panics
///
/// When `config` has no `[shutdown]` table.
pub fn with_telemetry(config: &str, port: u16, lag_interval_ms: Option<u64>) -> String {
    assert!(
        config.contains("[shutdown]"),
        "no [shutdown] table in:\n{config}"
    );
    let lag = lag_interval_ms.map_or_else(String::new, |ms| format!("lag_interval_ms = {ms}\n"));
    config.replace(
        "[shutdown]",
        &format!("[telemetry]\nlisten = \"127.0.0.1:{port}\"\n{lag}\n[shutdown]"),
    )
}

/// A `GET path` on 127.0.0.1:`port` (the poller's telemetry endpoint): the status and the body,
/// or `None` when nothing answers within 5 s.
pub fn try_http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let timeout = Duration::from_secs(5);
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// [`try_http_get`], which must answer.
///
/// # Panics
///
/// When nothing answers within 5 s.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    try_http_get(port, path).unwrap_or_else(|| panic!("GET {path} on port {port}: no answer"))
}

/// The sum of the values of the Prometheus lines of metric `name` in `body` that contain every
/// one of `labels` (`group="g"`, …); `None` when there is no such line.
pub fn metric(body: &str, name: &str, labels: &[&str]) -> Option<f64> {
    body.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|f| l.contains(f)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .reduce(|a, b| a + b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_adds_up_the_lines_with_every_label() {
        let body = "# TYPE lag gauge\nlag{group=\"g\",partition=\"0\"} 3\n\
                    lag{group=\"g\",partition=\"1\"} 4\nlag{group=\"h\",partition=\"0\"} 9\n";
        assert_eq!(metric(body, "lag", &["group=\"g\""]), Some(7.0));
        assert_eq!(
            metric(body, "lag", &["group=\"g\"", "partition=\"1\""]),
            Some(4.0)
        );
        assert_eq!(metric(body, "lag", &["group=\"x\""]), None);
    }

    #[test]
    fn telemetry_goes_before_the_shutdown_table() {
        let config = "[kafka]\n\n[shutdown]\ndrain_timeout_ms = 1\n";
        assert_eq!(
            with_telemetry(config, 9464, Some(1000)),
            "[kafka]\n\n[telemetry]\nlisten = \"127.0.0.1:9464\"\nlag_interval_ms = 1000\n\n\
             [shutdown]\ndrain_timeout_ms = 1\n"
        );
    }
}
