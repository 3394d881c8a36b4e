//! Goal 1's floor: what every invocation of real Lambda costs per record whatever the poller
//! does, measured on the goal-4 event (6 MB, 1 KB records with a key and two headers): SigV4's
//! SHA-256 of the request body (the signature covers the body's hash; AWS accepts an unsigned
//! body only for S3) and writing the event (base64 of key and value, JSON). With the plain
//! consumer's own CPU per record (it reads the same records), it bounds how little CPU a
//! record can take in the poller, and so how close the poller can come to the baseline when both
//! share one machine with the broker.

use crate::stats::median;
use crate::workload;
use kafka_lambda_events::{EventSource, EventWriter, Header, RecordRef, TimestampType};
use sha2::{Digest, Sha256};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// The floor's parts, per record.
#[derive(Debug, Clone)]
pub(crate) struct Floor {
    /// Records in the event.
    pub(crate) records: usize,
    /// Event size in bytes.
    pub(crate) event_bytes: usize,
    /// Median time of SHA-256 over the whole event, per record.
    pub(crate) sha256: Duration,
    /// Median time of writing the event from the records' bytes, per record.
    pub(crate) encode: Duration,
}

impl Floor {
    /// The floor in µs per record: SHA-256 + encoding + `consumer_us` (the plain consumer's CPU
    /// per record, which the poller pays too).
    pub(crate) fn total_us(&self, consumer_us: f64) -> f64 {
        micros(self.sha256) + micros(self.encode) + consumer_us
    }
}

/// Microseconds of `d`.
pub(crate) fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Times both parts `iterations` times each.
pub(crate) fn run(iterations: usize) -> anyhow::Result<Floor> {
    let (payload, records) = crate::decode::msk_event()?;
    // The records' bytes, made before timing: only the writer is timed.
    let inputs: Vec<(Vec<u8>, Vec<u8>, Vec<Header>)> = (0..records as u64)
        .map(|id| {
            let headers = workload::headers(id)
                .into_iter()
                .map(|(name, value)| Header::new(name, value))
                .collect();
            (
                workload::key(id),
                workload::value(id, 1_595_944_295),
                headers,
            )
        })
        .collect();
    let mut sha = Vec::with_capacity(iterations);
    let mut encode = Vec::with_capacity(iterations);
    // Reused as the poller reuses a partition's payload buffer.
    let mut buffer = Vec::with_capacity(payload.len() + 64 * 1024);
    for _ in 0..iterations {
        let started = Instant::now();
        black_box(Sha256::digest(black_box(&payload)));
        sha.push(started.elapsed());
        let started = Instant::now();
        buffer = black_box(write_event(&inputs, buffer));
        encode.push(started.elapsed());
    }
    let per_record = |times: &[Duration]| median(times) / records as u32;
    Ok(Floor {
        records,
        event_bytes: payload.len(),
        sha256: per_record(&sha),
        encode: per_record(&encode),
    })
}

/// The event of `inputs` written into `buffer`, the way the poller writes a batch.
fn write_event(inputs: &[(Vec<u8>, Vec<u8>, Vec<Header>)], buffer: Vec<u8>) -> Vec<u8> {
    let mut writer = EventWriter::with_buffer(
        &EventSource::SelfManagedKafka,
        None,
        Some("b-1:9092,b-2:9092"),
        buffer,
    );
    for (offset, (key, value, headers)) in inputs.iter().enumerate() {
        let record = RecordRef {
            topic: "error-logs",
            partition: 0,
            offset: offset as i64,
            timestamp: 1_595_944_295_000 + offset as i64,
            timestamp_type: TimestampType::CreateTime,
            key: Some(key),
            value: Some(value),
            headers,
            key_schema_metadata: None,
            value_schema_metadata: None,
        };
        let _ = writer.try_push(&record, usize::MAX);
    }
    writer.finish()
}
