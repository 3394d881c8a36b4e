//! Goals 1 and 3: the real poller binary reading a topic, against the stand-in endpoint or the
//! Lambda emulator, and the baseline consumer on the same records.

use crate::Setup;
use crate::kafka::{self, CommittedWatch, ConsumeRun};
use crate::process::{MemorySampler, Poller, PollerConfig, cpu_time};
use crate::server::{Behaviour, InvokeServer};
use std::time::{Duration, Instant};

/// The settings of one poller run.
#[derive(Debug, Clone)]
pub(crate) struct RunSettings {
    /// `fetch_wait_max_ms`.
    pub(crate) fetch_wait_max_ms: u64,
    /// `batching_window_ms`.
    pub(crate) batching_window_ms: u64,
    /// `[kafka.options]`.
    pub(crate) options: Vec<(String, String)>,
    /// Extra environment of the poller process.
    pub(crate) env: Vec<(String, String)>,
    /// How the stand-in endpoint behaves.
    pub(crate) behaviour: Behaviour,
    /// `batch_size`.
    pub(crate) batch_size: usize,
    /// `max_concurrency`.
    pub(crate) max_concurrency: usize,
    /// More lines of the mapping (`ordering = "key"`, …).
    pub(crate) mapping_extra: String,
}

/// One poller run against the stand-in endpoint.
#[derive(Debug, Clone)]
pub(crate) struct PollerRun {
    /// Times and rates, as for the baseline.
    pub(crate) run: ConsumeRun,
    /// Highest `VmHWM` of the poller.
    pub(crate) peak_rss: u64,
    /// `(since start, VmRSS)` every 100 ms.
    pub(crate) rss: Vec<(Duration, u64)>,
    /// Invocations.
    pub(crate) invocations: u64,
    /// Most records in one invocation.
    pub(crate) largest_batch: u64,
    /// Payload bytes received.
    pub(crate) payload_bytes: u64,
    /// CPU time the broker used during the run, when its pid is known.
    pub(crate) broker_cpu: Option<Duration>,
}

/// Runs the poller on `topic` from the beginning until `records` records reached the stand-in
/// endpoint.
pub(crate) async fn poller_run(
    setup: &Setup,
    name: &str,
    topic: &str,
    records: u64,
    settings: &RunSettings,
) -> anyhow::Result<PollerRun> {
    let server = InvokeServer::start(settings.behaviour).await?;
    let config = PollerConfig {
        bootstrap: setup.bootstrap.clone(),
        topic: topic.to_owned(),
        group: kafka::unique("bench-poller"),
        endpoint: server.url(),
        function: "bench".to_owned(),
        fetch_wait_max_ms: settings.fetch_wait_max_ms,
        commit_interval_ms: 1000,
        batching_window_ms: settings.batching_window_ms,
        batch_size: settings.batch_size,
        max_concurrency: settings.max_concurrency,
        mapping_extra: settings.mapping_extra.clone(),
        options: settings.options.clone(),
        env: settings.env.clone(),
    };
    let broker_before = setup.broker_pid.and_then(cpu_time);
    let mut poller = Poller::spawn(&setup.poller, &setup.work_dir, name, &config)?;
    let pid = poller.pid();
    let sampler = MemorySampler::start(pid, Duration::from_millis(100));
    let deadline = Instant::now() + setup.timeout;
    while !server.wait_for(records, Duration::from_secs(1)).await {
        if let Err(e) = poller.check_running() {
            sampler.finish();
            return Err(e);
        }
        if Instant::now() > deadline {
            sampler.finish();
            let seen = server.counts().records;
            poller.stop()?;
            anyhow::bail!(
                "the poller delivered {seen} of {records} records within {:?}",
                setup.timeout
            );
        }
    }
    let cpu = cpu_time(pid);
    let broker_cpu = setup
        .broker_pid
        .and_then(cpu_time)
        .zip(broker_before)
        .map(|(after, before)| after.saturating_sub(before));
    let (rss, peak_rss) = sampler.finish();
    let started = poller.started;
    poller.stop()?;
    let counts = server.counts();
    let (first, last) = (
        counts.first.unwrap_or(started),
        counts.last.unwrap_or(started),
    );
    Ok(PollerRun {
        run: ConsumeRun {
            records: counts.records,
            wall: last - started,
            steady: last - first,
            steady_records: counts.records - counts.first_batch,
            cpu,
        },
        peak_rss,
        rss,
        invocations: counts.invocations,
        largest_batch: counts.largest_batch,
        payload_bytes: counts.payload_bytes,
        broker_cpu,
    })
}

/// Starts `function`'s instances in the emulator (one per partition) so the run does not
/// measure their cold starts.
fn warm_up(emulator: &str, function: &str, instances: usize) -> anyhow::Result<()> {
    let url = format!("{emulator}/2015-03-31/functions/{function}/invocations");
    let event = br#"{"eventSource":"SelfManagedKafka","bootstrapServers":"b:9092","records":{}}"#;
    let calls: Vec<_> = (0..instances)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || -> anyhow::Result<()> {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(300)))
                    .build()
                    .into();
                agent.post(&url).send(&event[..])?;
                Ok(())
            })
        })
        .collect();
    for call in calls {
        call.join()
            .map_err(|_| anyhow::anyhow!("warm-up thread panicked"))??;
    }
    Ok(())
}

/// The poller through the Lambda emulator with `function`; done when the group committed
/// every record (commits every 100 ms, so the times are within about 100 ms).
pub(crate) async fn emulator_run(
    setup: &Setup,
    emulator: &str,
    function: &str,
    topic: &str,
    records: u64,
    fetch_wait_max_ms: u64,
) -> anyhow::Result<ConsumeRun> {
    {
        let (emulator, function) = (emulator.to_owned(), function.to_owned());
        tokio::task::spawn_blocking(move || warm_up(&emulator, &function, 4)).await??;
    }
    let group = kafka::unique("bench-emulator");
    let config = PollerConfig {
        bootstrap: setup.bootstrap.clone(),
        topic: topic.to_owned(),
        group: group.clone(),
        endpoint: emulator.to_owned(),
        function: function.to_owned(),
        fetch_wait_max_ms,
        commit_interval_ms: 100,
        batching_window_ms: 20,
        batch_size: 10_000,
        max_concurrency: 4,
        mapping_extra: String::new(),
        options: Vec::new(),
        env: Vec::new(),
    };
    let watch = CommittedWatch::new(&setup.bootstrap, &group, topic)?;
    let mut poller = Poller::spawn(&setup.poller, &setup.work_dir, "emulator", &config)?;
    let pid = poller.pid();
    let deadline = Instant::now() + setup.timeout;
    let mut first: Option<(Instant, i64)> = None;
    let (mut done, mut cpu) = (0, None);
    while done < records as i64 {
        poller.check_running()?;
        if Instant::now() > deadline {
            poller.stop()?;
            anyhow::bail!(
                "the emulator run committed {done} of {records} records within {:?}",
                setup.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        done = tokio::task::block_in_place(|| watch.committed())?;
        cpu = cpu_time(pid).or(cpu);
        if done > 0 && first.is_none() {
            first = Some((Instant::now(), done));
        }
    }
    let last = Instant::now();
    let started = poller.started;
    poller.stop()?;
    let (first_at, first_done) = first.unwrap_or((started, 0));
    Ok(ConsumeRun {
        records: done as u64,
        wall: last - started,
        steady: last - first_at,
        steady_records: (done - first_done) as u64,
        cpu,
    })
}
