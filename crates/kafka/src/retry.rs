//! Exponential backoff with jitter, shared by sink writes, dead-letter
//! produces and offset commits.

use crate::config::WorkerConfig;
use rand::Rng;
use std::time::Duration;

/// Exponential backoff with "equal jitter": half of each delay is fixed,
/// half random, so many workers retrying against one recovering target
/// (or one group coordinator) spread out instead of arriving together.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    jitter: bool,
}

impl Backoff {
    /// Starts at `initial`, doubles per attempt, never exceeds `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            jitter: true,
        }
    }

    /// The worker's configured retry bounds.
    pub fn from_config(cfg: &WorkerConfig) -> Self {
        Backoff::new(
            Duration::from_millis(cfg.retry_initial_ms),
            Duration::from_millis(cfg.retry_max_ms),
        )
    }

    /// The same delay every time (tests).
    #[cfg(test)]
    pub fn fixed(delay: Duration) -> Self {
        Backoff {
            initial: delay,
            max: delay,
            jitter: false,
        }
    }

    /// The delay before retry number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        let exp = self.initial.saturating_mul(factor).min(self.max);
        if !self.jitter {
            return exp;
        }
        let half = exp / 2;
        let extra = rand::rng().random_range(0..=half.as_millis() as u64);
        half + Duration::from_millis(extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_is_capped() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        for attempt in 1..30 {
            assert!(b.delay(attempt) <= Duration::from_millis(1000));
        }
        assert!(b.delay(1) >= Duration::from_millis(50));
        assert!(b.delay(10) >= Duration::from_millis(500));
    }
}
