//! What happened and who is connected: `GET /agents`, `GET /audit`.

use super::extract::{Json, Query};
use super::{AppState, Error};
use crate::auth::{RequireRole, Viewer};
use crate::store::agent_status::AgentStatus;
use crate::store::audit::{AuditEntry, MAX_AUDIT_LIMIT};
use axum::extract::State;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Rows `GET /audit` returns when no limit is given.
const DEFAULT_AUDIT_LIMIT: i64 = 100;

/// The routes of this module, with their OpenAPI entries.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(agents))
        .routes(routes!(audit))
}

/// Agents seen, with the revision each applied and its last NACK per
/// service (role: viewer).
#[utoipa::path(
    get,
    path = "/agents",
    tag = "agents",
    responses((status = 200, description = "Every agent, most recently seen first", body = [AgentStatus])),
)]
async fn agents(
    _: RequireRole<Viewer>,
    State(state): State<AppState>,
) -> Result<Json<Vec<AgentStatus>>, Error> {
    Ok(Json(state.store.list_agent_status().await?))
}

/// Query of `GET /audit`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only rows about this service.
    pub service: Option<String>,
    /// How many rows (1..=1000, default 100).
    #[param(minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<i64>,
}

/// The change audit log, newest first (role: viewer).
#[utoipa::path(
    get,
    path = "/audit",
    tag = "observe",
    params(AuditQuery),
    responses(
        (status = 200, description = "Rows, newest first", body = [AuditEntry]),
        (status = 400, description = "An unknown or malformed query parameter"),
        (status = 422, description = "`limit` out of range"),
    ),
)]
async fn audit(
    _: RequireRole<Viewer>,
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, Error> {
    let limit = q.limit.unwrap_or(DEFAULT_AUDIT_LIMIT);
    if !(1..=MAX_AUDIT_LIMIT).contains(&limit) {
        return Err(Error::unprocessable(format!(
            "limit must be between 1 and {MAX_AUDIT_LIMIT}"
        )));
    }
    Ok(Json(
        state.store.list_audit(q.service.as_deref(), limit).await?,
    ))
}
