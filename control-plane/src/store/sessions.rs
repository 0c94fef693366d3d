//! Sessions and API tokens: the server-side half of bearer and cookie auth.
//!
//! Session JWTs are stateless until logout puts their id on the revocation
//! list; API tokens are JWTs whose id is a row of `api_tokens`, which holds
//! their role and whether they still work.

use super::audit::{self, AuditRecord};
use super::{Store, StoreError};
use crate::domain::Role;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// An API token as listed (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    /// The token's id (its `jti`).
    pub id: Uuid,
    /// A name for people, e.g. the pipeline that uses it.
    pub name: String,
    /// The role it acts with.
    pub role: Role,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What authenticating with a working API token needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveApiToken {
    /// Its name (the audited actor is `token:<name>`).
    pub name: String,
    /// The role it acts with: the lower of the role it was issued with and
    /// its creator's role now.
    pub role: Role,
    /// The email of the person who created it: the person behind every
    /// request made with it.
    pub created_by: String,
}

impl Store {
    /// Puts session `jti` on the revocation list until `expires_at`.
    pub async fn revoke_session(
        &self,
        jti: Uuid,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query!(
            "INSERT INTO revoked_sessions (jti, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            jti,
            expires_at
        )
        .execute(&self.pool)
        .await?;
        // Entries past their token's expiry are useless: drop them as we go.
        sqlx::query!("DELETE FROM revoked_sessions WHERE expires_at < now() - interval '1 hour'")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The current role of enabled user `email` holding session `jti`, or
    /// `None` when the user is gone or disabled or the session was revoked.
    pub async fn session_role(&self, email: &str, jti: Uuid) -> Result<Option<Role>, StoreError> {
        let row = sqlx::query!(
            r#"
            SELECT role AS "role: Role" FROM users
             WHERE lower(email) = lower($1) AND NOT disabled
               AND NOT EXISTS (SELECT 1 FROM revoked_sessions WHERE jti = $2)
            "#,
            email,
            jti
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.role))
    }

    /// Records a new API token (the caller signs the JWT with `id` as `jti`).
    pub async fn create_api_token(
        &self,
        id: Uuid,
        name: &str,
        role: Role,
        expires_at: Option<DateTime<Utc>>,
        actor: &str,
    ) -> Result<ApiToken, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query!(
            r#"
            INSERT INTO api_tokens (id, name, role, created_by, expires_at)
            VALUES ($1, $2, $3, $4, $5) RETURNING created_at
            "#,
            id,
            name,
            role.as_str(),
            actor,
            expires_at
        )
        .fetch_one(&mut *tx)
        .await?;
        let token = ApiToken {
            id,
            name: name.to_owned(),
            role,
            created_by: actor.to_owned(),
            created_at: row.created_at,
            expires_at,
            revoked_at: None,
        };
        let after = audit::snapshot(&token);
        let target = format!("api_token:{id}");
        audit::append(
            &mut tx,
            AuditRecord {
                actor,
                action: "api_token.create",
                service: None,
                target: &target,
                before: None,
                after: Some(&after),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Every API token, newest first.
    pub async fn list_api_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let rows = sqlx::query!(
            r#"SELECT id, name, role AS "role: Role", created_by, created_at, expires_at, revoked_at FROM api_tokens ORDER BY created_at DESC"#
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ApiToken {
                id: r.id,
                name: r.name,
                role: r.role,
                created_by: r.created_by,
                created_at: r.created_at,
                expires_at: r.expires_at,
                revoked_at: r.revoked_at,
            })
            .collect())
    }

    /// Revokes API token `id`; revoking twice is an invalid state.
    pub async fn revoke_api_token(&self, id: Uuid, actor: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query!(
            "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING name",
            id
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            let exists = sqlx::query!("SELECT id FROM api_tokens WHERE id = $1", id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            return Err(if exists {
                StoreError::InvalidState(format!("API token {id} is already revoked"))
            } else {
                StoreError::NotFound(format!("API token {id}"))
            });
        };
        let target = format!("api_token:{id}");
        let after = serde_json::json!({ "name": row.name, "revoked": true });
        audit::append(
            &mut tx,
            AuditRecord {
                actor,
                action: "api_token.revoke",
                service: None,
                target: &target,
                before: None,
                after: Some(&after),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// API token `id` if it exists, is not revoked, has not expired and its
    /// creator is still an enabled user; `Ok(None)` otherwise. A token
    /// never acts above its creator's current role: disabling or demoting
    /// a person disables or demotes their tokens with them.
    pub async fn active_api_token(&self, id: Uuid) -> Result<Option<ActiveApiToken>, StoreError> {
        let row = sqlx::query!(
            r#"
            SELECT t.name, t.role AS "role: Role", t.created_by, u.role AS "creator_role: Role"
              FROM api_tokens t
              JOIN users u ON lower(u.email) = lower(t.created_by) AND NOT u.disabled
             WHERE t.id = $1 AND t.revoked_at IS NULL
               AND (t.expires_at IS NULL OR t.expires_at > now())
            "#,
            id
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| ActiveApiToken {
            name: r.name,
            role: r.role.min(r.creator_role),
            created_by: r.created_by,
        }))
    }

    /// Whether `id` names an API token at all (active or not).
    pub async fn is_api_token(&self, id: Uuid) -> Result<bool, StoreError> {
        Ok(sqlx::query!("SELECT id FROM api_tokens WHERE id = $1", id)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }
}
