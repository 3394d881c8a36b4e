//! Small helpers for tests that run processes: free ports, waiting, scratch files, the
//! workspace's binaries and the tools `scripts/services.sh install` puts in place.

use crate::{repo_root, unique_name};
use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A port nothing listens on right now.
///
/// # Panics
///
/// When no local port can be bound.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("find a free port")
}

/// `count` distinct ports nothing listens on right now, below Linux's ephemeral range (32768 and
/// up by default): a server that is stopped and restarted on its port (a killed broker) must
/// not find it taken by an outgoing connection that the kernel gave that port meanwhile.
///
/// # Panics
///
/// When 20000–32767 has not `count` free ports.
pub fn free_stable_ports(count: usize) -> Vec<u16> {
    // Spread the start by process and time, so parallel tests rarely try the same ports.
    let seed = std::process::id() as usize
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as usize);
    let span = 32_768 - 20_000;
    let mut held = Vec::new();
    for step in 0..span {
        if held.len() == count {
            break;
        }
        let port = u16::try_from(20_000 + (seed + step * 7_919) % span).expect("a port");
        // Every port stays bound until all are found, so none is returned twice.
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(listener);
        }
    }
    assert_eq!(held.len(), count, "{count} free ports in 20000-32767");
    held.iter()
        .map(|listener| listener.local_addr().expect("a bound address").port())
        .collect()
}

/// Checks `condition` every 100 ms until it holds (`true`) or `timeout` has passed (`false`):
/// for a test that says more than [`wait_until`] when it gives up.
pub fn poll_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if condition() {
            return true;
        }
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `condition` holds, checking every 100 ms.
///
/// # Panics
///
/// When it does not hold within `timeout`; the message is "timed out after `timeout` waiting
/// until `what`".
pub fn wait_until(timeout: Duration, what: &str, condition: impl FnMut() -> bool) {
    assert!(
        poll_until(timeout, condition),
        "timed out after {timeout:?} waiting until {what}"
    );
}

/// Where tests keep logs and configuration files (created if missing).
///
/// # Panics
///
/// When the directory cannot be created.
pub fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("kafka-lambda-tests");
    std::fs::create_dir_all(&dir).expect("create the scratch directory");
    dir
}

/// A new directory of its own under [`scratch_dir`]: `<prefix>-<random hex>`.
///
/// # Panics
///
/// When the directory cannot be created.
pub fn unique_dir(prefix: &str) -> PathBuf {
    let dir = scratch_dir().join(unique_name(prefix));
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// Writes `contents` to a new file under [`scratch_dir`], named `<prefix>-<random hex>`, and
/// returns its path: a configuration or a secret a process under test reads.
///
/// # Panics
///
/// When the file cannot be written.
pub fn scratch_file(prefix: &str, contents: &str) -> PathBuf {
    let path = scratch_dir().join(unique_name(prefix));
    std::fs::write(&path, contents)
        .unwrap_or_else(|error| panic!("write {}: {error}", path.display()));
    path
}

/// A `PATH` that finds the tools `scripts/services.sh install` puts in place (`java`,
/// `cargo-lambda`): the test's own `PATH`, then cargo's and pip's bin directories, which a
/// fresh shell may lack.
pub fn tool_path() -> std::ffi::OsString {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default();
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    dirs.push(
        std::env::var_os("CARGO_HOME")
            .map_or_else(|| home.join(".cargo"), PathBuf::from)
            .join("bin"),
    );
    dirs.push(home.join(".local/bin"));
    std::env::join_paths(dirs).unwrap_or_default()
}

/// `cargo build -p <package>...` from the repository root, once per package and test
/// process, so that a function's first invocation does not compile it and a binary the test
/// runs is current.
///
/// # Panics
///
/// When the build fails; the message carries cargo's output.
pub fn cargo_build(packages: &[&str]) {
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

/// The path of the workspace binary `name` of the profile the tests were built with, where
/// [`cargo_build`] puts it.
pub fn binary(name: &str) -> PathBuf {
    // target/<profile>/deps/<test>-<hash> → target/<profile>/<name>
    let profile_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()));
    profile_dir
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| repo_root().join("target"), PathBuf::from)
                .join("debug")
        })
        .join(name)
}

/// The cargo that runs the tests, else the one on `PATH`.
pub(crate) fn cargo() -> PathBuf {
    std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}

/// `cargo metadata --no-deps` of the workspace: its packages and its target directory.
///
/// # Panics
///
/// When cargo fails or prints no JSON.
pub fn cargo_metadata() -> Value {
    let mut command = Command::new(cargo());
    command
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(repo_root());
    let output = command_output(&mut command);
    assert!(
        output.status.success(),
        "cargo metadata:\n{}",
        output_text(&output)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

/// Runs `command` to its end and returns what it printed, whatever its exit status.
///
/// # Panics
///
/// When it cannot be started.
pub fn command_output(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"))
}

/// A finished process's exit status, stdout and stderr, for a failure message.
pub fn output_text(output: &Output) -> String {
    format!(
        "exit: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The latest modification time of a file, or of the files under a directory (its `target/`
/// and hidden entries left out).
pub(crate) fn newest_modification(path: &Path) -> Option<std::time::SystemTime> {
    let metadata = std::fs::metadata(path).ok()?;
    if !metadata.is_dir() {
        return metadata.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            !name.starts_with('.') && name != "target"
        })
        .filter_map(|entry| newest_modification(&entry.path()))
        .max()
}

/// Variables that `cargo test` sets for a test process and that must not leak into the cargo
/// commands and services started from it: the emulator runs `cargo run`, and build scripts
/// watch some of them.
pub fn without_cargo_test_variables(command: &mut Command) {
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

/// Runs the workspace binary `function` (built with [`cargo_build`]) once per case, with only
/// that case's environment and no Lambda Runtime API, and checks that it exits unsuccessfully
/// with the case's message on stderr: an invalid configuration stops a function at start,
/// before it looks for the runtime, with a message naming the variable.
///
/// # Panics
///
/// When the binary cannot run, or a case starts successfully or prints another message.
pub fn assert_refuses_to_start(function: &str, cases: &[(Vec<(&str, &str)>, &str)]) {
    for (env, message) in cases {
        let output = Command::new(binary(function))
            .env_clear()
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|error| panic!("run {function}: {error}"));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{function} {env:?}: {stderr}");
        assert!(
            stderr.contains(message),
            "{function} {env:?}: expected `{message}` in:\n{stderr}"
        );
    }
}
