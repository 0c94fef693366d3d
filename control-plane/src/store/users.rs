//! Users: people (or automation) with a role.

use super::audit::{self, AuditRecord};
use super::{Store, StoreError, unique_violation};
use crate::domain::{Role, UserSource};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

/// A user, without the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Database id.
    pub id: i64,
    /// Login name.
    pub email: String,
    /// What the user may do.
    pub role: Role,
    /// Disabled users cannot log in.
    pub disabled: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Local (password) or from the OpenID Connect provider.
    pub source: UserSource,
    /// For an `oidc` user: the provider's issuer URL (`iss`).
    pub oidc_issuer: Option<String>,
    /// For an `oidc` user: the provider's subject identifier (`sub`).
    pub oidc_subject: Option<String>,
}

/// A user with the stored password hash, for login only.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    /// The user.
    pub user: User,
    /// The argon2 PHC string.
    pub password_hash: String,
}

impl Store {
    /// Creates a user. `password_hash` is an argon2 PHC string (see
    /// `auth::password::hash`); emails are unique case-insensitively.
    pub async fn create_user(
        &self,
        email: &str,
        password_hash: &str,
        role: Role,
        actor: &str,
    ) -> Result<User, StoreError> {
        let mut tx = self.pool.begin().await?;
        let user = insert_user(&mut tx, email, password_hash, role, actor).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// The user with `email` (case-insensitive) and their password hash;
    /// `None` also for users without a password (from the OpenID provider).
    pub async fn user_credentials(
        &self,
        email: &str,
    ) -> Result<Option<UserCredentials>, StoreError> {
        let row = sqlx::query!(
            r#"
            SELECT id, email, password_hash AS "password_hash!", role AS "role: Role", disabled,
                   created_at, source AS "source: UserSource", oidc_issuer, oidc_subject
              FROM users WHERE lower(email) = lower($1) AND password_hash IS NOT NULL
            "#,
            email
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| UserCredentials {
            user: User {
                id: r.id,
                email: r.email,
                role: r.role,
                disabled: r.disabled,
                created_at: r.created_at,
                source: r.source,
                oidc_issuer: r.oidc_issuer,
                oidc_subject: r.oidc_subject,
            },
            password_hash: r.password_hash,
        }))
    }
}

impl Store {
    /// The current role of an enabled user, or `None` if the user does not
    /// exist or is disabled. Checked on every API call, so disabling a user
    /// or changing a role takes effect at once, not when the token expires.
    pub async fn active_user_role(&self, email: &str) -> Result<Option<Role>, StoreError> {
        let row = sqlx::query!(
            r#"SELECT role AS "role: Role", disabled FROM users WHERE lower(email) = lower($1)"#,
            email
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.filter(|r| !r.disabled).map(|r| r.role))
    }
}

impl Store {
    /// Every user, by email.
    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query!(
            r#"
            SELECT id, email, role AS "role: Role", disabled, created_at,
                   source AS "source: UserSource", oidc_issuer, oidc_subject
              FROM users ORDER BY lower(email)
            "#
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| User {
                id: r.id,
                email: r.email,
                role: r.role,
                disabled: r.disabled,
                created_at: r.created_at,
                source: r.source,
                oidc_issuer: r.oidc_issuer,
                oidc_subject: r.oidc_subject,
            })
            .collect())
    }

    /// Changes user `id`'s role and/or disabled flag, with an audit row.
    pub async fn update_user(
        &self,
        id: i64,
        role: Option<Role>,
        disabled: Option<bool>,
        actor: &str,
    ) -> Result<User, StoreError> {
        let mut tx = self.pool.begin().await?;
        let before = sqlx::query!(
            "SELECT email, role, disabled FROM users WHERE id = $1 FOR UPDATE",
            id
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("user {id}")))?;
        let row = sqlx::query!(
            r#"
            UPDATE users SET role = coalesce($2, role), disabled = coalesce($3, disabled)
             WHERE id = $1 RETURNING id, email, role AS "role: Role", disabled, created_at,
                   source AS "source: UserSource", oidc_issuer, oidc_subject
            "#,
            id,
            role.map(Role::as_str),
            disabled
        )
        .fetch_one(&mut *tx)
        .await?;
        let user = User {
            id: row.id,
            email: row.email,
            role: row.role,
            disabled: row.disabled,
            created_at: row.created_at,
            source: row.source,
            oidc_issuer: row.oidc_issuer,
            oidc_subject: row.oidc_subject,
        };
        let target = format!("user:{}", user.email);
        let before = serde_json::json!({ "email": before.email, "role": before.role, "disabled": before.disabled });
        let after = serde_json::json!({ "email": user.email, "role": user.role, "disabled": user.disabled });
        audit::append(
            &mut tx,
            AuditRecord {
                actor,
                action: "user.update",
                service: None,
                target: &target,
                before: Some(&before),
                after: Some(&after),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(user)
    }
}

/// Inserts a user and its `user.create` audit row on `conn` (the caller's
/// transaction, so both commit or neither does).
pub(crate) async fn insert_user(
    conn: &mut PgConnection,
    email: &str,
    password_hash: &str,
    role: Role,
    actor: &str,
) -> Result<User, StoreError> {
    let row = sqlx::query!(
        r#"
            INSERT INTO users (email, password_hash, role) VALUES ($1, $2, $3)
            RETURNING id, email, disabled, created_at
            "#,
        email,
        password_hash,
        role.as_str(),
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| unique_violation(e, || format!("user {email:?} already exists")))?;
    let user = User {
        id: row.id,
        email: row.email,
        role,
        disabled: row.disabled,
        created_at: row.created_at,
        source: UserSource::Local,
        oidc_issuer: None,
        oidc_subject: None,
    };
    let target = format!("user:{email}");
    // The hash stays out of the audit log.
    let after = serde_json::json!({ "email": email, "role": role });
    audit::append(
        conn,
        AuditRecord {
            actor,
            action: "user.create",
            service: None,
            target: &target,
            before: None,
            after: Some(&after),
        },
    )
    .await?;
    Ok(user)
}
