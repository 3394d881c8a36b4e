//! Goal 2: records produced at a steady rate with `batching_window_ms = 0`; the time from each
//! record's timestamp (taken when it is produced) to its arrival at the stand-in endpoint.

use crate::Setup;
use crate::kafka;
use crate::process::{Poller, PollerConfig};
use crate::server::{Behaviour, InvokeServer};
use crate::stats::percentile;
use std::time::{Duration, Instant};

/// Records per second.
pub(crate) const RATE: u32 = 1_000;

/// Latencies with one `fetch_wait_max_ms`.
#[derive(Debug, Clone)]
pub(crate) struct LatencyRun {
    /// `[kafka] fetch_wait_max_ms`.
    pub(crate) fetch_wait_max_ms: u64,
    /// Records measured (after the warm-up).
    pub(crate) samples: usize,
    /// Median, ms.
    pub(crate) p50: f64,
    /// 99th percentile, ms.
    pub(crate) p99: f64,
    /// Largest, ms.
    pub(crate) max: f64,
    /// The same for a plain rdkafka consumer reading the same records at the same time with the
    /// same `fetch.wait.max.ms`: the floor the broker sets.
    pub(crate) baseline: Percentiles,
}

/// Latency percentiles in ms.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Percentiles {
    /// Median.
    pub(crate) p50: f64,
    /// 99th percentile.
    pub(crate) p99: f64,
    /// Largest.
    pub(crate) max: f64,
}

/// Leaves out the warm-up (records produced less than two seconds after the first arrival)
/// and sorts the latencies.
fn measured(all: &[(i64, f64)]) -> Vec<f64> {
    let first_arrival = all
        .iter()
        .map(|&(ts, latency)| ts as f64 + latency)
        .fold(f64::INFINITY, f64::min);
    let mut measured: Vec<f64> = all
        .iter()
        .filter(|&&(ts, _)| ts as f64 >= first_arrival + 2_000.0)
        .map(|&(_, latency)| latency)
        .collect();
    measured.sort_unstable_by(f64::total_cmp);
    measured
}

/// Produces at [`RATE`] for `duration` while the poller (window 0, `fetch_wait_max_ms`) feeds
/// the stand-in endpoint. Records produced in the first two seconds after the first arrival
/// are a warm-up (group join, connections) and left out.
pub(crate) async fn run(
    setup: &Setup,
    fetch_wait_max_ms: u64,
    duration: Duration,
) -> anyhow::Result<LatencyRun> {
    let topic = kafka::unique("bench-latency");
    kafka::create_topic(&setup.bootstrap, &topic).await?;
    let server = InvokeServer::start(Behaviour {
        latencies: true,
        ..Behaviour::default()
    })
    .await?;
    let config = PollerConfig {
        bootstrap: setup.bootstrap.clone(),
        topic: topic.clone(),
        group: kafka::unique("bench-latency"),
        endpoint: server.url(),
        function: "bench".to_owned(),
        fetch_wait_max_ms,
        commit_interval_ms: 1000,
        batching_window_ms: 0,
        batch_size: 10_000,
        max_concurrency: 4,
        mapping_extra: String::new(),
        options: Vec::new(),
        env: Vec::new(),
    };
    let name = format!("latency-{fetch_wait_max_ms}ms");
    let mut poller = Poller::spawn(&setup.poller, &setup.work_dir, &name, &config)?;
    let baseline = {
        let (bootstrap, topic) = (setup.bootstrap.clone(), topic.clone());
        let records = u64::from(RATE) * duration.as_secs();
        tokio::task::spawn_blocking(move || {
            kafka::baseline_latencies(
                &bootstrap,
                &topic,
                records,
                fetch_wait_max_ms,
                duration + Duration::from_secs(30),
            )
        })
    };
    let producer = {
        let (bootstrap, topic) = (setup.bootstrap.clone(), topic.clone());
        tokio::task::spawn_blocking(move || {
            kafka::produce_paced(&bootstrap, &topic, RATE, duration)
        })
    };
    let produced = producer.await??;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !server.wait_for(produced, Duration::from_secs(1)).await {
        poller.check_running()?;
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} of {produced} records arrived",
            server.counts().records
        );
    }
    poller.stop()?;
    let measured = measured(&server.latencies());
    anyhow::ensure!(
        measured.len() as u64 >= produced / 3,
        "only {} of {produced} records were produced after the warm-up; is the group join slow?",
        measured.len()
    );
    let floor = measured_floor(baseline.await??);
    Ok(LatencyRun {
        fetch_wait_max_ms,
        samples: measured.len(),
        p50: percentile(&measured, 50.0),
        p99: percentile(&measured, 99.0),
        max: measured.last().copied().unwrap_or(f64::NAN),
        baseline: floor,
    })
}

fn measured_floor(all: Vec<(i64, f64)>) -> Percentiles {
    let measured = measured(&all);
    Percentiles {
        p50: percentile(&measured, 50.0),
        p99: percentile(&measured, 99.0),
        max: measured.last().copied().unwrap_or(f64::NAN),
    }
}
