//! The JSON REST API under `/api/v1`.
//!
//! - [`error`]: [`Error`], the one error type, and its `{"error": ...}` body.
//! - [`extract`]: `Json`, `Path`, `Query` whose rejections use that body.
//! - [`session`]: `POST /login`.
//! - [`services`]: `/services`, `/services/{name}`, `/services/{name}/policy`.
//! - [`settings_changes`]: settings changes held for a second approver (list, confirm, dismiss).
//! - [`origins`]: origin requests and approve/reject/revoke.
//! - [`rollout`]: `/services/{name}/rollout` and the `?wait=applied` query of the change endpoints.
//! - [`agent_tokens`]: issuing, listing and revoking agent tokens.
//! - [`observe`]: `/agents` and `/audit`.
//! - [`blocked`]: `/blocked`, the blocked-request log (filters, groups, CSV).
//! - [`usage`]: `/origins/stale` (JSON, CSV) and revocation requests.
//! - [`simulate`]: `POST /simulate`, the engine's answer for a hypothetical request.
//! - [`openapi`]: the OpenAPI document, derived from the handlers and types.
//! - [`schema`]: the few schemas the document needs beyond the types' own.
//!
//! Every module exposes `routes() -> OpenApiRouter<AppState>` (its handlers
//! and their OpenAPI entries); [`routes`] merges them, [`router`] nests them
//! under [`PREFIX`] and [`app`] adds the JSON fallbacks and the state, so
//! tests drive the whole API with `tower::ServiceExt::oneshot` and no socket.

pub mod agent_tokens;
pub mod blocked;
pub mod error;
pub mod extract;
pub mod observe;
pub mod openapi;
pub mod origins;
pub mod rollout;
pub mod schema;
pub mod services;
pub mod session;
pub mod settings_changes;
pub mod simulate;
pub mod usage;

pub use error::{Detail, Error};

use crate::state::AppState;
use axum::Router;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;

/// The prefix every API route lives under.
pub const PREFIX: &str = "/api/v1";

/// Every API route with its OpenAPI entry, relative to [`PREFIX`]: each
/// module's `routes()` registers its handlers and their `#[utoipa::path]`
/// entries together, so the router and the document are one list.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(session::routes())
        .merge(services::routes())
        .merge(settings_changes::routes())
        .merge(origins::routes())
        .merge(rollout::routes())
        .merge(agent_tokens::routes())
        .merge(observe::routes())
        .merge(simulate::routes())
        .merge(blocked::routes())
        .merge(usage::routes())
        .merge(openapi::routes())
}

/// Every API route, under [`PREFIX`], without fallbacks: merge this into a
/// larger router (e.g. beside the UI).
pub fn router() -> Router<AppState> {
    let api = Router::from(routes())
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::map_response(render_refusal));
    Router::new().nest(PREFIX, api)
}

/// Renders an auth extractor's refusal as the API's JSON error.
async fn render_refusal(mut response: Response) -> Response {
    match crate::auth::take_refusal(&mut response) {
        Some(refusal) => error::render(&refusal.error),
        None => response,
    }
}

/// The API as a complete service: [`router`] plus a JSON 404 for unknown paths.
pub fn app(state: AppState) -> Router {
    router().fallback(not_found).with_state(state)
}

async fn not_found(uri: http::Uri) -> Error {
    Error::NotFound(format!("no route for {}", uri.path()))
}

async fn method_not_allowed(method: http::Method, uri: http::Uri) -> Error {
    Error::Status {
        status: http::StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        message: format!("{method} is not allowed on {}", uri.path()),
    }
}
