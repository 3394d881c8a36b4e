//! A private `cargo lambda watch` for one test.
//!
//! The shared emulator of `scripts/services.sh` serves the code a function had when it was
//! first invoked and passes on the environment it was started with. A test whose function is
//! configured through its environment (a stand-in's port, a second broker, a database), or
//! whose function code may have changed, starts its own emulator on a free port with exactly
//! those variables; dropping it stops the emulator and the function processes it started.

use crate::tools::{cargo, cargo_build, free_port, scratch_dir, tool_path};
use crate::tools::{wait_until, without_cargo_test_variables};
use crate::{Invocation, post_invocation, repo_root};
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the emulator may take to listen (it waits for nothing but its own start).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Prefixes of the variables the ready-made functions read: the test's own environment (where
/// `KAFKA_BOOTSTRAP_SERVERS`, for one, names the test broker) must not configure them.
const FUNCTION_VARIABLE_PREFIXES: &[&str] = &["KAFKA_", "ES_", "LOG_ETL_", "DUMP_", "PG_"];

/// Leaves the test's own values of the functions' variables ([`FUNCTION_VARIABLE_PREFIXES`]) out
/// of `command`'s environment: a host passes a function exactly the variables it is given.
pub(crate) fn without_function_variables(command: &mut Command) {
    for (variable, _) in std::env::vars_os() {
        let variable = variable.to_string_lossy();
        if FUNCTION_VARIABLE_PREFIXES
            .iter()
            .any(|prefix| variable.starts_with(prefix))
        {
            command.env_remove(&*variable);
        }
    }
}

/// A running `cargo lambda watch`, stopped with its function processes on drop.
#[derive(Debug)]
pub struct Emulator {
    child: Option<Child>,
    endpoint: String,
    log: PathBuf,
}

impl Emulator {
    /// Builds `packages` (so that a function's first invocation does not compile it), then
    /// starts the emulator, named `name` in its log file's name, with `env` as the functions'
    /// configuration. Values go through the process environment, so commas and line breaks
    /// in them stay intact.
    ///
    /// # Panics
    ///
    /// When a package does not build, or the emulator does not start or answer within a
    /// minute; the message carries its log.
    pub fn start(name: &str, packages: &[&str], env: &[(&str, &str)]) -> Emulator {
        cargo_build(packages);
        let port = free_port();
        let log = scratch_dir().join(format!("{name}-emulator-{port}.log"));
        let log_file = File::create(&log).expect("create the emulator's log file");
        let mut command = Command::new(cargo());
        command
            .args(["lambda", "watch", "--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &port.to_string()])
            .args(["--ignore-changes", "--concurrency", "4", "--color", "never"])
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone the log file"))
            .stderr(log_file)
            // Its own process group, so that drop stops the function processes too.
            .process_group(0);
        without_cargo_test_variables(&mut command);
        without_function_variables(&mut command);
        command.env("PATH", tool_path()).env("RUST_LOG", "info");
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

    /// The base URL of the invoke API, e.g. for the poller's `lambda.endpoint_url`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// What the emulator and its functions printed so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Invokes `function` synchronously with `payload` and returns whatever it answered.
    ///
    /// # Panics
    ///
    /// When the emulator cannot be reached or gives no answer within
    /// [`INVOKE_TIMEOUT`](crate::INVOKE_TIMEOUT); the message carries its log.
    pub fn invoke(&self, function: &str, payload: impl AsRef<[u8]>) -> Invocation {
        post_invocation(&self.endpoint, function, payload.as_ref()).unwrap_or_else(|error| {
            panic!(
                "invoking {function} at {} failed: {error}; emulator log:\n{}",
                self.endpoint,
                self.log_text()
            )
        })
    }

    /// Waits until the invoke API answers: an unknown function gets 404, without starting any.
    fn wait_until_ready(&mut self) {
        let started = Instant::now();
        let probe = ureq::Agent::from(
            ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(2)))
                .http_status_as_error(false)
                .build(),
        );
        let url = format!(
            "{}/2015-03-31/functions/not-a-function/invocations",
            self.endpoint
        );
        wait_until(START_TIMEOUT, "the private emulator answers", || {
            let answered = probe
                .post(&url)
                .send(&b"{}"[..])
                .is_ok_and(|response| response.status().as_u16() == 404);
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            assert!(
                exited.is_none(),
                "the emulator exited ({exited:?}) after {:?}; log:\n{}",
                started.elapsed(),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            answered
        });
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
