//! A stand-in for the Lambda Invoke API: answers
//! `POST /2015-03-31/functions/{name}/invocations` with 200 `{}` (after an optional delay) and
//! counts the records of each payload with a byte scan, so it measures the poller, not a function.
//!
//! The event the poller writes opens every record with `{"topic":` (keys and values are base64,
//! so that sequence appears nowhere else), which makes counting a `memmem` over the payload.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use memchr::memmem;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How the server answers and what it records.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Behaviour {
    /// How long each invocation takes before it answers (a function's run time).
    pub(crate) delay: Duration,
    /// Record, for every record, how long after its timestamp it arrived.
    pub(crate) latencies: bool,
}

/// What the server saw.
#[derive(Debug, Default)]
struct Seen {
    records: AtomicU64,
    invocations: AtomicU64,
    payload_bytes: AtomicU64,
    largest_batch: AtomicU64,
    /// Records in the first payload.
    first_batch: AtomicU64,
    /// Nanoseconds after `started` (+1, so 0 means none) of the first and last payload.
    first_ns: AtomicU64,
    last_ns: AtomicU64,
    /// `(record timestamp, milliseconds from it to arrival)` per record.
    latencies: Mutex<Vec<(i64, f64)>>,
}

/// A running server.
pub(crate) struct InvokeServer {
    addr: SocketAddr,
    started: Instant,
    seen: Arc<Seen>,
    task: JoinHandle<()>,
}

/// A snapshot of what the server saw.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counts {
    /// Records in all payloads.
    pub(crate) records: u64,
    /// Invocations answered or in progress.
    pub(crate) invocations: u64,
    /// Payload bytes received.
    pub(crate) payload_bytes: u64,
    /// Most records in one payload.
    pub(crate) largest_batch: u64,
    /// Records in the first payload.
    pub(crate) first_batch: u64,
    /// When the first payload arrived.
    pub(crate) first: Option<Instant>,
    /// When the last payload arrived.
    pub(crate) last: Option<Instant>,
}

impl InvokeServer {
    /// Listens on a free loopback port.
    pub(crate) async fn start(behaviour: Behaviour) -> anyhow::Result<InvokeServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let started = Instant::now();
        let seen = Arc::new(Seen::default());
        let state = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        answer(request, state.clone(), started, behaviour)
                    });
                    // A connection the poller drops at shutdown ends here; nothing to report.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(InvokeServer {
            addr,
            started,
            seen,
            task,
        })
    }

    /// The endpoint URL for the poller's `[lambda] endpoint_url`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What was seen so far.
    pub(crate) fn counts(&self) -> Counts {
        let at = |ns: u64| (ns > 0).then(|| self.started + Duration::from_nanos(ns - 1));
        Counts {
            records: self.seen.records.load(Relaxed),
            invocations: self.seen.invocations.load(Relaxed),
            payload_bytes: self.seen.payload_bytes.load(Relaxed),
            largest_batch: self.seen.largest_batch.load(Relaxed),
            first_batch: self.seen.first_batch.load(Relaxed),
            first: at(self.seen.first_ns.load(Relaxed)),
            last: at(self.seen.last_ns.load(Relaxed)),
        }
    }

    /// The latencies recorded so far (with [`Behaviour::latencies`]).
    pub(crate) fn latencies(&self) -> Vec<(i64, f64)> {
        self.seen
            .latencies
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// Waits until `records` records arrived, or `timeout` passed (then `false`).
    pub(crate) async fn wait_for(&self, records: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.seen.records.load(Relaxed) < records {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

impl Drop for InvokeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    request: Request<Incoming>,
    seen: Arc<Seen>,
    started: Instant,
    behaviour: Behaviour,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path();
    if request.method() != Method::POST
        || !path.starts_with("/2015-03-31/functions/")
        || !path.ends_with("/invocations")
    {
        return Ok(respond(StatusCode::NOT_FOUND, "{}"));
    }
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return Ok(respond(StatusCode::BAD_REQUEST, "{}")),
    };
    let arrived = Instant::now();
    let records = memmem::find_iter(&body, b"{\"topic\":").count() as u64;
    if behaviour.latencies {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        let samples = timestamps(&body).map(|ts| (ts, now_ms - ts as f64));
        if let Ok(mut latencies) = seen.latencies.lock() {
            latencies.extend(samples);
        }
    }
    let ns = arrived.duration_since(started).as_nanos() as u64 + 1;
    if seen
        .first_ns
        .compare_exchange(0, ns, Relaxed, Relaxed)
        .is_ok()
    {
        seen.first_batch.store(records, Relaxed);
    }
    seen.last_ns.fetch_max(ns, Relaxed);
    seen.invocations.fetch_add(1, Relaxed);
    seen.payload_bytes.fetch_add(body.len() as u64, Relaxed);
    seen.largest_batch.fetch_max(records, Relaxed);
    // Counted last: a waiter that sees the count also sees the times.
    seen.records.fetch_add(records, Relaxed);
    if !behaviour.delay.is_zero() {
        tokio::time::sleep(behaviour.delay).await;
    }
    Ok(respond(StatusCode::OK, "{}"))
}

fn respond(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// The record timestamps of an event the poller wrote: each record has `"timestamp":<ms>`
/// (values are base64, so the sequence appears nowhere else followed by a digit).
fn timestamps(event: &[u8]) -> impl Iterator<Item = i64> + '_ {
    const FIELD: &[u8] = b"\"timestamp\":";
    memmem::find_iter(event, FIELD).filter_map(|at| {
        let digits = &event[at + FIELD.len()..];
        let end = digits
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(digits.len());
        std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_lambda_events::{EventSource, EventWriter, Header, RecordRef, TimestampType};

    #[test]
    fn records_and_timestamps_are_found_by_scanning() {
        let mut w = EventWriter::new(&EventSource::SelfManagedKafka, None, Some("b:9092"));
        let headers = [Header::new("{\"topic\":", b"\"timestamp\":1".to_vec())];
        for offset in 0..3 {
            w.push(&RecordRef {
                topic: "t",
                partition: (offset % 2) as i32,
                offset,
                timestamp: 1_700_000_000_000 + offset,
                timestamp_type: TimestampType::CreateTime,
                key: Some(b"{\"topic\":"),
                value: Some(b"\"timestamp\":5"),
                headers: &headers,
                key_schema_metadata: None,
                value_schema_metadata: None,
            });
        }
        let event = w.finish();
        assert_eq!(memmem::find_iter(&event, b"{\"topic\":").count(), 3);
        assert_eq!(
            timestamps(&event).collect::<Vec<_>>(),
            [1_700_000_000_000, 1_700_000_000_001, 1_700_000_000_002]
        );
    }
}
