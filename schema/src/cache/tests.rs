//! The cache against a **stand-in** Confluent registry: a few lines of HTTP that answer
//! `GET /schemas/ids/{id}` with an Avro schema after a delay, and count what they are asked.
//! (The real registry is tested end to end in poller/tests/schema_registry.rs; here what
//! matters is how often the cache asks, which only a server of our own can count.)

// Helpers outside #[test] functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::registry::{ConfluentAuth, ConfluentRegistry};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

type Asked = Arc<Mutex<HashMap<u32, usize>>>;

/// The stand-in registry: every id is the schema `"long"`. The first `failures` requests are
/// answered 503. Returns its base URL and the count of requests per id.
fn stand_in_registry(failures: usize) -> (String, Asked) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let asked = Asked::default();
    let failed = Arc::new(AtomicUsize::new(0));
    let counts = asked.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (counts, failed) = (counts.clone(), failed.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut request = String::new();
                reader.read_line(&mut request).unwrap();
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap() > 2 {
                    line.clear();
                }
                let id: u32 = request
                    .split_whitespace()
                    .nth(1)
                    .and_then(|path| path.strip_prefix("/schemas/ids/"))
                    .and_then(|id| id.parse().ok())
                    .expect("the cache asks for /schemas/ids/{id}");
                *counts.lock().unwrap().entry(id).or_default() += 1;
                // Slow enough that concurrent askers overlap.
                std::thread::sleep(Duration::from_millis(200));
                let (status, body) = if failed.fetch_add(1, Ordering::SeqCst) < failures {
                    (
                        "503 Service Unavailable",
                        r#"{"error_code":50301,"message":"down"}"#,
                    )
                } else {
                    ("200 OK", r#"{"schema":"\"long\""}"#)
                };
                let mut stream = reader.into_inner();
                // A client that gave up has gone: nothing to answer.
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    (url, asked)
}

fn schemas(url: &str, capacity: usize) -> Arc<Schemas> {
    schemas_waiting(url, capacity, Duration::from_secs(5))
}

/// Schemas of the registry at `url` whose requests give up after `timeout`.
fn schemas_waiting(url: &str, capacity: usize, timeout: Duration) -> Arc<Schemas> {
    let registry = ConfluentRegistry::new(url, ConfluentAuth::default(), timeout).unwrap();
    Arc::new(Schemas::new(Registry::Confluent(registry), capacity))
}

/// The long 21 (zigzag 42) in Confluent's wire format with schema `id`.
fn record(id: u32) -> Vec<u8> {
    let mut bytes = vec![0];
    bytes.extend_from_slice(&id.to_be_bytes());
    bytes.push(42);
    bytes
}

async fn decode(schemas: &Schemas, id: u32) -> Result<Vec<u8>, DecodeError> {
    schemas.decode(&record(id)).await.map(|d| d.json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_is_fetched_once_however_many_records_ask_for_it_at_once() {
    let (url, asked) = stand_in_registry(0);
    let schemas = schemas(&url, DEFAULT_CAPACITY);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let schemas = schemas.clone();
        tasks.spawn(async move { decode(&schemas, 7).await });
    }
    while let Some(decoded) = tasks.join_next().await {
        assert_eq!(decoded.unwrap().unwrap(), b"21");
    }
    assert_eq!(decode(&schemas, 7).await.unwrap(), b"21");
    assert_eq!(*asked.lock().unwrap(), HashMap::from([(7, 1)]));
}

#[tokio::test]
async fn the_cache_holds_at_most_its_capacity_and_fetches_a_dropped_schema_again() {
    for (capacity, fetches_of_1) in [(1, 2), (2, 1)] {
        let (url, asked) = stand_in_registry(0);
        let schemas = schemas(&url, capacity);
        for id in [1, 2, 1] {
            decode(&schemas, id).await.unwrap();
        }
        assert_eq!(
            *asked.lock().unwrap(),
            HashMap::from([(1, fetches_of_1), (2, 1)]),
            "capacity {capacity}"
        );
    }
}

#[tokio::test]
async fn a_failed_fetch_is_not_cached() {
    let (url, asked) = stand_in_registry(1);
    let schemas = schemas(&url, DEFAULT_CAPACITY);
    let error = decode(&schemas, 3).await.unwrap_err();
    assert!(error.is_unavailable(), "{error}");
    assert_eq!(decode(&schemas, 3).await.unwrap(), b"21");
    assert_eq!(*asked.lock().unwrap(), HashMap::from([(3, 2)]));
}

#[tokio::test]
async fn a_registry_slower_than_the_timeout_is_unavailable_not_a_record_failure() {
    let (url, asked) = stand_in_registry(0);
    // The stand-in answers after 200 ms.
    let schemas = schemas_waiting(&url, DEFAULT_CAPACITY, Duration::from_millis(50));
    let error = decode(&schemas, 4).await.unwrap_err();
    assert!(error.is_unavailable(), "{error}");
    assert!(error.is_registry_fault(), "{error}");
    assert_eq!(*asked.lock().unwrap(), HashMap::from([(4, 1)]));
}

#[cfg(feature = "protobuf")]
#[test]
fn a_glue_protobuf_schema_importing_another_file_is_refused_saying_glue_has_no_references() {
    let registered = RegisteredSchema {
        id: SchemaId::Glue(uuid::Uuid::from_u128(1)),
        format: DataFormat::Protobuf,
        text: "syntax = \"proto3\";\nimport \"common.proto\";\nmessage A { common.Money m = 1; }\n"
            .to_owned(),
        references: Vec::new(),
    };
    let error = Compiled::compile(&registered).unwrap_err().to_string();
    assert!(error.contains("common.proto"), "{error}");
    assert!(error.contains("AWS Glue keeps no references"), "{error}");
}
