//! Origin requests: `POST /services/{name}/origins` and
//! `POST /origins/{id}/{approve,reject,revoke}`.

use super::extract::{Json, JsonOrEmpty, Path};
use super::{AppState, Error};
use crate::auth::{Approver, Requester, RequireRole, Viewer};
use crate::service;
use crate::store::origins::{Decision, Origin};
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use http::StatusCode;
use serde::Deserialize;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/services/{name}/origins", post(request).get(list))
        .route("/origins/{id}", get(show))
        .route("/origins/{id}/approve", post(approve))
        .route("/origins/{id}/reject", post(reject))
        .route("/origins/{id}/revoke", post(revoke))
}

/// Body of `POST /services/{name}/origins`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginRequest {
    /// The origin pattern, e.g. `https://app.example.com` or `https://*.example.com`.
    pub pattern: String,
    /// Why it is needed (shown to approvers).
    pub reason: String,
    /// End of a temporary grant (RFC 3339).
    pub expires_at: Option<DateTime<Utc>>,
}

/// Body of approve/reject/revoke; may be omitted, except that a reject
/// needs a non-empty `note` (422 otherwise).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// Why, for the audit log; required to reject.
    pub note: Option<String>,
}

async fn list(
    _: RequireRole<Viewer>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<Origin>>, Error> {
    // A 404 for an unknown service, rather than an empty list.
    state.store.get_service(&name).await?;
    Ok(Json(state.store.list_origins(&name).await?))
}

async fn show(
    _: RequireRole<Viewer>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Origin>, Error> {
    Ok(Json(state.store.get_origin(id).await?))
}

async fn request(
    RequireRole { user, .. }: RequireRole<Requester>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<OriginRequest>,
) -> Result<(StatusCode, Json<Origin>), Error> {
    let origin = service::origins::request(
        &state,
        &name,
        &body.pattern,
        &body.reason,
        body.expires_at,
        &user.email,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(origin)))
}

async fn decide(
    state: &AppState,
    id: i64,
    decision: Decision,
    body: DecisionBody,
    actor: &str,
) -> Result<Json<Origin>, Error> {
    service::origins::decide(state, id, decision, body.note.as_deref(), actor)
        .await
        .map(Json)
}

async fn approve(
    RequireRole { user, .. }: RequireRole<Approver>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    JsonOrEmpty(body): JsonOrEmpty<DecisionBody>,
) -> Result<Json<Origin>, Error> {
    decide(&state, id, Decision::Approve, body, &user.email).await
}

async fn reject(
    RequireRole { user, .. }: RequireRole<Approver>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    JsonOrEmpty(body): JsonOrEmpty<DecisionBody>,
) -> Result<Json<Origin>, Error> {
    decide(&state, id, Decision::Reject, body, &user.email).await
}

async fn revoke(
    RequireRole { user, .. }: RequireRole<Approver>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    JsonOrEmpty(body): JsonOrEmpty<DecisionBody>,
) -> Result<Json<Origin>, Error> {
    decide(&state, id, Decision::Revoke, body, &user.email).await
}
