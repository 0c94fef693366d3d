//! The demo upstream (a tiny JSON API) and the demo page (served on another
//! origin) that `dev` starts, and that the browser tests use.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::Path;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

/// The demo API: `GET /api/hello`, `PUT /api/items/{id}`, `GET /api/whoami`
/// (whether cookies arrived, and who the agent said the client was).
/// It knows nothing about CORS; the agent in front of it does that.
pub fn upstream_router() -> Router {
    Router::new()
        .route(
            "/api/hello",
            get(|| async { Json(json!({"message": "hello from the demo upstream"})) }),
        )
        .route(
            "/api/items/{id}",
            get(|Path(id): Path<String>| async move { Json(json!({"id": id})) }).put(
                |Path(id): Path<String>, body: String| async move {
                    Json(json!({"id": id, "updated": true, "bytes": body.len()}))
                },
            ),
        )
        .route(
            "/api/whoami",
            get(|headers: HeaderMap| async move {
                let cookie = headers
                    .get("cookie")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let forwarded_for = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
                Json(json!({"cookies_seen": !cookie.is_empty(), "forwarded_for": forwarded_for}))
            }),
        )
}

/// The demo page.
#[derive(Template, WebTemplate)]
#[template(path = "demo.html")]
struct DemoPage {
    page_origin: String,
    agent_url: String,
    agent_url_json: String,
    service: String,
}

/// Serves the demo page at `/`, calling `agent_url` for `service`.
pub fn page_router(page_origin: String, agent_url: String, service: String) -> Router {
    let agent_url_json = Value::String(agent_url.clone()).to_string();
    Router::new().route(
        "/",
        get(move || {
            let page = DemoPage {
                page_origin: page_origin.clone(),
                agent_url: agent_url.clone(),
                agent_url_json: agent_url_json.clone(),
                service: service.clone(),
            };
            async move { page }
        }),
    )
}
