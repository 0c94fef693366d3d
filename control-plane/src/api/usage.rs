//! Origin usage: `GET /origins/stale` (JSON or CSV), and the revocation
//! requests filed from it: `POST /origins/{id}/revocation-request` and its
//! `/confirm` and `/dismiss`.

use super::blocked::push_record;
use super::extract::{Json, JsonOrEmpty, Path, Query};
use super::origins::{DecisionBody, OriginChange};
use super::rollout::{WaitParams, after_change};
use super::{AppState, Error};
use crate::auth::{Approver, Requester, RequireRole, Viewer};
use crate::service;
use crate::store::origins::Origin;
use crate::store::usage::StaleOrigin;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module, with their OpenAPI entries.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(stale))
        .routes(routes!(request_revocation))
        .routes(routes!(confirm_revocation))
        .routes(routes!(dismiss_revocation))
}

/// Response format of `GET /origins/stale`.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = StaleFormat)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// A JSON array.
    #[default]
    Json,
    /// `text/csv` with a header line.
    Csv,
}

/// Query of `GET /origins/stale`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StaleParams {
    /// Days without an allowed request, 1..=3650: an origin is listed when
    /// it was approved at least this many days ago and no agent has
    /// reported an allowed request from it in that time.
    #[param(minimum = 1, maximum = 3650, example = 90)]
    pub unused_days: i64,
    /// `json` (default) or `csv`.
    #[serde(default)]
    #[param(inline)]
    pub format: Format,
}

/// Approved origins unused for `unused_days` days, across services, least
/// recently used first (role: viewer).
#[utoipa::path(
    get,
    path = "/origins/stale",
    tag = "origins",
    params(StaleParams),
    responses(
        (status = 200, description = "The stale origins; with `format=csv`, text/csv (id,service,pattern,approved_at,approved_by,last_allowed_at,revocation_requested_by)",
            content(
                (Vec<StaleOrigin> = "application/json"),
                (String = "text/csv"),
            )),
        (status = 400, description = "`unused_days` missing or not a number, or an unknown parameter"),
        (status = 422, description = "`unused_days` out of range"),
    ),
)]
async fn stale(
    _: RequireRole<Viewer>,
    State(state): State<AppState>,
    Query(p): Query<StaleParams>,
) -> Result<Response, Error> {
    let rows = service::usage::stale(&state, p.unused_days).await?;
    Ok(match p.format {
        Format::Json => Json(rows).into_response(),
        Format::Csv => csv_response(&rows),
    })
}

fn csv_response(rows: &[StaleOrigin]) -> Response {
    let mut out = String::from(
        "id,service,pattern,approved_at,approved_by,last_allowed_at,revocation_requested_by\n",
    );
    for r in rows {
        let fields = [
            r.id.to_string(),
            r.service.clone(),
            r.pattern.clone(),
            r.approved_at.to_rfc3339(),
            r.approved_by.clone().unwrap_or_default(),
            r.last_allowed_at
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
            r.revocation_requested_by.clone().unwrap_or_default(),
        ];
        push_record(&mut out, &fields);
    }
    (
        [
            (http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"stale-origins.csv\"",
            ),
        ],
        out,
    )
        .into_response()
}

/// Body of `POST /origins/{id}/revocation-request`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevocationRequest {
    /// Why it should go (shown to approvers): at most 4096 characters, not
    /// only whitespace.
    #[schema(
        min_length = 1,
        max_length = 4096,
        pattern = r"^[^\u0000]*[^\u0000\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000]*$",
        example = "Unused for 90 days"
    )]
    pub reason: String,
}

/// Ask for an approved origin to be revoked; another approver confirms or
/// dismisses (role: requester).
#[utoipa::path(
    post,
    path = "/origins/{id}/revocation-request",
    tag = "origins",
    params(("id" = i64, Path, description = "The origin's id", example = 1)),
    request_body = RevocationRequest,
    responses(
        (status = 200, description = "The origin, with the pending request", body = Origin),
        (status = 404, description = "No such origin"),
        (status = 409, description = "Not approved, or a revocation request is already pending"),
        (status = 422, description = "A blank or overlong reason"),
    ),
)]
async fn request_revocation(
    RequireRole { user, .. }: RequireRole<Requester>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Json(body): Json<RevocationRequest>,
) -> Result<Json<Origin>, Error> {
    service::revocations::request(&state, id, &body.reason, &user.email, &user.person)
        .await
        .map(Json)
}

/// Confirm a pending revocation request: the origin is revoked and agents
/// drop it with the next revision (role: approver; not the person who asked).
#[utoipa::path(
    post,
    path = "/origins/{id}/revocation-request/confirm",
    tag = "origins",
    params(("id" = i64, Path, description = "The origin's id", example = 1), WaitParams),
    request_body(content = Option<DecisionBody>, description = "Optional: a note for the audit log; the body may be empty"),
    responses(
        (status = 200, description = "The origin, revoked; with `?wait=applied`, also `rollout`", body = OriginChange),
        (status = 403, description = "Role too low, or the four-eyes rule: whoever asked cannot confirm"),
        (status = 422, description = "A bad `wait` or `timeout`, or a bad note (nothing changed)"),
        (status = 404, description = "No such origin"),
        (status = 409, description = "No pending revocation request, or not approved"),
    ),
)]
async fn confirm_revocation(
    RequireRole { user, .. }: RequireRole<Approver>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(wait): Query<WaitParams>,
    JsonOrEmpty(body): JsonOrEmpty<DecisionBody>,
) -> Result<Json<OriginChange>, Error> {
    // Parsed before the change: a bad `wait` changes nothing.
    let wait = wait.parse()?;
    let origin =
        service::revocations::confirm(&state, id, body.note.as_deref(), &user.email, &user.person)
            .await?;
    let rollout = after_change(&state, &origin.service, None, wait).await?;
    Ok(Json(OriginChange { origin, rollout }))
}

/// Dismiss a pending revocation request; the origin stays approved (role:
/// approver).
#[utoipa::path(
    post,
    path = "/origins/{id}/revocation-request/dismiss",
    tag = "origins",
    params(("id" = i64, Path, description = "The origin's id", example = 1)),
    responses(
        (status = 200, description = "The origin, still approved", body = Origin),
        (status = 404, description = "No such origin"),
        (status = 409, description = "No pending revocation request"),
    ),
)]
async fn dismiss_revocation(
    RequireRole { user, .. }: RequireRole<Approver>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Origin>, Error> {
    service::revocations::dismiss(&state, id, &user.email)
        .await
        .map(Json)
}
