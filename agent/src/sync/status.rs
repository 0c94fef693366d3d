//! What the sync client reports for readiness and health endpoints.

use std::collections::BTreeMap;

/// Where a service's current policy came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicySource {
    /// No policy at all: the agent fails closed for this service.
    #[default]
    None,
    /// Loaded from the last-known-good cache at start-up.
    Cache,
    /// Received from the control plane on this run.
    ControlPlane,
}

/// One service's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceStatus {
    /// The revision in force, if any (0 = the service does not exist).
    pub revision: Option<i64>,
    /// Whether a policy is enforced (`false` = fail closed: no CORS grants).
    pub has_policy: bool,
    /// Where it came from.
    pub source: PolicySource,
    /// The last refused snapshot: (revision, error).
    pub last_nack: Option<(i64, String)>,
}

/// The sync client's state, published through a `tokio::sync::watch`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStatus {
    /// A stream to the control plane is open.
    pub connected: bool,
    /// Per service.
    pub services: BTreeMap<String, ServiceStatus>,
    /// Connection attempts after the first one (each reconnect attempt,
    /// whether or not it succeeded).
    pub reconnects: u64,
    /// When the latest connection attempt started (the first one included),
    /// on the monotonic clock: with [`SyncStatus::reconnects`], how a fleet's
    /// attempts spread out over time after an outage (the jittered backoff).
    pub last_attempt: Option<std::time::Instant>,
    /// The last stream or connection error.
    pub last_error: Option<String>,
    /// Syncing stopped for good (a fatal protocol error); policies stay in force.
    pub stopped: bool,
}

impl SyncStatus {
    /// Ready to serve: every service has a policy (from the control plane
    /// or the cache). Otherwise those services fail closed.
    pub fn ready(&self) -> bool {
        !self.services.is_empty() && self.services.values().all(|s| s.has_policy)
    }
}
