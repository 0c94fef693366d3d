//! `/services`, `/services/{name}` and `/services/{name}/policy`.

use super::extract::{Json, Path};
use super::{AppState, Error, validate};
use crate::auth::{Admin, Approver, RequireRole, Viewer};
use crate::store::origins::Origin;
use crate::store::policy::EffectivePolicy;
use crate::store::services::{Service, ServiceSettings};
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use corsair_agent::engine::Mode;
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
    /// Preflight cache lifetime, 0..=86400.
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
    /// `base` with this body's fields laid over it.
    fn apply(self, mut base: ServiceSettings) -> Result<ServiceSettings, Error> {
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
            base.max_age_secs = i32::try_from(v)
                .ok()
                .filter(|s| (0..=86_400).contains(s))
                .ok_or_else(|| {
                    Error::unprocessable(format!("max_age_secs {v} must be between 0 and 86400"))
                })?;
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
        Ok(base)
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
    validate::service_name(&name)?;
    let description = body.description.take().unwrap_or_default();
    validate::text("description", &description, false)?;
    let settings = body.apply(ServiceSettings::default())?;
    validate::policy(&settings, Vec::new())?;
    let service = state
        .store
        .create_service(&name, &description, &settings, &user.email)
        .await?;
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
    // Runs with the service row locked: the new settings must hold together
    // with every origin approved at the moment of the write.
    let service = state
        .store
        .update_service_with(&name, &user.email, |current, approved| {
            let description = body
                .description
                .take()
                .unwrap_or_else(|| current.description.clone());
            validate::text("description", &description, false)?;
            let settings = body.apply(current.settings.clone())?;
            validate::policy(&settings, approved)?;
            Ok::<_, Error>((description, settings))
        })
        .await?;
    Ok(Json(detail(&state, service).await?))
}

async fn remove(
    RequireRole { user, .. }: RequireRole<Admin>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, Error> {
    state.store.delete_service(&name, &user.email).await?;
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
