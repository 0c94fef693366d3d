//! Tokens: agent tokens (which services an agent may sync and report for)
//! and API tokens (automation acting with a role). Issuing signs the JWT
//! and records it; revoking stops it at once.

use super::{Error, validate};
use crate::auth::{IssuedToken, issue_agent_token, issue_api_token};
use crate::domain::Role;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::tokens::AgentToken;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// Longest API token name, in bytes.
pub const MAX_API_TOKEN_NAME: usize = 200;
/// Longest API token lifetime, in days.
pub const MAX_API_TOKEN_DAYS: i64 = 3650;

/// Checks an agent-token request: a name, at least one well-formed service
/// name, an expiry in the future. Also used by `token issue` on the command
/// line. Errors: [`Error::Unprocessable`].
pub fn check_agent_token(
    name: &str,
    services: &[String],
    expires_at: Option<DateTime<Utc>>,
) -> Result<(), Error> {
    validate::text("name", name, true)?;
    if services.is_empty() {
        return Err(Error::unprocessable(
            "services must name at least one service",
        ));
    }
    for s in services {
        validate::service_name(s)?;
    }
    super::origins::check_expiry(expires_at)
}

/// Issues an agent token named `name` for `services`, valid until
/// `expires_at` (or until revoked), as `actor`; with `replaces`, the new
/// token succeeds that one and may act as the agent ids bound to it (see
/// [`replace_agent`]). Returns the token's id and the signed token.
/// Errors: [`Error::Unprocessable`] (see [`check_agent_token`]),
/// [`Error::NotFound`] when `replaces` names no token (checked before
/// anything is written).
pub async fn issue_agent(
    state: &AppState,
    name: &str,
    services: &[String],
    expires_at: Option<DateTime<Utc>>,
    replaces: Option<Uuid>,
    actor: &str,
) -> Result<(Uuid, IssuedToken), Error> {
    check_agent_token(name, services, expires_at)?;
    if let Some(old) = replaces
        && !state
            .store
            .list_agent_tokens()
            .await?
            .iter()
            .any(|t| t.id == old)
    {
        return Err(Error::NotFound(format!("agent token {old} not found")));
    }
    let name = name.trim();
    let id = Uuid::new_v4();
    // Sign first: a token row without a token would be harmless, but a
    // signing failure should not leave one behind.
    let issued = issue_agent_token(&state.keys, id, name, services, expires_at)?;
    state
        .store
        .create_agent_token(id, name, services, expires_at, actor)
        .await?;
    if let Some(old) = replaces {
        replace_agent(state, id, old, actor).await?;
    }
    tracing::info!(token_id = %id, name = %name, services = ?services, replaces = ?replaces, actor = %actor, "agent token issued");
    Ok((id, issued))
}

/// Revokes agent token `id` as `actor`. Errors: [`Error::NotFound`],
/// [`Error::InvalidState`] (already revoked).
pub async fn revoke_agent(state: &AppState, id: Uuid, actor: &str) -> Result<AgentToken, Error> {
    let token = state.store.revoke_agent_token(id, actor).await?;
    tracing::info!(token_id = %id, actor = %actor, "agent token revoked");
    Ok(token)
}

/// Issues an API token named `name` acting as `role`, valid for `days`
/// (1..=[`MAX_API_TOKEN_DAYS`]; `None` until revoked), as `actor`.
///
/// Errors: [`Error::Unprocessable`] (an empty or overlong name, a lifetime
/// out of range).
pub async fn issue_api(
    state: &AppState,
    name: &str,
    role: Role,
    days: Option<i64>,
    actor: &str,
) -> Result<IssuedToken, Error> {
    let name = name.trim();
    if let Err(e) = validate::text("name", name, true) {
        return Err(Error::unprocessable(format!(
            "{e}: name the token after what uses it."
        )));
    }
    if name.len() > MAX_API_TOKEN_NAME {
        return Err(Error::unprocessable(format!(
            "The name is longer than {MAX_API_TOKEN_NAME} characters."
        )));
    }
    let expires_at = match days {
        None => None,
        Some(d) if (1..=MAX_API_TOKEN_DAYS).contains(&d) => Some(Utc::now() + Duration::days(d)),
        Some(d) => {
            return Err(Error::unprocessable(format!(
                "\"{d}\" is not a number of days between 1 and {MAX_API_TOKEN_DAYS} (leave empty for no expiry)."
            )));
        }
    };
    let id = Uuid::new_v4();
    let issued = issue_api_token(&state.keys, id, name, role, expires_at)?;
    state
        .store
        .create_api_token(id, name, role, expires_at, actor)
        .await?;
    tracing::info!(token_id = %id, name = %name, role = role.as_str(), actor = %actor, "API token issued");
    Ok(issued)
}

/// Revokes API token `id` as `actor`. Errors: [`Error::NotFound`] when
/// there is no such token or it is already revoked.
pub async fn revoke_api(state: &AppState, id: Uuid, actor: &str) -> Result<(), Error> {
    match state.store.revoke_api_token(id, actor).await {
        Ok(()) => {
            tracing::info!(token_id = %id, actor = %actor, "API token revoked");
            Ok(())
        }
        Err(StoreError::NotFound(_) | StoreError::InvalidState(_)) => Err(Error::NotFound(
            "the token does not exist or is already revoked".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Makes agent token `id` a successor of token `replaces`, as `actor`: the
/// new token may then sync and report as the agent ids bound to the old one
/// (agent identity is bound to a token's lineage). Errors:
/// [`Error::NotFound`] (no token `replaces`), [`Error::InvalidState`].
pub async fn replace_agent(
    state: &AppState,
    id: Uuid,
    replaces: Uuid,
    actor: &str,
) -> Result<(), Error> {
    state.store.replace_agent_token(id, replaces, actor).await?;
    tracing::info!(token_id = %id, replaces = %replaces, actor = %actor, "agent token replaces another");
    Ok(())
}
