//! Logging in, for the REST API and the login page alike: password check
//! (argon2, off the reactor), throttling per account and per client
//! address, and a lockout row in the audit log when a limit is reached.

use super::{IssuedToken, SigningKey, issue_user_token, password};
use crate::store::users::User;
use crate::store::{Store, StoreError};
use axum::extract::ConnectInfo;
use std::net::{IpAddr, SocketAddr};

/// Failed attempts per account within [`WINDOW_SECS`] before it is locked.
pub const ACCOUNT_LIMIT: i64 = 5;
/// Failed attempts per client address within [`WINDOW_SECS`] before it is locked.
pub const ADDRESS_LIMIT: i64 = 20;
/// The throttling window, in seconds (a lockout lasts at most this long).
pub const WINDOW_SECS: i64 = 15 * 60;

/// Whether password sign-in is on (`serve --disable-local-login`,
/// `--break-glass-admin`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LocalLogin {
    /// Every local user may sign in with a password.
    #[default]
    Enabled,
    /// Password sign-in is off (people sign in through the OpenID
    /// provider) except for this one admin (`--break-glass-admin`), kept
    /// for when the provider is down; each of its sign-ins is audited as
    /// `auth.break_glass`. `None`: no exception at all.
    BreakGlassOnly(Option<String>),
}

impl LocalLogin {
    /// Whether `email` may try a password now.
    pub fn allows(&self, email: &str) -> bool {
        match self {
            LocalLogin::Enabled => true,
            LocalLogin::BreakGlassOnly(admin) => admin
                .as_deref()
                .is_some_and(|admin| admin.eq_ignore_ascii_case(email.trim())),
        }
    }
}

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown email, wrong password or disabled user (not told apart).
    #[error("wrong email or password")]
    Refused,
    /// The input cannot be an email or password at all.
    #[error("{0}")]
    Invalid(String),
    /// Password sign-in is turned off for this account
    /// ([`LocalLogin::BreakGlassOnly`]).
    #[error("password sign-in is turned off; sign in with your identity provider")]
    LocalLoginDisabled,
    /// Too many recent failures for this account or address.
    #[error("too many failed logins; try again in {} minutes", WINDOW_SECS / 60)]
    Locked,
    /// Our fault.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for LoginError {
    fn from(e: StoreError) -> Self {
        LoginError::Internal(e.into())
    }
}

/// The client's address, when the server was started with connect info.
pub fn client_ip(extensions: &http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

fn account_key(email: &str) -> String {
    format!("account:{}", email.trim().to_lowercase())
}

fn address_key(addr: IpAddr) -> String {
    format!("address:{addr}")
}

/// Checks `email` / `password` and issues a session token, unless the
/// account or `client` address is locked out, or `policy` turns password
/// sign-in off for this account. A break-glass admin's sign-in (or an
/// account that is not an admin named as one) is audited.
pub async fn login(
    store: &Store,
    keys: &SigningKey,
    policy: &LocalLogin,
    email: &str,
    password_given: &str,
    client: Option<IpAddr>,
) -> Result<(User, IssuedToken), LoginError> {
    if email.contains('\0') || password_given.contains('\0') {
        return Err(LoginError::Invalid(
            "email and password must not contain NUL characters".into(),
        ));
    }
    if !policy.allows(email) {
        return Err(LoginError::LocalLoginDisabled);
    }
    let break_glass = matches!(policy, LocalLogin::BreakGlassOnly(_));
    let account = account_key(email);
    let address = client.map(address_key);
    if store.recent_login_failures(&account, WINDOW_SECS).await? >= ACCOUNT_LIMIT {
        return Err(LoginError::Locked);
    }
    if let Some(address) = &address
        && store.recent_login_failures(address, WINDOW_SECS).await? >= ADDRESS_LIMIT
    {
        return Err(LoginError::Locked);
    }
    let found = store.user_credentials(email.trim()).await?;
    let given = password_given.to_owned();
    // argon2 takes tens of milliseconds of CPU: keep it off the reactor.
    let (user, ok) = tokio::task::spawn_blocking(move || match found {
        Some(c) => {
            let ok = password::verify(&given, &c.password_hash);
            (Some(c.user), ok)
        }
        None => {
            password::verify_dummy(&given);
            (None, false)
        }
    })
    .await
    .map_err(|e| LoginError::Internal(e.into()))?;
    match user {
        Some(u) if ok && !u.disabled => {
            store.clear_login_failures(&account).await?;
            if break_glass {
                let detail =
                    serde_json::json!({ "client": client.map(|c| c.to_string()), "role": u.role });
                let target = format!("user:{}", u.email);
                if u.role != crate::domain::Role::Admin {
                    let detail = serde_json::json!({ "reason": "the break-glass account is not an admin", "client": client.map(|c| c.to_string()) });
                    store
                        .audit_sign_in_event("auth.break_glass.refused", &u.email, &target, &detail)
                        .await?;
                    return Err(LoginError::LocalLoginDisabled);
                }
                store
                    .audit_sign_in_event("auth.break_glass", &u.email, &target, &detail)
                    .await?;
                tracing::warn!(actor = %u.email, "break-glass admin signed in with a password");
            }
            let issued = issue_user_token(keys, &u.email, u.role)
                .map_err(|e| LoginError::Internal(e.into()))?;
            Ok((u, issued))
        }
        _ => {
            let mut keys_hit = vec![account.clone()];
            keys_hit.extend(address.clone());
            store.record_login_failure(&keys_hit).await?;
            // Exactly at the limit: this failure locked it; say so once.
            if store.recent_login_failures(&account, WINDOW_SECS).await? == ACCOUNT_LIMIT {
                let detail = serde_json::json!({ "account": email.trim().to_lowercase(), "failures": ACCOUNT_LIMIT, "window_secs": WINDOW_SECS, "client": client.map(|c| c.to_string()) });
                store.audit_lockout(&account, detail).await?;
                tracing::warn!(account = %email.trim(), "account locked after failed logins");
            }
            if let Some(address) = &address
                && store.recent_login_failures(address, WINDOW_SECS).await? == ADDRESS_LIMIT
            {
                let detail = serde_json::json!({ "address": client.map(|c| c.to_string()), "failures": ADDRESS_LIMIT, "window_secs": WINDOW_SECS });
                store.audit_lockout(address, detail).await?;
                tracing::warn!(address = %address, "client address locked after failed logins");
            }
            Err(LoginError::Refused)
        }
    }
}
