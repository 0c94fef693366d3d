//! `POST /simulate`: what an agent would answer a browser (see
//! [`crate::service::simulate`], which the UI's simulator page calls too).

use super::extract::Json;
use super::{AppState, Error};
use crate::auth::{RequireRole, Viewer};
use crate::service::simulate::run;
pub use crate::service::simulate::{SimulateRequest, SimulateResponse, Step};
use axum::Router;
use axum::extract::State;
use axum::routing::post;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/simulate", post(simulate))
}

async fn simulate(
    _: RequireRole<Viewer>,
    State(state): State<AppState>,
    Json(req): Json<SimulateRequest>,
) -> Result<Json<SimulateResponse>, Error> {
    run(&state, &req).await.map(Json)
}
