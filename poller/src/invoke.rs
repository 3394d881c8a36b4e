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
    /// The function ran and failed (`X-Amz-Function-Error`, or the emulator's HTTP 500 error).
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
                match out.function_error {
                    Some(kind) => function_error(&payload, &kind),
                    None => InvokeOutcome::Success { payload },
                }
            }
            Err(err) => classify_error(err),
        }
    }

    fn function(&self) -> &str {
        &self.function
    }
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
                if let Some(body) = ctx.raw().body_bytes()
                    && let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
                    && v.get("errorType").is_some()
                {
                    return function_error(body, "Unhandled");
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

    #[tokio::test]
    async fn the_emulators_408_is_a_function_timeout() {
        let out = classify(Some(http("408 Request Timeout", "", ""))).await;
        assert!(
            matches!(&out, InvokeOutcome::FunctionError { error_type, .. } if error_type == "Sandbox.Timedout"),
            "{out:?}"
        );
    }
}
