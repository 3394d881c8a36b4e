//! The results as a markdown section, and writing it into `BENCHMARKS.md` between markers so
//! the hand-written parts of the file stay.

use crate::coldstart::{EmulatorColdStart, InitTimes};
use crate::decode::DecodeResult;
use crate::kafka::ConsumeRun;
use crate::latency::LatencyRun;
use crate::throughput::PollerRun;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const BEGIN: &str = "<!-- bench:results:begin -->";
const END: &str = "<!-- bench:results:end -->";

/// Throughput results.
#[derive(Debug, Clone, Default)]
pub(crate) struct Throughput {
    /// Records in the topic.
    pub(crate) records: u64,
    /// Time to produce them.
    pub(crate) produce: Duration,
    /// `fetch.wait.max.ms` of every consumer.
    pub(crate) fetch_wait_ms: u64,
    /// Baseline runs.
    pub(crate) baseline: Vec<ConsumeRun>,
    /// Poller runs against the stand-in endpoint.
    pub(crate) poller: Vec<PollerRun>,
    /// The poller through the emulator with the no-op function.
    pub(crate) emulator: Option<ConsumeRun>,
}

/// Memory results.
#[derive(Debug, Clone)]
pub(crate) struct Memory {
    /// What was varied (`defaults`, or the options).
    pub(crate) label: String,
    /// Records in the backlog.
    pub(crate) records: u64,
    /// The run.
    pub(crate) run: PollerRun,
}

/// Everything one run measured.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Cold start through the emulator.
    pub(crate) emulator_cold: Option<EmulatorColdStart>,
    /// Init times against the fake Runtime API.
    pub(crate) init: Vec<InitTimes>,
    /// Decode benchmark.
    pub(crate) decode: Option<DecodeResult>,
    /// Goal 1's floor.
    pub(crate) floor: Option<crate::floor::Floor>,
    /// Goal 6: per-key ordering.
    pub(crate) ordering: Option<crate::ordering::OrderingResult>,
    /// Goal 7: schema-registry records through the poller.
    pub(crate) schema_poller: Option<crate::schema::PollerResult>,
    /// Goal 7: the handler SDK's Avro decode.
    pub(crate) schema_decode: Option<crate::schema::DecodeResult>,
    /// Throughput.
    pub(crate) throughput: Option<Throughput>,
    /// Latency per `fetch_wait_max_ms`.
    pub(crate) latency: Vec<LatencyRun>,
    /// Memory runs.
    pub(crate) memory: Vec<Memory>,
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn mb(bytes: u64) -> String {
    format!("{:.0} MB", bytes as f64 / 1e6)
}

fn rate(r: f64) -> String {
    let digits = (r.round() as u64).to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**not met**" }
}

/// The run with the median steady rate (of an even count, the faster of the two middle ones).
fn median(runs: &[ConsumeRun]) -> Option<&ConsumeRun> {
    let mut sorted: Vec<&ConsumeRun> = runs.iter().collect();
    sorted.sort_by(|a, b| a.steady_rate().total_cmp(&b.steady_rate()));
    sorted.get(sorted.len() / 2).copied()
}

/// CPU time per record of a run, in µs.
fn cpu_per_record_us(run: &ConsumeRun) -> Option<f64> {
    run.cpu.map(|c| c.as_secs_f64() * 1e6 / run.records as f64)
}

fn cpu(run: &ConsumeRun) -> String {
    run.cpu.map_or("?".to_owned(), |c| {
        format!(
            "{:.2} s CPU ({:.2} µs/record)",
            c.as_secs_f64(),
            c.as_secs_f64() * 1e6 / run.records as f64
        )
    })
}

/// The machine and the versions the results come from.
pub(crate) fn machine() -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let ram_kb: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let run = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|| "?".to_owned())
    };
    let dirty = !run("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    format!(
        "- Date: {}\n- Machine: {cores} cores ({model}), {:.1} GiB RAM, Linux {}; load average at start {}\n\
         - Code: commit {}{}; {}; Apache Kafka {}; {}\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        ram_kb as f64 / 1024.0 / 1024.0,
        read("/proc/sys/kernel/osrelease").trim(),
        read("/proc/loadavg")
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        run("git", &["rev-parse", "--short", "HEAD"]),
        if dirty {
            " with uncommitted changes"
        } else {
            ""
        },
        run("rustc", &["--version"]),
        run("scripts/kafka.sh", &["version"]),
        run("cargo", &["lambda", "--version"]),
    )
}

impl Report {
    /// The results section: a summary table, then the details of every run.
    pub(crate) fn render(&self, machine: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{machine}");
        let _ = writeln!(out, "| # | Goal | Measured (same run) | Target | Result |");
        let _ = writeln!(out, "|---|------|---------------------|--------|--------|");
        let mut details = String::new();
        if let Some(t) = &self.throughput {
            Self::throughput_rows(t, &mut out, &mut details);
        }
        if let Some(f) = &self.floor {
            Self::floor_row(f, self.throughput.as_ref(), &mut out);
        }
        if !self.latency.is_empty() {
            let ok: Vec<&LatencyRun> = self
                .latency
                .iter()
                .filter(|l| l.p50 <= 5.0 && l.p99 <= 25.0)
                .collect();
            let shown = ok
                .iter()
                .max_by_key(|l| l.fetch_wait_max_ms)
                .copied()
                .or_else(|| self.latency.iter().min_by(|a, b| a.p99.total_cmp(&b.p99)));
            if let Some(l) = shown {
                let _ = writeln!(
                    out,
                    "| 2 | Latency, produce → endpoint, {} rec/s, `batching_window_ms = 0` | \
                     p50 {:.1} ms, p99 {:.1} ms with `fetch_wait_max_ms = {}` (plain consumer, same \
                     records: p50 {:.1} ms, p99 {:.1} ms; other settings below) | \
                     p50 ≤ 5 ms, p99 ≤ 25 ms | {} |",
                    crate::latency::RATE,
                    l.p50,
                    l.p99,
                    l.fetch_wait_max_ms,
                    l.baseline.p50,
                    l.baseline.p99,
                    verdict(l.p50 <= 5.0 && l.p99 <= 25.0)
                );
            }
            let _ = writeln!(
                details,
                "\n**Latency** ({} records/s, window 0; record timestamps have 1 ms resolution; the \
                 baseline is a plain rdkafka consumer reading the same records at the same time):\n\n\
                 | `fetch_wait_max_ms` | records | poller p50 | poller p99 | poller max | baseline p50 | baseline p99 | baseline max |\n|---|---|---|---|---|---|---|---|",
                crate::latency::RATE
            );
            for l in &self.latency {
                let _ = writeln!(
                    details,
                    "| {} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
                    l.fetch_wait_max_ms,
                    l.samples,
                    l.p50,
                    l.p99,
                    l.max,
                    l.baseline.p50,
                    l.baseline.p99,
                    l.baseline.max
                );
            }
        }
        for m in &self.memory {
            let quartiles = quartile_rss(&m.run.rss);
            let _ = writeln!(
                out,
                "| 3 | Poller memory, {} record backlog, 100 ms per invocation ({}) | \
                 peak RSS (VmHWM) {}; RSS at 25/50/75/100 % of the run: {} | ≤ 200 MB, flat | {} |",
                rate(m.records as f64),
                m.label,
                mb(m.run.peak_rss),
                quartiles,
                verdict(m.run.peak_rss <= 200_000_000)
            );
            let _ = writeln!(
                details,
                "\n**Memory ({})**: {} records in {:.1} s ({} rec/s), {} invocations, \
                 largest batch {} records; poller {}.",
                m.label,
                m.run.run.records,
                m.run.run.wall.as_secs_f64(),
                rate(m.run.run.wall_rate()),
                m.run.invocations,
                m.run.largest_batch,
                cpu(&m.run.run)
            );
        }
        if let Some(d) = &self.decode {
            let _ = writeln!(
                out,
                "| 4 | Handler decode of a {:.1} MB MSK event ({} records of 1 KB JSON, 2 headers) | \
                 SDK {} vs aws_lambda_events + base64 + serde_json {} (medians; ratio: median of back-to-back pairs) | ≥ 2× faster | {:.2}× — {} |",
                d.event_bytes as f64 / 1e6,
                d.records,
                ms(d.ours.median),
                ms(d.alternative.median),
                d.speedup,
                verdict(d.speedup >= 2.0)
            );
            let _ = writeln!(
                details,
                "\n**Decode**: {} records, {} bytes.\n\n\
                 | | median | fastest | per record | allocations / record | bytes allocated / record | peak heap |\n\
                 |---|---|---|---|---|---|---|\n\
                 | SDK (`KafkaEvent::from_slice` + `decode_batch::<ErrorLog>`) | {} | {} | {:.0} ns | {:.1} | {:.0} | {} |\n\
                 | of which `KafkaEvent::from_slice` | {} | | {:.0} ns | | | |\n\
                 | `aws_lambda_events` + `base64` + `serde_json` | {} | {} | {:.0} ns | {:.1} | {:.0} | {} |",
                d.records,
                d.event_bytes,
                ms(d.ours.median),
                ms(d.ours.min),
                d.ours.median.as_nanos() as f64 / d.records as f64,
                d.ours.allocations_per_record,
                d.ours.bytes_per_record,
                mb(d.ours.peak_heap),
                ms(d.ours_parse),
                d.ours_parse.as_nanos() as f64 / d.records as f64,
                ms(d.alternative.median),
                ms(d.alternative.min),
                d.alternative.median.as_nanos() as f64 / d.records as f64,
                d.alternative.allocations_per_record,
                d.alternative.bytes_per_record,
                mb(d.alternative.peak_heap),
            );
        }
        if let Some(c) = &self.emulator_cold {
            let _ = writeln!(
                out,
                "| 5 | Cold start of `log-etl` under `cargo lambda watch` | first invocation {} \
                 (warm: {}) | report | reported |",
                ms(c.cold),
                ms(c.warm)
            );
        }
        if !self.init.is_empty() {
            let ours = self.init.iter().find(|i| i.binary == "log-etl");
            if let Some(i) = ours {
                let _ = writeln!(
                    out,
                    "| 5 | Our init: process start → first `next` request, `log-etl` release, fake Runtime API | \
                     {} median, {} fastest; first response {} | single-digit ms | {} |",
                    ms(i.init),
                    ms(i.init_min),
                    ms(i.first_response),
                    verdict(i.init < Duration::from_millis(10))
                );
            }
            let _ = writeln!(
                details,
                "\n**Init against a fake Runtime API** (process start → first `next`, → first response; 10-record event):\n\n\
                 | binary | trials | init (median) | init (fastest) | first response (median) |\n|---|---|---|---|---|"
            );
            for i in &self.init {
                let _ = writeln!(
                    details,
                    "| `{}` | {} | {} | {} | {} |",
                    i.binary,
                    i.trials,
                    ms(i.init),
                    ms(i.init_min),
                    ms(i.first_response)
                );
            }
        }
        if let Some(o) = &self.ordering {
            Self::ordering_rows(o, &mut out, &mut details);
        }
        if let Some(p) = &self.schema_poller {
            let ratio = p.ratio();
            let _ = writeln!(
                out,
                "| 7 | Avro through the schema registry: {} records of {} bytes decoded to JSON by the poller, 4 partitions, stand-in endpoint | \
                 poller {} rec/s vs plain rdkafka consumer {} rec/s; CPU {} vs {} per record; the poller without decoding {} rec/s, CPU {} | \
                 ≥ 0.6× | {ratio:.2}× — {} |",
                rate(p.records as f64),
                p.value_bytes,
                rate(p.decoding.run.steady_rate()),
                rate(p.baseline.steady_rate()),
                cpu_per_record_us(&p.decoding.run).map_or("?".to_owned(), |c| format!("{c:.2} µs")),
                cpu_per_record_us(&p.baseline).map_or("?".to_owned(), |c| format!("{c:.2} µs")),
                rate(p.plain.run.steady_rate()),
                cpu_per_record_us(&p.plain.run).map_or("?".to_owned(), |c| format!("{c:.2} µs")),
                verdict(ratio >= 0.6)
            );
        }
        if let Some(d) = &self.schema_decode {
            let _ = writeln!(
                out,
                "| 7 | Handler SDK: `Avro<T>` decode of a {}-byte `SOURCE` event ({} records) | \
                 `from_slice` + `decode_batch::<Avro<Order>>` {} vs `aws_lambda_events` + `base64` + `apache-avro` by hand {} (median) | \
                 faster than by hand | {:.2}× — {} |",
                d.event_bytes,
                d.records,
                ms(d.ours),
                ms(d.by_hand),
                d.speedup(),
                verdict(d.speedup() >= 1.0)
            );
        }
        out.push_str(&details);
        out
    }

    /// The floor of goal 1's CPU per record, and with the throughput runs (the plain consumer's
    /// median CPU, the broker's CPU per record, the baseline's rate) the best ratio two cores
    /// could give when every record costs at least the floor in the poller and its CPU in the
    /// broker.
    fn floor_row(f: &crate::floor::Floor, t: Option<&Throughput>, out: &mut String) {
        let middle = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied()
        };
        let (sha, encode) = (
            crate::floor::micros(f.sha256),
            crate::floor::micros(f.encode),
        );
        let measured = t.and_then(|t| {
            let consumer = middle(t.baseline.iter().filter_map(cpu_per_record_us).collect())?;
            let broker = middle(
                t.poller
                    .iter()
                    .filter_map(|p| Some(p.broker_cpu?.as_secs_f64() * 1e6 / p.run.records as f64))
                    .collect(),
            )?;
            let baseline = median(&t.baseline)?.steady_rate();
            Some((consumer, broker, baseline))
        });
        let (sum, verdict) = match measured {
            Some((consumer, broker, baseline)) => {
                let total = f.total_us(consumer);
                let best = 2.0 * 1e6 / (total + broker) / baseline;
                (
                    format!(
                        "{sha:.2} + {encode:.2} + {consumer:.2} = {total:.2} µs; with the broker's \
                         {broker:.2} µs, two cores carry at most {best:.2}× the baseline's rate"
                    ),
                    if total > 2.0 || best < 0.95 {
                        "goal 1 is **not reachable** on this machine"
                    } else {
                        "goal 1 is within reach"
                    },
                )
            }
            None => (
                format!("{sha:.2} + {encode:.2} µs (no throughput run)"),
                "reported",
            ),
        };
        let _ = writeln!(
            out,
            "| 1 | Floor of the poller's CPU per record: SigV4's SHA-256 of the body + writing the event \
             ({} records, {} bytes) + the plain consumer's own CPU (median) | {sum} | report | {verdict} |",
            f.records, f.event_bytes
        );
    }

    fn ordering_rows(o: &crate::ordering::OrderingResult, out: &mut String, details: &mut String) {
        use crate::ordering::{BATCH_SIZE, FUNCTION_MS, KEY_CONCURRENCY, KEYS};
        let speedup = o.speedup();
        let _ = writeln!(
            out,
            "| 6 | Per-key ordering: 4 partitions, {} keys, {FUNCTION_MS} ms per invocation, `batch_size = {BATCH_SIZE}` | \
             `ordering = \"key\"`, `max_concurrency = {KEY_CONCURRENCY}`: {} rec/s vs `ordering = \"partition\"`: {} rec/s \
             (CPU {} vs {} per record; peak RSS {} vs {}) | ≥ 12× | {speedup:.1}× — {} |",
            rate(KEYS as f64),
            rate(o.key.run.run.steady_rate()),
            rate(o.partition.run.run.steady_rate()),
            cpu_per_record_us(&o.key.run.run).map_or("?".to_owned(), |c| format!("{c:.1} µs")),
            cpu_per_record_us(&o.partition.run.run)
                .map_or("?".to_owned(), |c| format!("{c:.1} µs")),
            mb(o.key.run.peak_rss),
            mb(o.partition.run.peak_rss),
            verdict(speedup >= 12.0)
        );
        let _ = writeln!(
            out,
            "| 6 | Same, one key holding 50 % of the records (it fills partitions 0 and 2), topic read whole | \
             `ordering = \"key\"`: {} rec/s ({:.1}× `\"partition\"`; peak RSS {}) | report | reported |",
            rate(o.skewed.run.run.steady_rate()),
            o.skewed.run.run.steady_rate() / o.partition.run.run.steady_rate(),
            mb(o.skewed.run.peak_rss)
        );
        if let Some(b) = &o.backlog {
            let _ = writeln!(
                out,
                "| 6 | Memory with `ordering = \"key\"`: {} records of backlog, {FUNCTION_MS} ms per invocation, \
                 `batch_size = {}`, `max_concurrency = {KEY_CONCURRENCY}` | peak RSS (VmHWM) {}; RSS at 25/50/75/100 % of the run: {} | \
                 ≤ 200 MB, flat | {} |",
                rate(b.run.run.records as f64),
                crate::ordering::BACKLOG_BATCH_SIZE,
                mb(b.run.peak_rss),
                quartile_rss(&b.run.rss),
                verdict(b.run.peak_rss <= 200_000_000)
            );
        }
        let _ = writeln!(
            details,
            "\n**Per-key ordering** (stand-in function {FUNCTION_MS} ms per invocation, `batch_size = {BATCH_SIZE}`):\n\n\
             | run | records | records/s first → last | invocations | CPU | peak RSS |\n|---|---|---|---|---|---|"
        );
        for r in [&o.partition, &o.key, &o.skewed]
            .into_iter()
            .chain(o.backlog.as_ref())
        {
            let _ = writeln!(
                details,
                "| {} | {} | {} | {} | {} | {} |",
                r.label,
                r.run.run.records,
                rate(r.run.run.steady_rate()),
                r.run.invocations,
                cpu(&r.run.run),
                mb(r.run.peak_rss)
            );
        }
    }

    fn throughput_rows(t: &Throughput, out: &mut String, details: &mut String) {
        let base = median(&t.baseline);
        let runs: Vec<ConsumeRun> = t.poller.iter().map(|p| p.run).collect();
        let poll = median(&runs);
        if let (Some(b), Some(p)) = (base, poll) {
            let ratio = p.steady_rate() / b.steady_rate();
            let _ = writeln!(
                out,
                "| 1 | Poller throughput, {} × 1 KB records, 4 partitions, stand-in endpoint | \
                 poller {} rec/s vs plain rdkafka consumer {} rec/s (median of {}, first → last record) | \
                 ≥ 0.95× | {:.3}× — {} |",
                rate(t.records as f64),
                rate(p.steady_rate()),
                rate(b.steady_rate()),
                t.baseline.len().min(t.poller.len()),
                ratio,
                verdict(ratio >= 0.95)
            );
            let mut cpu: Vec<f64> = runs.iter().filter_map(cpu_per_record_us).collect();
            cpu.sort_by(f64::total_cmp);
            let base_cpu: Vec<f64> = t.baseline.iter().filter_map(cpu_per_record_us).collect();
            if let Some(poller_cpu) = cpu.get(cpu.len() / 2) {
                let _ = writeln!(
                    out,
                    "| 1 | Poller CPU per 1 KB record, same runs | {:.2} µs (median; plain consumer {}) | \
                     ≤ 2 µs | {} |",
                    poller_cpu,
                    base_cpu
                        .iter()
                        .map(|c| format!("{c:.2} µs"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    verdict(*poller_cpu <= 2.0)
                );
            }
        }
        if let (Some(e), Some(b)) = (&t.emulator, base) {
            let _ = writeln!(
                out,
                "| 1 | Same, through `cargo lambda watch` with the no-op function (`bench-noop`, dev build) | \
                 {} rec/s (commits polled every 50 ms) | report | {:.2}× of baseline |",
                rate(e.steady_rate()),
                e.steady_rate() / b.steady_rate()
            );
        }
        let _ = writeln!(
            details,
            "\n**Throughput** ({} records produced in {:.1} s = {} rec/s; every consumer with \
             `fetch.wait.max.ms = {}`):\n\n\
             | run | records/s first → last | records/s incl. start-up | wall | CPU | notes |\n|---|---|---|---|---|---|",
            t.records,
            t.produce.as_secs_f64(),
            rate(t.records as f64 / t.produce.as_secs_f64()),
            t.fetch_wait_ms
        );
        for (i, b) in t.baseline.iter().enumerate() {
            let _ = writeln!(
                details,
                "| baseline {} | {} | {} | {:.2} s | {} | |",
                i + 1,
                rate(b.steady_rate()),
                rate(b.wall_rate()),
                b.wall.as_secs_f64(),
                cpu(b)
            );
        }
        for (i, p) in t.poller.iter().enumerate() {
            let _ = writeln!(
                details,
                "| poller {} | {} | {} | {:.2} s | {} | {} invocations, largest {} records, {:.1} MB/invocation, peak RSS {}{} |",
                i + 1,
                rate(p.run.steady_rate()),
                rate(p.run.wall_rate()),
                p.run.wall.as_secs_f64(),
                cpu(&p.run),
                p.invocations,
                p.largest_batch,
                p.payload_bytes as f64 / p.invocations.max(1) as f64 / 1e6,
                mb(p.peak_rss),
                p.broker_cpu.map_or(String::new(), |c| format!(
                    "; broker {:.2} s CPU",
                    c.as_secs_f64()
                ))
            );
        }
        if let Some(e) = &t.emulator {
            let _ = writeln!(
                details,
                "| poller → emulator → `bench-noop` | {} | {} | {:.2} s | {} | |",
                rate(e.steady_rate()),
                rate(e.wall_rate()),
                e.wall.as_secs_f64(),
                cpu(e)
            );
        }
    }
}

fn quartile_rss(samples: &[(Duration, u64)]) -> String {
    if samples.is_empty() {
        return "?".to_owned();
    }
    [1, 2, 3, 4]
        .iter()
        .map(|q| {
            let i = (samples.len() * q / 4).clamp(1, samples.len()) - 1;
            format!("{:.0}", samples[i].1 as f64 / 1e6)
        })
        .collect::<Vec<_>>()
        .join(" / ")
        + " MB"
}

/// Replaces the results section of `path` (between the markers) with `section`; appends the
/// markers and the section when the file has none.
pub(crate) fn write(path: &Path, section: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let block = format!("{BEGIN}\n{section}\n{END}");
    let updated = match (text.find(BEGIN), text.find(END)) {
        (Some(begin), Some(end)) if begin < end => {
            format!("{}{block}{}", &text[..begin], &text[end + END.len()..])
        }
        _ => format!("{text}\n## Results\n\n{block}\n"),
    };
    std::fs::write(path, updated)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_have_thousands_separators() {
        assert_eq!(rate(999.4), "999");
        assert_eq!(rate(1_000_000.0), "1,000,000");
        assert_eq!(rate(254_076.2), "254,076");
    }
}
