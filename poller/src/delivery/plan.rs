//! The decisions of delivery, without side effects: given where a segment of a batch stands and
//! how its last invocation went, [`plan`] says what happens next. The driver in
//! [`delivery`](super) performs the step (waits, invokes, dead-letters, stores offsets); this
//! module never waits, logs or counts, so every decision is unit-tested as a table.
//!
//! The rules, as the README's failure table states them:
//!
//! | the invocation | what happens |
//! |---|---|
//! | finished every record | the segment is done |
//! | throttled, or a service/network failure | wait (exponential backoff), invoke the same records again; no retry is used up |
//! | rejected (permission, no such function) | wait the longest backoff, invoke again; no retry is used up |
//! | function error, bisecting on, more than one record | split in two halves, each invoked at once, left first |
//! | function error or unreadable response | one retry used: wait the backoff, invoke again; out of retries: give the segment up |
//! | partial response failing record *n* | records before *n* done (progress resets the retry budget); one retry used for *n*: wait, invoke *n* and the rest; out of retries: give *n* up alone, invoke the rest with a fresh budget |
//!
//! Before every invocation but the first, records older than `max_record_age` are given up
//! ([`Policy::expired`]).

use crate::backoff::Backoff;
use std::time::Duration;

/// What the mapping's settings say about failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    /// Retries after a function error or failed record (`None`: forever).
    pub max_retry_attempts: Option<u32>,
    /// Split a batch in two on a function error.
    pub bisect: bool,
    /// Waits between attempts.
    pub backoff: Backoff,
    /// Give records up once this old (`None`: never).
    pub max_record_age: Option<Duration>,
}

/// Where a segment stands: the counters its decisions depend on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tries {
    /// Retries used by function errors and failed records (the budget `max_retry_attempts` caps).
    pub retries: u32,
    /// Invocations that reached the function (the `attempts` a dead letter reports).
    pub attempts: u32,
    /// Throttles and service failures in a row (they drive only their own backoff).
    pub hiccups: u32,
}

/// How an invocation of a segment went, as far as decisions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The function finished every record (or its partial response is ignored by setting).
    Delivered,
    /// The function finished the first `done` records and failed the next one (partial batch
    /// response; later records are unknown).
    RecordFailed {
        /// Records before the failed one.
        done: usize,
    },
    /// The function returned an error: no record is named.
    FunctionError,
    /// The function's partial batch response cannot be trusted (malformed, or naming a record
    /// outside the batch): the segment counts as failed, and is not bisected.
    UnreadableResponse,
    /// The invocation did not run the function.
    NotRun(NotRun),
}

/// Why an invocation did not run the function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotRun {
    /// Lambda throttled it (429, concurrency).
    Throttled,
    /// A service or network failure that may pass by itself.
    Transient,
    /// Rejected in a way that needs an operator (no such function, no permission).
    Permanent,
}

/// What to do with a segment after an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Every record of the segment is done.
    Done,
    /// Split the segment into two halves, each invoked at once (left first) with `tries`.
    Bisect {
        /// The counters both halves start with.
        tries: Tries,
    },
    /// The first `done` records are done; after `wait`, invoke the rest again with `tries`.
    Retry {
        /// Records done before the retry.
        done: usize,
        /// How long to wait first.
        wait: Duration,
        /// The counters of what is retried.
        tries: Tries,
    },
    /// The first `done` records are done; give up the next `give_up` records (dead-letter or
    /// skip); then the rest, if any, is invoked at once with `tries`.
    GiveUp {
        /// Records done before those given up.
        done: usize,
        /// Records given up.
        give_up: usize,
        /// The counters of the rest (a fresh budget: what failed is no longer in it).
        tries: Tries,
    },
}

impl Policy {
    /// Whether the record age is checked before invoking a segment with `tries`: before every
    /// invocation but the first.
    pub(crate) fn checks_age(&self, tries: Tries) -> bool {
        self.max_record_age.is_some() && (tries.attempts > 0 || tries.hiccups > 0)
    }

    /// Whether a record with `timestamp` (ms since the epoch; negative: none) is too old at
    /// `now_ms` to be invoked again. A record without a timestamp never expires.
    pub(crate) fn expired(&self, timestamp: i64, now_ms: i64) -> bool {
        self.max_record_age
            .is_some_and(|age| timestamp >= 0 && now_ms - timestamp > age.as_millis() as i64)
    }

    fn out_of_retries(&self, retries: u32) -> bool {
        self.max_retry_attempts.is_some_and(|max| retries > max)
    }
}

/// How long to wait after an invocation that did not run the function, and the counters after
/// it: only its own backoff grows.
pub(crate) fn not_run(policy: &Policy, tries: Tries, why: NotRun) -> (Duration, Tries) {
    let wait = match why {
        NotRun::Permanent => policy.backoff.max,
        NotRun::Throttled | NotRun::Transient => policy.backoff.delay(tries.hiccups),
    };
    let tries = Tries {
        hiccups: tries.hiccups.saturating_add(1),
        ..tries
    };
    (wait, tries)
}

/// What happens to a segment of `len` records with `tries` whose invocation ended in `outcome`.
pub(crate) fn plan(policy: &Policy, tries: Tries, len: usize, outcome: Outcome) -> Step {
    // An invocation that did not run the function uses up nothing but its own backoff; a
    // rejection needs an operator, so it waits the longest.
    if let Outcome::NotRun(why) = outcome {
        let (wait, tries) = not_run(policy, tries, why);
        return Step::Retry {
            done: 0,
            wait,
            tries,
        };
    }
    let ran = Tries {
        attempts: tries.attempts + 1,
        ..tries
    };
    let (done, retries) = match outcome {
        Outcome::Delivered => return Step::Done,
        Outcome::FunctionError if policy.bisect && len > 1 => return Step::Bisect { tries: ran },
        Outcome::FunctionError | Outcome::UnreadableResponse => (0, ran.retries + 1),
        // Progress resets the budget: it is per record, and this one failed for the first time.
        Outcome::RecordFailed { done } if done > 0 => (done, 1),
        Outcome::RecordFailed { done } => (done, ran.retries + 1),
        Outcome::NotRun(_) => unreachable!("handled above"),
    };
    if policy.out_of_retries(retries) {
        // A partial response names the record that failed: it alone is given up, and the
        // records after it, which the function never finished, are invoked again. A function
        // error names none: the whole segment is given up (bisecting isolates the record).
        let give_up = match outcome {
            Outcome::RecordFailed { .. } => 1,
            _ => len,
        };
        return Step::GiveUp {
            done,
            give_up,
            tries: Tries {
                retries: 0,
                hiccups: 0,
                ..ran
            },
        };
    }
    Step::Retry {
        done,
        wait: policy.backoff.delay(retries - 1),
        tries: Tries {
            retries,
            hiccups: 0,
            ..ran
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Backoff = Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_millis(800),
    };

    fn policy(max_retry_attempts: Option<u32>, bisect: bool) -> Policy {
        Policy {
            max_retry_attempts,
            bisect,
            backoff: BACKOFF,
            max_record_age: None,
        }
    }

    fn tries(retries: u32, attempts: u32, hiccups: u32) -> Tries {
        Tries {
            retries,
            attempts,
            hiccups,
        }
    }

    const ALL_OUTCOMES: [Outcome; 8] = [
        Outcome::Delivered,
        Outcome::RecordFailed { done: 0 },
        Outcome::RecordFailed { done: 2 },
        Outcome::FunctionError,
        Outcome::UnreadableResponse,
        Outcome::NotRun(NotRun::Throttled),
        Outcome::NotRun(NotRun::Transient),
        Outcome::NotRun(NotRun::Permanent),
    ];

    /// Every outcome under every policy, for a 4-record segment that has been invoked once and
    /// retried once (`retries = 1, attempts = 2`) after one throttle (`hiccups = 1`).
    #[test]
    fn every_outcome_under_every_policy() {
        let before = tries(1, 2, 1);
        // Backoff `delay(n)` is jittered up to `ceiling(n)`: compared by ceiling below.
        use Outcome::*;
        #[rustfmt::skip]
        let table: Vec<(Option<u32>, bool, Outcome, Expect)> = vec![
            // Delivered: done, whatever the policy.
            (None,    false, Delivered, Expect::Is(Step::Done)),
            (Some(0), false, Delivered, Expect::Is(Step::Done)),
            (Some(1), true,  Delivered, Expect::Is(Step::Done)),
            // A failed record with nothing before it: one more retry of the same record.
            (None,    false, RecordFailed { done: 0 }, Expect::Retry { done: 0, ceiling: 1, tries: tries(2, 3, 0) }),
            (Some(2), false, RecordFailed { done: 0 }, Expect::Retry { done: 0, ceiling: 1, tries: tries(2, 3, 0) }),
            (Some(1), false, RecordFailed { done: 0 }, Expect::Is(Step::GiveUp { done: 0, give_up: 1, tries: tries(0, 3, 0) })),
            (Some(1), true,  RecordFailed { done: 0 }, Expect::Is(Step::GiveUp { done: 0, give_up: 1, tries: tries(0, 3, 0) })),
            // A failed record after progress: its budget starts afresh.
            (Some(1), false, RecordFailed { done: 2 }, Expect::Retry { done: 2, ceiling: 0, tries: tries(1, 3, 0) }),
            (Some(0), false, RecordFailed { done: 2 }, Expect::Is(Step::GiveUp { done: 2, give_up: 1, tries: tries(0, 3, 0) })),
            (Some(0), true,  RecordFailed { done: 2 }, Expect::Is(Step::GiveUp { done: 2, give_up: 1, tries: tries(0, 3, 0) })),
            (None,    true,  RecordFailed { done: 2 }, Expect::Retry { done: 2, ceiling: 0, tries: tries(1, 3, 0) }),
            // A function error: bisected when asked to, else retried, then given up whole.
            (None,    false, FunctionError, Expect::Retry { done: 0, ceiling: 1, tries: tries(2, 3, 0) }),
            (Some(2), false, FunctionError, Expect::Retry { done: 0, ceiling: 1, tries: tries(2, 3, 0) }),
            (Some(1), false, FunctionError, Expect::Is(Step::GiveUp { done: 0, give_up: 4, tries: tries(0, 3, 0) })),
            (Some(1), true,  FunctionError, Expect::Is(Step::Bisect { tries: tries(1, 3, 1) })),
            (None,    true,  FunctionError, Expect::Is(Step::Bisect { tries: tries(1, 3, 1) })),
            // An unreadable response: like a function error, but never bisected.
            (None,    true,  UnreadableResponse, Expect::Retry { done: 0, ceiling: 1, tries: tries(2, 3, 0) }),
            (Some(1), true,  UnreadableResponse, Expect::Is(Step::GiveUp { done: 0, give_up: 4, tries: tries(0, 3, 0) })),
            (Some(1), false, UnreadableResponse, Expect::Is(Step::GiveUp { done: 0, give_up: 4, tries: tries(0, 3, 0) })),
            // Not run: no retry used, no attempt counted, whatever the budget.
            (Some(0), false, NotRun(super::NotRun::Throttled), Expect::Retry { done: 0, ceiling: 1, tries: tries(1, 2, 2) }),
            (Some(0), true,  NotRun(super::NotRun::Transient), Expect::Retry { done: 0, ceiling: 1, tries: tries(1, 2, 2) }),
            (None,    false, NotRun(super::NotRun::Permanent), Expect::Is(Step::Retry { done: 0, wait: BACKOFF.max, tries: tries(1, 2, 2) })),
        ];
        let mut covered = std::collections::HashSet::new();
        for (max, bisect, outcome, expect) in table {
            let step = plan(&policy(max, bisect), before, 4, outcome);
            expect.check(
                step,
                &format!("{outcome:?} with max {max:?}, bisect {bisect}"),
            );
            covered.insert(format!("{outcome:?}"));
        }
        for outcome in ALL_OUTCOMES {
            assert!(
                covered.contains(&format!("{outcome:?}")),
                "{outcome:?} has no row"
            );
        }
    }

    #[derive(Debug)]
    enum Expect {
        /// Exactly this step.
        Is(Step),
        /// A retry whose wait is at most `BACKOFF.ceiling(ceiling)`.
        Retry {
            done: usize,
            ceiling: u32,
            tries: Tries,
        },
    }

    impl Expect {
        fn check(&self, step: Step, case: &str) {
            match (self, step) {
                (Expect::Is(expected), got) => assert_eq!(*expected, got, "{case}"),
                (
                    Expect::Retry {
                        done,
                        ceiling,
                        tries,
                    },
                    Step::Retry {
                        done: d,
                        wait,
                        tries: t,
                    },
                ) => {
                    assert_eq!((*done, *tries), (d, t), "{case}");
                    assert!(wait <= BACKOFF.ceiling(*ceiling), "{case}: waits {wait:?}");
                }
                (expected, got) => panic!("{case}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn a_single_record_is_never_bisected() {
        let step = plan(
            &policy(Some(0), true),
            Tries::default(),
            1,
            Outcome::FunctionError,
        );
        assert_eq!(
            step,
            Step::GiveUp {
                done: 0,
                give_up: 1,
                tries: tries(0, 1, 0)
            }
        );
    }

    #[test]
    fn a_first_invocation_that_fails_with_no_retries_allowed_gives_up_at_once() {
        for outcome in [Outcome::FunctionError, Outcome::UnreadableResponse] {
            let step = plan(&policy(Some(0), false), Tries::default(), 3, outcome);
            assert_eq!(
                step,
                Step::GiveUp {
                    done: 0,
                    give_up: 3,
                    tries: tries(0, 1, 0)
                },
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn backoff_grows_with_the_retries_and_with_hiccups_separately() {
        let p = policy(None, false);
        let mut t = Tries::default();
        for n in 0..5 {
            match plan(&p, t, 2, Outcome::FunctionError) {
                Step::Retry { wait, tries, .. } => {
                    assert!(wait <= BACKOFF.ceiling(n), "retry {n}: {wait:?}");
                    assert_eq!(tries.retries, n + 1);
                    t = tries;
                }
                other => panic!("{other:?}"),
            }
        }
        match plan(&p, t, 2, Outcome::NotRun(NotRun::Throttled)) {
            Step::Retry { wait, tries, .. } => {
                assert!(
                    wait <= BACKOFF.ceiling(0),
                    "the first hiccup waits the least"
                );
                assert_eq!((tries.retries, tries.hiccups), (5, 1));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_age_is_checked_before_every_invocation_but_the_first() {
        let p = Policy {
            max_record_age: Some(Duration::from_secs(60)),
            ..policy(None, false)
        };
        assert!(!p.checks_age(Tries::default()));
        assert!(p.checks_age(tries(0, 1, 0)));
        assert!(p.checks_age(tries(0, 0, 1)), "after a throttle too");
        assert!(
            !policy(None, false).checks_age(tries(3, 3, 3)),
            "no limit set"
        );
        let now = 1_000_000_000;
        assert!(p.expired(now - 60_001, now));
        assert!(!p.expired(now - 60_000, now));
        assert!(!p.expired(-1, now), "no timestamp: never too old");
    }
}
