//! Agent tokens: `POST/GET /agent-tokens`, `POST /agent-tokens/{id}/revoke`.

use super::extract::{Json, Path};
use super::{AppState, Error};
use crate::auth::{Admin, RequireRole};
use crate::service;
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

async fn create(
    RequireRole { user, .. }: RequireRole<Admin>,
    State(state): State<AppState>,
    Json(body): Json<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), Error> {
    let (id, issued) = service::tokens::issue_agent(
        &state,
        &body.name,
        &body.services,
        body.expires_at,
        body.replaces,
        &user.email,
    )
    .await?;
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
    service::tokens::revoke_agent(&state, id, &user.email)
        .await
        .map(Json)
}
