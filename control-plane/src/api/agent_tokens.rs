//! Agent tokens: `POST/GET /agent-tokens`, `POST /agent-tokens/{id}/revoke`.

use super::extract::{Json, Path};
use super::schema::ServiceName;
use super::{AppState, Error, validate};
use crate::auth::{Admin, RequireRole, issue_agent_token};
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

/// Issue an agent token for some services (role: admin).
#[utoipa::path(
    post,
    path = "/agent-tokens",
    tag = "agents",
    request_body = CreateToken,
    responses(
        (status = 201, description = "The token, shown only this once", body = CreatedToken),
        (status = 422, description = "Invalid name or services, or `expires_at` is past"),
    ),
)]
async fn create(
    RequireRole { user, .. }: RequireRole<Admin>,
    State(state): State<AppState>,
    Json(body): Json<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), Error> {
    check_token_request(&body.name, &body.services, body.expires_at)?;
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
    tracing::info!(token_id = %id, name = %body.name.trim(), services = ?body.services, actor = %user.email, "agent token issued");
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
    let token = state.store.revoke_agent_token(id, &user.email).await?;
    tracing::info!(token_id = %id, actor = %user.email, "agent token revoked");
    Ok(Json(token))
}
