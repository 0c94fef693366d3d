//! Agent tokens: the JWTs are stateless, this table makes them listable and
//! revocable (the token's `jti` is the row id).

use super::audit::{self, AuditRecord, snapshot};
use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// An issued agent token (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AgentToken {
    /// The token's `jti`.
    pub id: Uuid,
    /// A name for people, e.g. the gateway it is deployed in.
    pub name: String,
    /// The services the token may subscribe to.
    pub services: Vec<String>,
    /// Who issued it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Records a new agent token with id `id` (the JWT's `jti`).
    pub async fn create_agent_token(
        &self,
        id: Uuid,
        name: &str,
        services: &[String],
        expires_at: Option<DateTime<Utc>>,
        actor: &str,
    ) -> Result<AgentToken, StoreError> {
        let mut tx = self.pool.begin().await?;
        let token = sqlx::query_as!(
            AgentToken,
            r#"
            INSERT INTO agent_tokens (id, name, services, created_by, expires_at)
            VALUES ($1, $2, $3, $4, $5)
            RETURNING id, name, services, created_by, created_at, expires_at, revoked_at
            "#,
            id,
            name,
            services,
            actor,
            expires_at,
        )
        .fetch_one(&mut *tx)
        .await?;
        let target = format!("agent_token:{id}");
        audit::append(
            &mut tx,
            AuditRecord {
                actor,
                action: "agent_token.create",
                service: None,
                target: &target,
                before: None,
                after: Some(&snapshot(&token)),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Every agent token, newest first.
    pub async fn list_agent_tokens(&self) -> Result<Vec<AgentToken>, StoreError> {
        let rows = sqlx::query_as!(
            AgentToken,
            r#"
            SELECT id, name, services, created_by, created_at, expires_at, revoked_at
              FROM agent_tokens ORDER BY created_at DESC, id
            "#
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Revokes token `id`; revoking twice is [`StoreError::InvalidState`].
    pub async fn revoke_agent_token(
        &self,
        id: Uuid,
        actor: &str,
    ) -> Result<AgentToken, StoreError> {
        let mut tx = self.pool.begin().await?;
        let before = sqlx::query_as!(
            AgentToken,
            r#"
            SELECT id, name, services, created_by, created_at, expires_at, revoked_at
              FROM agent_tokens WHERE id = $1 FOR UPDATE
            "#,
            id
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("agent token {id}")))?;
        if before.revoked_at.is_some() {
            return Err(StoreError::InvalidState(format!(
                "agent token {id} is already revoked"
            )));
        }
        let after = sqlx::query_as!(
            AgentToken,
            r#"
            UPDATE agent_tokens SET revoked_at = now() WHERE id = $1
            RETURNING id, name, services, created_by, created_at, expires_at, revoked_at
            "#,
            id
        )
        .fetch_one(&mut *tx)
        .await?;
        let target = format!("agent_token:{id}");
        audit::append(
            &mut tx,
            AuditRecord {
                actor,
                action: "agent_token.revoke",
                service: None,
                target: &target,
                before: Some(&snapshot(&before)),
                after: Some(&snapshot(&after)),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Whether token `id` exists, is not revoked and has not expired. The
    /// gRPC server checks this after verifying the JWT's signature.
    pub async fn agent_token_active(&self, id: Uuid) -> Result<bool, StoreError> {
        let active = sqlx::query_scalar!(
            r#"
            SELECT EXISTS (
                SELECT 1 FROM agent_tokens
                 WHERE id = $1 AND revoked_at IS NULL
                   AND (expires_at IS NULL OR expires_at > now())
            ) AS "active!"
            "#,
            id
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(active)
    }
}
