//! What happened and who is connected: `GET /agents`, `GET /audit`.

use super::extract::{Json, Query};
use super::{AppState, Error};
use crate::auth::{RequireRole, Viewer};
use crate::store::agent_status::AgentStatus;
use crate::store::audit::{AuditEntry, MAX_AUDIT_LIMIT};
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Deserialize;

/// Rows `GET /audit` returns when no limit is given.
const DEFAULT_AUDIT_LIMIT: i64 = 100;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/agents", get(agents))
        .route("/audit", get(audit))
}

async fn agents(
    _: RequireRole<Viewer>,
    State(state): State<AppState>,
) -> Result<Json<Vec<AgentStatus>>, Error> {
    Ok(Json(state.store.list_agent_status().await?))
}

/// Query of `GET /audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only rows about this service.
    pub service: Option<String>,
    /// How many rows (1..=1000, default 100).
    pub limit: Option<i64>,
}

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
