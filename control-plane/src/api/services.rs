//! `/services`, `/services/{name}` and `/services/{name}/policy`.

use super::extract::{Json, Path};
use super::{AppState, Error};
use crate::auth::{Admin, Approver, RequireRole, Viewer};
use crate::service;
use crate::store::origins::Origin;
use crate::store::policy::EffectivePolicy;
use crate::store::services::Service;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use corsair_agent::engine::{Mode, PolicySettings};
use http::StatusCode;
use serde::{Deserialize, Serialize};

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/services", get(list).post(create))
        .route("/services/{name}", get(show).patch(update).delete(remove))
        .route("/services/{name}/policy", get(policy))
}

/// Body of `POST /services` and `PATCH /services/{name}`: every field
/// optional; on create, missing fields take their defaults, on update they
/// stay as they are.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceBody {
    /// Required on create; on update it must match the path (no renames).
    pub name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Methods allowed on preflight.
    pub allow_methods: Option<Vec<String>>,
    /// Request headers allowed on preflight.
    pub allow_headers: Option<Vec<String>>,
    /// Response headers exposed to scripts.
    pub expose_headers: Option<Vec<String>>,
    /// Emit `Access-Control-Allow-Credentials: true`.
    pub allow_credentials: Option<bool>,
    /// Preflight cache lifetime in seconds (the engine accepts 0..=86400).
    pub max_age_secs: Option<i64>,
    /// Answer Private Network Access preflights.
    pub allow_private_network: Option<bool>,
    /// `enforce` or `report_only`.
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
#[derive(Debug, Serialize)]
pub struct ServiceDetail {
    /// The service, including `revision`.
    #[serde(flatten)]
    pub service: Service,
    /// Its origins, newest request first.
    pub origins: Vec<Origin>,
}

async fn list(
    _: RequireRole<Viewer>,
    State(state): State<AppState>,
) -> Result<Json<Vec<Service>>, Error> {
    Ok(Json(state.store.list_services().await?))
}

async fn detail(state: &AppState, service: Service) -> Result<ServiceDetail, Error> {
    let origins = state.store.list_origins(&service.name).await?;
    Ok(ServiceDetail { service, origins })
}

async fn show(
    _: RequireRole<Viewer>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ServiceDetail>, Error> {
    let service = state.store.get_service(&name).await?;
    Ok(Json(detail(&state, service).await?))
}

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
        }),
    ))
}

async fn update(
    RequireRole { user, .. }: RequireRole<Approver>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(mut body): Json<ServiceBody>,
) -> Result<Json<ServiceDetail>, Error> {
    if let Some(new_name) = body.name.take()
        && new_name != name
    {
        // Unknown services are still a 404, not a complaint about the body.
        state.store.get_service(&name).await?;
        return Err(Error::unprocessable(
            "a service cannot be renamed; create a new one",
        ));
    }
    let service = service::services::update(&state, &name, &user.email, |current| {
        Ok(service::services::Change {
            description: body.description.take(),
            settings: Some(body.apply(current.settings.clone())),
        })
    })
    .await?;
    Ok(Json(detail(&state, service).await?))
}

async fn remove(
    RequireRole { user, .. }: RequireRole<Admin>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, Error> {
    service::services::delete(&state, &name, &user.email).await?;
    Ok(StatusCode::NO_CONTENT)
}

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
