//! `kafka-lambda-poller` command line: `run` and `check`.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use kafka_lambda_poller::{Config, Health, LambdaInvoker, RunOptions, lambda_client, run_mapping};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

// mimalloc instead of glibc malloc: each batch is megabytes, allocated on one worker thread and
// often freed on another; glibc's per-thread arenas keep such memory, mimalloc reuses and returns
// it (the RSS of both is in BENCHMARKS.md, goal 3).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Feeds Kafka topics into AWS Lambda functions with the native trigger's event format"
)]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, env = "KAFKA_LAMBDA_LOG_FORMAT", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the mappings until SIGINT/SIGTERM.
    Run {
        /// Path of the TOML configuration.
        #[arg(long, short)]
        config: PathBuf,
        /// Note each partition's end offset at start, process up to it, commit and exit 0
        /// (for scheduled batch runs).
        #[arg(long)]
        until_caught_up: bool,
    },
    /// Validate a configuration and print the effective values (secrets redacted).
    Check {
        /// Path of the TOML configuration.
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Check { config } => {
            match Config::from_file(&config).and_then(|file| Ok((file.clone().validate()?, file))) {
                Ok((valid, file)) => {
                    print!("{}", file.to_redacted_toml(&valid.mappings));
                    eprintln!("configuration OK: {} mapping(s)", valid.mappings.len());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Run {
            config,
            until_caught_up,
        } => {
            let valid = match Config::load(&config) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(run(valid, until_caught_up)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn run(
    config: kafka_lambda_poller::ValidatedConfig,
    until_caught_up: bool,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let shutdown = CancellationToken::new();
    let health = Arc::new(Health::new(config.mappings.len()));
    let metrics =
        kafka_lambda_poller::install_recorder().context("cannot install the metrics recorder")?;
    if let Some(listen) = &config.telemetry.listen {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on telemetry.listen = {listen}"))?;
        tracing::info!(%listen, "serving /metrics, /healthz and /readyz");
        let (health, stop) = (health.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(e) = kafka_lambda_poller::serve(listener, metrics, health, stop).await {
                tracing::error!(error = %e, "telemetry listener failed");
            }
        });
    }
    let client = lambda_client(&config.lambda).await;
    let mut tasks = tokio::task::JoinSet::new();
    for mapping in config.mappings.clone() {
        let invoker = LambdaInvoker::new(client.clone(), mapping.function.clone());
        let options = RunOptions {
            shutdown: shutdown.child_token(),
            health: health.clone(),
            until_caught_up,
        };
        tasks.spawn(run_mapping(config.clone(), mapping, invoker, options));
    }
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested: finishing in-flight batches");
        signal.cancel();
    });
    let mut result = Ok(());
    while let Some(done) = tasks.join_next().await {
        let outcome = done
            .context("mapping task panicked")
            .and_then(|r| r.map_err(anyhow::Error::from));
        if let Err(e) = outcome {
            // One broken mapping stops the process: a supervisor restart is more visible than a
            // half-working poller.
            shutdown.cancel();
            result = Err(e);
        }
    }
    result
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the poller");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
