//! `POST /simulate`: what an agent would answer a browser (see
//! [`crate::service::simulate`], which the UI's simulator page calls too).

use super::extract::Json;
use super::{AppState, Error};
use crate::auth::{RequireRole, Viewer};
use crate::service::simulate::run;
pub use crate::service::simulate::{SimulateRequest, SimulateResponse, Step};
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module, with their OpenAPI entries.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(simulate))
}

/// What an agent would answer a browser: the preflight (when the browser
/// sends one) and the actual request, decided by the agent's engine on the
/// service's effective policy (role: viewer).
#[utoipa::path(
    post,
    path = "/simulate",
    tag = "observe",
    request_body = SimulateRequest,
    responses(
        (status = 200, description = "The decision, step by step", body = SimulateResponse),
        (status = 404, description = "No such service"),
        (status = 422, description = "The origin, method or a header name cannot be sent by a browser"),
    ),
)]
async fn simulate(
    _: RequireRole<Viewer>,
    State(state): State<AppState>,
    Json(req): Json<SimulateRequest>,
) -> Result<Json<SimulateResponse>, Error> {
    run(&state, &req).await.map(Json)
}
