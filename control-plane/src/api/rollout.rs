//! Rollout evidence: `GET /services/{name}/rollout`, and the
//! `?wait=applied&timeout=…` query the change endpoints (approve, revoke,
//! `PATCH /services/{name}`) share.

use super::extract::{Json, Path};
use super::{AppState, Error};
use crate::auth::{RequireRole, Viewer};
use crate::service;
use crate::service::rollout::RolloutWait;
use crate::store::rollout::Rollout;
use axum::extract::State;
use serde::Deserialize;
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module, with their OpenAPI entries.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(rollout))
}

/// Query of the change endpoints: wait for the agents before answering.
///
/// The change happens first and keeps its status code; the wait only adds
/// a `rollout` member to the body. A bad `wait` or `timeout` is refused
/// with 422 before anything changes.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WaitParams {
    /// `applied`: answer once every connected agent subscribed to the
    /// service has applied the change's revision (ACKed it), or at the
    /// timeout with the laggards listed.
    #[param(pattern = "^applied$", example = "applied")]
    pub wait: Option<String>,
    /// How long to wait, e.g. `10s`, `500ms`, `1m`: at most 60 s, 10 s if
    /// absent. Only with `wait=applied`. Any humantime duration (e.g.
    /// `1m 30s`, `0`) up to the cap is accepted, so the document gives no
    /// pattern (a narrower one would misstate what the API takes); anything
    /// else is a 422.
    #[param(example = "10s")]
    pub timeout: Option<String>,
}

impl WaitParams {
    /// The wait asked for, checked (422 saying what to send otherwise).
    pub fn parse(&self) -> Result<Option<Duration>, Error> {
        service::rollout::parse_wait(self.wait.as_deref(), self.timeout.as_deref())
    }
}

/// Runs the wait asked for (if any) on `service` after a change.
pub async fn after_change(
    state: &AppState,
    service: &str,
    revision: Option<i64>,
    wait: Option<Duration>,
) -> Result<Option<RolloutWait>, Error> {
    match wait {
        Some(timeout) => Ok(Some(
            service::rollout::wait_applied(state, service, revision, timeout).await?,
        )),
        None => Ok(None),
    }
}

/// How far the service's current revision has reached its agents: "k of N
/// connected agents applied revision R", and for the others the revision
/// they hold and their last NACK error (role: viewer).
#[utoipa::path(
    get,
    path = "/services/{name}/rollout",
    tag = "services",
    params(("name" = String, Path, description = "The service's name", example = "payments-api")),
    responses(
        (status = 200, description = "The rollout of the current revision", body = Rollout),
        (status = 404, description = "No such service"),
    ),
)]
async fn rollout(
    _: RequireRole<Viewer>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Rollout>, Error> {
    Ok(Json(service::rollout::status(&state, &name).await?))
}
