//! Origin requests: `POST /services/{name}/origins` and
//! `POST /origins/{id}/{approve,reject,revoke}`.

use super::extract::{Json, JsonOrEmpty, Path, Query};
use super::rollout::{WaitParams, after_change};
use super::{AppState, Error};
use crate::auth::{Approver, CurrentUser, Requester, RequireRole, Viewer};
use crate::service;
use crate::service::rollout::RolloutWait;
use crate::service::usage::OriginWithUsage;
use crate::store::origins::{Decision, Origin};
use axum::extract::State;
use chrono::{DateTime, Utc};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module, with their OpenAPI entries.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(request, list))
        .routes(routes!(show))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(revoke))
}

/// Body of `POST /services/{name}/origins`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OriginRequest {
    /// The origin pattern, e.g. `https://app.example.com` or `https://*.example.com`.
    ///
    /// The schema's pattern is a necessary shape, not a sufficient one: `*`,
    /// or an `http`/`https` scheme and an authority without path, query,
    /// fragment, userinfo or whitespace. The engine judges the rest (host
    /// syntax, default ports, wildcards over a public suffix) with a 422.
    #[schema(
        pattern = r"^(\*|https?://[^/?#@\s]+)$",
        example = "https://app.example.com"
    )]
    pub pattern: String,
    /// Why it is needed (shown to approvers): at most 4096 characters, not
    /// only whitespace.
    #[schema(
        min_length = 1,
        max_length = 4096,
        pattern = r"^[^\u0000]*[^\u0000\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000]*$",
        example = "the new checkout page"
    )]
    pub reason: String,
    /// End of a temporary grant (RFC 3339); must be in the future.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Body of approve/reject/revoke; may be omitted, except that a reject
/// needs a non-blank `note` (422 otherwise).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// Why, for the audit log: at most 4096 characters; required to reject.
    #[schema(max_length = 4096, pattern = "^[^\\u0000]*$")]
    pub note: Option<String>,
}

/// An origin after approve or revoke: the origin, and with
/// `?wait=applied` the rollout of the change to the agents.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OriginChange {
    /// The origin after the decision.
    #[serde(flatten)]
    pub origin: Origin,
    /// Only with `?wait=applied`: how far the change reached the connected
    /// agents when the wait ended (all of them, or the timeout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutWait>,
}

/// Decides, then waits for the agents if asked (after the change: a
/// timeout never undoes it).
async fn decide_and_wait(
    state: &AppState,
    id: i64,
    decision: Decision,
    body: DecisionBody,
    user: &CurrentUser,
    wait: &WaitParams,
) -> Result<Json<OriginChange>, Error> {
    let wait = wait.parse()?;
    let Json(origin) = decide(state, id, decision, body, user).await?;
    let rollout = after_change(state, &origin.service, None, wait).await?;
    Ok(Json(OriginChange { origin, rollout }))
}

/// A service's origins, all states, with their usage (role: viewer).
#[utoipa::path(
    get,
    path = "/services/{name}/origins",
    tag = "origins",
    params(("name" = String, Path, description = "The service's name", example = "payments-api")),
    responses(
        (status = 200, description = "Its origins, newest request first, each with its usage: `last_allowed_at` (the last allowed cross-origin request agents reported) and `allowed_30d` (allowed requests over the last 30 UTC days)", body = [OriginWithUsage]),
        (status = 404, description = "No such service"),
    ),
)]
async fn list(
    _: RequireRole<Viewer>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<OriginWithUsage>>, Error> {
    // A 404 for an unknown service, rather than an empty list.
    Ok(Json(
        service::usage::origins_with_usage(&state, &name).await?,
    ))
}

/// One origin (role: viewer).
#[utoipa::path(
    get,
    path = "/origins/{id}",
    tag = "origins",
    params(("id" = i64, Path, description = "The origin's id", example = 1)),
    responses(
        (status = 200, description = "The origin", body = Origin),
        (status = 404, description = "No such origin"),
    ),
)]
async fn show(
    _: RequireRole<Viewer>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Origin>, Error> {
    Ok(Json(state.store.get_origin(id).await?))
}

/// Request an origin for a service; it starts `pending` (role: requester).
#[utoipa::path(
    post,
    path = "/services/{name}/origins",
    tag = "origins",
    params(("name" = String, Path, description = "The service's name", example = "payments-api")),
    request_body = OriginRequest,
    responses(
        (status = 201, description = "The request, pending", body = Origin),
        (status = 404, description = "No such service"),
        (status = 409, description = "Already pending or approved"),
        (status = 422, description = "The pattern is not a valid origin (the message says why, e.g. a wildcard over a public suffix), does not fit the service's settings (e.g. plain http with credentials), or `expires_at` is past"),
    ),
)]
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
        &user.person,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(origin)))
}

async fn decide(
    state: &AppState,
    id: i64,
    decision: Decision,
    body: DecisionBody,
    user: &CurrentUser,
) -> Result<Json<Origin>, Error> {
    service::origins::decide(
        state,
        id,
        decision,
        body.note.as_deref(),
        &user.email,
        &user.person,
    )
    .await
    .map(Json)
}

/// Approve a pending origin; it reaches agents with the next revision (role: approver).
#[utoipa::path(
    post,
    path = "/origins/{id}/approve",
    tag = "origins",
    params(("id" = i64, Path, description = "The origin's id", example = 1), WaitParams),
    request_body(content = Option<DecisionBody>, description = "Optional: a note for the audit log; the body may be empty"),
    responses(
        (status = 200, description = "The origin after the decision; with `?wait=applied`, also `rollout`", body = OriginChange),
        (status = 404, description = "No such origin"),
        (status = 409, description = "Not pending"),
        (status = 403, description = "Role too low, or the four-eyes rule: the requester cannot approve their own request"),
        (status = 422, description = "The origin no longer fits the service's settings, or its requested expiry has passed, or a `wait`/`timeout` the API does not take (nothing changed)"),
    ),
)]
async fn approve(
    RequireRole { user, .. }: RequireRole<Approver>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(wait): Query<WaitParams>,
    JsonOrEmpty(body): JsonOrEmpty<DecisionBody>,
) -> Result<Json<OriginChange>, Error> {
    decide_and_wait(&state, id, Decision::Approve, body, &user, &wait).await
}

/// The body of `POST /origins/{id}/reject` as documented: [`DecisionBody`]
/// with the note required (the rule lives in `service::origins::decide`;
/// the handler reads a [`DecisionBody`] and the service refuses a missing or
/// blank note with 422).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // a schema only: never constructed
pub struct RejectBody {
    /// Why the request is refused, for the requester and the audit log:
    /// 1 to 4096 characters, not only whitespace.
    #[schema(
        min_length = 1,
        max_length = 4096,
        pattern = r"^[^\u0000]*[^\u0000\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000]*$"
    )]
    note: String,
}

/// Reject a pending origin, with a reason (role: approver).
#[utoipa::path(
    post,
    path = "/origins/{id}/reject",
    tag = "origins",
    params(("id" = i64, Path, description = "The origin's id", example = 1)),
    request_body(content = RejectBody, description = "The reason for the rejection (required)"),
    responses(
        (status = 200, description = "The origin after the decision", body = Origin),
        (status = 404, description = "No such origin"),
        (status = 409, description = "Not pending"),
        (status = 422, description = "No note, or a blank one: a rejection needs a reason"),
    ),
)]
async fn reject(
    RequireRole { user, .. }: RequireRole<Approver>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    JsonOrEmpty(body): JsonOrEmpty<DecisionBody>,
) -> Result<Json<Origin>, Error> {
    decide(&state, id, Decision::Reject, body, &user).await
}

/// Revoke an approved origin; agents drop it with the next revision (role: approver).
#[utoipa::path(
    post,
    path = "/origins/{id}/revoke",
    tag = "origins",
    params(("id" = i64, Path, description = "The origin's id", example = 1), WaitParams),
    request_body(content = Option<DecisionBody>, description = "Optional: a note for the audit log; the body may be empty"),
    responses(
        (status = 200, description = "The origin after the decision; with `?wait=applied`, also `rollout`", body = OriginChange),
        (status = 404, description = "No such origin"),
        (status = 409, description = "Not approved"),
        (status = 422, description = "A `wait`/`timeout` the API does not take (nothing changed)"),
    ),
)]
async fn revoke(
    RequireRole { user, .. }: RequireRole<Approver>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(wait): Query<WaitParams>,
    JsonOrEmpty(body): JsonOrEmpty<DecisionBody>,
) -> Result<Json<OriginChange>, Error> {
    decide_and_wait(&state, id, Decision::Revoke, body, &user, &wait).await
}
