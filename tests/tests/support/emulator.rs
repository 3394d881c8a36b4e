//! A private `cargo lambda watch` for one test, for functions that are configured through
//! their environment: the shared emulator of `scripts/services.sh` passes on the environment it
//! was started with, so a test that needs its own settings (a stand-in's port, a broker that
//! does not answer) starts its own emulator on a free port with exactly those variables, and
//! stops it, with the function processes it started, when the test ends.
//!
//! Used by `es_etl.rs` and `kafka_client_fn.rs` through `#[path]`; not a test target itself.
//! Each of them uses a different part, hence the `dead_code` allowance.

#![allow(dead_code)]

use kafka_lambda_tests::{Invocation, repo_root};
use std::fs::File;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long an invocation may take; the emulator itself never gives up on one.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the emulator may take to listen (it waits for nothing but its own start).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `cargo lambda watch`, stopped on drop.
pub(crate) struct Emulator {
    child: Option<Child>,
    endpoint: String,
    log: PathBuf,
}

impl Emulator {
    /// Builds `packages` (so that a function's first invocation does not compile it), then
    /// starts the emulator with `env` added to the test's environment.
    pub(crate) fn start(name: &str, packages: &[&str], env: &[(&str, &str)]) -> Emulator {
        cargo_build(packages);
        let port = free_port();
        let log = scratch_dir().join(format!("{name}-emulator-{port}.log"));
        let log_file = File::create(&log).expect("create the emulator's log file");
        let mut command = Command::new(cargo());
        command
            .args(["lambda", "watch", "--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &port.to_string()])
            .args(["--ignore-changes", "--concurrency", "4"])
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone the log file"))
            .stderr(log_file)
            // Its own process group, so that drop stops the function processes too.
            .process_group(0);
        without_cargo_test_variables(&mut command);
        // The functions' configuration comes from `env` only, not from the test's environment
        // (where KAFKA_BOOTSTRAP_SERVERS, for one, names the test broker).
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if ["KAFKA_", "ES_", "LOG_ETL_"]
                .iter()
                .any(|prefix| name.starts_with(prefix))
            {
                command.env_remove(&*name);
            }
        }
        command.env("RUST_LOG", "info");
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .expect("start cargo lambda watch (scripts/services.sh install installs it)");
        let mut emulator = Emulator {
            child: Some(child),
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        };
        emulator.wait_until_ready();
        emulator
    }

    /// The base URL of the invoke API.
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// What the emulator and its functions printed so far.
    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Invokes `function` synchronously with `payload`.
    pub(crate) fn invoke(&self, function: &str, payload: impl AsRef<[u8]>) -> Invocation {
        let url = format!(
            "{}/2015-03-31/functions/{function}/invocations",
            self.endpoint
        );
        let mut response = agent()
            .post(&url)
            .header("content-type", "application/json")
            .send(payload.as_ref())
            .unwrap_or_else(|error| {
                panic!(
                    "invoking {function} at {url} failed: {error}; emulator log:\n{}",
                    self.log_text()
                )
            });
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(16 * 1024 * 1024)
            .read_to_vec()
            .expect("read the invocation's answer");
        Invocation {
            function: function.to_owned(),
            status,
            headers,
            body,
        }
    }

    /// Waits until the invoke API answers: an unknown function gets 404, without starting any.
    fn wait_until_ready(&mut self) {
        let started = Instant::now();
        let probe = format!(
            "{}/2015-03-31/functions/not-a-function/invocations",
            self.endpoint
        );
        loop {
            if let Ok(response) = agent().post(&probe).send(&b"{}"[..])
                && response.status().as_u16() == 404
            {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            assert!(
                exited.is_none() && started.elapsed() < START_TIMEOUT,
                "the emulator did not start within {START_TIMEOUT:?} (exit: {exited:?}); log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = format!("-{}", child.id());
        let signal = |name: &str| {
            // Fails (quietly) once the group is gone.
            let _ = Command::new("kill")
                .args([name, "--", &group])
                .stderr(Stdio::null())
                .status();
        };
        // SIGTERM stops the emulator and the functions it started; SIGKILL whatever lingers.
        signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        signal("-KILL");
        let _ = child.wait();
    }
}

fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            .timeout_global(Some(INVOKE_TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into()
    })
}

/// `cargo build -p ...` from the repository root, failing the test with cargo's output; once
/// per package and test process.
pub(crate) fn cargo_build(packages: &[&str]) {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let packages: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|package| !built.iter().any(|b| b == package))
        .collect();
    if packages.is_empty() {
        return;
    }
    let mut command = Command::new(cargo());
    command.arg("build").current_dir(repo_root());
    for package in &packages {
        command.args(["-p", package]);
    }
    without_cargo_test_variables(&mut command);
    let output = command.output().expect("run cargo build");
    assert!(
        output.status.success(),
        "cargo build -p {} failed:\n{}",
        packages.join(" -p "),
        String::from_utf8_lossy(&output.stderr)
    );
    built.extend(packages.iter().map(|package| (*package).to_owned()));
}

/// A binary of the workspace, built by [`cargo_build`].
pub(crate) fn binary(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    target.join("debug").join(name)
}

fn cargo() -> PathBuf {
    std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}

/// `cargo test` sets variables for the test process that must not reach the cargo commands it
/// runs (build scripts watch some of them).
fn without_cargo_test_variables(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let from_cargo_test = matches!(
            &*name,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_CRATE_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "CARGO_RUSTC_CURRENT_DIR"
        ) || name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_BIN_EXE_");
        if from_cargo_test {
            command.env_remove(&*name);
        }
    }
}

/// A port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("find a free port")
}

/// Where tests keep logs and configuration files.
pub(crate) fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("kafka-lambda-function-tests");
    std::fs::create_dir_all(&dir).expect("create the scratch directory");
    dir
}
