//! Sign-in through the OpenID Connect provider: the user row keyed by the
//! provider's (issuer, subject), and the audit rows of every sign-in and
//! refusal.

use super::audit::{self, AuditRecord};
use super::users::User;
use super::{Store, StoreError, unique_violation};
use crate::domain::{Role, UserSource};
use serde_json::Value;

/// The actor of the `user.create` / `user.update` rows a sign-in writes:
/// the provider, not a person, decided the account and its role.
pub const OIDC_ACTOR: &str = "oidc";

/// Who signed in at the provider, as the control plane will record them.
#[derive(Debug, Clone, Copy)]
pub struct OidcIdentity<'a> {
    /// The provider's issuer URL (`iss`).
    pub issuer: &'a str,
    /// The provider's subject identifier (`sub`).
    pub subject: &'a str,
    /// The email the provider asserts (`email`), the user's name here.
    pub email: &'a str,
}

/// What [`Store::oidc_sign_in`] did.
#[derive(Debug, Clone)]
pub enum OidcUpsert {
    /// The user exists (or was created) with the role given: signed in, with
    /// an `auth.oidc.sign_in` audit row (and `user.create` or `user.update`
    /// when the account was new or its email or role changed).
    SignedIn(User),
    /// The user exists but is disabled: nothing was written.
    Disabled(User),
}

impl Store {
    /// Signs `who` in with `role`: finds the user by issuer and subject,
    /// creating it (source `oidc`, no password) on first sign-in and setting
    /// its email and role to what the provider says now; `detail` goes into
    /// the `auth.oidc.sign_in` audit row. All in one transaction.
    ///
    /// Errors: [`StoreError::Conflict`] when another user already has this
    /// email (a local account, or another subject of the provider).
    pub async fn oidc_sign_in(
        &self,
        who: OidcIdentity<'_>,
        role: Role,
        detail: &Value,
    ) -> Result<OidcUpsert, StoreError> {
        let mut tx = self.pool.begin().await?;
        let found = sqlx::query!(
            r#"
            SELECT id, email, role AS "role: Role", disabled, created_at
              FROM users WHERE source = 'oidc' AND oidc_issuer = $1 AND oidc_subject = $2
               FOR UPDATE
            "#,
            who.issuer,
            who.subject
        )
        .fetch_optional(&mut *tx)
        .await?;
        let conflict = || {
            format!(
                "another account already has the email {:?}; an admin must rename or disable it",
                who.email
            )
        };
        let user = match found {
            Some(row) => {
                let user = oidc_user(
                    row.id,
                    row.email,
                    row.role,
                    row.disabled,
                    row.created_at,
                    who,
                );
                if user.disabled {
                    return Ok(OidcUpsert::Disabled(user));
                }
                if user.email == who.email && user.role == role {
                    user
                } else {
                    let updated = sqlx::query!(
                        "UPDATE users SET email = $2, role = $3 WHERE id = $1 RETURNING created_at",
                        user.id,
                        who.email,
                        role.as_str()
                    )
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| unique_violation(e, conflict))?;
                    let before = serde_json::json!({ "email": user.email, "role": user.role });
                    let after = serde_json::json!({ "email": who.email, "role": role });
                    let target = format!("user:{}", who.email);
                    audit::append(
                        &mut tx,
                        AuditRecord {
                            actor: OIDC_ACTOR,
                            action: "user.update",
                            service: None,
                            target: &target,
                            before: Some(&before),
                            after: Some(&after),
                        },
                    )
                    .await?;
                    oidc_user(
                        user.id,
                        who.email.to_owned(),
                        role,
                        false,
                        updated.created_at,
                        who,
                    )
                }
            }
            None => {
                let row = sqlx::query!(
                    r#"
                    INSERT INTO users (email, password_hash, role, source, oidc_issuer, oidc_subject)
                    VALUES ($1, NULL, $2, 'oidc', $3, $4)
                    RETURNING id, created_at
                    "#,
                    who.email,
                    role.as_str(),
                    who.issuer,
                    who.subject
                )
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| unique_violation(e, conflict))?;
                let after = serde_json::json!({
                    "email": who.email, "role": role, "source": UserSource::Oidc,
                    "oidc_issuer": who.issuer, "oidc_subject": who.subject,
                });
                let target = format!("user:{}", who.email);
                audit::append(
                    &mut tx,
                    AuditRecord {
                        actor: OIDC_ACTOR,
                        action: "user.create",
                        service: None,
                        target: &target,
                        before: None,
                        after: Some(&after),
                    },
                )
                .await?;
                oidc_user(
                    row.id,
                    who.email.to_owned(),
                    role,
                    false,
                    row.created_at,
                    who,
                )
            }
        };
        let target = format!("user:{}", user.email);
        audit::append(
            &mut tx,
            AuditRecord {
                actor: &user.email,
                action: "auth.oidc.sign_in",
                service: None,
                target: &target,
                before: None,
                after: Some(detail),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(OidcUpsert::SignedIn(user))
    }

    /// Writes one sign-in audit row outside any other write: `action` is
    /// e.g. `auth.oidc.refused` or `auth.break_glass`; `actor` the email
    /// (or subject) when known, else `anonymous`; `detail` says what
    /// happened and why.
    pub async fn audit_sign_in_event(
        &self,
        action: &str,
        actor: &str,
        target: &str,
        detail: &Value,
    ) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        audit::append(
            &mut conn,
            AuditRecord {
                actor,
                action,
                service: None,
                target,
                before: None,
                after: Some(detail),
            },
        )
        .await
    }
}

fn oidc_user(
    id: i64,
    email: String,
    role: Role,
    disabled: bool,
    created_at: chrono::DateTime<chrono::Utc>,
    who: OidcIdentity<'_>,
) -> User {
    User {
        id,
        email,
        role,
        disabled,
        created_at,
        source: UserSource::Oidc,
        oidc_issuer: Some(who.issuer.to_owned()),
        oidc_subject: Some(who.subject.to_owned()),
    }
}
