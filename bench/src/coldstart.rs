//! Goal 5: cold start of a function. Under the Lambda emulator (`cargo lambda watch`, which
//! starts the function with `cargo run` on its first invocation), and with the release binary
//! against a fake Runtime API, which times our own init: process start to the first
//! `GET /runtime/invocation/next`, and to the first response.

use crate::stats::median;
use crate::workload;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use kafka_lambda_events::{EventSource, EventWriter, Header, RecordRef, TimestampType};
use std::convert::Infallible;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

const REQUEST_ID: &str = "bench-cold-start-1";

/// A small MSK event of error-log records, as `log-etl` expects.
pub(crate) fn small_event(records: u64) -> Vec<u8> {
    let mut writer = EventWriter::new(
        &EventSource::Msk,
        Some("arn:aws:kafka:us-east-1:123456789012:cluster/bench/1"),
        Some("b-1.bench:9092"),
    );
    for id in 0..records {
        let (key, value) = (workload::key(id), workload::value(id, 1_595_944_295));
        let headers: Vec<Header> = workload::headers(id)
            .into_iter()
            .map(|(n, v)| Header::new(n, v))
            .collect();
        writer.push(&RecordRef {
            topic: "error-logs",
            partition: 0,
            offset: id as i64,
            timestamp: 1_595_944_295_000,
            timestamp_type: TimestampType::CreateTime,
            key: Some(&key),
            value: Some(&value),
            headers: &headers,
            key_schema_metadata: None,
            value_schema_metadata: None,
        });
    }
    writer.finish()
}

/// Cold and warm invocations through the emulator.
#[derive(Debug, Clone)]
pub(crate) struct EmulatorColdStart {
    /// The first invocation of a function the emulator had not started.
    pub(crate) cold: Duration,
    /// Median of the following invocations.
    pub(crate) warm: Duration,
}

/// Invokes `function` through the emulator: once cold, then `warm` times.
pub(crate) fn through_emulator(
    emulator: &str,
    function: &str,
    warm: usize,
) -> anyhow::Result<EmulatorColdStart> {
    let url = format!("{emulator}/2015-03-31/functions/{function}/invocations");
    let event = small_event(10);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(300)))
        .http_status_as_error(false)
        .build()
        .into();
    let invoke = || -> anyhow::Result<Duration> {
        let started = Instant::now();
        let mut response = agent.post(&url).send(&event[..])?;
        let body = response.body_mut().read_to_string()?;
        anyhow::ensure!(
            response.status() == 200,
            "{function} answered {}: {body}",
            response.status()
        );
        Ok(started.elapsed())
    };
    let cold = invoke()?;
    let warm: Vec<Duration> = (0..warm).map(|_| invoke()).collect::<Result<_, _>>()?;
    Ok(EmulatorColdStart {
        cold,
        warm: median(&warm),
    })
}

/// Timings of one binary against the fake Runtime API.
#[derive(Debug, Clone)]
pub(crate) struct InitTimes {
    /// The binary's name.
    pub(crate) binary: String,
    /// Process start to the first `next` request (median).
    pub(crate) init: Duration,
    /// Fastest init.
    pub(crate) init_min: Duration,
    /// Process start to the first response (median).
    pub(crate) first_response: Duration,
    /// Trials.
    pub(crate) trials: usize,
}

#[derive(Debug, Default)]
struct Trial {
    next_at: Option<Instant>,
    response_at: Option<Instant>,
    failure: Option<String>,
}

async fn runtime_api(
    request: Request<Incoming>,
    trial: Arc<Mutex<Trial>>,
    event: Bytes,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let now = Instant::now();
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let reply = |status: StatusCode, body: Bytes| {
        let mut r = Response::new(Full::new(body));
        *r.status_mut() = status;
        r
    };
    if method == Method::GET && path == "/2018-06-01/runtime/invocation/next" {
        let first = match trial.lock() {
            Ok(mut t) => {
                t.next_at.is_none() && {
                    t.next_at = Some(now);
                    true
                }
            }
            Err(_) => false,
        };
        if !first {
            // One invocation per trial: later `next` requests wait until the process is killed.
            std::future::pending::<()>().await;
        }
        let deadline = chrono::Utc::now().timestamp_millis() + 60_000;
        let mut r = reply(StatusCode::OK, event);
        let h = r.headers_mut();
        h.insert(
            "content-type",
            hyper::header::HeaderValue::from_static("application/json"),
        );
        h.insert(
            "lambda-runtime-aws-request-id",
            hyper::header::HeaderValue::from_static(REQUEST_ID),
        );
        if let Ok(v) = deadline.to_string().parse() {
            h.insert("lambda-runtime-deadline-ms", v);
        }
        h.insert(
            "lambda-runtime-invoked-function-arn",
            hyper::header::HeaderValue::from_static(
                "arn:aws:lambda:us-east-1:123456789012:function:bench",
            ),
        );
        h.insert(
            "lambda-runtime-trace-id",
            hyper::header::HeaderValue::from_static(
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            ),
        );
        return Ok(r);
    }
    if let Ok(mut t) = trial.lock() {
        if path == format!("/2018-06-01/runtime/invocation/{REQUEST_ID}/response") {
            t.response_at = Some(now);
        } else {
            t.failure = Some(format!(
                "{method} {path}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
    }
    Ok(reply(
        StatusCode::ACCEPTED,
        Bytes::from_static(b"{\"status\":\"OK\"}"),
    ))
}

/// Starts `binary` `trials` times against a fake Runtime API and times each start.
pub(crate) async fn init_times(binary: &Path, trials: usize) -> anyhow::Result<InitTimes> {
    let event = Bytes::from(small_event(10));
    let (mut inits, mut responses) = (Vec::new(), Vec::new());
    for _ in 0..trials {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let trial = Arc::new(Mutex::new(Trial::default()));
        let server = {
            let (trial, event) = (trial.clone(), event.clone());
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (trial, event) = (trial.clone(), event.clone());
                    tokio::spawn(async move {
                        let service =
                            service_fn(move |r| runtime_api(r, trial.clone(), event.clone()));
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        let started = Instant::now();
        let mut child = Command::new(binary)
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
            .env("AWS_REGION", "us-east-1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", binary.display()))?;
        let deadline = started + Duration::from_secs(30);
        let outcome = loop {
            let state = trial
                .lock()
                .map(|t| (t.next_at, t.response_at, t.failure.clone()));
            match state {
                Ok((Some(next), Some(response), None)) => break Ok((next, response)),
                Ok((_, _, Some(failure))) => break Err(anyhow::anyhow!("{failure}")),
                _ if Instant::now() > deadline => {
                    break Err(anyhow::anyhow!("no response within 30 s"));
                }
                _ => {}
            }
            if let Some(status) = child.try_wait()? {
                break Err(anyhow::anyhow!("exited with {status} before answering"));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let _ = child.kill();
        let _ = child.wait();
        server.abort();
        let (next, response) = outcome.map_err(|e| anyhow::anyhow!("{}: {e}", binary.display()))?;
        inits.push(next - started);
        responses.push(response - started);
    }
    Ok(InitTimes {
        binary: binary
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        init: median(&inits),
        init_min: inits.iter().copied().min().unwrap_or_default(),
        first_response: median(&responses),
        trials,
    })
}
