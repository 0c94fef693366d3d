//! Test support shared by every integration test of the workspace (a
//! dev-dependency only; never part of a shipped binary).
//!
//! - this file: [`eventually`], the one way a test waits for something —
//!   poll a condition until it holds or a deadline passes, and fail with a
//!   message naming what was awaited and what was last seen;
//! - [`browser`]: headless Chromium with the flags of `STACK.md` and a fresh
//!   profile per run, driven through chromedriver or run once per page
//!   (`--dump-dom`), screenshots into `target/tmp/browser-artifacts/`;
//! - [`balancer`]: a round-robin TCP load balancer (a Kubernetes Service
//!   in front of control-plane replicas);
//! - [`process`]: real binaries as child processes (output in a log file,
//!   stopped with SIGTERM), `corsair-control-plane serve` started until it
//!   serves, and free loopback ports for programs that cannot bind port 0.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

pub mod balancer;
pub mod browser;
pub mod process;

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// How long [`eventually`] waits before failing: generous, because the
/// machine is shared; nothing waits this long when things work.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Pause between two checks.
const INTERVAL: Duration = Duration::from_millis(20);

/// One check's verdict, for conditions that can also fail for good (a
/// process that exited will never log the awaited line).
#[derive(Debug)]
pub enum Check<T> {
    /// The condition holds; [`eventually`] returns this value.
    Ready(T),
    /// Not yet; the text says what was seen (it ends up in the timeout error).
    Pending(String),
    /// It never will; [`eventually`] fails at once with this text.
    Failed(String),
}

/// What a check may return: `bool` (true when done), `Option<T>` (`Some`
/// when done), `Result<T, E>` (`Ok` when done; an `Err` means "not yet" and
/// its text is reported if the deadline passes) or a [`Check`].
pub trait Outcome {
    /// What [`eventually`] returns once the condition holds.
    type Value;
    /// This check as a [`Check`].
    fn into_check(self) -> Check<Self::Value>;
}

impl Outcome for bool {
    type Value = ();
    fn into_check(self) -> Check<()> {
        if self {
            Check::Ready(())
        } else {
            Check::Pending("false".into())
        }
    }
}

impl<T> Outcome for Option<T> {
    type Value = T;
    fn into_check(self) -> Check<T> {
        match self {
            Some(value) => Check::Ready(value),
            None => Check::Pending("None".into()),
        }
    }
}

impl<T, E: Display> Outcome for Result<T, E> {
    type Value = T;
    fn into_check(self) -> Check<T> {
        match self {
            Ok(value) => Check::Ready(value),
            Err(e) => Check::Pending(format!("{e:#}")),
        }
    }
}

impl<T> Outcome for Check<T> {
    type Value = T;
    fn into_check(self) -> Check<T> {
        self
    }
}

/// Polls `check` every 20 ms until it says done, for at most [`DEADLINE`].
///
/// `what` names the awaited condition ("the agent to hold revision 3"); it
/// and the last thing the check saw are in the error on timeout.
pub async fn eventually<O, F, Fut>(what: &str, check: F) -> anyhow::Result<O::Value>
where
    O: Outcome,
    F: FnMut() -> Fut,
    Fut: Future<Output = O>,
{
    eventually_within(DEADLINE, what, check).await
}

/// [`eventually`] with a deadline of its own (`within` from now).
pub async fn eventually_within<O, F, Fut>(
    within: Duration,
    what: &str,
    mut check: F,
) -> anyhow::Result<O::Value>
where
    O: Outcome,
    F: FnMut() -> Fut,
    Fut: Future<Output = O>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let last = match check().await.into_check() {
            Check::Ready(value) => return Ok(value),
            Check::Failed(why) => anyhow::bail!("gave up waiting for {what}: {why}"),
            Check::Pending(seen) => seen,
        };
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("timed out after {within:?} waiting for {what} (last seen: {last})");
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_value_once_the_condition_holds() -> anyhow::Result<()> {
        let mut n = 0;
        let got = eventually("the third call", || {
            n += 1;
            let now = n;
            async move { (now >= 3).then_some(now) }
        })
        .await?;
        assert_eq!(got, 3);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_naming_what_was_awaited_and_what_was_seen() {
        let err = eventually_within(Duration::from_secs(1), "the moon", || async {
            Err::<(), _>("still night")
        })
        .await
        .expect_err("never ready");
        let text = err.to_string();
        assert!(text.contains("the moon"), "{text}");
        assert!(text.contains("still night"), "{text}");
    }

    #[tokio::test]
    async fn a_failed_check_stops_at_once() {
        let started = std::time::Instant::now();
        let err = eventually("a line in the log", || async {
            Check::<()>::Failed("the process exited".into())
        })
        .await
        .expect_err("failed");
        assert!(err.to_string().contains("the process exited"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
