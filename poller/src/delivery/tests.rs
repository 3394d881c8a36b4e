//! The driver against a scripted function: what reaches the function, in what order, and which
//! offsets are marked done. The decisions themselves are tested in `plan`.

use super::*;
use crate::batch::{BatchBuilder, EventHeader};
use crate::config::{Config, Mapping};
use kafka_lambda_events::{EventSource, KafkaEvent, TimestampType};
use std::sync::Mutex;

type Script = dyn Fn(usize, &[i64]) -> InvokeOutcome + Send + Sync;

/// An invoker whose outcome is decided by the call number and the offsets in the payload.
pub(super) struct Scripted {
    script: Box<Script>,
    /// The offsets of every invocation, in call order.
    pub(super) calls: Mutex<Vec<Vec<i64>>>,
}

impl Invoker for Scripted {
    async fn invoke(&self, payload: Bytes) -> InvokeOutcome {
        let offsets: Vec<i64> = KafkaEvent::from_slice(&payload)
            .unwrap()
            .records()
            .map(|r| r.offset)
            .collect();
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(offsets.clone());
            calls.len() - 1
        };
        (self.script)(n, &offsets)
    }
    fn function(&self) -> &str {
        "scripted"
    }
}

fn mapping(extra: &str) -> Mapping {
    let backoff = if extra.contains("retry_backoff") {
        ""
    } else {
        "retry_backoff_base_ms = 1\nretry_backoff_max_ms = 2"
    };
    let text = format!(
        "[kafka]\nbootstrap_servers = \"k:9092\"\n[[mapping]]\nfunction = \"f\"\ntopics = [\"t\"]\n{backoff}\n{extra}\n"
    );
    let config: Config = toml::from_str(&text).unwrap();
    config.validate().unwrap().mappings.remove(0)
}

pub(super) fn shared(
    extra: &str,
    script: impl Fn(usize, &[i64]) -> InvokeOutcome + Send + Sync + 'static,
) -> Deliverer<Scripted> {
    let mapping = mapping(extra);
    Deliverer::new(
        &mapping,
        Resources {
            header: EventHeader {
                source: EventSource::SelfManagedKafka,
                arn: None,
                bootstrap_servers: "k:9092".into(),
            },
            invoker: Scripted {
                script: Box::new(script),
                calls: Mutex::new(Vec::new()),
            },
            dead_letter: None,
            metrics: MappingMetrics::new("g", "f"),
            principal: Principal::Anonymous,
            health: Arc::new(Health::new(1)),
        },
    )
}

pub(super) fn batch(shared: &Deliverer<Scripted>, offsets: std::ops::Range<i64>) -> Batch {
    let mut b = BatchBuilder::new(shared.header(), 10_000, 1 << 20);
    for offset in offsets {
        let record = PolledRecord {
            offset,
            timestamp: 1_700_000_000_000,
            timestamp_type: TimestampType::CreateTime,
            key: None,
            value: Some(format!("{{\"n\":{offset}}}").into_bytes()),
            headers: Vec::new(),
            original_value: None,
            original_key: None,
            key_schema_metadata: None,
            value_schema_metadata: None,
        };
        b.try_add(
            &record.as_record_ref("t", 0),
            crate::batch::Original::default(),
        )
        .unwrap();
    }
    b.finish()
}

pub(super) fn error() -> InvokeOutcome {
    InvokeOutcome::FunctionError {
        error_type: "Boom".into(),
        message: "boom".into(),
    }
}

pub(super) fn ok() -> InvokeOutcome {
    InvokeOutcome::Success {
        payload: Vec::new(),
    }
}

/// Delivers the batch of `offsets` to its end, which it must reach ([`Delivery::Done`]): the
/// offsets marked done, and the offsets of every invocation, in call order.
async fn deliver_all(
    shared: &Deliverer<Scripted>,
    offsets: std::ops::Range<i64>,
) -> (Vec<i64>, Vec<Vec<i64>>) {
    let mut done = Vec::new();
    let delivery = shared
        .deliver(
            "t",
            0,
            batch(shared, offsets),
            &CancellationToken::new(),
            &mut None,
            |o| done.push(o),
        )
        .await;
    assert_eq!(delivery, Delivery::Done);
    let calls = shared.invoker.calls.lock().unwrap().clone();
    (done, calls)
}

#[tokio::test]
async fn throttles_and_transient_failures_do_not_use_up_the_retry_budget() {
    let s = shared("max_retry_attempts = 1", |n, _| match n {
        0 => InvokeOutcome::Throttled {
            message: "slow down".into(),
        },
        1 => InvokeOutcome::Transient {
            message: "503".into(),
        },
        2 => InvokeOutcome::Throttled {
            message: "slow down".into(),
        },
        3 => error(),
        _ => ok(),
    });
    let (done, calls) = deliver_all(&s, 0..4).await;
    assert_eq!(done, [3]);
    assert_eq!(
        calls.len(),
        5,
        "3 hiccups + 1 error + the retry that succeeded"
    );
}

#[tokio::test]
async fn record_age_is_checked_while_the_invocation_is_throttled() {
    // The test batch's records are from 2023: older than any max_record_age_s.
    let s = shared("max_record_age_s = 60", |_, _| InvokeOutcome::Throttled {
        message: "slow down".into(),
    });
    let (done, calls) = deliver_all(&s, 0..2).await;
    assert_eq!(done, [1], "given up (skipped) once too old");
    assert_eq!(calls.len(), 1);
}

#[tokio::test]
async fn exhausted_retries_without_a_destination_skip_the_batch_and_finish_it() {
    let s = shared("max_retry_attempts = 2", |_, _| error());
    let (done, calls) = deliver_all(&s, 10..13).await;
    assert_eq!(done, [12]);
    assert_eq!(calls.len(), 3, "1 invocation + 2 retries");
}

#[tokio::test]
async fn bisection_isolates_the_poison_record_and_delivers_the_rest_in_order() {
    let s = shared(
        "max_retry_attempts = 0\nbisect_batch_on_function_error = true",
        |_, offsets| {
            if offsets.contains(&5) { error() } else { ok() }
        },
    );
    let (done, calls) = deliver_all(&s, 0..8).await;
    assert_eq!(
        done,
        [3, 4, 5, 7],
        "segments finish in order; 5 is given up (skipped) alone"
    );
    assert_eq!(calls.last().unwrap(), &[6, 7]);
    assert!(
        calls.contains(&vec![5]),
        "the poison record was invoked alone: {calls:?}"
    );
    let delivered: Vec<i64> = calls
        .iter()
        .filter(|c| !c.contains(&5))
        .flatten()
        .copied()
        .collect();
    assert_eq!(delivered, [0, 1, 2, 3, 4, 6, 7]);
}

#[tokio::test]
async fn a_partial_response_finishes_the_records_before_the_failure_and_retries_the_rest() {
    let s = shared("report_batch_item_failures = true", |n, _| {
        match n {
        0 => InvokeOutcome::Success {
            // The three identifier forms in use: a string, this crate's old key, Powertools' key.
            payload: br#"{"batchItemFailures":[{"itemIdentifier":{"partition":"t-0","offset":4}},{"itemIdentifier":"t-0-3"},{"itemIdentifier":{"topic-partition":"t-0","offset":5}}]}"#.to_vec(),
        },
        _ => ok(),
    }
    });
    let (done, calls) = deliver_all(&s, 0..6).await;
    assert_eq!(
        done,
        [2, 5],
        "0..=2 done after the first call, the rest after the retry"
    );
    assert_eq!(calls[1], [3, 4, 5], "retried from the lowest failed offset");
}

/// A response naming every record of `poison` present in the invoked batch as failed, as
/// Powertools for AWS Lambda (Python) writes it.
fn failing(poison: &'static [i64]) -> impl Fn(usize, &[i64]) -> InvokeOutcome {
    move |_, offsets| {
        let failures: Vec<String> = offsets
            .iter()
            .filter(|o| poison.contains(o))
            .map(|o| format!(r#"{{"itemIdentifier":{{"partition":"t-0","offset":{o}}}}}"#))
            .collect();
        InvokeOutcome::Success {
            payload: format!(r#"{{"batchItemFailures":[{}]}}"#, failures.join(",")).into_bytes(),
        }
    }
}

#[tokio::test]
async fn a_record_failed_in_partial_responses_is_given_up_alone_and_the_rest_invoked_again() {
    let s = shared(
        "report_batch_item_failures = true\nmax_retry_attempts = 1",
        failing(&[3]),
    );
    let (done, calls) = deliver_all(&s, 0..10).await;
    assert_eq!(done, [2, 3, 9], "0..=2, then 3 given up, then 4..=9");
    let expected: [Vec<i64>; 3] = [(0..10).collect(), (3..10).collect(), (4..10).collect()];
    assert_eq!(
        calls, expected,
        "the rest after the given-up record is invoked again"
    );
}

#[tokio::test]
async fn each_failed_record_has_its_own_retry_budget() {
    let s = shared(
        "report_batch_item_failures = true\nmax_retry_attempts = 1",
        failing(&[3, 6]),
    );
    let (done, calls) = deliver_all(&s, 0..10).await;
    assert_eq!(done, [2, 3, 5, 6, 9]);
    let firsts: Vec<i64> = calls.iter().map(|c| c[0]).collect();
    assert_eq!(
        firsts,
        [0, 3, 4, 6, 7],
        "3 and 6 each get one retry: progress to 6 resets the budget"
    );
}

#[tokio::test]
async fn a_response_naming_a_record_outside_the_batch_fails_the_whole_batch() {
    let s = shared(
        "report_batch_item_failures = true\nmax_retry_attempts = 0",
        |_, _| InvokeOutcome::Success {
            payload: br#"{"batchItemFailures":[{"itemIdentifier":"other-0-1"}]}"#.to_vec(),
        },
    );
    let (done, calls) = deliver_all(&s, 0..3).await;
    assert_eq!(done, [2], "given up (skipped: no destination) as a whole");
    assert_eq!(calls.len(), 1);
}

#[tokio::test]
async fn an_abort_during_backoff_abandons_without_marking_anything_done() {
    let s = shared(
        "retry_backoff_base_ms = 60000\nretry_backoff_max_ms = 60000",
        |_, _| error(),
    );
    let abort = CancellationToken::new();
    abort.cancel();
    let mut done = Vec::new();
    let delivery = s
        .deliver("t", 0, batch(&s, 0..3), &abort, &mut None, |o| done.push(o))
        .await;
    assert_eq!(delivery, Delivery::Abandoned);
    assert!(done.is_empty());
}
