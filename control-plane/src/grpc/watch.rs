//! "Watch a service's policy": the one thing the PolicySync service needs
//! from the outside world, kept behind a small trait so the stream logic does
//! not depend on Postgres.

use crate::store::StoreError;
use crate::store::policy::EffectivePolicy;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::watch;

/// A service's policy as agents must see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyState {
    /// The service exists: its effective policy.
    Present(EffectivePolicy),
    /// No such service (never created, or deleted): agents fail closed.
    Absent,
}

impl PolicyState {
    /// The revision agents hold once they applied this state; an absent
    /// service is revision 0 (revisions of real services start at 1).
    pub fn revision(&self) -> i64 {
        match self {
            PolicyState::Present(p) => p.revision,
            PolicyState::Absent => 0,
        }
    }
}

/// The receiving end of one service's policy: always holds the newest state.
/// `None` only before the first load, which [`PolicyWatcher::watch`] awaits.
pub type PolicyReceiver = watch::Receiver<Option<Arc<PolicyState>>>;

/// Why a service cannot be watched right now.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// Loading the policy failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Loads a service's current policy and follows its changes.
pub trait PolicyWatcher: Clone + Send + Sync + 'static {
    /// A receiver whose current value is the service's policy (already
    /// loaded) and which is updated whenever its revision changes.
    fn watch(
        &self,
        service: &str,
    ) -> impl Future<Output = Result<PolicyReceiver, WatchError>> + Send;
}
