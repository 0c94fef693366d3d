//! Users (admin): create one with an initial password, change a role or
//! disable an account, with the rule that an admin cannot demote or
//! disable themselves (so there is always someone left to fix things).
//!
//! Users from the OpenID Connect provider: [`oidc_sign_in`] creates or
//! updates them at each sign-in, with the role rule: the highest role any
//! of their groups maps to (`--oidc-role-map`), none mapped = refused.

use super::Error;
use crate::auth::oidc::pending::PendingSignIn;
use crate::auth::oidc::{OidcError, VerifiedIdentity};
use crate::auth::{IssuedToken, issue_user_token, password};
use crate::domain::Role;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::sign_in::{OidcIdentity, OidcUpsert};
use crate::store::users::User;
use std::net::IpAddr;

/// Shortest initial password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Creates user `email` with `role` and `initial_password` as `actor`.
///
/// Errors: [`Error::Unprocessable`] (not an email address, a password
/// under [`MIN_PASSWORD_CHARS`]), [`Error::Conflict`] (the email is taken,
/// case-insensitively).
pub async fn create(
    state: &AppState,
    email: &str,
    role: Role,
    initial_password: String,
    actor: &str,
) -> Result<User, Error> {
    let email = email.trim();
    if email.is_empty() || !email.contains('@') || email.len() > 254 {
        return Err(Error::unprocessable("Enter the person's email address."));
    }
    if initial_password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::unprocessable(format!(
            "The initial password needs at least {MIN_PASSWORD_CHARS} characters."
        )));
    }
    // argon2 takes tens of milliseconds of CPU: keep it off the reactor.
    let hash = tokio::task::spawn_blocking(move || password::hash(&initial_password))
        .await?
        .map_err(|e| Error::Internal(anyhow::anyhow!(e)))?;
    let user = state.store.create_user(email, &hash, role, actor).await?;
    tracing::info!(user = %user.email, role = role.as_str(), actor = %actor, "user created");
    Ok(user)
}

/// Sets user `id`'s role and disabled flag as `actor`.
///
/// Errors: [`Error::NotFound`], [`Error::Forbidden`] (an admin demoting or
/// disabling themselves).
pub async fn update(
    state: &AppState,
    id: i64,
    role: Role,
    disabled: bool,
    actor: &str,
) -> Result<User, Error> {
    let target = state
        .store
        .list_users()
        .await?
        .into_iter()
        .find(|u| u.id == id)
        .ok_or_else(|| Error::NotFound(format!("user {id} does not exist")))?;
    if target.email.eq_ignore_ascii_case(actor) && (disabled || role != Role::Admin) {
        return Err(Error::Forbidden(
            "you cannot demote or disable yourself; ask another admin".into(),
        ));
    }
    let user = state
        .store
        .update_user(id, Some(role), Some(disabled), actor)
        .await?;
    tracing::info!(user = %user.email, role = role.as_str(), disabled, actor = %actor, "user updated");
    Ok(user)
}

/// Why a sign-in through the OpenID provider was refused; every one is in
/// the audit log (`auth.oidc.refused`) before it is returned.
#[derive(Debug, thiserror::Error)]
pub enum SignInRefusal {
    /// The callback or the ID token failed a check (state, code, token).
    #[error(transparent)]
    Oidc(#[from] OidcError),
    /// Sign-in through a provider is not set up on this control plane.
    #[error("sign-in with an identity provider is not set up here")]
    NotConfigured,
    /// None of the user's groups is mapped to a role.
    #[error(
        "you signed in at the identity provider as {email}, but none of your groups ({}) \
         grants a role in Corsair; ask an admin to map one of them (--oidc-role-map)",
        if groups.is_empty() { "none sent".to_owned() } else { groups.join(", ") }
    )]
    NoMappedGroup {
        /// The user's email.
        email: String,
        /// The groups the provider sent.
        groups: Vec<String>,
    },
    /// The account exists here and is disabled.
    #[error("the account {0} is disabled in Corsair; ask an admin")]
    Disabled(String),
    /// Another account already has the email.
    #[error("{0}")]
    EmailTaken(String),
    /// Our fault (database); logged.
    #[error("signing in failed on our side; try again")]
    Internal(#[source] anyhow::Error),
}

/// What the provider's redirect back (`GET /login/oidc/callback`) carried.
#[derive(Debug, Clone, Default)]
pub struct OidcCallback {
    /// The authorization code (absent when the provider reports an error).
    pub code: Option<String>,
    /// The `state` echoed back.
    pub state: Option<String>,
    /// The provider's error code, e.g. `access_denied`.
    pub error: Option<String>,
    /// The provider's human-readable error.
    pub error_description: Option<String>,
}

/// Signs in the person the provider identified at the end of `pending`'s
/// sign-in: verifies the callback and ID token
/// ([`OidcClient::finish`](crate::auth::oidc::OidcClient::finish)), gives
/// them the highest role their groups map to, creates or updates their
/// `oidc` user (issuer + subject) and issues a session token. Each sign-in
/// and each refusal is one audit row; `client` is the browser's address.
pub async fn oidc_sign_in(
    state: &AppState,
    pending: Option<&PendingSignIn>,
    callback: &OidcCallback,
    client: Option<IpAddr>,
) -> Result<(User, IssuedToken), SignInRefusal> {
    let client = client.map(|c| c.to_string());
    let (refusal, identity) = match checked_sign_in(state, pending, callback, &client).await {
        Ok(signed_in) => return Ok(signed_in),
        Err((SignInRefusal::Internal(e), _)) => {
            tracing::error!(error = format!("{e:#}"), "OpenID sign-in failed");
            return Err(SignInRefusal::Internal(e));
        }
        Err(refused) => refused,
    };
    let reason = refusal.to_string();
    let (actor, target, detail) = match identity {
        Some(id) => (
            id.email.clone(),
            format!("oidc:{}#{}", id.issuer, id.subject),
            serde_json::json!({
                "reason": reason, "issuer": id.issuer, "subject": id.subject,
                "groups": id.groups, "client": client,
            }),
        ),
        None => (
            "anonymous".to_owned(),
            "oidc".to_owned(),
            serde_json::json!({ "reason": reason, "client": client }),
        ),
    };
    tracing::warn!(actor = %actor, reason = %reason, "OpenID sign-in refused");
    state
        .store
        .audit_sign_in_event("auth.oidc.refused", &actor, &target, &detail)
        .await
        .map_err(|e| SignInRefusal::Internal(e.into()))?;
    Err(refusal)
}

type Refused = (SignInRefusal, Option<VerifiedIdentity>);

async fn checked_sign_in(
    state: &AppState,
    pending: Option<&PendingSignIn>,
    callback: &OidcCallback,
    client: &Option<String>,
) -> Result<(User, IssuedToken), Refused> {
    let oidc = state
        .sign_in
        .oidc
        .as_ref()
        .ok_or((SignInRefusal::NotConfigured, None))?;
    let pending = pending.ok_or((OidcError::NoPendingSignIn.into(), None))?;
    let returned_state = callback.state.as_deref().unwrap_or_default();
    if let Some(error) = &callback.error {
        let text = match &callback.error_description {
            Some(d) => format!("{error} ({d})"),
            None => error.clone(),
        };
        return Err((OidcError::Provider(text).into(), None));
    }
    let code = callback.code.as_deref().unwrap_or_default();
    let identity = oidc
        .finish(pending, code, returned_state)
        .await
        .map_err(|e| (e.into(), None))?;
    let Some(role) = state.sign_in.role_map.highest_role(&identity.groups) else {
        let refusal = SignInRefusal::NoMappedGroup {
            email: identity.email.clone(),
            groups: identity.groups.clone(),
        };
        return Err((refusal, Some(identity)));
    };
    let who = OidcIdentity {
        issuer: &identity.issuer,
        subject: &identity.subject,
        email: &identity.email,
    };
    let detail = serde_json::json!({
        "issuer": identity.issuer, "subject": identity.subject,
        "groups": identity.groups, "role": role, "client": client,
    });
    let user = match state.store.oidc_sign_in(who, role, &detail).await {
        Ok(OidcUpsert::SignedIn(user)) => user,
        Ok(OidcUpsert::Disabled(user)) => {
            return Err((SignInRefusal::Disabled(user.email), Some(identity)));
        }
        Err(StoreError::Conflict(m)) => return Err((SignInRefusal::EmailTaken(m), Some(identity))),
        Err(e) => return Err((SignInRefusal::Internal(e.into()), Some(identity))),
    };
    let issued = issue_user_token(&state.keys, &user.email, user.role)
        .map_err(|e| (SignInRefusal::Internal(e.into()), None))?;
    Ok((user, issued))
}
