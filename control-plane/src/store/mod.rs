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
//! - [`settings_changes`]: settings changes held for a second approver (request, confirm, dismiss).
//! - [`origins`]: origin requests and their life cycle.
//! - [`users`]: users and their password hashes.
//! - [`sign_in`]: users from the OpenID Connect provider, sign-in and refusal audit rows.
//! - [`tokens`]: issued agent tokens (listable, revocable).
//! - [`audit`]: the append-only change audit log.
//! - [`agent_status`]: the read side of the agents table, for the API.
//! - [`agents`]: the write side: connected agents, their ACKs/NACKs (gRPC).
//! - [`rollout`]: how far a revision has reached the connected agents, and the channel that announces changes to it.
//! - [`agent_batches`]: ACKs and heartbeats of many streams in one statement.
//! - [`agent_bindings`]: which agent token lineage owns which agent id.
//! - [`sessions`]: session revocation and API tokens for automation.
//! - [`throttle`]: failed-login counts for throttling.
//! - [`overview`]: read models for the admin UI (overview, queue, audit pages, chain check).
//! - [`blocked`]: blocked-request telemetry (ingestion, partitions, queries).
//! - [`revocations`]: revocation requests (ask, dismiss; confirm is a revoke).
//! - [`usage`]: allowed-request usage per approved origin (stored with the
//!   blocked counts' batches), last used, 30-day counts, stale origins.

pub mod agent_batches;
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
pub mod rollout;
pub mod schema;
pub mod services;
pub mod sessions;
pub mod settings_changes;
pub mod sign_in;
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

/// The channel the `agent_tokens_notify_revoked` trigger notifies on when an
/// agent token is revoked or deleted; the payload is the token id (a UUID).
pub const AGENT_TOKEN_REVOKED_CHANNEL: &str = "corsair_agent_token_revoked";

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

impl StoreError {
    /// Whether the database could not be reached (see [`is_unavailable`]),
    /// as opposed to refusing or failing the statement.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Database(e) if is_unavailable(e))
    }
}

/// Whether `error` says the database cannot be reached right now rather
/// than that the statement failed: no connection within the acquire
/// timeout, a closed pool, a broken socket, or the server shutting down
/// (`57P01` admin shutdown, `57P02` crash shutdown, `57P03` cannot connect
/// now, class `08` connection exceptions).
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            matches!(&*code, "57P01" | "57P02" | "57P03") || code.starts_with("08")
        }),
        _ => false,
    }
}

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

/// How the pool uses the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Connections at most.
    pub max_connections: u32,
    /// How long a query may wait for a connection, connecting included
    /// (refused connections are retried until then). While the database is
    /// down this is how long a request takes to fail with
    /// [`StoreError::is_unavailable`] (the API's 503): keep it short.
    pub acquire_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
        }
    }
}

/// [`PoolConfig::acquire_timeout`] unless configured
/// (`serve --database-acquire-timeout`).
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

impl Store {
    /// Connects a pool to `database_url` with the default [`PoolConfig`].
    pub async fn connect(database_url: &str) -> Result<Self, StoreError> {
        Self::connect_with(database_url, PoolConfig::default()).await
    }

    /// Connects a pool to `database_url` configured by `config`. The first
    /// connection is made here: an unreachable database fails at once.
    pub async fn connect_with(database_url: &str, config: PoolConfig) -> Result<Self, StoreError> {
        let options =
            PgConnectOptions::from_str(database_url)?.application_name("corsair-control-plane");
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
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
