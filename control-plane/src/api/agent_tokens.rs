//! Agent tokens: `POST/GET /agent-tokens`, `POST /agent-tokens/{id}/revoke`.

use super::extract::{Json, Path};
use super::schema::ServiceName;
use super::{AppState, Error};
use crate::auth::{Admin, RequireRole};
use crate::service;
use crate::store::tokens::AgentToken;
use axum::extract::State;
use chrono::{DateTime, Utc};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// The routes of this module, with their OpenAPI entries.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
}

/// Body of `POST /agent-tokens`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A name for people, e.g. the gateway the agent runs in: at most 4096
    /// characters, not only whitespace.
    #[schema(
        min_length = 1,
        max_length = 4096,
        pattern = r"^[^\u0000]*[^\u0000\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000]*$",
        example = "gateway-eu-1"
    )]
    pub name: String,
    /// The services the agent may subscribe to (names; they need not exist yet).
    #[schema(min_items = 1, value_type = Vec<ServiceName>)]
    pub services: Vec<String>,
    /// Optional expiry (RFC 3339), in the future; none means until revoked.
    pub expires_at: Option<DateTime<Utc>>,
    /// The id of the token this one replaces (rotation): the new token may
    /// act as the agent ids bound to that one. 404 if there is no such token.
    #[serde(default)]
    pub replaces: Option<Uuid>,
}

/// Response of `POST /agent-tokens`: the only time the token is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// The token's id (its `jti`), for listing and revoking.
    pub id: Uuid,
    /// The JWT to give the agent (`--token`).
    pub token: String,
    /// Its expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Issue an agent token for some services (role: admin).
#[utoipa::path(
    post,
    path = "/agent-tokens",
    tag = "agents",
    request_body = CreateToken,
    responses(
        (status = 201, description = "The token, shown only this once", body = CreatedToken),
        (status = 404, description = "`replaces` names no agent token"),
        (status = 422, description = "Invalid name or services, or `expires_at` is past"),
    ),
)]
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

/// List agent tokens, never the tokens themselves (role: admin).
#[utoipa::path(
    get,
    path = "/agent-tokens",
    tag = "agents",
    responses((status = 200, description = "Every token, newest first", body = [AgentToken])),
)]
async fn list(
    _: RequireRole<Admin>,
    State(state): State<AppState>,
) -> Result<Json<Vec<AgentToken>>, Error> {
    Ok(Json(state.store.list_agent_tokens().await?))
}

/// Revoke an agent token; its agents are refused from then on (role: admin).
#[utoipa::path(
    post,
    path = "/agent-tokens/{id}/revoke",
    tag = "agents",
    params(("id" = Uuid, Path, description = "The token's id (its `jti`)")),
    responses(
        (status = 200, description = "The token, revoked", body = AgentToken),
        (status = 404, description = "No such token"),
        (status = 409, description = "Already revoked"),
    ),
)]
async fn revoke(
    RequireRole { user, .. }: RequireRole<Admin>,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<AgentToken>, Error> {
    service::tokens::revoke_agent(&state, id, &user.email)
        .await
        .map(Json)
}
