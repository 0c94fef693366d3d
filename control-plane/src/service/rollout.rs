//! Rollout evidence for every change: "k of N agents applied revision R"
//! and why the others have not, now ([`status`]) or once every connected
//! agent holds a change's revision, whichever comes first of that and a
//! timeout ([`wait_applied`], behind `?wait=applied&timeout=10s`).
//!
//! An ACK may land on any replica, so the truth is in Postgres. A waiting
//! request re-reads it whenever [`RolloutEvents`] relays a
//! `NOTIFY corsair_rollout` for its service (one `LISTEN` connection per
//! replica, held only while someone waits), and every [`POLL_EVERY`] in
//! case a notification was missed or an agent went stale (staleness is a
//! matter of time, not of a write, so nothing announces it).

mod events;

pub use events::RolloutEvents;

use super::Error;
use crate::state::AppState;
use crate::store::rollout::Rollout;
use serde::Serialize;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;

/// The timeout of `?wait=applied` when none is given.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// The longest `?wait=applied` may wait: a request held longer than a
/// minute would outlive most proxies' and clients' own timeouts.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// How often a waiting request re-reads the rollout without a notification.
pub const POLL_EVERY: Duration = Duration::from_secs(2);

/// The rollout of `service`'s current revision. Errors: [`Error::NotFound`].
pub async fn status(state: &AppState, service: &str) -> Result<Rollout, Error> {
    Ok(state.store.service_rollout(service, None).await?)
}

/// What a change's caller asked for with `?wait=`/`&timeout=`: `None` for
/// no wait, or how long to wait for every connected agent to apply it.
///
/// `wait` must be `applied`; `timeout` is a duration such as `10s`, `500ms`
/// or `1m` (humantime syntax), at most [`MAX_WAIT`], [`DEFAULT_WAIT`] when
/// absent. Errors: [`Error::Unprocessable`] saying what to send.
pub fn parse_wait(wait: Option<&str>, timeout: Option<&str>) -> Result<Option<Duration>, Error> {
    match wait {
        None if timeout.is_some() => Err(Error::unprocessable(
            "timeout only applies with wait=applied: send ?wait=applied&timeout=10s",
        )),
        None => Ok(None),
        Some("applied") => {
            let Some(timeout) = timeout else {
                return Ok(Some(DEFAULT_WAIT));
            };
            let duration = humantime::parse_duration(timeout.trim()).map_err(|e| {
                Error::unprocessable(format!(
                    "timeout {timeout:?} is not a duration ({e}): send e.g. timeout=10s, timeout=500ms or timeout=1m"
                ))
            })?;
            if duration > MAX_WAIT {
                return Err(Error::unprocessable(format!(
                    "timeout {timeout} is longer than the {}s cap: send at most timeout={}s",
                    MAX_WAIT.as_secs(),
                    MAX_WAIT.as_secs()
                )));
            }
            Ok(Some(duration))
        }
        Some(other) => Err(Error::unprocessable(format!(
            "wait={other:?} is not a wait this API knows: send wait=applied (optionally with timeout=10s), or no wait"
        ))),
    }
}

/// The answer of a wait: the rollout when it ended, and why it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RolloutWait {
    /// The rollout of the change's revision when the wait ended.
    #[serde(flatten)]
    pub rollout: Rollout,
    /// True if the timeout ended the wait with agents still lagging
    /// (`laggards` lists them); false if every connected agent applied it.
    pub timed_out: bool,
}

/// Waits up to `timeout` for every connected agent subscribed to `service`
/// to hold `revision` (or newer; `None`: the service's revision when the
/// wait starts, which includes a change just made), and answers the
/// rollout either way: the change has already happened, so a timeout is an
/// answer, not an error.
///
/// Errors: [`Error::NotFound`] if the service is gone, database errors.
pub async fn wait_applied(
    state: &AppState,
    service: &str,
    revision: Option<i64>,
    timeout: Duration,
) -> Result<RolloutWait, Error> {
    // Subscribe before the first read, so nothing written after it is missed.
    let mut events = state.rollout_events.subscribe();
    let deadline = Instant::now() + timeout;
    let mut poll = tokio::time::interval_at(Instant::now() + POLL_EVERY, POLL_EVERY);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut revision = revision;
    loop {
        let rollout = state.store.service_rollout(service, revision).await?;
        revision = Some(rollout.revision);
        if rollout.complete || Instant::now() >= deadline {
            let timed_out = !rollout.complete;
            return Ok(RolloutWait { rollout, timed_out });
        }
        // Until something may have changed: a notification for this service
        // (or a reconnected listener, which may have missed some), a poll
        // tick, or the deadline.
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => break,
                _ = poll.tick() => break,
                event = events.recv() => match event {
                    Ok(name) if name.is_empty() || &*name == service => break,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    // Never happens while `state` holds the sender; rely on
                    // polling rather than spin if it ever did.
                    Err(broadcast::error::RecvError::Closed) => {
                        tokio::select! {
                            () = tokio::time::sleep_until(deadline) => {}
                            _ = poll.tick() => {}
                        }
                        break;
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_parameters() {
        assert_eq!(parse_wait(None, None).ok(), Some(None));
        assert_eq!(
            parse_wait(Some("applied"), None).ok(),
            Some(Some(DEFAULT_WAIT))
        );
        assert_eq!(
            parse_wait(Some("applied"), Some("500ms")).ok(),
            Some(Some(Duration::from_millis(500)))
        );
        assert_eq!(
            parse_wait(Some("applied"), Some("1m")).ok(),
            Some(Some(MAX_WAIT))
        );
        for (wait, timeout, says) in [
            (Some("applied"), Some("61s"), "at most timeout=60s"),
            (Some("applied"), Some("10"), "send e.g. timeout=10s"),
            (Some("applied"), Some("soon"), "send e.g. timeout=10s"),
            (Some("acked"), None, "send wait=applied"),
            (None, Some("10s"), "send ?wait=applied&timeout=10s"),
        ] {
            match parse_wait(wait, timeout) {
                Err(e @ Error::Unprocessable { .. }) => {
                    assert!(e.to_string().contains(says), "{wait:?} {timeout:?}: {e}")
                }
                other => panic!("{wait:?} {timeout:?}: {other:?}"),
            }
        }
    }
}
