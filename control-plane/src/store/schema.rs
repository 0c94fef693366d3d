//! The schema's migrations: applying them, and how the applied ones compare
//! with the ones this binary embeds (for `/readyz`).

use super::{Store, StoreError};
use sqlx::migrate::Migrator;

/// The migrations embedded from `migrations/` at build time.
///
/// Applying them is safe from several replicas (and a `migrate` Job) at
/// once: sqlx's Postgres migrator holds `pg_advisory_lock` on a key derived
/// from the database name for the whole run (`Migrator::locking` is on by
/// default), so the others wait, then find nothing left to do.
fn migrator() -> Migrator {
    sqlx::migrate!("../migrations")
}

/// Where the database's schema stands against this binary's migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SchemaStatus {
    /// The newest migration version this binary embeds.
    pub expected: i64,
    /// The newest migration recorded as applied successfully in
    /// `_sqlx_migrations`; `None` when the database was never migrated.
    pub applied: Option<i64>,
}

impl SchemaStatus {
    /// Whether this binary can serve on the schema: every migration it knows
    /// is applied. A newer schema (a newer release migrated during a rolling
    /// upgrade) also counts: migrations only add, so older replicas keep
    /// working until they are replaced.
    pub fn is_current(&self) -> bool {
        self.applied.is_some_and(|applied| applied >= self.expected)
    }
}

impl Store {
    /// Applies the embedded migrations, under sqlx's advisory lock (see
    /// `migrator`). Migrations a newer release applied and this binary
    /// does not know are tolerated, so an older replica restarting during a
    /// rolling upgrade (or after a rollback) still starts.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut migrator = migrator();
        migrator.set_ignore_missing(true);
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// Compares the applied migrations with the embedded ones. Errors when
    /// the database does not answer; a database without the migrations
    /// table is `applied: None`, not an error.
    pub async fn schema_status(&self) -> Result<SchemaStatus, StoreError> {
        let expected = migrator()
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .map(|m| m.version)
            .max()
            .unwrap_or(0);
        // to_regclass is NULL (not an error) while the table does not exist,
        // so a never-migrated database reads as "no migration applied".
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&self.pool)
            .await?;
        let applied = if exists {
            sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await?
        } else {
            None
        };
        Ok(SchemaStatus { expected, applied })
    }
}
