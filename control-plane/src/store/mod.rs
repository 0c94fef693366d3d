//! The Postgres repository: the only module that speaks SQL.
//!
//! Every write that changes what agents enforce bumps the service's
//! `revision` (from the global `policy_revision_seq`) and appends a
//! `change_audit` row in the same transaction; the `services_notify` trigger
//! turns the revision bump into a `NOTIFY corsair_policy, '<service>'`
//! delivered at commit.
//!
//! - [`policy`]: the effective policy agents receive.
//! - [`schema`]: migrations (applied under an advisory lock) and the schema's status.
//! - [`bootstrap`]: the first admin, created only while no user exists.
//! - [`services`]: services and their policy settings.
//! - [`origins`]: origin requests and their life cycle.
//! - [`users`]: users and their password hashes.
//! - [`tokens`]: issued agent tokens (listable, revocable).
//! - [`audit`]: the append-only change audit log.
//! - [`agent_status`]: the read side of the agents table, for the API.
//! - [`agents`]: the write side: connected agents, their ACKs/NACKs (gRPC).
//! - [`agent_bindings`]: which agent token lineage owns which agent id.
//! - [`sessions`]: session revocation and API tokens for automation.
//! - [`throttle`]: failed-login counts for throttling.
//! - [`overview`]: read models for the admin UI (overview, queue, audit pages, chain check).
//! - [`blocked`]: blocked-request telemetry (ingestion, partitions, queries).
//! - [`revocations`]: revocation requests (ask, dismiss; confirm is a revoke).
//! - [`usage`]: allowed-request usage per approved origin (stored with the
//!   blocked counts' batches), last used, 30-day counts, stale origins.

pub mod agent_bindings;
pub mod agent_status;
pub mod agents;
pub mod audit;
pub mod blocked;
pub mod bootstrap;
pub mod origins;
pub mod overview;
pub mod policy;
pub mod revocations;
pub mod schema;
pub mod services;
pub mod sessions;
pub mod throttle;
pub mod tokens;
pub mod usage;
pub mod users;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

/// The channel the `services_notify` trigger notifies on; the payload is the
/// service name.
pub const POLICY_CHANNEL: &str = "corsair_policy";

/// Errors from the store. Constraint violations are kept apart so the API can
/// map them to 409/422 instead of a 500.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row asked for does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A uniqueness constraint refused the write.
    #[error("{0}")]
    Conflict(String),
    /// The write is not allowed in the row's current state (e.g. approving a
    /// rejected origin).
    #[error("{0}")]
    InvalidState(String),
    /// Anything else from the database.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// Connects a pool to `database_url`.
    pub async fn connect(database_url: &str) -> Result<Self, StoreError> {
        let options =
            PgConnectOptions::from_str(database_url)?.application_name("corsair-control-plane");
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    /// Wraps an existing pool.
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The underlying pool (for LISTEN connections and tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`] with
/// `message`; any other error stays a database error.
pub(crate) fn unique_violation(error: sqlx::Error, message: impl FnOnce() -> String) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(message()),
        _ => StoreError::Database(error),
    }
}
