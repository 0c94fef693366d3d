//! [`Revocations`]: agent-token revocations fanned out to the open streams
//! of this replica. The [`PgPolicyWatcher`](super::PgPolicyWatcher) LISTENs
//! on [`AGENT_TOKEN_REVOKED_CHANNEL`](crate::store::AGENT_TOKEN_REVOKED_CHANNEL)
//! (a trigger notifies every revocation at commit, whichever replica or tool
//! made it) and publishes each revoked token id here; every stream
//! authenticated with that token ends with UNAUTHENTICATED at once. The
//! periodic token re-check stays as the safety net for a notification
//! missed while the LISTEN connection was down.

use tokio::sync::broadcast;
use uuid::Uuid;

/// Revocations queued for a stream that is slow to look; past this it
/// re-checks its token in the database instead.
const BACKLOG: usize = 256;

/// The fan-out of revoked agent-token ids to this replica's streams. Cheap
/// to clone.
#[derive(Debug, Clone)]
pub struct Revocations {
    tx: broadcast::Sender<Uuid>,
}

impl Default for Revocations {
    fn default() -> Self {
        Self::new()
    }
}

/// What a stream learnt from [`Revocations`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Revoked {
    /// Its own token was revoked.
    This,
    /// Revocations were missed (backlog overflowed): re-check the token.
    Unknown,
}

impl Revocations {
    /// A fan-out nobody listens to yet.
    pub fn new() -> Self {
        Self {
            tx: broadcast::Sender::new(BACKLOG),
        }
    }

    /// Tells every stream of this replica that token `id` is revoked.
    pub fn revoked(&self, id: Uuid) {
        // Err only means no stream is open: nothing to cut.
        let _ = self.tx.send(id);
    }

    /// A receiver for one stream.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Uuid> {
        self.tx.subscribe()
    }
}

/// Completes when `token` is revoked (or revocations were missed); never
/// when the fan-out is gone. Cancel-safe, for a `select!` arm.
pub(crate) async fn revoked(rx: &mut broadcast::Receiver<Uuid>, token: Uuid) -> Revoked {
    loop {
        match rx.recv().await {
            Ok(id) if id == token => return Revoked::This,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return Revoked::Unknown,
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_streams_own_token_ends_it() {
        let revocations = Revocations::new();
        let mine = Uuid::new_v4();
        let mut rx = revocations.subscribe();
        revocations.revoked(Uuid::new_v4());
        revocations.revoked(mine);
        assert_eq!(revoked(&mut rx, mine).await, Revoked::This);
        let mut late = revocations.subscribe();
        for _ in 0..=BACKLOG {
            revocations.revoked(Uuid::new_v4());
        }
        assert_eq!(revoked(&mut late, mine).await, Revoked::Unknown);
    }
}
