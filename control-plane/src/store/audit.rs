//! The change audit log: one append-only row per write, written in the same
//! transaction as the write it describes.

use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;

/// Most rows one audit query returns, whatever the caller asks for.
pub const MAX_AUDIT_LIMIT: i64 = 1000;

/// One row of the change audit log.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Row id (increasing with time).
    pub id: i64,
    /// When the change was committed.
    pub at: DateTime<Utc>,
    /// Who made it: a user's email, or `cli` for command-line writes.
    pub actor: String,
    /// What was done, e.g. `service.create`, `origin.approve`.
    pub action: String,
    /// The service concerned, if any.
    pub service: Option<String>,
    /// The object acted on, e.g. `service:payments-api`, `origin:42`.
    pub target: String,
    /// The object before the change (absent for creations).
    pub before: Option<Value>,
    /// The object after the change (absent for deletions).
    pub after: Option<Value>,
}

/// What one audit row records; borrowed so writers need not clone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AuditRecord<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub service: Option<&'a str>,
    pub target: &'a str,
    pub before: Option<&'a Value>,
    pub after: Option<&'a Value>,
}

/// Appends one row. Takes a connection, not the pool, so callers pass their
/// open transaction: the row commits or rolls back with the change itself.
pub(crate) async fn append(
    conn: &mut PgConnection,
    record: AuditRecord<'_>,
) -> Result<(), StoreError> {
    sqlx::query!(
        r#"
        INSERT INTO change_audit (actor, action, service, target, before, after)
        VALUES ($1, $2, $3, $4, $5, $6)
        "#,
        record.actor,
        record.action,
        record.service,
        record.target,
        record.before,
        record.after,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Serializes a row for the audit log. Our row types are plain data, so this
/// cannot fail in practice; `Null` keeps the audit write going if it ever did.
pub(crate) fn snapshot<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

impl Store {
    /// The newest `limit` audit rows (capped at [`MAX_AUDIT_LIMIT`]), newest
    /// first, optionally only those about `service`.
    pub async fn list_audit(
        &self,
        service: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = limit.clamp(1, MAX_AUDIT_LIMIT);
        let rows = sqlx::query_as!(
            AuditEntry,
            r#"
            SELECT id, at, actor, action, service, target, before, after
              FROM change_audit
             WHERE ($1::text IS NULL OR service = $1)
             ORDER BY id DESC
             LIMIT $2
            "#,
            service,
            limit,
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }
}
