//! Agent tokens: `POST/GET /agent-tokens`, `POST /agent-tokens/{id}/revoke`.

use super::extract::{Json, Path};
use super::{AppState, Error, validate};
use crate::auth::{Admin, RequireRole, issue_agent_token};
use crate::store::tokens::AgentToken;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/agent-tokens", get(list).post(create))
        .route("/agent-tokens/{id}/revoke", post(revoke))
}

/// Body of `POST /agent-tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A name for people, e.g. the gateway the agent runs in.
    pub name: String,
    /// The services the agent may subscribe to.
    pub services: Vec<String>,
    /// Optional expiry (RFC 3339); none means until revoked.
    pub expires_at: Option<DateTime<Utc>>,
    /// The id of the token this one replaces (rotation): the new token may
    /// act as the agent ids bound to that one. 404 if there is no such token.
    #[serde(default)]
    pub replaces: Option<Uuid>,
}

/// Response of `POST /agent-tokens`: the only time the token is shown.
#[derive(Debug, Serialize)]
pub struct CreatedToken {
    /// The token's id (its `jti`), for listing and revoking.
    pub id: Uuid,
    /// The JWT to give the agent (`--token`).
    pub token: String,
    /// Its expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Validates a token request; shared with `token issue` on the command line.
pub fn check_token_request(
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
    if let Some(t) = expires_at
        && t <= Utc::now()
    {
        return Err(Error::unprocessable(format!(
            "expires_at {t} is in the past"
        )));
    }
    Ok(())
}

async fn create(
    RequireRole { user, .. }: RequireRole<Admin>,
    State(state): State<AppState>,
    Json(body): Json<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), Error> {
    check_token_request(&body.name, &body.services, body.expires_at)?;
    if let Some(old) = body.replaces
        && !state
            .store
            .list_agent_tokens()
            .await?
            .iter()
            .any(|t| t.id == old)
    {
        return Err(Error::NotFound(format!("agent token {old} not found")));
    }
    let id = Uuid::new_v4();
    // Sign first: a token row without a token would be harmless, but a
    // signing failure should not leave one behind.
    let issued = issue_agent_token(
        &state.keys,
        id,
        body.name.trim(),
        &body.services,
        body.expires_at,
    )?;
    state
        .store
        .create_agent_token(
            id,
            body.name.trim(),
            &body.services,
            body.expires_at,
            &user.email,
        )
        .await?;
    if let Some(old) = body.replaces {
        state
            .store
            .replace_agent_token(id, old, &user.email)
            .await?;
    }
    tracing::info!(token_id = %id, name = %body.name.trim(), services = ?body.services, replaces = ?body.replaces, actor = %user.email, "agent token issued");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            id,
            token: issued.token,
            expires_at: issued.expires_at,
        }),
    ))
}

async fn list(
    _: RequireRole<Admin>,
    State(state): State<AppState>,
) -> Result<Json<Vec<AgentToken>>, Error> {
    Ok(Json(state.store.list_agent_tokens().await?))
}

async fn revoke(
    RequireRole { user, .. }: RequireRole<Admin>,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<AgentToken>, Error> {
    let token = state.store.revoke_agent_token(id, &user.email).await?;
    tracing::info!(token_id = %id, actor = %user.email, "agent token revoked");
    Ok(Json(token))
}
