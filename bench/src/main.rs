//! `kafka-lambda-bench`: kafka-lambda's benchmarks against the physical limit of the machine.
//!
//! Each goal is measured as a ratio within one run, so machine noise cancels:
//! 1. poller throughput against a plain rdkafka consumer on the same records (and through the
//!    Lambda emulator with a no-op function);
//! 2. latency from produce to the endpoint at a steady rate;
//! 3. the poller's memory on a large backlog with a slow function;
//! 4. the handler SDK's decode against `aws_lambda_events` + `base64` + `serde_json`;
//! 5. cold start under the emulator, and our init against a fake Runtime API.
//!
//! `scripts/bench.sh` builds everything in release, starts a private broker and emulator and
//! runs `kafka-lambda-bench all`, which writes the results into `BENCHMARKS.md`.

mod alloc;
mod coldstart;
mod decode;
mod floor;
mod kafka;
mod latency;
mod ordering;
mod process;
mod report;
mod schema;
mod server;
mod stats;
mod throughput;
mod workload;

use clap::{Parser, Subcommand};
use report::{Memory, Report, Throughput};
use server::Behaviour;
use std::path::PathBuf;
use std::time::Duration;
use throughput::RunSettings;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

#[derive(Parser)]
#[command(about = "kafka-lambda's benchmarks; `scripts/bench.sh` runs them all")]
struct Cli {
    /// Broker of the benchmark (a private Apache Kafka: topics of 1 GB and more are produced).
    #[arg(long, env = "BENCH_KAFKA", default_value = "127.0.0.1:19192")]
    bootstrap: String,
    /// Base URL of a `cargo lambda watch` for the emulator runs; they are skipped without it.
    #[arg(long, env = "BENCH_LAMBDA")]
    emulator: Option<String>,
    /// The poller binary (a release build).
    #[arg(long, default_value = "target/release/kafka-lambda-poller")]
    poller: PathBuf,
    /// Where poller configurations and logs go.
    #[arg(long, default_value = "target/bench")]
    work_dir: PathBuf,
    /// Pid of the broker, to report its CPU time.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// A Confluent-compatible schema registry's base URL, for the schema benchmark.
    #[arg(
        long,
        env = "KL_SCHEMA_REGISTRY_URL",
        default_value = "http://127.0.0.1:18081/apis/ccompat/v7"
    )]
    registry: String,
    /// Longest a single run may take, in seconds.
    #[arg(long, default_value_t = 900)]
    timeout_s: u64,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Every benchmark; writes the results into the report file.
    All {
        /// Records of the throughput topic (the memory run reads twice as many).
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// Baseline and poller runs on the throughput topic (alternating; the best counts).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// `fetch_wait_max_ms` values of the latency runs.
        #[arg(long, value_delimiter = ',', default_value = "500,50,10")]
        fetch_wait: Vec<u64>,
        /// Function binaries whose init is timed against the fake Runtime API.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "target/release/log-etl,target/release/bench-noop,target/debug/log-etl"
        )]
        functions: Vec<PathBuf>,
        /// The report to update.
        #[arg(long, default_value = "BENCHMARKS.md")]
        report: PathBuf,
    },
    /// Goal 6 only: `ordering = "key"` against `ordering = "partition"`, 100 ms per invocation.
    Ordering {
        /// Records the per-key run reads (the partition and skewed runs read a tenth).
        #[arg(long, default_value_t = 40_000)]
        records: u64,
        /// Also read a backlog of this many workload records by key, for memory.
        #[arg(long)]
        backlog: Option<u64>,
    },
    /// Goal 7 only: Avro records through the schema registry (poller), and the handler's Avro
    /// decode.
    Schema {
        /// Records to produce and read.
        #[arg(long, default_value_t = 200_000)]
        records: u64,
        /// Timed iterations of each decoder.
        #[arg(long, default_value_t = 15)]
        iterations: usize,
    },
    /// Goal 1's floor only: SigV4's SHA-256 and the event's encoding per record.
    Floor {
        /// Timed iterations of each part.
        #[arg(long, default_value_t = 31)]
        iterations: usize,
    },
    /// Goal 4 only: handler decode.
    Decode {
        /// Timed iterations of each decoder.
        #[arg(long, default_value_t = 15)]
        iterations: usize,
        /// Only run one decoder in a loop, for a profiler: `sdk` or `alternative`.
        #[arg(long)]
        profile: Option<String>,
    },
    /// Goal 1 only: poller and baseline throughput (and the emulator with --emulator).
    Throughput {
        /// Records to produce (or to read from --topic).
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// Read this existing topic instead of producing a new one.
        #[arg(long)]
        topic: Option<String>,
        /// Baseline and poller runs.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// `fetch_wait_max_ms` of the poller and `fetch.wait.max.ms` of the baseline.
        #[arg(long, default_value_t = 10)]
        fetch_wait: u64,
        /// `batching_window_ms` of the poller.
        #[arg(long, default_value_t = 20)]
        window: u64,
        /// Extra `[kafka.options]` of the poller, `key=value`.
        #[arg(long)]
        option: Vec<String>,
        /// Skip the baseline.
        #[arg(long)]
        no_baseline: bool,
    },
    /// Goal 2 only: latency at a steady rate.
    Latency {
        /// `fetch_wait_max_ms` values to try.
        #[arg(long, value_delimiter = ',', default_value = "500,50,10")]
        fetch_wait: Vec<u64>,
        /// Seconds of producing per value.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// Goal 3 only: poller memory on a backlog with a slow function.
    Memory {
        /// Records in the backlog (or to read from --topic).
        #[arg(long, default_value_t = 2_000_000)]
        records: u64,
        /// Read this existing topic instead of producing a new one.
        #[arg(long)]
        topic: Option<String>,
        /// How long each invocation takes, in ms.
        #[arg(long, default_value_t = 100)]
        delay_ms: u64,
        /// Extra `[kafka.options]` of the poller, `key=value`.
        #[arg(long)]
        option: Vec<String>,
    },
    /// Goal 5 only: cold start and init.
    ColdStart {
        /// Function binaries whose init is timed against the fake Runtime API.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "target/release/log-etl,target/release/bench-noop,target/debug/log-etl"
        )]
        functions: Vec<PathBuf>,
    },
}

/// What every benchmark needs to know.
pub(crate) struct Setup {
    /// Broker list.
    pub(crate) bootstrap: String,
    /// The poller binary.
    pub(crate) poller: PathBuf,
    /// Configurations and logs.
    pub(crate) work_dir: PathBuf,
    /// The broker's pid.
    pub(crate) broker_pid: Option<u32>,
    /// Longest a run may take.
    pub(crate) timeout: Duration,
}

/// The settings of the throughput runs: the brief's (batch 10,000, 6 MiB, window 20 ms,
/// concurrency 4) with the baseline's fetch wait.
fn throughput_settings(
    fetch_wait: u64,
    window: u64,
    options: Vec<(String, String)>,
) -> RunSettings {
    RunSettings {
        fetch_wait_max_ms: fetch_wait,
        batching_window_ms: window,
        options,
        env: Vec::new(),
        behaviour: Behaviour::default(),
        batch_size: 10_000,
        max_concurrency: 4,
        mapping_extra: String::new(),
    }
}

fn parse_options(options: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    options
        .iter()
        .map(|o| {
            o.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow::anyhow!("--option {o} is not key=value"))
        })
        .collect()
}

/// A topic of `records` workload records: `existing` as is, or a new one produced now.
async fn topic_with(
    setup: &Setup,
    existing: Option<String>,
    records: u64,
) -> anyhow::Result<(String, Duration)> {
    if let Some(topic) = existing {
        return Ok((topic, Duration::ZERO));
    }
    let topic = kafka::unique("bench-throughput");
    kafka::create_topic(&setup.bootstrap, &topic).await?;
    let produce = produce(setup, &topic, 0, records).await?;
    Ok((topic, produce))
}

async fn produce(setup: &Setup, topic: &str, first: u64, records: u64) -> anyhow::Result<Duration> {
    eprintln!("producing {records} records into {topic}");
    let (bootstrap, t) = (setup.bootstrap.clone(), topic.to_owned());
    let took = tokio::task::spawn_blocking(move || kafka::produce(&bootstrap, &t, first, records))
        .await??;
    let (bootstrap, t) = (setup.bootstrap.clone(), topic.to_owned());
    let end =
        tokio::task::spawn_blocking(move || kafka::total_end_offset(&bootstrap, &t)).await??;
    anyhow::ensure!(
        end >= first + records,
        "{topic} ends at offset sum {end} after producing {records} records from id {first}: the broker lost records"
    );
    eprintln!("produced {records} records in {took:.1?}");
    Ok(took)
}

async fn baseline(
    setup: &Setup,
    topic: &str,
    records: u64,
    fetch_wait: u64,
) -> anyhow::Result<kafka::ConsumeRun> {
    let (bootstrap, t, timeout) = (setup.bootstrap.clone(), topic.to_owned(), setup.timeout);
    let run = tokio::task::spawn_blocking(move || {
        kafka::baseline(&bootstrap, &t, records, fetch_wait, timeout)
    })
    .await??;
    eprintln!(
        "baseline: {:.0} rec/s steady, {:.0} rec/s wall",
        run.steady_rate(),
        run.wall_rate()
    );
    Ok(run)
}

async fn throughput_rounds(
    setup: &Setup,
    emulator: Option<&str>,
    topic: &str,
    records: u64,
    rounds: usize,
    settings: &RunSettings,
    with_baseline: bool,
) -> anyhow::Result<Throughput> {
    let mut t = Throughput {
        records,
        fetch_wait_ms: settings.fetch_wait_max_ms,
        ..Throughput::default()
    };
    for round in 0..rounds {
        if with_baseline {
            t.baseline
                .push(baseline(setup, topic, records, settings.fetch_wait_max_ms).await?);
        }
        let run = throughput::poller_run(
            setup,
            &format!("throughput-{round}"),
            topic,
            records,
            settings,
        )
        .await?;
        eprintln!(
            "poller: {:.0} rec/s steady, {:.0} rec/s wall, peak RSS {} MB",
            run.run.steady_rate(),
            run.run.wall_rate(),
            run.peak_rss / 1_000_000
        );
        t.poller.push(run);
    }
    if let Some(emulator) = emulator {
        let run = throughput::emulator_run(
            setup,
            emulator,
            "bench-noop",
            topic,
            records,
            settings.fetch_wait_max_ms,
        )
        .await?;
        eprintln!("emulator: {:.0} rec/s steady", run.steady_rate());
        t.emulator = Some(run);
    }
    Ok(t)
}

/// `key = value` settings: `[kafka.options]` or environment variables.
type Pairs = Vec<(String, String)>;

/// librdkafka's own prefetch settings, which the poller's defaults replace: 64 MB per partition,
/// asked for again after 1 s. For comparison with the defaults.
fn librdkafka_prefetch() -> (Pairs, Pairs) {
    let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    (
        vec![
            pair("queued.max.messages.kbytes", "65536"),
            pair("fetch.queue.backoff.ms", "1000"),
        ],
        Vec::new(),
    )
}

async fn memory(
    setup: &Setup,
    topic: &str,
    records: u64,
    delay_ms: u64,
    label: &str,
    (options, env): (Pairs, Pairs),
) -> anyhow::Result<Memory> {
    let settings = RunSettings {
        behaviour: Behaviour {
            delay: Duration::from_millis(delay_ms),
            latencies: false,
        },
        env,
        ..throughput_settings(10, 20, options)
    };
    let run = throughput::poller_run(setup, "memory", topic, records, &settings).await?;
    eprintln!("memory ({label}): peak RSS {} MB", run.peak_rss / 1_000_000);
    Ok(Memory {
        label: label.to_owned(),
        records,
        run,
    })
}

async fn latency_runs(
    setup: &Setup,
    fetch_waits: &[u64],
    seconds: u64,
) -> anyhow::Result<Vec<latency::LatencyRun>> {
    let mut runs = Vec::new();
    for &fw in fetch_waits {
        let run = latency::run(setup, fw, Duration::from_secs(seconds)).await?;
        eprintln!(
            "latency with fetch_wait_max_ms = {fw}: p50 {:.1} ms, p99 {:.1} ms",
            run.p50, run.p99
        );
        runs.push(run);
    }
    Ok(runs)
}

async fn init_runs(functions: &[PathBuf]) -> anyhow::Result<Vec<coldstart::InitTimes>> {
    let mut runs = Vec::new();
    for f in functions {
        if !f.exists() {
            eprintln!("skipping {}: not built", f.display());
            continue;
        }
        let mut times = coldstart::init_times(f, 10).await?;
        if f.components().any(|c| c.as_os_str() == "debug") {
            times.binary.push_str(" (debug)");
        }
        eprintln!("init of {}: {:.1?}", times.binary, times.init);
        runs.push(times);
    }
    Ok(runs)
}

fn floor_run(iterations: usize) -> anyhow::Result<floor::Floor> {
    let f = floor::run(iterations)?;
    eprintln!(
        "floor: SHA-256 {:.2} µs + encoding {:.2} µs per record ({} records, {} bytes)",
        floor::micros(f.sha256),
        floor::micros(f.encode),
        f.records,
        f.event_bytes
    );
    Ok(f)
}

fn decode_run(iterations: usize) -> anyhow::Result<decode::DecodeResult> {
    let d = decode::run(iterations)?;
    eprintln!(
        "decode: SDK {:.1?}, alternative {:.1?}, {:.2}×",
        d.ours.median, d.alternative.median, d.speedup
    );
    Ok(d)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let setup = Setup {
        bootstrap: cli.bootstrap,
        poller: cli.poller,
        work_dir: cli.work_dir,
        broker_pid: cli.broker_pid,
        timeout: Duration::from_secs(cli.timeout_s),
    };
    let emulator = cli.emulator.as_deref().map(|e| e.trim_end_matches('/'));
    let machine = report::machine();
    let mut report = Report::default();
    match cli.command {
        Cmd::All {
            records,
            rounds,
            fetch_wait,
            functions,
            report: path,
        } => {
            // First, while the emulator has not started `log-etl` yet.
            if let Some(emulator) = emulator {
                let e = emulator.to_owned();
                let cold = tokio::task::spawn_blocking(move || {
                    coldstart::through_emulator(&e, "log-etl", 5)
                })
                .await??;
                eprintln!(
                    "log-etl under the emulator: cold {:.1?}, warm {:.1?}",
                    cold.cold, cold.warm
                );
                report.emulator_cold = Some(cold);
            }
            report.init = init_runs(&functions).await?;
            report.decode = Some(tokio::task::block_in_place(|| decode_run(31))?);
            report.floor = Some(tokio::task::block_in_place(|| floor_run(31))?);
            // Before the gigabyte topics exist, so that the latency runs share the machine with
            // no log segments being written or cleaned.
            report.latency = latency_runs(&setup, &fetch_wait, 20).await?;
            let (topic, produced) = topic_with(&setup, None, records).await?;
            let settings = throughput_settings(10, 20, Vec::new());
            let mut t =
                throughput_rounds(&setup, emulator, &topic, records, rounds, &settings, true)
                    .await?;
            t.produce = produced;
            report.throughput = Some(t);
            produce(&setup, &topic, records, records).await?;
            for (label, options) in [
                ("defaults", Default::default()),
                (
                    "librdkafka's prefetch: `queued.max.messages.kbytes = 65536`, `fetch.queue.backoff.ms = 1000`",
                    librdkafka_prefetch(),
                ),
            ] {
                report
                    .memory
                    .push(memory(&setup, &topic, 2 * records, 100, label, options).await?);
            }
            report.ordering =
                Some(ordering::run(&setup, 40_000, Some((&topic, 2 * records))).await?);
            report.schema_decode = Some(tokio::task::block_in_place(|| schema::decode(31))?);
            report.schema_poller = Some(schema::poller(&setup, &cli.registry, records / 5).await?);
            report::write(&path, &report.render(&machine))?;
            eprintln!("results written to {}", path.display());
        }
        Cmd::Decode {
            iterations,
            profile: Some(which),
        } => {
            anyhow::ensure!(
                which == "sdk" || which == "alternative",
                "--profile takes sdk or alternative"
            );
            return tokio::task::block_in_place(|| {
                decode::profile(which == "alternative", iterations)
            });
        }
        Cmd::Ordering { records, backlog } => {
            let backlog_topic = match backlog {
                Some(n) => Some(topic_with(&setup, None, n).await?.0),
                None => None,
            };
            let backlog = backlog_topic.as_deref().zip(backlog);
            report.ordering = Some(ordering::run(&setup, records, backlog).await?);
        }
        Cmd::Schema {
            records,
            iterations,
        } => {
            report.schema_decode =
                Some(tokio::task::block_in_place(|| schema::decode(iterations))?);
            report.schema_poller = Some(schema::poller(&setup, &cli.registry, records).await?);
        }
        Cmd::Floor { iterations } => {
            report.floor = Some(tokio::task::block_in_place(|| floor_run(iterations))?);
        }
        Cmd::Decode {
            iterations,
            profile: None,
        } => {
            report.decode = Some(tokio::task::block_in_place(|| decode_run(iterations))?);
        }
        Cmd::Throughput {
            records,
            topic,
            rounds,
            fetch_wait,
            window,
            option,
            no_baseline,
        } => {
            let (topic, produced) = topic_with(&setup, topic, records).await?;
            let settings = throughput_settings(fetch_wait, window, parse_options(&option)?);
            let mut t = throughput_rounds(
                &setup,
                emulator,
                &topic,
                records,
                rounds,
                &settings,
                !no_baseline,
            )
            .await?;
            t.produce = produced;
            report.throughput = Some(t);
            eprintln!("topic: {topic}");
        }
        Cmd::Latency {
            fetch_wait,
            seconds,
        } => {
            report.latency = latency_runs(&setup, &fetch_wait, seconds).await?;
        }
        Cmd::Memory {
            records,
            topic,
            delay_ms,
            option,
        } => {
            let options = parse_options(&option)?;
            let label = if options.is_empty() {
                "defaults".to_owned()
            } else {
                option.join(", ")
            };
            let (topic, _) = topic_with(&setup, topic, records).await?;
            let env = std::env::var("MALLOC_ARENA_MAX")
                .map(|v| vec![("MALLOC_ARENA_MAX".to_owned(), v)])
                .unwrap_or_default();
            report
                .memory
                .push(memory(&setup, &topic, records, delay_ms, &label, (options, env)).await?);
            eprintln!("topic: {topic}");
        }
        Cmd::ColdStart { functions } => {
            if let Some(emulator) = emulator {
                let e = emulator.to_owned();
                report.emulator_cold = Some(
                    tokio::task::spawn_blocking(move || {
                        coldstart::through_emulator(&e, "log-etl", 5)
                    })
                    .await??,
                );
            }
            report.init = init_runs(&functions).await?;
        }
    }
    println!("{}", report.render(&machine));
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Two workers: the stand-in endpoint and the producer threads must leave the cores to the
    // poller and the broker.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run(cli))
}
