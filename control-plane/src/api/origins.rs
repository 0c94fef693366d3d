//! Origin requests: `POST /services/{name}/origins` and
//! `POST /origins/{id}/{approve,reject,revoke}`.

use super::extract::{Json, JsonOrEmpty, Path};
use super::{AppState, Error, validate};
use crate::auth::{Approver, Requester, RequireRole, Viewer};
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

/// Four eyes: nobody approves their own request, unless the control plane
/// runs with `--single-operator`. Shared with the UI.
pub fn check_four_eyes(state: &AppState, origin: &Origin, actor: &str) -> Result<(), Error> {
    if !state.single_operator && origin.requested_by.eq_ignore_ascii_case(actor) {
        return Err(Error::Forbidden(format!(
            "four-eyes rule: {actor} requested origin {} and cannot also approve it; ask another approver",
            origin.pattern
        )));
    }
    Ok(())
}

/// Body of approve/reject/revoke; may be omitted.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// Why, for the audit log.
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

fn approved(origins: Vec<Origin>) -> Vec<String> {
    origins
        .into_iter()
        .filter(|o| o.status == "approved")
        .map(|o| o.pattern)
        .collect()
}

async fn request(
    RequireRole { user, .. }: RequireRole<Requester>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<OriginRequest>,
) -> Result<(StatusCode, Json<Origin>), Error> {
    let service = state.store.get_service(&name).await?;
    validate::text("reason", &body.reason, true)?;
    if let Some(t) = body.expires_at
        && t <= Utc::now()
    {
        return Err(Error::unprocessable(format!(
            "expires_at {t} is in the past"
        )));
    }
    let others = approved(state.store.list_origins(&name).await?);
    let pattern = validate::origin(&body.pattern, &service.settings, others)?;
    let origin = state
        .store
        .request_origin(
            &name,
            &pattern,
            body.reason.trim(),
            body.expires_at,
            &user.email,
        )
        .await?;
    tracing::info!(service = %name, origin = %origin.pattern, id = origin.id, actor = %user.email, "origin requested");
    Ok((StatusCode::CREATED, Json(origin)))
}

/// Applies `decision` to origin `id` as `actor`, with every check the API
/// makes (four eyes, expiry, the policy as it is now). Shared with the UI.
pub async fn decide(
    state: &AppState,
    id: i64,
    decision: Decision,
    note: Option<String>,
    actor: &str,
) -> Result<Json<Origin>, Error> {
    if let Some(note) = &note {
        validate::text("note", note, false)?;
    }
    let origin = state
        .store
        .decide_origin_with(
            id,
            decision,
            note.as_deref(),
            actor,
            |origin, service, approved| {
                if decision != Decision::Approve {
                    return Ok(());
                }
                check_four_eyes(state, origin, actor)?;
                if let Some(t) = origin.expires_at
                    && t <= Utc::now()
                {
                    return Err(Error::unprocessable(format!(
                        "origin {id} was requested until {t}, which has passed; request it again"
                    )));
                }
                // Settings may have changed since the request was filed (e.g.
                // credentials turned on): check the origin against them as they
                // are now, with the service row locked.
                validate::origin(&origin.pattern, &service.settings, approved).map(|_| ())
            },
        )
        .await?;
    tracing::info!(
        service = %origin.service,
        origin = %origin.pattern,
        id,
        actor,
        decision = decision.verb(),
        "origin decided"
    );
    Ok(Json(origin))
}

async fn approve(
    RequireRole { user, .. }: RequireRole<Approver>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    JsonOrEmpty(body): JsonOrEmpty<DecisionBody>,
) -> Result<Json<Origin>, Error> {
    decide(&state, id, Decision::Approve, body.note, &user.email).await
}

async fn reject(
    RequireRole { user, .. }: RequireRole<Approver>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    JsonOrEmpty(body): JsonOrEmpty<DecisionBody>,
) -> Result<Json<Origin>, Error> {
    decide(&state, id, Decision::Reject, body.note, &user.email).await
}

async fn revoke(
    RequireRole { user, .. }: RequireRole<Approver>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    JsonOrEmpty(body): JsonOrEmpty<DecisionBody>,
) -> Result<Json<Origin>, Error> {
    decide(&state, id, Decision::Revoke, body.note, &user.email).await
}
