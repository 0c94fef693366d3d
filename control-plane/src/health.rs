//! Probes on the HTTP listener: `GET /healthz` (the process serves: always
//! 200) and `GET /readyz` (200 only while the database answers and its
//! schema has every migration this binary embeds; otherwise 503 with the
//! reason). Both answer JSON: `{"status": "ok"|"unavailable", "reason": ...,
//! "schema": {"expected": N, "applied": M|null}}`. No authentication: they
//! say nothing a caller could use.

use crate::state::AppState;
use crate::store::Store;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use serde_json::json;
use std::time::Duration;

/// How long `/readyz` waits for the database before answering 503: below
/// a typical probe timeout, so the probe sees the reason, not a timeout.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `/healthz` and `/readyz`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Response {
    (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response()
}

async fn readyz(State(store): State<Store>) -> Response {
    let (ready, body) = match tokio::time::timeout(READY_TIMEOUT, store.schema_status()).await {
        Err(_) => (
            false,
            json!({"status": "unavailable", "reason": format!("database did not answer within {READY_TIMEOUT:?}")}),
        ),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            (
                false,
                json!({"status": "unavailable", "reason": format!("database unreachable: {e}")}),
            )
        }
        Ok(Ok(schema)) if schema.is_current() => (
            true,
            json!({"status": "ok", "reason": "database reachable, schema current", "schema": schema}),
        ),
        Ok(Ok(schema)) => (
            false,
            json!({
                "status": "unavailable",
                "reason": format!(
                    "schema behind: migration {} expected, {} applied (run `corsair-control-plane migrate` or enable start-up migrations)",
                    schema.expected,
                    schema.applied.map_or_else(|| "none".to_owned(), |v| v.to_string()),
                ),
                "schema": schema,
            }),
        ),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}
