//! Exponential backoff with full jitter between retries, and the waiting out of a broker's
//! transient answers to group and offset lookups.

use rand::Rng;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use std::time::{Duration, Instant};

/// Exponential backoff: attempt `n` waits a random time in `0..=min(max, base * 2^n)` ("full
/// jitter"), so many partitions retrying at once spread out instead of hammering together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    /// Ceiling of the first wait.
    pub base: Duration,
    /// Largest ceiling.
    pub max: Duration,
}

impl Backoff {
    /// The ceiling for retry number `attempt` (0-based), before jitter.
    pub(crate) fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// A jittered wait for retry number `attempt` (0-based); never below 1 ms so a tight loop
    /// cannot form.
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt).as_millis().max(1) as u64;
        Duration::from_millis(rand::rng().random_range(1..=ceiling))
    }
}

/// Whether a broker's answer passes by itself: a group coordinator that moves, is not yet
/// elected or is still loading the group's offsets (routine while the offsets topic is created on
/// a new cluster, and during broker restarts and reassignments), a partition leader being
/// elected, or a request that timed out or lost its connection or its broker. Anything else (a
/// refused ACL, an unknown topic, a bad request) is permanent for the lookup that got it.
pub(crate) fn is_transient(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::NotCoordinator
                | RDKafkaErrorCode::CoordinatorNotAvailable
                | RDKafkaErrorCode::CoordinatorLoadInProgress
                | RDKafkaErrorCode::WaitingForCoordinator
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::FencedLeaderEpoch
                | RDKafkaErrorCode::UnknownLeaderEpoch
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::NetworkException
                | RDKafkaErrorCode::BrokerNotAvailable
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                // librdkafka dropped its handle of a broker that left the cluster while the
                // request was on it (seen when the coordinator's broker is killed).
                | RDKafkaErrorCode::DestroyBroker
        )
    )
}

/// The waits between tries of a lookup that got a transient answer.
const TRANSIENT_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(200),
    max: Duration::from_secs(3),
};

/// Runs a blocking broker lookup (`lookup(timeout)`, where `timeout` is what is left of
/// `budget`, at most `per_try`), trying again after a jittered backoff while it fails with a
/// [transient](is_transient) answer, and logging what it waits for. Returns the first success, a
/// permanent error at once, or the last transient error once `budget` is spent.
pub(crate) fn retry_transient<T>(
    what: &str,
    budget: Duration,
    per_try: Duration,
    mut lookup: impl FnMut(Duration) -> Result<T, KafkaError>,
) -> Result<T, KafkaError> {
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        let left = budget.saturating_sub(started.elapsed());
        match lookup(left.min(per_try).max(Duration::from_millis(1))) {
            Ok(value) => return Ok(value),
            Err(error) if is_transient(&error) => {
                let wait = TRANSIENT_BACKOFF.delay(attempt);
                if started.elapsed() + wait >= budget {
                    tracing::warn!(%error, attempts = attempt + 1, budget_s = budget.as_secs_f64(),
                        "{what}: the broker still answers with a transient error after the whole budget; giving up");
                    return Err(error);
                }
                tracing::info!(%error, attempt = attempt + 1, retry_in_ms = wait.as_millis() as u64,
                    "{what}: the broker answered with a transient error (a group coordinator moving or loading, a leader election); waiting it out");
                std::thread::sleep(wait);
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(code: RDKafkaErrorCode) -> KafkaError {
        KafkaError::MetadataFetch(code)
    }

    #[test]
    fn coordinator_and_leader_changes_are_transient_and_refusals_are_not() {
        for transient in [
            RDKafkaErrorCode::NotCoordinator,
            RDKafkaErrorCode::CoordinatorNotAvailable,
            RDKafkaErrorCode::CoordinatorLoadInProgress,
            RDKafkaErrorCode::LeaderNotAvailable,
            RDKafkaErrorCode::OperationTimedOut,
        ] {
            assert!(is_transient(&code(transient)), "{transient:?}");
        }
        for permanent in [
            RDKafkaErrorCode::GroupAuthorizationFailed,
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::InvalidRequest,
        ] {
            assert!(!is_transient(&code(permanent)), "{permanent:?}");
        }
    }

    #[test]
    fn a_transient_answer_is_waited_out_until_the_lookup_succeeds() {
        let mut answers = vec![
            Err(code(RDKafkaErrorCode::CoordinatorLoadInProgress)),
            Err(code(RDKafkaErrorCode::NotCoordinator)),
            Ok(7),
        ]
        .into_iter();
        let got = retry_transient(
            "test lookup",
            Duration::from_secs(30),
            Duration::from_secs(1),
            |_| answers.next().unwrap(),
        );
        assert_eq!(got.unwrap(), 7);
        assert!(answers.next().is_none());
    }

    #[test]
    fn a_permanent_answer_ends_the_lookup_at_once() {
        let mut tries = 0;
        let got: Result<(), _> = retry_transient(
            "test lookup",
            Duration::from_secs(30),
            Duration::from_secs(1),
            |_| {
                tries += 1;
                Err(code(RDKafkaErrorCode::GroupAuthorizationFailed))
            },
        );
        assert_eq!(
            got.unwrap_err().rdkafka_error_code(),
            Some(RDKafkaErrorCode::GroupAuthorizationFailed)
        );
        assert_eq!(tries, 1);
    }

    #[test]
    fn a_transient_answer_that_outlasts_the_budget_is_returned() {
        let started = Instant::now();
        let mut tries = 0;
        let got: Result<(), _> = retry_transient(
            "test lookup",
            Duration::from_millis(600),
            Duration::from_millis(100),
            |timeout| {
                tries += 1;
                assert!(timeout <= Duration::from_millis(100));
                Err(code(RDKafkaErrorCode::NotCoordinator))
            },
        );
        assert_eq!(
            got.unwrap_err().rdkafka_error_code(),
            Some(RDKafkaErrorCode::NotCoordinator)
        );
        assert!(tries >= 2, "tried again before the budget ran out: {tries}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let ceilings: Vec<u128> = (0..6).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.ceiling(1000), Duration::from_secs(1));
    }

    #[test]
    fn delays_stay_within_the_ceiling() {
        let b = Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_millis(50),
        };
        for attempt in 0..20 {
            let d = b.delay(attempt);
            assert!(
                d >= Duration::from_millis(1) && d <= b.ceiling(attempt),
                "{d:?}"
            );
        }
    }
}
