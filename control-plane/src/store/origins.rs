//! Origin requests and their life cycle: pending → approved | rejected,
//! approved → revoked.

use super::audit::{self, AuditRecord, snapshot};
use super::services::{Service, approved_patterns, locked_service};
use super::{Store, StoreError, unique_violation};
use crate::domain::OriginStatus;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One origin request for one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Origin {
    /// Id, used in `/origins/{id}/approve` and friends.
    pub id: i64,
    /// The service's name.
    pub service: String,
    /// The canonical origin pattern.
    pub pattern: String,
    /// Where the request is in its life cycle.
    pub status: OriginStatus,
    /// Who asked: a user's email, or `token:<name>` for an API token.
    pub requested_by: String,
    /// The person behind `requested_by`: the user's email, or for an API
    /// token the email of the person who created it. The four-eyes rule
    /// compares people, so a token cannot approve its creator's request.
    pub requested_by_person: String,
    /// Why they asked.
    pub reason: String,
    /// When they asked.
    pub requested_at: DateTime<Utc>,
    /// Who approved, rejected or revoked it.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<DateTime<Utc>>,
    /// The decider's note.
    pub note: Option<String>,
    /// End of a temporary grant.
    pub expires_at: Option<DateTime<Utc>>,
    /// Who asked for this approved origin to be revoked (a request another
    /// approver confirms or dismisses); kept once confirmed, as the record
    /// of who asked.
    pub revocation_requested_by: Option<String>,
    /// Why they asked.
    pub revocation_reason: Option<String>,
    /// When they asked.
    pub revocation_requested_at: Option<DateTime<Utc>>,
    /// The person behind `revocation_requested_by` (as for
    /// `requested_by_person`): who cannot confirm the request.
    pub revocation_requested_by_person: Option<String>,
}

/// A decision on an origin request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// pending → approved (bumps the revision).
    Approve,
    /// pending → rejected.
    Reject,
    /// approved → revoked (bumps the revision).
    Revoke,
}

impl Decision {
    /// The status an origin must have for this decision.
    fn required_status(self) -> OriginStatus {
        match self {
            Decision::Approve | Decision::Reject => OriginStatus::Pending,
            Decision::Revoke => OriginStatus::Approved,
        }
    }

    /// The status it gets.
    fn new_status(self) -> OriginStatus {
        match self {
            Decision::Approve => OriginStatus::Approved,
            Decision::Reject => OriginStatus::Rejected,
            Decision::Revoke => OriginStatus::Revoked,
        }
    }

    /// The verb, for messages and audit actions.
    pub fn verb(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
            Decision::Revoke => "revoke",
        }
    }

    /// Whether it changes what agents enforce.
    fn changes_policy(self) -> bool {
        !matches!(self, Decision::Reject)
    }
}

impl Store {
    /// Every origin of `service` (all states), newest request first.
    pub async fn list_origins(&self, service: &str) -> Result<Vec<Origin>, StoreError> {
        let rows = sqlx::query_as!(
            Origin,
            r#"
            SELECT o.id, s.name AS service, o.pattern, o.status AS "status: OriginStatus", o.requested_by, COALESCE(o.requested_by_person, o.requested_by) AS "requested_by_person!", o.reason,
                   o.requested_at, o.decided_by, o.decided_at, o.note, o.expires_at,
                   o.revocation_requested_by, o.revocation_reason, o.revocation_requested_at, COALESCE(o.revocation_requested_by_person, o.revocation_requested_by) AS revocation_requested_by_person
              FROM origins o JOIN services s ON s.id = o.service_id
             WHERE s.name = $1
             ORDER BY o.id DESC
            "#,
            service
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// One origin by id.
    pub async fn get_origin(&self, id: i64) -> Result<Origin, StoreError> {
        sqlx::query_as!(
            Origin,
            r#"
            SELECT o.id, s.name AS service, o.pattern, o.status AS "status: OriginStatus", o.requested_by, COALESCE(o.requested_by_person, o.requested_by) AS "requested_by_person!", o.reason,
                   o.requested_at, o.decided_by, o.decided_at, o.note, o.expires_at,
                   o.revocation_requested_by, o.revocation_reason, o.revocation_requested_at, COALESCE(o.revocation_requested_by_person, o.revocation_requested_by) AS revocation_requested_by_person
              FROM origins o JOIN services s ON s.id = o.service_id
             WHERE o.id = $1
            "#,
            id
        )
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("origin {id}")))
    }

    /// Files a pending request for `pattern` (already canonical and validated)
    /// on `service` as `actor`, a person (see [`Self::request_origin_for`]).
    /// A live (pending or approved) request for the same pattern is a
    /// conflict.
    pub async fn request_origin(
        &self,
        service: &str,
        pattern: &str,
        reason: &str,
        expires_at: Option<DateTime<Utc>>,
        actor: &str,
    ) -> Result<Origin, StoreError> {
        self.request_origin_for(service, pattern, reason, expires_at, actor, actor)
            .await
    }

    /// Like [`Self::request_origin`], by `actor` (recorded as
    /// `requested_by`, e.g. `token:<name>`) on behalf of `person` (the human
    /// behind it, recorded as `requested_by_person` for four eyes).
    pub async fn request_origin_for(
        &self,
        service: &str,
        pattern: &str,
        reason: &str,
        expires_at: Option<DateTime<Utc>>,
        actor: &str,
        person: &str,
    ) -> Result<Origin, StoreError> {
        let mut tx = self.pool.begin().await?;
        let origin = sqlx::query_as!(
            Origin,
            r#"
            INSERT INTO origins (service_id, pattern, requested_by, requested_by_person, reason, expires_at)
            SELECT s.id, $2, $3, $6, $4, $5 FROM services s WHERE s.name = $1
            RETURNING id, $1 AS "service!", pattern, status AS "status: OriginStatus", requested_by, COALESCE(requested_by_person, requested_by) AS "requested_by_person!", reason,
                      requested_at, decided_by, decided_at, note, expires_at,
                      revocation_requested_by, revocation_reason, revocation_requested_at, COALESCE(revocation_requested_by_person, revocation_requested_by) AS revocation_requested_by_person
            "#,
            service,
            pattern,
            actor,
            reason,
            expires_at,
            person,
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| {
            unique_violation(e, || {
                format!("{pattern} is already requested or approved for service {service:?}")
            })
        })?
        .ok_or_else(|| StoreError::NotFound(format!("service {service:?}")))?;
        let target = format!("origin:{}", origin.id);
        audit::append(
            &mut tx,
            AuditRecord {
                actor,
                action: "origin.request",
                service: Some(service),
                target: &target,
                before: None,
                after: Some(&snapshot(&origin)),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(origin)
    }

    /// Approves, rejects or revokes origin `id`. Refuses a decision that does
    /// not fit the origin's state with [`StoreError::InvalidState`].
    /// Approving and revoking bump the service's revision in the same
    /// transaction.
    pub async fn decide_origin(
        &self,
        id: i64,
        decision: Decision,
        note: Option<&str>,
        actor: &str,
    ) -> Result<Origin, StoreError> {
        self.decide_origin_with(id, decision, note, actor, |_, _, _| Ok::<_, StoreError>(()))
            .await
    }

    /// Like [`Store::decide_origin`], but `check` sees the origin, its
    /// service and the service's approved patterns while both rows are
    /// locked, and may refuse with its own error (after the state check), so
    /// validation cannot race with a concurrent settings edit.
    pub async fn decide_origin_with<E, F>(
        &self,
        id: i64,
        decision: Decision,
        note: Option<&str>,
        actor: &str,
        check: F,
    ) -> Result<Origin, E>
    where
        E: From<StoreError>,
        F: FnOnce(&Origin, &Service, Vec<String>) -> Result<(), E>,
    {
        match self
            .decide_origin_locked(id, decision, note, actor, check)
            .await
        {
            Ok(result) => result,
            Err(e) => Err(E::from(e)),
        }
    }

    async fn decide_origin_locked<E, F>(
        &self,
        id: i64,
        decision: Decision,
        note: Option<&str>,
        actor: &str,
        check: F,
    ) -> Result<Result<Origin, E>, StoreError>
    where
        F: FnOnce(&Origin, &Service, Vec<String>) -> Result<(), E>,
    {
        let mut tx = self.pool.begin().await?;
        // FOR UPDATE on the join locks the origin and its service row, so a
        // concurrent decision or settings edit on the same service waits.
        let before = sqlx::query_as!(
            Origin,
            r#"
            SELECT o.id, s.name AS service, o.pattern, o.status AS "status: OriginStatus", o.requested_by, COALESCE(o.requested_by_person, o.requested_by) AS "requested_by_person!", o.reason,
                   o.requested_at, o.decided_by, o.decided_at, o.note, o.expires_at,
                   o.revocation_requested_by, o.revocation_reason, o.revocation_requested_at, COALESCE(o.revocation_requested_by_person, o.revocation_requested_by) AS revocation_requested_by_person
              FROM origins o JOIN services s ON s.id = o.service_id
             WHERE o.id = $1
               FOR UPDATE
            "#,
            id
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("origin {id}")))?;
        if before.status != decision.required_status() {
            return Err(StoreError::InvalidState(format!(
                "cannot {} origin {id}: it is {}, and only {} origins can be {}",
                decision.verb(),
                before.status,
                decision.required_status(),
                decision.new_status(),
            )));
        }
        let service = locked_service(&mut tx, &before.service)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("service {:?}", before.service)))?;
        let approved = approved_patterns(&mut tx, service.id).await?;
        if let Err(e) = check(&before, &service, approved) {
            return Ok(Err(e));
        }
        let after = sqlx::query_as!(
            Origin,
            r#"
            UPDATE origins
               SET status = $2, decided_by = $3, decided_at = now(), note = $4
             WHERE id = $1
            RETURNING id, $5 AS "service!", pattern, status AS "status: OriginStatus", requested_by, COALESCE(requested_by_person, requested_by) AS "requested_by_person!", reason,
                      requested_at, decided_by, decided_at, note, expires_at,
                      revocation_requested_by, revocation_reason, revocation_requested_at, COALESCE(revocation_requested_by_person, revocation_requested_by) AS revocation_requested_by_person
            "#,
            id,
            decision.new_status().as_str(),
            actor,
            note,
            before.service,
        )
        .fetch_one(&mut *tx)
        .await?;
        if decision.changes_policy() {
            sqlx::query!(
                r#"
                UPDATE services
                   SET revision = nextval('policy_revision_seq'), updated_at = now()
                 WHERE id = $1
                "#,
                service.id
            )
            .execute(&mut *tx)
            .await?;
        }
        let target = format!("origin:{id}");
        let action = format!("origin.{}", decision.verb());
        audit::append(
            &mut tx,
            AuditRecord {
                actor,
                action: &action,
                service: Some(&before.service),
                target: &target,
                before: Some(&snapshot(&before)),
                after: Some(&snapshot(&after)),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Ok(after))
    }
}

/// The actor recorded when the control plane itself revokes an origin.
pub const SYSTEM_ACTOR: &str = "corsair";

impl Store {
    /// Revokes every approved origin whose `expires_at` has passed, each
    /// like a manual revoke (revision bump, audit row with the note
    /// `expired`). Without this, an expired grant would drop out of the
    /// effective policy without a revision change, and agents that already
    /// hold it would never hear of the expiry. Returns the revoked origins.
    /// Safe to run on several replicas at once: a lost race is skipped.
    pub async fn expire_origins(&self) -> Result<Vec<Origin>, StoreError> {
        let due = sqlx::query_scalar!(
            r#"
            SELECT id FROM origins
             WHERE status = 'approved' AND expires_at <= now()
             ORDER BY expires_at
            "#
        )
        .fetch_all(&self.pool)
        .await?;
        let mut revoked = Vec::with_capacity(due.len());
        for id in due {
            match self
                .decide_origin(id, Decision::Revoke, Some("expired"), SYSTEM_ACTOR)
                .await
            {
                Ok(origin) => revoked.push(origin),
                // Another replica (or a person) got there first.
                Err(StoreError::InvalidState(_) | StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(revoked)
    }
}
