//! One decision, answered in the `auth_request` dialect.
//!
//! The gateway asks `GET /authz` (any method, any path under `/authz/`)
//! with the client's request headers and the client's method in
//! `X-Original-Method`. The answer never has a body:
//!
//! | engine decision | status | headers |
//! |---|---|---|
//! | forward (allowed, blocked but not strict, not CORS) | `200` | the CORS headers and `Vary` to add to the upstream's response |
//! | answer locally (preflight, strict block, no policy) | `403` | `X-Corsair-Status: 204` or `403`, the CORS headers and `Vary` of that answer |
//!
//! nginx forwards on any 2xx and refuses on 403, so a granted preflight
//! comes back as 403 too and the gateway answers it itself with the status
//! in `X-Corsair-Status`; it never reaches the upstream either way.
//! Every header is one line (nginx 1.22's `$upstream_http_*` sees only the
//! first line of a repeated header). `X-Corsair-Decision` and
//! `X-Corsair-Reason` name the decision for the gateway's access log.

use crate::enforce;
use crate::engine::RequestParts;
use crate::handle::PolicyHandle;
use crate::report::Reporter;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;

/// The client's method, set by the gateway (`$request_method` in nginx).
pub const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
/// The status the gateway must answer with when the agent answers 403:
/// `204` (a granted preflight) or `403`.
pub const X_CORSAIR_STATUS: HeaderName = HeaderName::from_static("x-corsair-status");
/// The engine's decision kind, e.g. `preflight_allowed` (for access logs).
pub const X_CORSAIR_DECISION: HeaderName = HeaderName::from_static("x-corsair-decision");
/// Why the request was (or in report-only mode would have been) refused,
/// e.g. `origin_not_allowed`; absent when nothing was refused.
pub const X_CORSAIR_REASON: HeaderName = HeaderName::from_static("x-corsair-reason");

/// The decision endpoint's request handler: one policy handle, an optional
/// reporter (metrics + blocked-request telemetry, as in the sidecar).
#[derive(Debug, Clone)]
pub struct Authz {
    handle: PolicyHandle,
    reporter: Option<Reporter>,
}

impl Authz {
    /// Answers from `handle`'s current policy (fails closed without one).
    pub fn new(handle: PolicyHandle) -> Self {
        Self {
            handle,
            reporter: None,
        }
    }

    /// Counts every decision (metrics) and refused ones (telemetry) in `reporter`.
    pub fn with_reporter(mut self, reporter: Reporter) -> Self {
        self.reporter = Some(reporter);
        self
    }

    /// Answers one gateway request: `404` off `/authz`, `400` for an
    /// unusable `X-Original-Method`, else the decision as described in the
    /// module docs. Only `/authz` requests are counted.
    pub fn answer<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        let path = req.uri().path();
        if path != "/authz" && !path.starts_with("/authz/") {
            return text(
                StatusCode::NOT_FOUND,
                "corsair-agent authz: ask /authz (see deploy/nginx/README.md)",
            );
        }
        let original;
        let method = match req.headers().get(X_ORIGINAL_METHOD) {
            None => req.method(),
            Some(v) => match Method::from_bytes(v.as_bytes()) {
                Ok(m) => {
                    original = m;
                    &original
                }
                Err(_) => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        "corsair-agent authz: X-Original-Method is not an HTTP method",
                    );
                }
            },
        };
        let request = RequestParts {
            method,
            headers: req.headers(),
        };
        let active = self.handle.load();
        let decision = enforce::decide(active.as_deref(), &request, self.reporter.as_ref());
        // On an empty map `apply` writes each header (Vary included) as one line.
        let mut response = enforce::respond(&decision, StatusCode::OK, Full::new(Bytes::new()));
        let headers = response.headers_mut();
        headers.insert(
            X_CORSAIR_DECISION,
            HeaderValue::from_static(decision.kind().as_str()),
        );
        if let Some(reason) = decision.reason() {
            headers.insert(X_CORSAIR_REASON, HeaderValue::from_static(reason.as_str()));
        }
        if let Some(status) = decision.local_response() {
            headers.insert(X_CORSAIR_STATUS, HeaderValue::from(status.as_u16()));
            *response.status_mut() = StatusCode::FORBIDDEN;
        }
        response
    }
}

fn text(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{message}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Policy, PolicySpec};
    use crate::handle::ActivePolicy;
    use std::sync::Arc;

    fn authz() -> Authz {
        let spec = PolicySpec {
            origins: vec!["https://app.example.com".into()],
            allow_methods: vec!["PUT".into()],
            ..PolicySpec::default()
        };
        let handle = PolicyHandle::new();
        handle.store(Some(Arc::new(ActivePolicy {
            service: "svc".into(),
            revision: 1,
            policy: Policy::compile(&spec).expect("policy compiles"),
        })));
        Authz::new(handle)
    }

    fn ask(authz: &Authz, path: &str, headers: &[(&str, &str)]) -> Response<Full<Bytes>> {
        let mut req = Request::get(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        authz.answer(&req.body(()).expect("request"))
    }

    fn header<'a>(res: &'a Response<Full<Bytes>>, name: &str) -> Option<&'a str> {
        res.headers().get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn preflights_are_decided_from_the_original_method() {
        let a = authz();
        let granted = ask(
            &a,
            "/authz",
            &[
                ("x-original-method", "OPTIONS"),
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "PUT"),
            ],
        );
        assert_eq!(granted.status(), StatusCode::FORBIDDEN);
        assert_eq!(header(&granted, "x-corsair-status"), Some("204"));
        assert_eq!(
            header(&granted, "access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(
            header(&granted, "access-control-allow-methods"),
            Some("PUT")
        );
        assert_eq!(granted.headers().get_all("vary").iter().count(), 1);

        let refused = ask(
            &a,
            "/authz/some/path",
            &[
                ("x-original-method", "OPTIONS"),
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "DELETE"),
            ],
        );
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert_eq!(header(&refused, "x-corsair-status"), Some("403"));
        assert_eq!(header(&refused, "access-control-allow-origin"), None);
        assert_eq!(
            header(&refused, "x-corsair-reason"),
            Some("method_not_allowed")
        );

        // Without X-Original-Method the subrequest's own method counts: a
        // GET with the same headers is an actual request, forwarded.
        let actual = ask(
            &a,
            "/authz",
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "DELETE"),
            ],
        );
        assert_eq!(actual.status(), StatusCode::OK);
        assert_eq!(header(&actual, "x-corsair-status"), None);
        assert_eq!(header(&actual, "x-corsair-decision"), Some("allowed"));
    }

    #[test]
    fn bad_input_gets_a_clear_error() {
        let a = authz();
        let off = ask(&a, "/other", &[]);
        assert_eq!(off.status(), StatusCode::NOT_FOUND);
        let bad = ask(&a, "/authz", &[("x-original-method", "GE T")]);
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        let blocked = ask(&a, "/authz", &[("origin", "https://evil.example")]);
        assert_eq!(blocked.status(), StatusCode::OK);
        assert_eq!(header(&blocked, "access-control-allow-origin"), None);
        assert_eq!(header(&blocked, "vary"), Some("Origin"));
        assert_eq!(
            header(&blocked, "x-corsair-reason"),
            Some("origin_not_allowed")
        );
    }
}
