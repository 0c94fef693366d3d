//! The one retry schedule of every call to the control plane (the policy
//! stream's reconnects, telemetry uploads): exponential, capped, jittered,
//! from the `backon` crate.

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use std::time::Duration;

/// Exponential backoff with jitter, capped: the `n`-th delay (from 0) is
/// drawn from `[c/2, c)` where the ceiling `c = min(base · 2ⁿ, max)`, so
/// agents that failed together do not retry together, and no delay
/// reaches `max`.
#[derive(Debug)]
pub struct Backoff {
    builder: ExponentialBuilder,
    delays: ExponentialBackoff,
    max: Duration,
}

impl Backoff {
    /// A schedule whose first ceiling is `base` and never exceeds `max`
    /// (a `max` below `base` counts as `base`).
    pub fn new(base: Duration, max: Duration) -> Self {
        // backon's jitter adds up to one more delay ([d, 2d)): start from
        // half the ceiling so that each delay stays below the ceiling.
        let builder = ExponentialBuilder::new()
            .with_min_delay(base / 2)
            .with_max_delay(max.max(base) / 2)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times();
        Self {
            builder,
            delays: builder.build(),
            max: max.max(base),
        }
    }

    /// The next delay; advances the schedule.
    pub fn next_delay(&mut self) -> Duration {
        // Without a limit on attempts or total delay the iterator never
        // ends; the fallback only keeps this function total.
        self.delays.next().unwrap_or(self.max)
    }

    /// Back to the first delay (after a healthy stream or a sent batch).
    pub fn reset(&mut self) {
        self.delays = self.builder.build();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_jittered_capped_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let ceilings = [100, 200, 400, 800, 1600, 2000, 2000, 2000];
        for ceiling in ceilings.map(Duration::from_millis) {
            let d = b.next_delay();
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "{d:?} outside [{:?}, {ceiling:?}]",
                ceiling / 2
            );
        }
        b.reset();
        let first = b.next_delay();
        assert!(
            first <= Duration::from_millis(100),
            "reset starts over: {first:?}"
        );
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..20 {
            seen.insert(Backoff::new(Duration::from_secs(1), Duration::from_secs(8)).next_delay());
        }
        assert!(seen.len() > 1, "twenty agents, one delay: {seen:?}");
    }

    #[test]
    fn many_attempts_do_not_overflow() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..200 {
            assert!(b.next_delay() <= Duration::from_secs(60));
        }
    }

    /// Under a paused clock: a run of failures waits about the sum of the
    /// schedule (jitter keeps each wait in its upper half), never more.
    #[tokio::test(start_paused = true)]
    async fn failures_wait_the_schedule() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let start = tokio::time::Instant::now();
        for _ in 0..6 {
            tokio::time::sleep(b.next_delay()).await;
        }
        // Ceilings 1+2+4+8+8+8 = 31 s; each wait is in [ceiling/2, ceiling].
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(15_500) && waited <= Duration::from_secs(31),
            "{waited:?}"
        );
        b.reset();
        let start = tokio::time::Instant::now();
        tokio::time::sleep(b.next_delay()).await;
        assert!(
            start.elapsed() <= Duration::from_secs(1),
            "reset starts over"
        );
    }
}
