//! The security headers every response of the HTTP listener carries (the
//! admin UI above all): a Content-Security-Policy that allows no inline
//! script or style and no framing, `nosniff`, a same-origin referrer, and
//! HSTS when the control plane is reached over HTTPS.
//!
//! Set with tower-http's [`SetResponseHeaderLayer`] in `if_not_present`
//! mode, so a handler that needs a different value can still set its own.

use axum::Router;
use http::HeaderValue;
use http::header::{
    CONTENT_SECURITY_POLICY, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS,
};
use tower_http::set_header::SetResponseHeaderLayer;

/// The UI's Content-Security-Policy: scripts, styles and everything else
/// only from this origin's files (`/static/app.js`, `/static/app.css`),
/// never inline; forms post only here; no page may frame the UI
/// (clickjacking the Approve button).
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; \
frame-ancestors 'none'";

/// `Referrer-Policy`: URLs (service names, filters) never leave the site.
pub const REFERRER: &str = "same-origin";

/// `Strict-Transport-Security`: one year, this host only (a parent domain's
/// other hosts are not ours to pin).
pub const HSTS: &str = "max-age=31536000";

/// `router` with the security headers added to every response; `hsts` adds
/// `Strict-Transport-Security` (set it with `--secure-cookies`, which TLS
/// implies: the browser only honours it over HTTPS anyway).
pub fn with_security_headers(router: Router, hsts: bool) -> Router {
    let router = router
        .layer(SetResponseHeaderLayer::if_not_present(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            REFERRER_POLICY,
            HeaderValue::from_static(REFERRER),
        ));
    if hsts {
        router.layer(SetResponseHeaderLayer::if_not_present(
            STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        ))
    } else {
        router
    }
}
