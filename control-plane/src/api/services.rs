//! `/services`, `/services/{name}` and `/services/{name}/policy`.

use super::extract::{Json, Path, Query};
use super::rollout::{WaitParams, after_change};
use super::{AppState, Error};
use crate::auth::{Admin, Approver, RequireRole, Viewer};
use crate::service;
use crate::service::rollout::RolloutWait;
use crate::service::services::Updated;
use crate::service::settings_changes::PendingChange;
use crate::store::origins::Origin;
use crate::store::policy::EffectivePolicy;
use crate::store::services::Service;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use corsair_agent::engine::{Mode, PolicySettings};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::schema::{CreateService, HttpToken, UpdateService};

/// The routes of this module, with their OpenAPI entries.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(policy))
}

/// Body of `POST /services` and `PATCH /services/{name}`: every field
/// optional; on create, missing fields take their defaults, on update they
/// stay as they are.
///
/// The document shows it as two schemas, [`CreateService`] (`name`
/// required) and [`UpdateService`] (no `name`), both derived from this one.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceBody {
    /// Required on create; on update it must match the path (no renames).
    #[schema(
        pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
        example = "payments-api"
    )]
    pub name: Option<String>,
    /// Free text, at most 4096 characters.
    #[schema(max_length = 4096, pattern = "^[^\\u0000]*$")]
    pub description: Option<String>,
    /// Methods allowed on preflight (HTTP tokens, e.g. `PUT`; `*` for any).
    #[schema(value_type = Option<Vec<HttpToken>>)]
    pub allow_methods: Option<Vec<String>>,
    /// Request headers allowed on preflight (header names; `*` for any).
    #[schema(value_type = Option<Vec<HttpToken>>)]
    pub allow_headers: Option<Vec<String>>,
    /// Response headers exposed to scripts (header names; `*` for any).
    #[schema(value_type = Option<Vec<HttpToken>>)]
    pub expose_headers: Option<Vec<String>>,
    /// Emit `Access-Control-Allow-Credentials: true`.
    pub allow_credentials: Option<bool>,
    /// Preflight cache lifetime in seconds (the engine accepts 0..=86400).
    #[schema(minimum = 0, maximum = 86400)]
    pub max_age_secs: Option<i64>,
    /// Answer Private Network Access preflights.
    pub allow_private_network: Option<bool>,
    /// `enforce` or `report_only` (not at creation: a new service starts in
    /// `enforce`, and `report_only`, which grants every origin, waits for a
    /// second approver as a settings change).
    pub mode: Option<Mode>,
    /// Refuse disallowed actual requests before the upstream.
    pub strict: Option<bool>,
    /// Opt-in: plain-`http` non-loopback origins with credentials.
    pub allow_insecure_http: Option<bool>,
}

impl ServiceBody {
    /// `base` with this body's settings laid over it (the engine judges
    /// the result).
    fn apply(self, mut base: PolicySettings) -> PolicySettings {
        if let Some(v) = self.allow_methods {
            base.allow_methods = v;
        }
        if let Some(v) = self.allow_headers {
            base.allow_headers = v;
        }
        if let Some(v) = self.expose_headers {
            base.expose_headers = v;
        }
        if let Some(v) = self.allow_credentials {
            base.allow_credentials = v;
        }
        if let Some(v) = self.max_age_secs {
            base.max_age_secs = v;
        }
        if let Some(v) = self.allow_private_network {
            base.allow_private_network = v;
        }
        if let Some(v) = self.mode {
            base.mode = v;
        }
        if let Some(v) = self.strict {
            base.strict = v;
        }
        if let Some(v) = self.allow_insecure_http {
            base.allow_insecure_http = v;
        }
        base
    }
}

/// A service with its origins (all states), as `GET /services/{name}` returns it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ServiceDetail {
    /// The service, including `revision`.
    #[serde(flatten)]
    pub service: Service,
    /// Its origins, newest request first.
    pub origins: Vec<Origin>,
    /// Only after `PATCH` with `?wait=applied`: how far the change reached
    /// the connected agents when the wait ended (all of them, or the
    /// timeout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutWait>,
}

/// List services (role: viewer).
#[utoipa::path(
    get,
    path = "/services",
    tag = "services",
    responses((status = 200, description = "Every service, by name", body = [Service])),
)]
async fn list(
    _: RequireRole<Viewer>,
    State(state): State<AppState>,
) -> Result<Json<Vec<Service>>, Error> {
    Ok(Json(state.store.list_services().await?))
}

async fn detail(state: &AppState, service: Service) -> Result<ServiceDetail, Error> {
    let origins = state.store.list_origins(&service.name).await?;
    Ok(ServiceDetail {
        service,
        origins,
        rollout: None,
    })
}

/// A service with its revision and origins (role: viewer).
#[utoipa::path(
    get,
    path = "/services/{name}",
    tag = "services",
    params(("name" = String, Path, description = "The service's name", example = "payments-api")),
    responses(
        (status = 200, description = "The service", body = ServiceDetail),
        (status = 404, description = "No such service"),
    ),
)]
async fn show(
    _: RequireRole<Viewer>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ServiceDetail>, Error> {
    let service = state.store.get_service(&name).await?;
    Ok(Json(detail(&state, service).await?))
}

/// Create a service (role: admin).
#[utoipa::path(
    post,
    path = "/services",
    tag = "services",
    request_body = CreateService,
    responses(
        (status = 201, description = "The new service (no origins yet)", body = ServiceDetail),
        (status = 409, description = "The name is taken"),
        (status = 422, description = "Invalid name or settings; `details` lists every problem the engine found (e.g. a forbidden method). `mode: report_only` is refused here: it grants every origin, so a new service starts in enforce mode and report-only comes through a settings change (`PATCH /services/{name}`) that a second approver confirms"),
    ),
)]
async fn create(
    RequireRole { user, .. }: RequireRole<Admin>,
    State(state): State<AppState>,
    Json(mut body): Json<ServiceBody>,
) -> Result<(StatusCode, Json<ServiceDetail>), Error> {
    let name = body
        .name
        .take()
        .ok_or_else(|| Error::unprocessable("name is required"))?;
    let description = body.description.take().unwrap_or_default();
    let settings = body.apply(PolicySettings::default());
    let service =
        service::services::create(&state, &name, &description, &settings, &user.email).await?;
    Ok((
        StatusCode::CREATED,
        Json(ServiceDetail {
            service,
            origins: Vec::new(),
            rollout: None,
        }),
    ))
}

/// Change the description or the policy settings; settings bump the
/// revision (role: approver). A change that widens what browsers are
/// granted (`mode` enforce → report_only, `allow_credentials`,
/// `allow_private_network` or `allow_insecure_http` turned on, `strict`
/// turned off) is not applied: it is held, whole, as a pending settings
/// change (202) that another person confirms.
#[utoipa::path(
    patch,
    path = "/services/{name}",
    tag = "services",
    params(("name" = String, Path, description = "The service's name", example = "payments-api"), WaitParams),
    request_body = UpdateService,
    responses(
        (status = 200, description = "Applied (the change narrows or is neutral): the service; with `?wait=applied`, also `rollout`", body = ServiceDetail),
        (status = 202, description = "Held: the change widens access and waits for a second approver (`POST /services/{name}/settings-changes/{id}/confirm`); nothing changed yet, and `?wait=applied` does not wait", body = PendingChange),
        (status = 404, description = "No such service"),
        (status = 422, description = "Invalid settings, alone or with the approved origins (`details` lists every problem), or a `wait`/`timeout` the API does not take (nothing changed)"),
    ),
)]
async fn update(
    RequireRole { user, .. }: RequireRole<Approver>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(wait): Query<WaitParams>,
    Json(mut body): Json<ServiceBody>,
) -> Result<Response, Error> {
    let wait = wait.parse()?;
    if let Some(new_name) = body.name.take()
        && new_name != name
    {
        // Unknown services are still a 404, not a complaint about the body.
        state.store.get_service(&name).await?;
        return Err(Error::unprocessable(
            "a service cannot be renamed; create a new one",
        ));
    }
    let updated = service::services::update(&state, &name, &user.email, &user.person, |current| {
        Ok(service::services::Change {
            description: body.description.take(),
            settings: Some(body.apply(current.settings.clone())),
        })
    })
    .await?;
    let service = match updated {
        Updated::Applied(service) => service,
        Updated::Held(change) => return Ok((StatusCode::ACCEPTED, Json(change)).into_response()),
    };
    let revision = service.revision;
    let mut detail = detail(&state, service).await?;
    detail.rollout = after_change(&state, &name, Some(revision), wait).await?;
    Ok(Json(detail).into_response())
}

/// Delete a service and its origins (role: admin).
#[utoipa::path(
    delete,
    path = "/services/{name}",
    tag = "services",
    params(("name" = String, Path, description = "The service's name", example = "retired-api")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such service"),
    ),
)]
async fn remove(
    RequireRole { user, .. }: RequireRole<Admin>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, Error> {
    service::services::delete(&state, &name, &user.email).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The effective policy agents receive: settings and approved, unexpired
/// origins (role: viewer).
#[utoipa::path(
    get,
    path = "/services/{name}/policy",
    tag = "services",
    params(("name" = String, Path, description = "The service's name", example = "payments-api")),
    responses(
        (status = 200, description = "The policy", body = EffectivePolicy),
        (status = 404, description = "No such service"),
    ),
)]
async fn policy(
    _: RequireRole<Viewer>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<EffectivePolicy>, Error> {
    state
        .store
        .effective_policy(&name)
        .await?
        .map(Json)
        .ok_or_else(|| Error::NotFound(format!("service {name:?} not found")))
}
