//! The recovery policy: what a failed stream means and how long to wait.

use std::time::Duration;
use tonic::Code;

/// What to do after a stream failed with a given status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Transient (network, restart, overload): back off with jitter, retry.
    Retry,
    /// The control plane refused our credentials or scope. Retrying soon
    /// cannot help, but an operator may fix the token or its scope: log
    /// loudly and retry on the slow schedule, enforcing the cached policy.
    Refused,
    /// The two sides do not speak the same protocol (a bug or an
    /// incompatible version): retrying cannot help; stop syncing.
    Fatal,
}

/// Maps a gRPC status code to a [`Recovery`].
pub fn classify(code: Code) -> Recovery {
    match code {
        Code::Unauthenticated | Code::PermissionDenied => Recovery::Refused,
        Code::Unimplemented | Code::InvalidArgument => Recovery::Fatal,
        _ => Recovery::Retry,
    }
}

/// Exponential backoff with jitter, capped: each delay is drawn uniformly
/// from `[d/2, d]` where `d` doubles from `base` up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff starting at `base`, never above `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max: max.max(base),
            attempt: 0,
        }
    }

    /// The next delay (jittered) and advances the schedule.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        half + half.mul_f64(rand::random_range(0.0..=1.0))
    }

    /// The un-jittered upper bound of the next delay.
    pub fn ceiling(&self) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(31));
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Back to `base` (after a healthy stream).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_recovery() {
        assert_eq!(classify(Code::Unavailable), Recovery::Retry);
        assert_eq!(classify(Code::Internal), Recovery::Retry);
        assert_eq!(classify(Code::DeadlineExceeded), Recovery::Retry);
        assert_eq!(classify(Code::Unauthenticated), Recovery::Refused);
        assert_eq!(classify(Code::PermissionDenied), Recovery::Refused);
        assert_eq!(classify(Code::Unimplemented), Recovery::Fatal);
    }

    #[test]
    fn grows_jittered_capped_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut ceilings = Vec::new();
        for _ in 0..8 {
            let ceiling = b.ceiling();
            let d = b.next_delay();
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "{d:?} outside [{:?}, {ceiling:?}]",
                ceiling / 2
            );
            ceilings.push(ceiling.as_millis());
        }
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(100));
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
