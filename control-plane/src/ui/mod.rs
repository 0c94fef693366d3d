//! The admin web UI: server-rendered pages (askama templates in `web-ui/`),
//! plain HTML forms that work without JavaScript, and the same extractors as
//! the REST API for authentication, roles and CSRF.
//!
//! - [`page`]: the layout every page shares, flash messages, errors.
//! - [`login`]: `/login`, `/logout`.
//! - [`services`]: `/services`, `/services/{name}` and their forms.
//! - [`approvals`]: `/approvals` and the approve / reject / revoke forms.
//! - [`audit`]: `/audit` and its CSV export.
//! - [`blocked`]: `/blocked`, blocked requests with filters, a chart and the
//!   top origins, and the last-24h summary on service pages; [`chart`] lays
//!   out its SVG.
//! - [`stale`]: `/origins/stale`, approved origins unused for N days, and
//!   the revocation-request forms (ask there; confirm, dismiss on approvals).
//! - [`fleet`]: `/agents` and `/simulator`.
//! - [`users`]: `/users`: accounts and API tokens (admin).
//! - [`headers`]: the security headers (CSP, nosniff, referrer, HSTS).

pub mod approvals;
pub mod audit;
pub mod blocked;
pub mod chart;
pub mod fleet;
pub mod headers;
pub mod login;
pub mod page;
pub mod services;
pub mod stale;
pub mod users;

pub use page::{error_page, forbidden_page};

use crate::state::AppState;
use axum::Router;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};

/// The one stylesheet, embedded so the binary is self-contained.
const STYLESHEET: &str = include_str!("../../../web-ui/static/app.css");
/// The little progressive JavaScript (the UI works without it).
const SCRIPT: &str = include_str!("../../../web-ui/static/app.js");

/// Every UI route.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/services") }))
        .route(
            "/static/app.css",
            get(|| async { asset("text/css; charset=utf-8", STYLESHEET) }),
        )
        .route(
            "/static/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .merge(login::router())
        .merge(services::router())
        .merge(approvals::router())
        .merge(audit::router())
        .merge(blocked::router())
        .merge(stale::router())
        .merge(fleet::router())
        .merge(users::router())
        .layer(axum::middleware::map_response(page::render_refusal))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "max-age=300")],
        body,
    )
        .into_response()
}

/// `key=value&…` for a link's query string, encoded by `serde_urlencoded`
/// (the crate that parses it back in axum's `Query` and forms).
pub fn query<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect();
    // Serialising string pairs cannot fail; an empty query is the fallback.
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// `next` if it is a path on this site, else `fallback`: redirects never
/// leave the control plane.
pub fn local_path(next: Option<&str>, fallback: &str) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.to_owned(),
        _ => fallback.to_owned(),
    }
}
