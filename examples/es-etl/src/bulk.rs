//! The `_bulk` request and what its answer means for each document.
//!
//! A bulk request answers HTTP 200 even when documents fail; each failure is in its own item,
//! in request order:
//!
//! ```json
//! {"took":3,"errors":true,"items":[
//!   {"index":{"_index":"logs-2020.07.28","_id":"t-0-1","status":201,"result":"created"}},
//!   {"index":{"_index":"logs-2020.07.28","_id":"t-0-2","status":400,
//!             "error":{"type":"mapper_parsing_exception","reason":"failed to parse field [returnCode]"}}},
//!   {"index":{"_index":"logs-2020.07.28","_id":"t-0-3","status":429,
//!             "error":{"type":"es_rejected_execution_exception","reason":"rejected execution"}}}]}
//! ```

use crate::config::{Config, Credentials};
use reqwest::header::CONTENT_TYPE;
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// The media type of a bulk body (newline-delimited JSON).
const NDJSON: &str = "application/x-ndjson";
/// How much of an unexpected response body an error message quotes.
const QUOTED_BODY_CHARS: usize = 300;

/// Sends bulk requests to one cluster. Cheap to clone; made once per execution environment so
/// connections are reused across invocations.
#[derive(Debug, Clone)]
pub(crate) struct BulkClient {
    http: reqwest::Client,
    url: Url,
    credentials: Option<Credentials>,
}

/// A bulk request failed as a whole: nothing can be said about any document, so the batch is
/// retried.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BulkError {
    /// The HTTP client could not be set up (TLS initialisation).
    #[error("cannot set up the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// No answer: connection refused, DNS, TLS, timeout.
    #[error("the bulk request to {url} failed: {source}")]
    Unreachable {
        /// The bulk endpoint.
        url: Url,
        /// What went wrong, with its causes.
        #[source]
        source: reqwest::Error,
    },
    /// The cluster refused the whole request (wrong credentials, overloaded, body too large).
    #[error("{url} refused the bulk request with HTTP {status}: {reason}")]
    Refused {
        /// The bulk endpoint.
        url: Url,
        /// The HTTP status.
        status: StatusCode,
        /// The error the cluster gave, or the start of the body.
        reason: String,
    },
    /// The answer is not a bulk response for these documents.
    #[error(
        "{url} answered the bulk request with something that is not its bulk response: {problem}"
    )]
    Malformed {
        /// The bulk endpoint.
        url: Url,
        /// What is wrong with it.
        problem: String,
    },
}

impl BulkClient {
    /// A client for the cluster `config` names.
    pub(crate) fn new(config: &Config) -> Result<Self, BulkError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("kafka-lambda-es-etl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(BulkError::Client)?;
        Ok(BulkClient {
            http,
            url: config.bulk_url.clone(),
            credentials: config.credentials.clone(),
        })
    }

    /// Posts `body` (which holds `documents` documents) and returns each document's result, in
    /// request order.
    pub(crate) async fn send(
        &self,
        body: Vec<u8>,
        documents: usize,
    ) -> Result<Vec<ItemResult>, BulkError> {
        let mut request = self
            .http
            .post(self.url.clone())
            .header(CONTENT_TYPE, NDJSON)
            .body(body);
        if let Some(Credentials { user, password }) = &self.credentials {
            request = request.basic_auth(user, Some(password));
        }
        let unreachable = |source| BulkError::Unreachable {
            url: self.url.clone(),
            source,
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(BulkError::Refused {
                url: self.url.clone(),
                status,
                reason: error_reason(&body),
            });
        }
        parse_response(&body, documents).map_err(|problem| BulkError::Malformed {
            url: self.url.clone(),
            problem,
        })
    }
}

/// What happened to one document.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct ItemResult {
    /// The HTTP status of this document's operation.
    pub(crate) status: u16,
    /// Why it failed, when it did.
    #[serde(default)]
    pub(crate) error: Option<ItemError>,
}

/// The error of one failed document.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct ItemError {
    /// Elasticsearch's error type, e.g. `mapper_parsing_exception`.
    #[serde(rename = "type", default)]
    pub(crate) kind: String,
    /// The explanation.
    #[serde(default)]
    pub(crate) reason: String,
}

/// What to do about a document after the bulk request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// Indexed (2xx).
    Indexed,
    /// Refused for good (4xx other than 429, e.g. a mapping conflict): sending it again gives
    /// the same answer, so it is logged and counted as done.
    Rejected,
    /// Refused for now (429 too many requests, 5xx): sent again.
    Retry,
}

impl ItemResult {
    /// What to do about the document.
    pub(crate) fn disposition(&self) -> Disposition {
        match self.status {
            200..=299 => Disposition::Indexed,
            429 | 500..=599 => Disposition::Retry,
            _ => Disposition::Rejected,
        }
    }
}

impl fmt::Display for ItemResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if let Some(error) = &self.error {
            write!(f, " {}: {}", error.kind, error.reason)?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct BulkResponse {
    items: Vec<BTreeMap<String, ItemResult>>,
}

/// Each document's result from a bulk response body; `documents` items are expected.
pub(crate) fn parse_response(body: &[u8], documents: usize) -> Result<Vec<ItemResult>, String> {
    let response: BulkResponse = serde_json::from_slice(body)
        .map_err(|error| format!("{error}; the body starts with {}", quote(body)))?;
    if response.items.len() != documents {
        return Err(format!(
            "{} items for {documents} documents",
            response.items.len()
        ));
    }
    response
        .items
        .into_iter()
        .enumerate()
        .map(|(position, item)| {
            // One operation per item, keyed by its action (`index`).
            let mut results = item.into_values();
            match (results.next(), results.next()) {
                (Some(result), None) => Ok(result),
                _ => Err(format!(
                    "item {position} is not a single operation's result"
                )),
            }
        })
        .collect()
}

/// The `error.type: error.reason` of an error response, else the start of the body.
fn error_reason(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorResponse {
        error: ErrorBody,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ErrorBody {
        Structured(ItemError),
        Text(String),
    }
    match serde_json::from_slice::<ErrorResponse>(body) {
        Ok(ErrorResponse {
            error: ErrorBody::Structured(error),
        }) => format!("{}: {}", error.kind, error.reason),
        Ok(ErrorResponse {
            error: ErrorBody::Text(text),
        }) => text,
        Err(_) => quote(body),
    }
}

fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut quoted: String = text.chars().take(QUOTED_BODY_CHARS).collect();
    if quoted.len() < text.len() {
        quoted.push('…');
    }
    format!("{quoted:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIXED: &str = r#"{"took":3,"errors":true,"items":[
        {"index":{"_index":"logs-2020.07.28","_id":"t-0-1","_version":1,"result":"created","status":201}},
        {"index":{"_index":"logs-2020.07.28","_id":"t-0-2","status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [returnCode] of type [long]"}}},
        {"index":{"_index":"logs-2020.07.28","_id":"t-0-3","status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution of coordinating operation"}}},
        {"index":{"_index":"logs-2020.07.28","_id":"t-0-4","status":503,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}},
        {"index":{"_index":"logs-2020.07.28","_id":"t-0-5","_version":2,"result":"updated","status":200}},
        {"index":{"_index":"logs-2020.07.28","_id":"t-0-6","status":409,"error":{"type":"version_conflict_engine_exception","reason":"conflict"}}}
    ]}"#;

    #[test]
    fn each_item_is_indexed_rejected_for_good_or_retried() {
        let results = parse_response(MIXED.as_bytes(), 6).unwrap();
        let dispositions: Vec<_> = results.iter().map(ItemResult::disposition).collect();
        use Disposition::*;
        assert_eq!(
            dispositions,
            [Indexed, Rejected, Retry, Retry, Indexed, Rejected]
        );
        assert_eq!(
            results[1].to_string(),
            "HTTP 400 mapper_parsing_exception: failed to parse field [returnCode] of type [long]"
        );
        assert_eq!(results[0].to_string(), "HTTP 201");
    }

    #[test]
    fn a_response_that_does_not_match_the_request_is_malformed() {
        assert_eq!(
            parse_response(MIXED.as_bytes(), 7).unwrap_err(),
            "6 items for 7 documents"
        );
        let error = parse_response(b"<html>Bad Gateway</html>", 1).unwrap_err();
        assert!(
            error.contains("the body starts with \"<html>Bad Gateway</html>\""),
            "{error}"
        );
        let error = parse_response(br#"{"items":[{}]}"#, 1).unwrap_err();
        assert_eq!(error, "item 0 is not a single operation's result");
    }

    #[test]
    fn refusals_quote_the_clusters_error() {
        let security = br#"{"error":{"root_cause":[],"type":"security_exception","reason":"unable to authenticate user [etl]"},"status":401}"#;
        assert_eq!(
            error_reason(security),
            "security_exception: unable to authenticate user [etl]"
        );
        assert_eq!(
            error_reason(
                br#"{"error":"Content-Type header [text/plain] is not supported","status":406}"#
            ),
            "Content-Type header [text/plain] is not supported"
        );
        let long = "x".repeat(1000);
        let quoted = error_reason(long.as_bytes());
        assert_eq!(quoted.chars().count(), QUOTED_BODY_CHARS + 3, "{quoted}");
    }
}
