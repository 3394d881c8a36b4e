//! Goal 6: concurrency beyond the partition count. The poller with `ordering = "key"` against
//! `ordering = "partition"` on the same topic (4 partitions, 10,000 keys), with a stand-in
//! function that takes 100 ms per invocation and `batch_size = 10`: with one batch in flight
//! per partition, 4 partitions cannot go faster than 400 records/s whatever Lambda could do.
//! Also a skewed topic, where one key holds half of the records.

use crate::Setup;
use crate::kafka;
use crate::server::Behaviour;
use crate::throughput::{self, PollerRun, RunSettings};
use std::time::Duration;

/// Records per invocation.
pub(crate) const BATCH_SIZE: usize = 10;
/// A function's run time.
pub(crate) const FUNCTION_MS: u64 = 100;
/// Invocations in flight with `ordering = "key"`.
pub(crate) const KEY_CONCURRENCY: usize = 64;
/// Distinct keys of the uniform topic.
pub(crate) const KEYS: u64 = 10_000;

/// One run.
#[derive(Debug, Clone)]
pub(crate) struct OrderingRun {
    /// What was run.
    pub(crate) label: String,
    /// The run.
    pub(crate) run: PollerRun,
}

/// The three runs.
#[derive(Debug, Clone)]
pub(crate) struct OrderingResult {
    /// `ordering = "partition"` (`max_concurrency` = 4: every partition).
    pub(crate) partition: OrderingRun,
    /// `ordering = "key"`, `max_concurrency` = 64.
    pub(crate) key: OrderingRun,
    /// The same on the skewed topic.
    pub(crate) skewed: OrderingRun,
    /// `ordering = "key"` through a large backlog (memory), when one was given.
    pub(crate) backlog: Option<OrderingRun>,
}

impl OrderingResult {
    /// How many times faster per-key ordering is than partition ordering.
    pub(crate) fn speedup(&self) -> f64 {
        self.key.run.run.steady_rate() / self.partition.run.run.steady_rate()
    }
}

async fn topic(setup: &Setup, name: &str, records: u64, hot: bool) -> anyhow::Result<String> {
    let topic = kafka::unique(name);
    kafka::create_topic(&setup.bootstrap, &topic).await?;
    let (bootstrap, t) = (setup.bootstrap.clone(), topic.clone());
    let took = tokio::task::spawn_blocking(move || {
        kafka::produce_keyed(&bootstrap, &t, records, |id| {
            if hot && id % 2 == 0 {
                b"hot".to_vec()
            } else {
                format!("key-{}", id % KEYS).into_bytes()
            }
        })
    })
    .await??;
    eprintln!("produced {records} keyed records into {topic} in {took:.1?}");
    Ok(topic)
}

async fn run_one(
    setup: &Setup,
    label: &str,
    topic: &str,
    records: u64,
    ordering: &str,
    (max_concurrency, batch_size): (usize, usize),
) -> anyhow::Result<OrderingRun> {
    let settings = RunSettings {
        fetch_wait_max_ms: 10,
        batching_window_ms: 20,
        options: Vec::new(),
        env: Vec::new(),
        behaviour: Behaviour {
            delay: Duration::from_millis(FUNCTION_MS),
            latencies: false,
        },
        batch_size,
        max_concurrency,
        mapping_extra: format!("ordering = \"{ordering}\""),
    };
    let run = throughput::poller_run(setup, "ordering", topic, records, &settings).await?;
    eprintln!(
        "ordering ({label}): {:.0} records/s, peak RSS {} MB",
        run.run.steady_rate(),
        run.peak_rss / 1_000_000
    );
    Ok(OrderingRun {
        label: label.to_owned(),
        run,
    })
}

/// Records per invocation of the backlog run: the memory goal's backlog read in a minute.
pub(crate) const BACKLOG_BATCH_SIZE: usize = 100;

/// The runs; `records` is what the per-key run reads (the partition run reads a tenth, and the
/// skewed topic holds a tenth, read whole); `backlog`, a topic of that many records to read
/// whole with `ordering = "key"` and `batch_size` = [`BACKLOG_BATCH_SIZE`], for memory.
pub(crate) async fn run(
    setup: &Setup,
    records: u64,
    backlog: Option<(&str, u64)>,
) -> anyhow::Result<OrderingResult> {
    let uniform = topic(setup, "bench-ordering", records, false).await?;
    // Read whole: its hot key's records are half of it, one lane per partition it is in.
    let skewed_topic = topic(setup, "bench-ordering-skewed", records / 10, true).await?;
    let partition = run_one(
        setup,
        "partition",
        &uniform,
        records / 10,
        "partition",
        (kafka_partitions(), BATCH_SIZE),
    )
    .await?;
    let keyed = (KEY_CONCURRENCY, BATCH_SIZE);
    let key = run_one(setup, "key", &uniform, records, "key", keyed).await?;
    let skewed = run_one(
        setup,
        "key, one key holding 50 % of the records",
        &skewed_topic,
        records / 10,
        "key",
        keyed,
    )
    .await?;
    let backlog = match backlog {
        Some((topic, records)) => Some(
            run_one(
                setup,
                &format!("key, {records}-record backlog, `batch_size = {BACKLOG_BATCH_SIZE}`"),
                topic,
                records,
                "key",
                (KEY_CONCURRENCY, BACKLOG_BATCH_SIZE),
            )
            .await?,
        ),
        None => None,
    };
    Ok(OrderingResult {
        partition,
        key,
        skewed,
        backlog,
    })
}

/// Partitions of every benchmark topic.
fn kafka_partitions() -> usize {
    crate::workload::PARTITIONS as usize
}
