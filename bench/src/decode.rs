//! Goal 4: decoding a 6 MB MSK event into typed records, with the handler SDK and with the
//! obvious alternative (`aws_lambda_events` + `base64` + `serde_json` per record).

use crate::alloc::{self, Snapshot};
use crate::stats::median;
use crate::workload::{self, ErrorLog};
use anyhow::Context;
use base64::Engine;
use kafka_lambda_events::{EventSource, EventWriter, Header, KafkaEvent, RecordRef, TimestampType};
use kafka_lambda_handler::{BatchOptions, decode_batch};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Largest synchronous invocation payload: the event is filled up to it.
const EVENT_BYTES: usize = 6 * 1024 * 1024;
const TOPIC: &str = "error-logs";

/// What one way of decoding costs.
#[derive(Debug, Clone)]
pub(crate) struct Side {
    /// Median time for the whole event.
    pub(crate) median: Duration,
    /// Fastest time for the whole event.
    pub(crate) min: Duration,
    /// Allocations per record.
    pub(crate) allocations_per_record: f64,
    /// Bytes allocated per record.
    pub(crate) bytes_per_record: f64,
    /// Peak heap above the event payload itself while decoding.
    pub(crate) peak_heap: u64,
}

/// Both ways on the same event.
#[derive(Debug, Clone)]
pub(crate) struct DecodeResult {
    /// Records in the event.
    pub(crate) records: usize,
    /// Event size in bytes.
    pub(crate) event_bytes: usize,
    /// `KafkaEvent::from_slice` + `decode_batch::<ErrorLog>`.
    pub(crate) ours: Side,
    /// Of `ours`, the median time of `KafkaEvent::from_slice` alone.
    pub(crate) ours_parse: Duration,
    /// `aws_lambda_events` + `base64` + `serde_json::from_slice` per record.
    pub(crate) alternative: Side,
    /// How many times faster the SDK is: the median over rounds of the alternative's time over
    /// the SDK's, each round timing both back to back so machine noise hits both alike.
    pub(crate) speedup: f64,
}

/// An MSK event of up to 6 MiB: 1 KB error-log values with a key and two headers, in four
/// partition groups.
pub(crate) fn msk_event() -> anyhow::Result<(Vec<u8>, usize)> {
    let fill = |partitions: usize, per_partition: usize| {
        let mut writer = EventWriter::new(
            &EventSource::Msk,
            Some(
                "arn:aws:kafka:us-east-1:123456789012:cluster/bench/0b2d5b5e-1c4f-4b7a-9a3e-1e2f3a4b5c6d-1",
            ),
            Some(
                "b-1.bench.kafka.us-east-1.amazonaws.com:9092,b-2.bench.kafka.us-east-1.amazonaws.com:9092",
            ),
        );
        let mut count = 0;
        'fill: for partition in 0..partitions {
            for i in 0..per_partition {
                let id = (partition * per_partition + i) as u64;
                let value = workload::value(id, 1_595_944_295);
                let key = workload::key(id);
                let headers: Vec<Header> = workload::headers(id)
                    .into_iter()
                    .map(|(name, value)| Header::new(name, value))
                    .collect();
                let record = RecordRef {
                    topic: TOPIC,
                    partition: partition as i32,
                    offset: 1_000_000 + i as i64,
                    timestamp: 1_595_944_295_000 + id as i64,
                    timestamp_type: TimestampType::CreateTime,
                    key: Some(&key),
                    value: Some(&value),
                    headers: &headers,
                    key_schema_metadata: None,
                    value_schema_metadata: None,
                };
                if writer.try_push(&record, EVENT_BYTES).is_err() {
                    break 'fill;
                }
                count += 1;
            }
        }
        (writer.finish(), count)
    };
    // How many records fit, then the same number spread over four partition groups (minus a few
    // for the group keys).
    let (_, fit) = fill(1, usize::MAX);
    let partitions = workload::PARTITIONS as usize;
    let (payload, count) = fill(partitions, (fit - partitions) / partitions);
    anyhow::ensure!(count > 0, "no record fits in the event");
    Ok((payload, count))
}

/// The handler SDK: parse the event, decode every value into `ErrorLog`.
fn ours(payload: &[u8]) -> anyhow::Result<u64> {
    let event = KafkaEvent::from_slice(payload)?;
    let batch = decode_batch::<ErrorLog>(event, &BatchOptions::new())?;
    Ok(batch.iter().fold(0, |acc, r| {
        acc ^ r.value().checksum()
            ^ r.key().map_or(0, |k| k.len() as u64)
            ^ r.headers().len() as u64
    }))
}

/// The obvious alternative: `aws_lambda_events`' event via serde_json, then per record base64
/// decode of key and value and serde_json into `ErrorLog`.
fn alternative(payload: &[u8]) -> anyhow::Result<u64> {
    let event: aws_lambda_events::event::kafka::KafkaEvent = serde_json::from_slice(payload)?;
    let b64 = &base64::engine::general_purpose::STANDARD;
    let mut decoded = Vec::with_capacity(event.records.values().map(Vec::len).sum());
    for records in event.records.values() {
        for r in records {
            let value = b64.decode(r.value.as_deref().context("tombstone")?)?;
            let key = r.key.as_deref().map(|k| b64.decode(k)).transpose()?;
            let log: ErrorLog = serde_json::from_slice(&value)?;
            decoded.push((log, key, r));
        }
    }
    Ok(decoded.iter().fold(0, |acc, (log, key, r)| {
        acc ^ log.checksum() ^ key.as_ref().map_or(0, |k| k.len() as u64) ^ r.headers.len() as u64
    }))
}

/// Allocations and peak heap of one call of `f`.
fn measure(payload: &[u8], f: fn(&[u8]) -> anyhow::Result<u64>) -> anyhow::Result<(Snapshot, u64)> {
    let before = Snapshot::now();
    alloc::start_counting();
    let result = f(black_box(payload));
    alloc::stop_counting();
    black_box(result?);
    Ok((Snapshot::now().since(before), alloc::peak()))
}

/// Runs one way only, `iterations` times: a loop to profile (`perf record`).
pub(crate) fn profile(alternative_only: bool, iterations: usize) -> anyhow::Result<()> {
    let (payload, _) = msk_event()?;
    let f = if alternative_only { alternative } else { ours };
    for _ in 0..iterations {
        black_box(f(black_box(&payload))?);
    }
    Ok(())
}

/// Runs both ways `iterations` times, alternating so machine noise hits both alike.
pub(crate) fn run(iterations: usize) -> anyhow::Result<DecodeResult> {
    let (payload, records) = msk_event()?;
    // Both must agree on what they decoded.
    anyhow::ensure!(
        ours(&payload)? == alternative(&payload)?,
        "the SDK and the alternative decoded different records"
    );
    let (ours_alloc, ours_peak) = measure(&payload, ours)?;
    let (alt_alloc, alt_peak) = measure(&payload, alternative)?;
    let (mut ours_times, mut alt_times, mut parse_times) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..iterations + 2 {
        let t = Instant::now();
        black_box(ours(black_box(&payload))?);
        let ours_time = t.elapsed();
        let t = Instant::now();
        black_box(alternative(black_box(&payload))?);
        let alt_time = t.elapsed();
        let t = Instant::now();
        black_box(KafkaEvent::from_slice(black_box(&payload))?);
        let parse_time = t.elapsed();
        // The first two rounds warm caches and the allocator.
        if i >= 2 {
            ours_times.push(ours_time);
            alt_times.push(alt_time);
            parse_times.push(parse_time);
        }
    }
    let side = |times: &[Duration], used: Snapshot, peak: u64| Side {
        median: median(times),
        min: times.iter().copied().min().unwrap_or_default(),
        allocations_per_record: used.allocations as f64 / records as f64,
        bytes_per_record: used.bytes as f64 / records as f64,
        peak_heap: peak,
    };
    let mut ratios: Vec<f64> = alt_times
        .iter()
        .zip(&ours_times)
        .map(|(alt, ours)| alt.as_secs_f64() / ours.as_secs_f64())
        .collect();
    ratios.sort_unstable_by(f64::total_cmp);
    Ok(DecodeResult {
        speedup: ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN),
        records,
        event_bytes: payload.len(),
        ours: side(&ours_times, ours_alloc, ours_peak),
        ours_parse: median(&parse_times),
        alternative: side(&alt_times, alt_alloc, alt_peak),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_is_just_under_six_mebibytes_and_both_decoders_agree() {
        let (payload, records) = msk_event().unwrap();
        assert!(payload.len() <= EVENT_BYTES);
        assert!(payload.len() > EVENT_BYTES - 16 * 1024, "{}", payload.len());
        assert_eq!(KafkaEvent::from_slice(&payload).unwrap().len(), records);
        assert_eq!(ours(&payload).unwrap(), alternative(&payload).unwrap());
    }
}
