//! AWS's Lambda Runtime Interface Emulator (`aws-lambda-rie`, installed by `scripts/rie.sh`) with
//! one function behind it (a workspace binary, [`Rie::start`], or any command line,
//! [`Rie::start_command`]), for one test: the runtime API as AWS implements it, where
//! `cargo lambda watch` is a reimplementation.
//!
//! How it answers (its source, `internal/lambda/rie` and `rapidcore`, and `curl`, as
//! `scripts/rie.sh` records): a success and a function error alike as HTTP 200 with the body the
//! runtime posted and no header of the runtime's (no `X-Amz-Function-Error`); a timeout
//! (`AWS_LAMBDA_FUNCTION_TIMEOUT`) as 200 with the text `Task timed out after N.00 seconds`; a
//! runtime that exits as 502 with `Runtime.ExitError`, after which the next invocation starts it
//! again. It serves one invocation at a time: a second one sent while the first runs crashes the
//! emulator, so the poller in front of it must invoke one batch at a time.

use crate::emulator::without_function_variables;
use crate::tools::{binary, cargo_build, free_port, scratch_dir};
use crate::{Invocation, post_invocation, repo_root};
use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The one function name the emulator serves: `/2015-03-31/functions/function/invocations`.
pub const RIE_FUNCTION: &str = "function";

/// A running `aws-lambda-rie` with its function, stopped on drop.
#[derive(Debug)]
pub struct Rie {
    child: Option<Child>,
    endpoint: String,
    log: PathBuf,
}

impl Rie {
    /// Installs the emulator when missing (`scripts/rie.sh install`), builds `package`, then
    /// runs its binary `bin` behind a new emulator on a free port with `env` added to the
    /// function's environment, and waits until the emulator listens.
    ///
    /// # Panics
    ///
    /// When the emulator cannot be installed, the package does not build, or the emulator does
    /// not listen within a minute; the message carries its log.
    pub fn start(package: &str, bin: &str, env: &[(&str, &str)]) -> Rie {
        cargo_build(&[package]);
        Self::launch(bin, &[binary(bin).into_os_string()], &repo_root(), env)
    }

    /// Installs the emulator when missing, then runs `command` (a program and its arguments:
    /// any runtime, `python -m awslambdaric app.handler`, a `java` command line, a binary) as
    /// the function `name` behind a new emulator on a free port, in the directory `cwd`, with
    /// `env` added to the function's environment, and waits until the emulator listens.
    ///
    /// # Panics
    ///
    /// When `command` is empty, the emulator cannot be installed, or it does not listen within a
    /// minute; the message carries its log.
    pub fn start_command(name: &str, command: &[String], cwd: &Path, env: &[(&str, &str)]) -> Rie {
        assert!(
            !command.is_empty(),
            "no command to run as the function {name}"
        );
        let command: Vec<OsString> = command.iter().map(OsString::from).collect();
        Self::launch(name, &command, cwd, env)
    }

    /// Runs `handler` (program and arguments) as the function `name` behind a new emulator.
    fn launch(name: &str, handler: &[OsString], cwd: &Path, env: &[(&str, &str)]) -> Rie {
        let rie = rie_path();
        let port = free_port();
        // The Runtime API the function talks to: on a port of its own too (the emulator's
        // default, 9001, would make emulators running side by side fail to start).
        let runtime_api_port = free_port();
        let log = scratch_dir().join(format!("{name}-rie-{port}.log"));
        let log_file = File::create(&log).expect("create the emulator's log file");
        let mut command = Command::new(rie);
        command
            .arg("--runtime-interface-emulator-address")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--runtime-api-address")
            .arg(format!("127.0.0.1:{runtime_api_port}"))
            .args(handler)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone the log file"))
            .stderr(log_file)
            // Its own process group, so that drop stops the function too.
            .process_group(0)
            .env("RUST_LOG", "info")
            .env("AWS_LAMBDA_FUNCTION_NAME", name);
        without_function_variables(&mut command);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .expect("start aws-lambda-rie (scripts/rie.sh install builds it)");
        let mut rie = Rie {
            child: Some(child),
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = rie
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!(
                    "the Runtime Interface Emulator of {name} exited ({status}) before listening; \
                     its log:\n{}",
                    rie.log_text()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the Runtime Interface Emulator of {name} does not listen on port {port} after \
                 60 s; its log:\n{}",
                rie.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        rie
    }

    /// The base URL of the invoke API, for the poller's `lambda.endpoint_url` (with
    /// [`RIE_FUNCTION`] as the function name).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// What the emulator and its function printed so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Invokes the function synchronously with `payload` and returns whatever it answered.
    ///
    /// # Panics
    ///
    /// When the emulator cannot be reached; the message carries its log.
    pub fn invoke(&self, payload: impl AsRef<[u8]>) -> Invocation {
        post_invocation(&self.endpoint, RIE_FUNCTION, payload.as_ref()).unwrap_or_else(|error| {
            panic!(
                "invoking the function at {} failed: {error}; emulator log:\n{}",
                self.endpoint,
                self.log_text()
            )
        })
    }
}

impl Drop for Rie {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                // The whole group: the emulator and the function it started.
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pid}")])
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The emulator's binary, installed once per process run through `scripts/rie.sh`.
fn rie_path() -> PathBuf {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let script = repo_root().join("scripts/rie.sh");
        let install = Command::new(&script)
            .arg("install")
            .output()
            .expect("run scripts/rie.sh install");
        assert!(
            install.status.success(),
            "scripts/rie.sh install failed:\n{}",
            String::from_utf8_lossy(&install.stderr)
        );
        let path = Command::new(&script)
            .arg("path")
            .output()
            .expect("run scripts/rie.sh path");
        PathBuf::from(String::from_utf8_lossy(&path.stdout).trim())
    })
    .clone()
}
