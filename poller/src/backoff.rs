//! Exponential backoff with full jitter between retries.

use rand::Rng;
use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;

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
