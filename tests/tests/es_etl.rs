//! `examples/es-etl` end to end: under the real Lambda emulator (`cargo lambda watch`), invoked
//! with the events AWS sends for Kafka triggers, and behind the real poller reading a real
//! broker, delivering to a **stand-in for Elasticsearch/OpenSearch**.
//!
//! No search server can run here. The stand-in is a small HTTP server started by each test
//! that speaks the part of the bulk API es-etl uses and checks it the way the real one does
//! (`POST <address>/_bulk`, `Content-Type: application/x-ndjson`, basic authentication, an
//! action line and a source line per document, a body ending with a line break), records
//! every request, and answers each document with the status the test's script gives it, in
//! the bulk API's response format (`{"errors":..,"items":[{"index":{..,"status":..}}]}`).
//!
//! Each test starts its own emulator with the function's configuration in its environment
//! (`ES_ADDRESS` pointing at its stand-in), see `kafka_lambda_tests::Emulator`; the test through
//! the poller runs twice, behind `cargo lambda watch` and behind AWS's Runtime Interface
//! Emulator (`kafka_lambda_tests::FunctionHost`).

use kafka_lambda_events::KafkaRecord;
use kafka_lambda_tests::{
    Emulator, FunctionHost, HostKind, Poller, assert_refuses_to_start, cargo_build, free_port,
    new_topic, produce_all,
};
use rdkafka::producer::BaseRecord;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FUNCTION: &str = "es-etl";
const TOPIC: &str = "error-logs";
const USER: &str = "elastic";
const PASSWORD: &str = "changeme";
/// `Basic ` + base64 of `elastic:changeme`.
const BASIC_AUTH: &str = "Basic ZWxhc3RpYzpjaGFuZ2VtZQ==";
/// 2020-07-28 13:51:35 UTC: 21:51:35 at +08:00, the function's default offset.
const LOGGED_AT: i64 = 1_595_944_295;

// -------------------------------------------------------------------------------------------
// The tests

#[test]
fn documents_reach_the_bulk_api_as_ndjson_with_basic_auth_in_daily_indices() {
    let stand_in = StandIn::start(Some((USER, PASSWORD)), |_| 201);
    let emulator = es_etl(
        "daily",
        &[
            ("ES_ADDRESS", &stand_in.address()),
            ("ES_USER", USER),
            ("ES_PASSWORD", PASSWORD),
            ("ES_INDEX_KEYWORD", "error-logs"),
        ],
    );

    let response = emulator.invoke(
        FUNCTION,
        msk_event([
            record(0, 10, &error_log(101_103, "req-a")),
            record(0, 11, &error_log(0, "a success, dropped")),
            record(1, 20, &error_log(-5, "req-b")),
            record(1, 21, "not json: logged and left out"),
        ]),
    );

    assert_eq!(
        response.expect_success(),
        json!({"batchItemFailures": [], "indexed": 2, "dropped": 1, "rejected": 0, "undecodable": 1})
    );
    let requests = stand_in.requests();
    assert_eq!(
        requests.len(),
        1,
        "one bulk request per batch: {requests:#?}"
    );
    let request = &requests[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/_bulk")
    );
    assert_eq!(request.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(request.header("authorization"), Some(BASIC_AUTH));
    assert_eq!(
        request.body,
        [
            r#"{"index":{"_index":"error-logs-2020.07.28","_id":"error-logs-0-10"}}"#,
            r#"{"timestamp":"2020-07-28 21:51:35","returnCode":101103,"returnError":"failed","returnMessage":"message 101103","requestId":"req-a"}"#,
            r#"{"index":{"_index":"error-logs-2020.07.28","_id":"error-logs-1-20"}}"#,
            r#"{"timestamp":"2020-07-28 21:51:35","returnCode":-5,"returnError":"failed","returnMessage":"message -5","requestId":"req-b"}"#,
            "",
        ]
        .join("\n")
    );
    assert_eq!(request.status, 200);
}

#[test]
fn hourly_indices_and_ignored_fields_shape_the_documents() {
    let stand_in = StandIn::start(None, |_| 201);
    let emulator = es_etl(
        "hourly",
        &[
            // A cluster behind a path prefix, without authentication.
            ("ES_ADDRESS", &format!("{}/search/", stand_in.address())),
            ("ES_INDEX_KEYWORD", "trade"),
            ("ES_INDEX_TIME_FORMAT", "hour"),
            ("ES_LOG_IGNORE_WORDS", "requestId, returnError,password"),
            ("LOG_ETL_UTC_OFFSET", "+00:00"),
        ],
    );

    let output = emulator
        .invoke(FUNCTION, msk_event([record(3, 7, &error_log(42, "r-1"))]))
        .expect_success();

    assert_eq!(output["indexed"], 1, "{output}");
    let requests = stand_in.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/search/_bulk");
    assert_eq!(requests[0].header("authorization"), None);
    assert_eq!(
        requests[0].body,
        concat!(
            r#"{"index":{"_index":"trade-2020.07.28.13","_id":"error-logs-3-7"}}"#,
            "\n",
            r#"{"timestamp":"2020-07-28 13:51:35","returnCode":42,"returnMessage":"message 42"}"#,
            "\n",
        )
    );
    assert!(
        emulator
            .log_text()
            .contains("ES_LOG_IGNORE_WORDS names fields that documents do not have"),
        "`password` is no document field: a warning at start-up"
    );
}

#[test]
fn documents_refused_for_now_are_retried_and_documents_refused_for_good_are_not() {
    // By request id: `busy` → 429, `down` → 503, `bad` → 400 (a mapping error), else 201.
    let stand_in = StandIn::start(None, |doc| match doc.request_id() {
        id if id.starts_with("busy") => 429,
        id if id.starts_with("down") => 503,
        id if id.starts_with("bad") => 400,
        _ => 201,
    });
    let emulator = es_etl(
        "mixed",
        &[
            ("ES_ADDRESS", &stand_in.address()),
            ("ES_INDEX_KEYWORD", "error-logs"),
        ],
    );

    let response = emulator.invoke(
        FUNCTION,
        msk_event([
            record(0, 1, &error_log(1, "ok-1")),
            record(0, 2, &error_log(2, "busy-1")),
            record(0, 3, &error_log(3, "bad-1")),
            record(0, 4, &error_log(4, "busy-2")),
            record(1, 9, &error_log(5, "bad-2")),
            record(1, 10, &error_log(6, "ok-2")),
            record(2, 0, &error_log(7, "down-1")),
        ]),
    );

    // Every record refused for now is listed, and only those: a retry resumes each partition
    // from its lowest listed offset, and documents indexed again keep their `_id`.
    let failed = |partition: i32, offset: i64| json!({"itemIdentifier": {"partition": format!("{TOPIC}-{partition}"), "offset": offset}});
    assert_eq!(
        response.expect_success(),
        json!({
            "batchItemFailures": [failed(0, 2), failed(0, 4), failed(2, 0)],
            "indexed": 2,
            "dropped": 0,
            "rejected": 2,
            "undecodable": 0,
        })
    );
    let requests = stand_in.requests();
    assert_eq!(requests.len(), 1);
    let ids: Vec<String> = requests[0]
        .body
        .lines()
        .step_by(2)
        .map(|action| {
            let action: Value = serde_json::from_str(action).expect("an action line");
            action["index"]["_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        ids,
        [
            "error-logs-0-1",
            "error-logs-0-2",
            "error-logs-0-3",
            "error-logs-0-4",
            "error-logs-1-9",
            "error-logs-1-10",
            "error-logs-2-0",
        ]
    );
    let log = emulator.log_text();
    for record in ["error-logs-0@3", "error-logs-1@9"] {
        let line = log
            .lines()
            .find(|line| line.contains(record) && line.contains("refused the document for good"))
            .unwrap_or_else(|| panic!("no error naming {record} in the log:\n{log}"));
        assert!(line.contains("ERROR"), "{line}");
        assert!(line.contains("mapper_parsing_exception"), "{line}");
    }
}

#[test]
fn a_refused_bulk_request_fails_the_invocation() {
    let stand_in = StandIn::start(Some((USER, PASSWORD)), |_| 201);
    let emulator = es_etl(
        "refused",
        &[
            ("ES_ADDRESS", &stand_in.address()),
            ("ES_USER", USER),
            ("ES_PASSWORD", "not-the-password"),
            ("ES_INDEX_KEYWORD", "error-logs"),
        ],
    );

    let error = emulator
        .invoke(FUNCTION, msk_event([record(0, 1, &error_log(1, "r"))]))
        .expect_function_error();

    assert_eq!(error.error_type, "KafkaBatchFailed");
    assert!(
        error.error_message.contains(&format!(
            "{}/_bulk refused the bulk request with HTTP 401 Unauthorized: security_exception: \
             unable to authenticate user [elastic]",
            stand_in.address()
        )),
        "{error:?}"
    );
    assert!(
        !error.error_message.contains("not-the-password"),
        "{error:?}"
    );
}

#[test]
fn an_unreachable_cluster_fails_the_invocation() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    let emulator = es_etl(
        "unreachable",
        &[
            ("ES_ADDRESS", &closed),
            ("ES_INDEX_KEYWORD", "error-logs"),
            ("ES_TIMEOUT_SECONDS", "5"),
        ],
    );

    let error = emulator
        .invoke(FUNCTION, msk_event([record(0, 1, &error_log(1, "r"))]))
        .expect_function_error();

    assert_eq!(error.error_type, "KafkaBatchFailed");
    assert!(
        error.error_message.starts_with(&format!(
            "the batch function failed: the bulk request to {closed}/_bulk failed"
        )),
        "{error:?}"
    );
    assert!(
        error.error_message.contains("onnect"),
        "the cause is given: {error:?}"
    );
}

#[test]
fn an_invalid_configuration_stops_the_function_at_start_naming_the_variable() {
    cargo_build(&["es-etl"]);
    let cases = [
        (
            vec![("ES_INDEX_KEYWORD", "error-logs")],
            "ES_ADDRESS is not set; give the cluster's URL",
        ),
        (
            vec![
                ("ES_ADDRESS", "http://127.0.0.1:9200"),
                ("ES_INDEX_KEYWORD", "Error-Logs"),
            ],
            "ES_INDEX_KEYWORD=`Error-Logs` is not a valid index prefix: index names are lowercase",
        ),
        (
            vec![
                ("ES_ADDRESS", "http://127.0.0.1:9200"),
                ("ES_INDEX_KEYWORD", "logs"),
                ("ES_INDEX_TIME_FORMAT", "week"),
            ],
            "ES_INDEX_TIME_FORMAT=`week` is neither `day`",
        ),
    ];
    assert_refuses_to_start("es-etl", &cases);
}

#[test]
fn records_flow_from_kafka_through_the_poller_to_the_bulk_api() {
    records_flow_through_the_poller(HostKind::CargoLambdaWatch);
}

#[test]
fn records_flow_from_kafka_through_the_poller_to_the_bulk_api_behind_the_runtime_interface_emulator()
 {
    records_flow_through_the_poller(HostKind::RuntimeInterfaceEmulator);
}

/// The poller reads a two-partition topic and invokes es-etl behind `kind` of host.
fn records_flow_through_the_poller(kind: HostKind) {
    // `flaky` documents are refused for now on their first attempt, `bad` ones for good.
    let stand_in = StandIn::start(None, |doc| match doc.request_id() {
        id if id.starts_with("flaky") && doc.attempt == 1 => 429,
        id if id.starts_with("bad") => 400,
        _ => 201,
    });
    let host = kind.start(
        "es-etl-poller",
        FUNCTION,
        &[
            ("ES_ADDRESS", &stand_in.address()),
            ("ES_INDEX_KEYWORD", "error-logs"),
        ],
    );
    let topic = new_topic("es_etl_poller", 2);
    let poller = poller(&topic, &host);

    let produced = [
        (0, error_log(1, "ok-1")),
        (0, error_log(2, "flaky-1")),
        (0, error_log(3, "ok-2")),
        (1, error_log(4, "bad-1")),
        (1, error_log(0, "a success, dropped")),
        (1, error_log(5, "ok-3")),
    ];
    produce(&topic, &produced);

    let expected: HashMap<String, i64> = [("ok-1", 1), ("flaky-1", 2), ("ok-2", 3), ("ok-3", 5)]
        .into_iter()
        .map(|(id, code)| (id.to_owned(), code))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let indexed = stand_in.indexed();
        if expected
            .keys()
            .all(|request_id| indexed.iter().any(|doc| doc.request_id() == request_id))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every document was indexed within 2 minutes; indexed: {indexed:#?}\n\
             {kind:?} log:\n{}\npoller log:\n{}",
            host.log_text(),
            poller.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Give a wrong retry of the rejected document time to show.
    std::thread::sleep(Duration::from_secs(2));

    let attempts = stand_in.attempts_by_request_id();
    assert_eq!(
        attempts.get("flaky-1"),
        Some(&2),
        "429 once, then indexed: {attempts:?}"
    );
    assert_eq!(
        attempts.get("bad-1"),
        Some(&1),
        "a 400 is not retried: {attempts:?}"
    );
    assert_eq!(attempts.get("a success, dropped"), None, "{attempts:?}");
    for doc in stand_in.indexed() {
        let code = expected[doc.request_id()];
        assert_eq!(doc.source["returnCode"], code, "{doc:?}");
        assert_eq!(doc.index, "error-logs-2020.07.28");
        assert!(doc.id.starts_with(&format!("{topic}-")), "{doc:?}");
    }
}

// -------------------------------------------------------------------------------------------
// Events, records and the function

/// An emulator serving es-etl with `env` as its configuration.
fn es_etl(name: &str, env: &[(&str, &str)]) -> Emulator {
    Emulator::start(&format!("es-etl-{name}"), &[FUNCTION], env)
}

/// An error log at [`LOGGED_AT`] whose request id is `request_id`.
fn error_log(return_code: i64, request_id: &str) -> String {
    json!({
        "version": 1,
        "componentName": "trade",
        "timestamp": LOGGED_AT,
        "returnCode": return_code,
        "returnMessage": format!("failed[message {return_code}][seqId:{request_id}]"),
    })
    .to_string()
}

fn record(partition: i32, offset: i64, value: &str) -> KafkaRecord {
    KafkaRecord::new(TOPIC, partition, offset)
        .with_key("trade")
        .with_value(value)
}

/// The event an MSK trigger delivers, serialized as the invocation payload.
fn msk_event(records: impl IntoIterator<Item = KafkaRecord>) -> Vec<u8> {
    kafka_lambda_tests::msk_event("error-logs", "eu-west-1", records)
}

/// Produces `(partition, value)` records to `topic`, in order, with key `trade`.
fn produce(topic: &str, records: &[(i32, String)]) {
    produce_all(
        &[],
        records.iter().map(|(partition, value)| {
            BaseRecord::to(topic)
                .partition(*partition)
                .key("trade")
                .payload(value)
        }),
    );
}

/// `kafka-lambda-poller run` for one mapping `topic` → es-etl behind `host`, stopped on drop.
fn poller(topic: &str, host: &FunctionHost) -> Poller {
    let config = host.mapping_config(
        FUNCTION,
        topic,
        "batching_window_ms = 200\n\
             report_batch_item_failures = true\n\
             retry_backoff_base_ms = 100\n\
             retry_backoff_max_ms = 1000",
    );
    Poller::start("es-etl", &config)
}

// -------------------------------------------------------------------------------------------
// The stand-in for Elasticsearch/OpenSearch

/// Gives each document its HTTP status.
type Script = dyn Fn(&Doc) -> u16 + Send + Sync;

/// The stand-in's HTTP server; stops accepting on drop.
struct StandIn {
    port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

struct State {
    credentials: Option<(String, String)>,
    script: Box<Script>,
    requests: Vec<Request>,
    /// Every document received, in order, with the status it was answered.
    documents: Vec<(Doc, u16)>,
}

/// One HTTP request as received, and the status it was answered.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    /// Names in lower case.
    headers: Vec<(String, String)>,
    body: String,
    status: u16,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One document of a bulk request.
#[derive(Debug, Clone)]
struct Doc {
    index: String,
    id: String,
    source: Value,
    /// 1 the first time this `_id` is received, 2 the second, ...
    attempt: usize,
}

impl Doc {
    fn request_id(&self) -> &str {
        self.source["requestId"].as_str().unwrap_or_default()
    }
}

impl StandIn {
    /// Starts the server on a free port. With `credentials`, requests without that basic
    /// authentication are refused with 401, as a secured cluster does.
    fn start(
        credentials: Option<(&str, &str)>,
        script: impl Fn(&Doc) -> u16 + Send + Sync + 'static,
    ) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the stand-in");
        let port = listener
            .local_addr()
            .expect("the stand-in's address")
            .port();
        let state = Arc::new(Mutex::new(State {
            credentials: credentials.map(|(u, p)| (u.to_owned(), p.to_owned())),
            script: Box::new(script),
            requests: Vec::new(),
            documents: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (accept_state, accept_stop) = (Arc::clone(&state), Arc::clone(&stop));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let state = Arc::clone(&accept_state);
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        StandIn { port, state, stop }
    }

    fn address(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> Vec<Request> {
        self.state.lock().expect("stand-in state").requests.clone()
    }

    /// The documents answered with a 2xx, latest version of each `_id`.
    fn indexed(&self) -> Vec<Doc> {
        let state = self.state.lock().expect("stand-in state");
        let mut latest: Vec<Doc> = Vec::new();
        for (doc, status) in &state.documents {
            if (200..300).contains(status) {
                latest.retain(|d| d.id != doc.id);
                latest.push(doc.clone());
            }
        }
        latest
    }

    /// How many times a document with each request id was received.
    fn attempts_by_request_id(&self) -> HashMap<String, usize> {
        let state = self.state.lock().expect("stand-in state");
        let mut counts = HashMap::new();
        for (doc, _) in &state.documents {
            *counts.entry(doc.request_id().to_owned()).or_insert(0) += 1;
        }
        counts
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop up so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Serves one connection (HTTP/1.1 keep-alive) until the client closes it.
fn serve(stream: TcpStream, state: &Mutex<State>) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or_default().to_owned(),
            parts.next().unwrap_or_default().to_owned(),
        );
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        let length: usize = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .and_then(|(_, value)| value.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let mut request = Request {
            method,
            path,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            status: 0,
        };
        let (status, answer) = {
            let mut state = state.lock().expect("stand-in state");
            let (status, answer) = bulk(&request, &mut state);
            request.status = status;
            state.requests.push(request);
            (status, answer)
        };
        let answer = answer.to_string();
        let response = format!(
            "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
            reason(status),
            answer.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// The bulk API: checks the request as Elasticsearch does and answers each document.
fn bulk(request: &Request, state: &mut State) -> (u16, Value) {
    let error = |status: u16, kind: &str, reason: &str| {
        (
            status,
            json!({"error": {"root_cause": [], "type": kind, "reason": reason}, "status": status}),
        )
    };
    if let Some((user, password)) = &state.credentials {
        let expected = format!("Basic {}", base64(&format!("{user}:{password}")));
        if request.header("authorization") != Some(expected.as_str()) {
            return error(
                401,
                "security_exception",
                &format!("unable to authenticate user [{user}]"),
            );
        }
    }
    if request.method != "POST" || !request.path.ends_with("/_bulk") {
        return error(
            404,
            "no_handler_found",
            &format!("no handler for {} {}", request.method, request.path),
        );
    }
    let content_type = request.header("content-type").unwrap_or_default();
    if content_type != "application/x-ndjson" && content_type != "application/json" {
        return error(
            406,
            "media_type_header_exception",
            &format!("Content-Type header [{content_type}] is not supported"),
        );
    }
    if !request.body.ends_with('\n') {
        return error(
            400,
            "illegal_argument_exception",
            "The bulk request must be terminated by a newline [\\n]",
        );
    }
    let lines: Vec<&str> = request.body.lines().collect();
    if lines.is_empty() || !lines.len().is_multiple_of(2) {
        return error(
            400,
            "action_request_validation_exception",
            "Validation Failed: 1: no requests added or a source line is missing;",
        );
    }
    let mut items = Vec::new();
    let mut errors = false;
    for pair in lines.chunks(2) {
        let action: Value = serde_json::from_str(pair[0]).unwrap_or(Value::Null);
        let target = &action["index"];
        let (Some(index), Some(id)) = (target["_index"].as_str(), target["_id"].as_str()) else {
            return error(
                400,
                "illegal_argument_exception",
                &format!("Malformed action/metadata line [{}]", pair[0]),
            );
        };
        if action.as_object().map(|o| o.len()) != Some(1)
            || target.as_object().map(|o| o.len()) != Some(2)
        {
            return error(
                400,
                "illegal_argument_exception",
                &format!("Unexpected action line [{}]", pair[0]),
            );
        }
        let attempt = 1 + state.documents.iter().filter(|(d, _)| d.id == id).count();
        let doc = Doc {
            index: index.to_owned(),
            id: id.to_owned(),
            source: serde_json::from_str(pair[1]).unwrap_or(Value::Null),
            attempt,
        };
        let status = if doc.source.is_object() {
            (state.script)(&doc)
        } else {
            400
        };
        let mut item = json!({"_index": index, "_id": id, "status": status});
        if (200..300).contains(&status) {
            item["result"] = json!(if attempt == 1 { "created" } else { "updated" });
            item["_version"] = json!(attempt);
        } else {
            errors = true;
            item["error"] = match status {
                400 => {
                    json!({"type": "mapper_parsing_exception", "reason": "failed to parse field [returnCode] of type [long] in document"})
                }
                429 => {
                    json!({"type": "es_rejected_execution_exception", "reason": "rejected execution of coordinating operation"})
                }
                503 => {
                    json!({"type": "unavailable_shards_exception", "reason": "primary shard is not active"})
                }
                _ => json!({"type": "exception", "reason": format!("scripted status {status}")}),
            };
        }
        items.push(json!({ "index": item }));
        state.documents.push((doc, status));
    }
    (200, json!({"took": 1, "errors": errors, "items": items}))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        406 => "Not Acceptable",
        _ => "Status",
    }
}

/// Standard, padded base64 (what basic authentication uses).
fn base64(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let bytes = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(bytes[0]) << 16) | (u32::from(bytes[1]) << 8) | u32::from(bytes[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn the_stand_ins_base64_is_the_standard_one() {
    assert_eq!(
        base64("elastic:changeme"),
        BASIC_AUTH.trim_start_matches("Basic ")
    );
    assert_eq!(base64("a"), "YQ==");
    assert_eq!(base64("ab"), "YWI=");
    assert_eq!(base64("abc"), "YWJj");
}
