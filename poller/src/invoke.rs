//! Invoking the function: the [`Invoker`] trait and its `aws-sdk-lambda` implementation.
//!
//! This is the only module that knows AWS error shapes. Every outcome is classified into an
//! [`InvokeOutcome`]: success (with the response payload), a function error, throttling, a
//! transient failure (5xx, network, timeout), or a permanent failure (missing function, access
//! denied: needs an operator, retried slowly).

use crate::config::Lambda;
use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::types::InvocationType;
use aws_smithy_types::Blob;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use kafka_lambda_events::error_chain;
use std::future::Future;
use std::time::Duration;

/// How one invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeOutcome {
    /// The function returned; `payload` is its response (may be empty).
    Success {
        /// The function's response payload.
        payload: Vec<u8>,
    },
    /// The function ran and failed: `X-Amz-Function-Error` from the Lambda service, HTTP 500 from
    /// `cargo lambda watch`, an error document or timeout text in a 200 from AWS's Runtime
    /// Interface Emulator, or its HTTP 502 when the runtime process exited.
    FunctionError {
        /// `errorType` reported by the function/runtime (e.g. `Runtime.ExitError`).
        error_type: String,
        /// `errorMessage` reported.
        message: String,
    },
    /// Lambda throttled the call (429 `TooManyRequestsException`): back off, not the function's fault.
    Throttled {
        /// Details.
        message: String,
    },
    /// 5xx service error, connection failure, dropped connection or timeout: retried.
    Transient {
        /// Details.
        message: String,
    },
    /// The request cannot succeed as configured (function not found, access denied, payload
    /// rejected as too large): logged at error and retried slowly so an operator can fix it.
    Permanent {
        /// Details.
        message: String,
    },
}

impl InvokeOutcome {
    /// Short label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            InvokeOutcome::Success { .. } => "success",
            InvokeOutcome::FunctionError { .. } => "function_error",
            InvokeOutcome::Throttled { .. } => "throttled",
            InvokeOutcome::Transient { .. } => "transient",
            InvokeOutcome::Permanent { .. } => "permanent",
        }
    }
}

/// Something that can invoke one function synchronously with a payload.
pub trait Invoker: Send + Sync + 'static {
    /// Invokes the function with `payload` (the serialized Kafka event). The payload is shared,
    /// not copied: the caller keeps it for a retry.
    fn invoke(&self, payload: Bytes) -> impl Future<Output = InvokeOutcome> + Send;

    /// The function this invoker calls (for logs).
    fn function(&self) -> &str;
}

/// Invokes through the Lambda `Invoke` API (`RequestResponse`), with the SDK's own retries
/// disabled so the poller's retry policy is the only one.
#[derive(Debug, Clone)]
pub struct LambdaInvoker {
    client: aws_sdk_lambda::Client,
    function: String,
}

/// Default invoke timeout: Lambda's 15-minute maximum plus a margin.
const DEFAULT_INVOKE_TIMEOUT: Duration = Duration::from_secs(905);

/// Builds the Lambda client from the standard AWS chain and the `[lambda]` section.
pub async fn lambda_client(config: &Lambda) -> aws_sdk_lambda::Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = &config.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    let shared = loader.load().await;
    let timeout = config.invoke_timeout.unwrap_or(DEFAULT_INVOKE_TIMEOUT);
    let mut builder = aws_sdk_lambda::config::Builder::from(&shared)
        .retry_config(aws_smithy_types::retry::RetryConfig::disabled())
        .timeout_config(
            aws_smithy_types::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(timeout)
                .operation_timeout(timeout)
                .build(),
        );
    if let Some(url) = &config.endpoint_url {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_lambda::Client::from_conf(builder.build())
}

impl LambdaInvoker {
    /// An invoker for `function` (name, ARN, or `name:alias`).
    pub fn new(client: aws_sdk_lambda::Client, function: impl Into<String>) -> Self {
        LambdaInvoker {
            client,
            function: function.into(),
        }
    }
}

impl Invoker for LambdaInvoker {
    async fn invoke(&self, payload: Bytes) -> InvokeOutcome {
        // `Blob` owns a `Vec`, so handing it the payload would copy it (6 MB per invocation);
        // instead the request body is set to the shared payload before the request is signed
        // (SigV4 hashes the body as it is then), with its `Content-Length`.
        let length = payload.len().to_string();
        let result = self
            .client
            .invoke()
            .function_name(&self.function)
            .invocation_type(InvocationType::RequestResponse)
            .customize()
            .mutate_request(move |request| {
                *request.body_mut() = SdkBody::from(payload.clone());
                request
                    .headers_mut()
                    .insert("content-length", length.clone());
            })
            .send()
            .await;
        match result {
            Ok(out) => {
                let payload = out.payload.map(Blob::into_inner).unwrap_or_default();
                match (out.function_error, out.executed_version) {
                    (Some(kind), _) => function_error(&payload, &kind),
                    (None, Some(_)) => InvokeOutcome::Success { payload },
                    (None, None) => emulator_answer(payload),
                }
            }
            Err(err) => classify_error(err),
        }
    }

    fn function(&self) -> &str {
        &self.function
    }
}

/// A 200 answer without `X-Amz-Executed-Version`: not the Lambda service, which sets that header
/// on every invocation it ran (and `X-Amz-Function-Error` on every failed one), but an emulator
/// that sets neither. AWS's Runtime Interface Emulator (RIE, also inside `sam local`) answers a
/// function error with 200 and the runtime's error document as the body, and a timeout with 200
/// and the text `Task timed out after N.00 seconds`; it drops every header the runtime sent.
/// So, behind an emulator only, a body that is a runtime's error document ([`is_error_document`])
/// is a function error, and that text a timeout.
/// A function behind an emulator that returns such a document as its normal output is misread,
/// as `sam local` misreads it; behind the Lambda service a body is never inspected.
fn emulator_answer(payload: Vec<u8>) -> InvokeOutcome {
    const TIMED_OUT: &[u8] = b"Task timed out after ";
    if payload.starts_with(TIMED_OUT) {
        return InvokeOutcome::FunctionError {
            error_type: "Sandbox.Timedout".to_owned(),
            message: String::from_utf8_lossy(&payload).into_owned(),
        };
    }
    if is_error_document(&payload) {
        return function_error(&payload, "Unhandled");
    }
    InvokeOutcome::Success { payload }
}

/// Whether `payload` is a runtime's error document: a JSON object with string `errorType` and
/// `errorMessage` and no other keys than those AWS's runtime interface clients add beside them —
/// `stackTrace` (Python's `awslambdaric`, Java's), `requestId` (`awslambdaric`), `trace`
/// (Node.js's `aws-lambda-ric`), `cause` — or with exactly three keys, which `sam local
/// start-lambda` also takes for one (`samcli/local/services/base_local_service.py`,
/// `LambdaOutputParser.is_lambda_error_response`; that rule alone misses `awslambdaric`'s
/// four-key document, which the conformance suite found).
fn is_error_document(payload: &[u8]) -> bool {
    const ERROR_KEYS: [&str; 6] = [
        "errorType",
        "errorMessage",
        "stackTrace",
        "cause",
        "requestId",
        "trace",
    ];
    // Most answers say nothing of errors: look before parsing.
    const KEY: &[u8] = b"errorMessage";
    if !payload.windows(KEY.len()).any(|window| window == KEY) {
        return false;
    }
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(payload) else {
        return false;
    };
    let strings = ["errorType", "errorMessage"]
        .iter()
        .all(|key| map.get(*key).is_some_and(serde_json::Value::is_string));
    let only_error_keys = map.keys().all(|key| ERROR_KEYS.contains(&key.as_str()));
    strings && (only_error_keys || map.len() == 3)
}

/// Reads `{"errorType": ..., "errorMessage": ...}` from a function error payload.
fn function_error(payload: &[u8], fallback_type: &str) -> InvokeOutcome {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ErrorPayload {
        error_type: Option<String>,
        error_message: Option<String>,
    }
    let parsed: Option<ErrorPayload> = serde_json::from_slice(payload).ok();
    let (error_type, message) = match parsed {
        Some(p) => (
            p.error_type.unwrap_or_else(|| fallback_type.to_owned()),
            p.error_message.unwrap_or_default(),
        ),
        None => (
            fallback_type.to_owned(),
            String::from_utf8_lossy(payload)
                .chars()
                .take(1024)
                .collect(),
        ),
    };
    InvokeOutcome::FunctionError {
        error_type,
        message,
    }
}

fn classify_error<R>(
    err: SdkError<aws_sdk_lambda::operation::invoke::InvokeError, R>,
) -> InvokeOutcome
where
    R: HttpResponseParts + std::fmt::Debug + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status_code();
            let code = ctx.err().code().unwrap_or("");
            let message = format!(
                "{} (HTTP {status}{}{})",
                ctx.err().message().unwrap_or("no message"),
                if code.is_empty() { "" } else { ", " },
                code
            );
            if status == 429
                || code == "TooManyRequestsException"
                || code.ends_with("ThrottledException")
            {
                return InvokeOutcome::Throttled { message };
            }
            if status == 408 {
                // `cargo lambda watch` answers 408 when the function did not answer in time (its
                // `--timeout`) or its process died; AWS reports a timeout as a function error.
                return InvokeOutcome::FunctionError {
                    error_type: "Sandbox.Timedout".to_owned(),
                    message: format!("the function did not answer in time: {message}"),
                };
            }
            if status >= 500 {
                // `cargo lambda watch` reports a function error as HTTP 500 with the function's
                // error document as the body; the real service never answers 500 with one.
                // AWS's Runtime Interface Emulator answers 502 when the runtime process exited:
                // with `Runtime.ExitError` (or the runtime's init error) as the body, or with no
                // body when it exited before asking for an invocation. The service's own 5xx
                // always name their type (`X-Amzn-ErrorType`), so a bare 502 is the emulator's.
                if let Some(body) = ctx.raw().body_bytes()
                    && let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
                    && v.get("errorType").is_some()
                {
                    return function_error(body, "Unhandled");
                }
                if status == 502
                    && code.is_empty()
                    && ctx.raw().body_bytes().is_some_and(<[u8]>::is_empty)
                {
                    return InvokeOutcome::FunctionError {
                        error_type: "Runtime.ExitError".to_owned(),
                        message: "the function's runtime exited before answering (HTTP 502 with no body, as AWS's Runtime Interface Emulator answers)".to_owned(),
                    };
                }
                return InvokeOutcome::Transient { message };
            }
            InvokeOutcome::Permanent { message }
        }
        SdkError::TimeoutError(_) => InvokeOutcome::Transient {
            message: "invocation timed out (lambda.invoke_timeout_s)".to_owned(),
        },
        SdkError::DispatchFailure(_) => InvokeOutcome::Transient {
            message: format!("could not reach the Lambda endpoint: {}", error_chain(&err)),
        },
        SdkError::ResponseError(_) => InvokeOutcome::Transient {
            message: format!(
                "connection failed while waiting for the response: {}",
                error_chain(&err)
            ),
        },
        _ => InvokeOutcome::Permanent {
            message: error_chain(&err),
        },
    }
}

/// What the classifier needs from a raw HTTP response.
trait HttpResponseParts {
    fn status_code(&self) -> u16;
    fn body_bytes(&self) -> Option<&[u8]>;
}

impl HttpResponseParts for aws_smithy_runtime_api::http::Response {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
    fn body_bytes(&self) -> Option<&[u8]> {
        self.body().bytes()
    }
}

#[cfg(test)]
mod tests {
    //! The classifier against a local HTTP stand-in for the Lambda Invoke API: it answers each
    //! request with a scripted raw HTTP response (what real Lambda or `cargo lambda watch` send).
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Serves one request with `response` (raw HTTP), or closes the connection when `None`;
    /// the task returns the request as received.
    async fn stand_in(
        response: Option<&'static str>,
    ) -> (String, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the headers and the body (the SDK sends Content-Length).
            loop {
                let n = socket.read(&mut buf).await.unwrap();
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            if let Some(response) = response {
                socket.write_all(response.as_bytes()).await.unwrap();
            }
            request
        });
        (url, served)
    }

    fn invoker(url: String) -> LambdaInvoker {
        let config = aws_sdk_lambda::config::Builder::new()
            .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
            .region(aws_sdk_lambda::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_lambda::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            ))
            .retry_config(aws_smithy_types::retry::RetryConfig::disabled())
            .endpoint_url(url)
            .build();
        LambdaInvoker::new(aws_sdk_lambda::Client::from_conf(config), "f")
    }

    async fn classify(response: Option<&'static str>) -> InvokeOutcome {
        let (url, _) = stand_in(response).await;
        invoker(url).invoke(Bytes::from_static(b"{}")).await
    }

    #[tokio::test]
    async fn the_shared_payload_is_sent_whole_with_its_length() {
        let (url, served) = stand_in(Some("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")).await;
        let payload = Bytes::from(format!("{{\"records\":\"{}\"}}", "x".repeat(100_000)));
        let outcome = invoker(url).invoke(payload.clone()).await;
        assert_eq!(
            outcome,
            InvokeOutcome::Success {
                payload: b"{}".to_vec()
            }
        );
        let request = served.await.unwrap();
        let at = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&request[..at]).to_ascii_lowercase();
        assert!(
            head.contains(&format!("content-length: {}", payload.len())),
            "{head}"
        );
        assert!(head.contains("authorization: aws4-hmac-sha256"), "{head}");
        assert_eq!(&request[at + 4..], &payload[..]);
    }

    fn http(status: &str, headers: &str, body: &str) -> &'static str {
        Box::leak(
            format!(
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\n{headers}\r\n{body}",
                body.len()
            )
            .into_boxed_str(),
        )
    }

    #[tokio::test]
    async fn a_200_with_a_payload_is_success() {
        let out = classify(Some(http("200 OK", "", r#"{"batchItemFailures":[]}"#))).await;
        assert_eq!(
            out,
            InvokeOutcome::Success {
                payload: br#"{"batchItemFailures":[]}"#.to_vec()
            }
        );
    }

    #[tokio::test]
    async fn real_lambdas_function_error_header_is_a_function_error() {
        let body = r#"{"errorType":"Runtime.ExitError","errorMessage":"RequestId: 1 Error: Runtime exited with error: exit status 101"}"#;
        let out = classify(Some(http(
            "200 OK",
            "x-amz-function-error: Unhandled\r\n",
            body,
        )))
        .await;
        assert!(
            matches!(&out, InvokeOutcome::FunctionError { error_type, message } if error_type == "Runtime.ExitError" && message.contains("exit status 101")),
            "{out:?}"
        );
    }

    #[tokio::test]
    async fn the_emulators_500_with_an_error_document_is_a_function_error() {
        let out = classify(Some(http(
            "500 Internal Server Error",
            "",
            r#"{"errorType":"KafkaRecordFailed","errorMessage":"record t-0@3: nope"}"#,
        )))
        .await;
        assert!(
            matches!(&out, InvokeOutcome::FunctionError { error_type, .. } if error_type == "KafkaRecordFailed"),
            "{out:?}"
        );
    }

    #[tokio::test]
    async fn throttling_and_service_errors_are_not_function_errors() {
        for (status, error_type, throttled) in [
            ("429 Too Many Requests", "TooManyRequestsException", true),
            ("503 Service Unavailable", "ServiceException", false),
        ] {
            let response = http(
                status,
                &format!("x-amzn-errortype: {error_type}\r\n"),
                r#"{"message":"try later"}"#,
            );
            let outcome = classify(Some(response)).await;
            if throttled {
                assert!(
                    matches!(outcome, InvokeOutcome::Throttled { .. }),
                    "{outcome:?}"
                );
            } else {
                assert!(
                    matches!(outcome, InvokeOutcome::Transient { .. }),
                    "{outcome:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_dropped_connection_is_a_transient_failure() {
        assert!(matches!(
            classify(None).await,
            InvokeOutcome::Transient { .. }
        ));
    }

    #[tokio::test]
    async fn a_missing_function_is_a_permanent_failure_naming_the_problem() {
        let missing = http(
            "404 Not Found",
            "x-amzn-errortype: ResourceNotFoundException\r\n",
            r#"{"message":"Function not found: f"}"#,
        );
        assert!(
            matches!(classify(Some(missing)).await, InvokeOutcome::Permanent { message } if message.contains("Function not found")),
        );
    }

    /// What AWS's Runtime Interface Emulator answers (read in its source and seen with curl): no
    /// header but `Content-Type: text/plain` and the length, whatever the function did.
    fn rie(status: &str, body: &str) -> &'static str {
        http(status, "content-type: text/plain; charset=utf-8\r\n", body)
    }

    #[tokio::test]
    async fn the_runtime_interface_emulators_error_document_in_a_200_is_a_function_error() {
        let out = classify(Some(rie(
            "200 OK",
            r#"{"errorType":"KafkaRecordUndecodable","errorMessage":"record t-0@3: not JSON"}"#,
        )))
        .await;
        assert!(
            matches!(&out, InvokeOutcome::FunctionError { error_type, message } if error_type == "KafkaRecordUndecodable" && message.contains("t-0@3")),
            "{out:?}"
        );
    }

    #[tokio::test]
    async fn the_same_document_from_the_lambda_service_is_the_functions_output() {
        // The service sets X-Amz-Executed-Version on every invocation it ran, and
        // X-Amz-Function-Error on every failed one: without the latter, the body is output.
        let body =
            r#"{"errorType":"KafkaRecordUndecodable","errorMessage":"record t-0@3: not JSON"}"#;
        let out = classify(Some(http(
            "200 OK",
            "x-amz-executed-version: $LATEST\r\nx-amzn-requestid: 1\r\n",
            body,
        )))
        .await;
        assert_eq!(
            out,
            InvokeOutcome::Success {
                payload: body.as_bytes().to_vec()
            }
        );
    }

    #[tokio::test]
    async fn behind_an_emulator_only_the_runtimes_error_documents_are_errors() {
        for (body, error) in [
            (
                r#"{"errorType":"E","errorMessage":"m","stackTrace":[],"cause":{}}"#,
                true,
            ),
            (r#"{"errorType":"E","errorMessage":"m","extra":1}"#, true),
            (r#"{"errorType":"E","errorMessage":"m","a":1,"b":2}"#, false),
            // Python's awslambdaric (the conformance suite's python-powertools function).
            (
                r#"{"errorMessage":"poison","errorType":"ValueError","requestId":"r-1","stackTrace":["  File x"]}"#,
                true,
            ),
            // Node.js's aws-lambda-ric.
            (
                r#"{"errorType":"Error","errorMessage":"poison","trace":["Error: poison"]}"#,
                true,
            ),
            (r#"{"errorType":"E","errorMessage":7}"#, false),
            (r#"{"errorMessage":"m"}"#, false),
            (r#"["errorType","errorMessage"]"#, false),
        ] {
            let out = classify(Some(rie("200 OK", body))).await;
            assert_eq!(
                matches!(out, InvokeOutcome::FunctionError { .. }),
                error,
                "{body}: {out:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_runtime_interface_emulators_timeout_text_is_a_function_timeout() {
        let out = classify(Some(rie("200 OK", "Task timed out after 2.00 seconds"))).await;
        assert!(
            matches!(&out, InvokeOutcome::FunctionError { error_type, message } if error_type == "Sandbox.Timedout" && message.contains("2.00 seconds")),
            "{out:?}"
        );
    }

    #[tokio::test]
    async fn the_runtime_interface_emulators_502_is_a_crashed_function() {
        let exit = r#"{"errorType":"Runtime.ExitError","errorMessage":"RequestId: 1 Error: Runtime exited with error: exit status 7"}"#;
        for body in [exit, ""] {
            let out = classify(Some(rie("502 Bad Gateway", body))).await;
            assert!(
                matches!(&out, InvokeOutcome::FunctionError { error_type, .. } if error_type == "Runtime.ExitError"),
                "{body}: {out:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_emulators_408_is_a_function_timeout() {
        let out = classify(Some(http("408 Request Timeout", "", ""))).await;
        assert!(
            matches!(&out, InvokeOutcome::FunctionError { error_type, .. } if error_type == "Sandbox.Timedout"),
            "{out:?}"
        );
    }
}
