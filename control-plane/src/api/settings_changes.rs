//! Settings changes held for a second approver:
//! `GET /services/{name}/settings-changes` (the pending ones),
//! `GET /services/{name}/settings-changes/{id}`, and `POST …/{id}/confirm`
//! and `POST …/{id}/dismiss`. `PATCH /services/{name}` files them (202).

use super::extract::{Json, Path, Query};
use super::rollout::{WaitParams, after_change};
use super::{AppState, Error};
use crate::auth::{Approver, RequireRole, Viewer};
use crate::service;
use crate::service::rollout::RolloutWait;
use crate::service::settings_changes::PendingChange;
use crate::store::settings_changes::SettingsChange;
use axum::extract::State;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module, with their OpenAPI entries.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show))
        .routes(routes!(confirm))
        .routes(routes!(dismiss))
}

/// A settings change after it was confirmed: the change, the revision that
/// carries it to agents, and with `?wait=applied` its rollout.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConfirmedChange {
    /// The change, now `confirmed`.
    #[serde(flatten)]
    pub change: SettingsChange,
    /// The service's revision after the change (what agents ACK).
    pub revision: i64,
    /// Only with `?wait=applied`: how far the change reached the connected
    /// agents when the wait ended (all of them, or the timeout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutWait>,
}

/// A service's pending settings changes, oldest first (role: viewer).
#[utoipa::path(
    get,
    path = "/services/{name}/settings-changes",
    tag = "services",
    params(("name" = String, Path, description = "The service's name", example = "payments-api")),
    responses(
        (status = 200, description = "The pending changes, each with what it widens and whether it went stale", body = [PendingChange]),
        (status = 404, description = "No such service"),
    ),
)]
async fn list(
    _: RequireRole<Viewer>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<PendingChange>>, Error> {
    Ok(Json(
        service::settings_changes::pending(&state, &name).await?,
    ))
}

/// One settings change of a service, in any state (role: viewer).
#[utoipa::path(
    get,
    path = "/services/{name}/settings-changes/{id}",
    tag = "services",
    params(
        ("name" = String, Path, description = "The service's name", example = "payments-api"),
        ("id" = i64, Path, description = "The settings change's id", example = 1),
    ),
    responses(
        (status = 200, description = "The change", body = SettingsChange),
        (status = 404, description = "No such service, or no such change on it"),
    ),
)]
async fn show(
    _: RequireRole<Viewer>,
    State(state): State<AppState>,
    Path((name, id)): Path<(String, i64)>,
) -> Result<Json<SettingsChange>, Error> {
    Ok(Json(state.store.get_settings_change(&name, id).await?))
}

/// Confirm a pending settings change: it is applied like a direct `PATCH`
/// (revision bump, agents receive it) (role: approver; not the person who
/// requested it, nor a token they created).
#[utoipa::path(
    post,
    path = "/services/{name}/settings-changes/{id}/confirm",
    tag = "services",
    params(
        ("name" = String, Path, description = "The service's name", example = "payments-api"),
        ("id" = i64, Path, description = "The settings change's id", example = 1),
        WaitParams,
    ),
    responses(
        (status = 200, description = "Applied: the change, confirmed, with the service's new `revision`; with `?wait=applied`, also `rollout`", body = ConfirmedChange),
        (status = 403, description = "Role too low, or the four-eyes rule: whoever requested the change cannot confirm it"),
        (status = 404, description = "No such service, or no such change on it"),
        (status = 409, description = "Not pending (already confirmed or dismissed), or stale: the service's settings changed since it was requested (dismiss it and request it again)"),
        (status = 422, description = "The settings no longer fit the service's approved origins (`details` lists every problem), or a `wait`/`timeout` the API does not take (nothing changed)"),
    ),
)]
async fn confirm(
    RequireRole { user, .. }: RequireRole<Approver>,
    State(state): State<AppState>,
    Path((name, id)): Path<(String, i64)>,
    Query(wait): Query<WaitParams>,
) -> Result<Json<ConfirmedChange>, Error> {
    // Parsed before the change: a bad `wait` changes nothing.
    let wait = wait.parse()?;
    let (service, change) =
        service::settings_changes::confirm(&state, &name, id, &user.email, &user.person).await?;
    let revision = service.revision;
    let rollout = after_change(&state, &name, Some(revision), wait).await?;
    Ok(Json(ConfirmedChange {
        change,
        revision,
        rollout,
    }))
}

/// Dismiss a pending settings change; nothing is applied (role: approver,
/// the requester included).
#[utoipa::path(
    post,
    path = "/services/{name}/settings-changes/{id}/dismiss",
    tag = "services",
    params(
        ("name" = String, Path, description = "The service's name", example = "payments-api"),
        ("id" = i64, Path, description = "The settings change's id", example = 1),
    ),
    responses(
        (status = 200, description = "The change, dismissed", body = SettingsChange),
        (status = 404, description = "No such service, or no such change on it"),
        (status = 409, description = "Not pending (already confirmed or dismissed)"),
    ),
)]
async fn dismiss(
    RequireRole { user, .. }: RequireRole<Approver>,
    State(state): State<AppState>,
    Path((name, id)): Path<(String, i64)>,
) -> Result<Json<SettingsChange>, Error> {
    Ok(Json(
        service::settings_changes::dismiss(&state, &name, id, &user.email).await?,
    ))
}
