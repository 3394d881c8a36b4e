//! Child processes: the poller under test, and what `/proc` tells about a process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// User plus system CPU time of a process so far (all its threads).
pub(crate) fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are space-separated.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis(
        (utime + stime) * 1000 / clock_ticks(),
    ))
}

/// `VmRSS` and `VmHWM` of a process, in bytes.
pub(crate) fn memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Samples a process's resident memory every `interval` until stopped.
pub(crate) struct MemorySampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<(Duration, u64)>>>,
    peak: Arc<Mutex<u64>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MemorySampler {
    /// Starts sampling `pid`.
    pub(crate) fn start(pid: u32, interval: Duration) -> MemorySampler {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let peak = Arc::new(Mutex::new(0));
        let (s, sa, pk) = (stop.clone(), samples.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            while !s.load(Ordering::Relaxed) {
                let Some((rss, hwm)) = memory(pid) else { break };
                if let Ok(mut v) = sa.lock() {
                    v.push((started.elapsed(), rss));
                }
                if let Ok(mut p) = pk.lock() {
                    *p = (*p).max(hwm);
                }
                std::thread::sleep(interval);
            }
        });
        MemorySampler {
            stop,
            samples,
            peak,
            thread: Some(thread),
        }
    }

    /// Stops sampling; returns the samples `(since start, VmRSS)` and the highest `VmHWM`.
    pub(crate) fn finish(mut self) -> (Vec<(Duration, u64)>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let samples = self.samples.lock().map(|v| v.clone()).unwrap_or_default();
        let peak = self.peak.lock().map(|p| *p).unwrap_or_default();
        (samples, peak)
    }
}

/// The `[kafka]` and `[[mapping]]` settings a benchmark varies.
#[derive(Debug, Clone)]
pub(crate) struct PollerConfig {
    /// Broker list.
    pub(crate) bootstrap: String,
    /// Topic to read.
    pub(crate) topic: String,
    /// Consumer group (unique per run: every run starts at the beginning).
    pub(crate) group: String,
    /// Invoke API base URL.
    pub(crate) endpoint: String,
    /// Function name.
    pub(crate) function: String,
    /// `[kafka] fetch_wait_max_ms`.
    pub(crate) fetch_wait_max_ms: u64,
    /// `[kafka] commit_interval_ms`.
    pub(crate) commit_interval_ms: u64,
    /// `batching_window_ms`.
    pub(crate) batching_window_ms: u64,
    /// `batch_size`.
    pub(crate) batch_size: usize,
    /// `max_concurrency`.
    pub(crate) max_concurrency: usize,
    /// More lines of the mapping.
    pub(crate) mapping_extra: String,
    /// `[kafka.options]`.
    pub(crate) options: Vec<(String, String)>,
    /// Extra environment of the process (e.g. `MALLOC_ARENA_MAX`).
    pub(crate) env: Vec<(String, String)>,
}

impl PollerConfig {
    /// The configuration file.
    pub(crate) fn to_toml(&self) -> String {
        let mut options = String::new();
        if !self.options.is_empty() {
            options.push_str("\n[kafka.options]\n");
            for (k, v) in &self.options {
                options.push_str(&format!("{k:?} = {v:?}\n"));
            }
        }
        format!(
            r#"[kafka]
bootstrap_servers = "{bootstrap}"
fetch_wait_max_ms = {fetch_wait}
commit_interval_ms = {commit}
{options}
[lambda]
region = "us-east-1"
endpoint_url = "{endpoint}"
invoke_timeout_s = 300

[[mapping]]
function = "{function}"
topics = ["{topic}"]
consumer_group = "{group}"
starting_position = "TRIM_HORIZON"
batch_size = {batch_size}
batching_window_ms = {window}
max_payload_bytes = 6291456
max_concurrency = {concurrency}
{extra}
"#,
            bootstrap = self.bootstrap,
            fetch_wait = self.fetch_wait_max_ms,
            commit = self.commit_interval_ms,
            endpoint = self.endpoint,
            function = self.function,
            topic = self.topic,
            group = self.group,
            batch_size = self.batch_size,
            window = self.batching_window_ms,
            concurrency = self.max_concurrency,
            extra = self.mapping_extra,
        )
    }
}

/// A running poller process.
pub(crate) struct Poller {
    child: Child,
    /// When it was spawned.
    pub(crate) started: Instant,
    /// Its log file.
    pub(crate) log: PathBuf,
}

impl Poller {
    /// Writes the configuration under `dir` and starts `binary run --config` with dummy AWS
    /// credentials; its log goes to `<dir>/<name>.log`.
    pub(crate) fn spawn(
        binary: &Path,
        dir: &Path,
        name: &str,
        config: &PollerConfig,
    ) -> anyhow::Result<Poller> {
        std::fs::create_dir_all(dir)?;
        let config_path = dir.join(format!("{name}.toml"));
        std::fs::write(&config_path, config.to_toml())?;
        let log = dir.join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log)?;
        let started = Instant::now();
        let child = Command::new(binary)
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .env("AWS_ACCESS_KEY_ID", "bench")
            .env("AWS_SECRET_ACCESS_KEY", "bench")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env(
                "RUST_LOG",
                std::env::var("BENCH_POLLER_LOG").unwrap_or("warn".into()),
            )
            .envs(config.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", binary.display()))?;
        Ok(Poller {
            child,
            started,
            log,
        })
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails with the log's tail when the process has exited.
    pub(crate) fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            anyhow::bail!(
                "the poller exited ({status}); last lines of {}:\n{}",
                self.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        Ok(())
    }

    /// Asks it to stop (SIGTERM) and waits; kills it after 15 s.
    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}
