//! Revocation requests: one person asks for an approved origin to be
//! revoked, with a reason; another approver confirms (the ordinary revoke,
//! [`Store::decide_origin_with`], which keeps the request as the record of
//! who asked) or dismisses it. The request itself changes nothing agents
//! enforce, so it bumps no revision; both steps are audited.

use super::audit::{self, AuditRecord, snapshot};
use super::origins::Origin;
use super::{Store, StoreError};
use crate::domain::OriginStatus;

impl Store {
    /// Records `actor`'s request to revoke approved origin `id` for
    /// `reason` (already validated); `person` is who stands behind `actor`
    /// (the creator of an API token), for the four-eyes rule. [`StoreError::InvalidState`] when the
    /// origin is not approved, [`StoreError::Conflict`] when a request is
    /// already pending, [`StoreError::NotFound`].
    pub async fn request_revocation(
        &self,
        id: i64,
        reason: &str,
        actor: &str,
        person: &str,
    ) -> Result<Origin, StoreError> {
        let mut tx = self.pool.begin().await?;
        let before = locked_origin(&mut tx, id).await?;
        if before.status != OriginStatus::Approved {
            return Err(StoreError::InvalidState(format!(
                "cannot request the revocation of origin {id}: it is {}, and only approved origins can be revoked",
                before.status
            )));
        }
        if let Some(by) = &before.revocation_requested_by {
            return Err(StoreError::Conflict(format!(
                "{by} already asked for origin {id} to be revoked; an approver confirms or dismisses that request"
            )));
        }
        let after = sqlx::query_as!(
            Origin,
            r#"
            UPDATE origins
               SET revocation_requested_by = $2, revocation_reason = $3, revocation_requested_at = now(),
                   revocation_requested_by_person = $5
             WHERE id = $1
            RETURNING id, $4 AS "service!", pattern, status AS "status: OriginStatus", requested_by, COALESCE(requested_by_person, requested_by) AS "requested_by_person!", reason,
                      requested_at, decided_by, decided_at, note, expires_at,
                      revocation_requested_by, revocation_reason, revocation_requested_at, COALESCE(revocation_requested_by_person, revocation_requested_by) AS revocation_requested_by_person
            "#,
            id,
            actor,
            reason,
            before.service,
            person,
        )
        .fetch_one(&mut *tx)
        .await?;
        append(&mut tx, actor, "origin.revocation_request", &before, &after).await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Clears the pending revocation request on origin `id` (the origin
    /// stays approved), as `actor`. [`StoreError::InvalidState`] when none
    /// is pending, [`StoreError::NotFound`].
    pub async fn dismiss_revocation(&self, id: i64, actor: &str) -> Result<Origin, StoreError> {
        let mut tx = self.pool.begin().await?;
        let before = locked_origin(&mut tx, id).await?;
        if before.status != OriginStatus::Approved || before.revocation_requested_by.is_none() {
            return Err(StoreError::InvalidState(format!(
                "origin {id} has no pending revocation request"
            )));
        }
        let after = sqlx::query_as!(
            Origin,
            r#"
            UPDATE origins
               SET revocation_requested_by = NULL, revocation_reason = NULL, revocation_requested_at = NULL,
                   revocation_requested_by_person = NULL
             WHERE id = $1
            RETURNING id, $2 AS "service!", pattern, status AS "status: OriginStatus", requested_by, COALESCE(requested_by_person, requested_by) AS "requested_by_person!", reason,
                      requested_at, decided_by, decided_at, note, expires_at,
                      revocation_requested_by, revocation_reason, revocation_requested_at, COALESCE(revocation_requested_by_person, revocation_requested_by) AS revocation_requested_by_person
            "#,
            id,
            before.service,
        )
        .fetch_one(&mut *tx)
        .await?;
        append(&mut tx, actor, "origin.revocation_dismiss", &before, &after).await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Approved origins with a pending revocation request, oldest request
    /// first.
    pub async fn pending_revocations(&self) -> Result<Vec<Origin>, StoreError> {
        let rows = sqlx::query_as!(
            Origin,
            r#"
            SELECT o.id, s.name AS service, o.pattern, o.status AS "status: OriginStatus", o.requested_by, COALESCE(o.requested_by_person, o.requested_by) AS "requested_by_person!", o.reason,
                   o.requested_at, o.decided_by, o.decided_at, o.note, o.expires_at,
                   o.revocation_requested_by, o.revocation_reason, o.revocation_requested_at, COALESCE(o.revocation_requested_by_person, o.revocation_requested_by) AS revocation_requested_by_person
              FROM origins o JOIN services s ON s.id = o.service_id
             WHERE o.status = 'approved' AND o.revocation_requested_by IS NOT NULL
             ORDER BY o.revocation_requested_at, o.id
            "#
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }
}

async fn locked_origin(tx: &mut sqlx::PgConnection, id: i64) -> Result<Origin, StoreError> {
    sqlx::query_as!(
        Origin,
        r#"
        SELECT o.id, s.name AS service, o.pattern, o.status AS "status: OriginStatus", o.requested_by, COALESCE(o.requested_by_person, o.requested_by) AS "requested_by_person!", o.reason,
               o.requested_at, o.decided_by, o.decided_at, o.note, o.expires_at,
               o.revocation_requested_by, o.revocation_reason, o.revocation_requested_at, COALESCE(o.revocation_requested_by_person, o.revocation_requested_by) AS revocation_requested_by_person
          FROM origins o JOIN services s ON s.id = o.service_id
         WHERE o.id = $1
           FOR UPDATE OF o
        "#,
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("origin {id}")))
}

async fn append(
    tx: &mut sqlx::PgConnection,
    actor: &str,
    action: &str,
    before: &Origin,
    after: &Origin,
) -> Result<(), StoreError> {
    let target = format!("origin:{}", before.id);
    audit::append(
        tx,
        AuditRecord {
            actor,
            action,
            service: Some(&before.service),
            target: &target,
            before: Some(&snapshot(before)),
            after: Some(&snapshot(after)),
        },
    )
    .await
}
