//! The policy simulator: what an agent would answer a browser, computed by
//! the agent's own engine on the service's effective policy. The REST API's
//! `POST /simulate` and the UI's simulator page both call [`run`].
//!
//! The browser's side is simulated too: when the method or a header is not
//! CORS-safelisted the browser sends a preflight first, and only if that is
//! granted the actual request. `Content-Type` is treated as needing a
//! preflight, since the simulator sees header names, not values (JSON bodies
//! need one; form posts would not).

use super::Error;
use crate::state::AppState;
use corsair_agent::engine::{Decision, Policy, RequestParts};
use http::header::{ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What to simulate (the body of `POST /simulate`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateRequest {
    /// The service whose effective policy decides.
    #[schema(example = "payments-api")]
    pub service: String,
    /// The page's origin, e.g. `https://app.example.com`: any value a
    /// browser could send in `Origin` (surrounding whitespace ignored;
    /// otherwise 422).
    #[schema(min_length = 1, example = "https://app.example.com")]
    pub origin: String,
    /// The method the script uses (default `GET`): an HTTP token, surrounding
    /// whitespace ignored (otherwise 422).
    #[serde(default)]
    #[schema(example = "PUT")]
    pub method: Option<String>,
    /// Request headers the script sets: header names, surrounding whitespace
    /// ignored (otherwise 422).
    #[serde(default)]
    pub request_headers: Vec<String>,
}

/// One request the browser would send, and the agent's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = SimulateStep)]
pub struct Step {
    /// `preflight` or `actual`.
    #[schema(example = "preflight")]
    pub request: &'static str,
    /// The engine's decision kind: `not_cors`, `preflight_allowed`,
    /// `preflight_rejected`, `allowed` or `blocked`.
    #[schema(example = "preflight_allowed")]
    pub decision: &'static str,
    /// Why not granted (or would not be, in report-only mode).
    pub reason: Option<&'static str>,
    /// Report-only mode let it through.
    pub would_block: bool,
    /// The status the agent answers itself with, or `null` when it forwards.
    pub status: Option<u16>,
    /// The exact CORS headers the agent adds, by lowercase name.
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub headers: Map<String, Value>,
}

/// The simulation's answer (the body `POST /simulate` returns).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SimulateResponse {
    /// The service.
    pub service: String,
    /// The revision of the policy that decided.
    pub revision: i64,
    /// Whether the browser lets the script read the response.
    pub allowed: bool,
    /// The final decision kind.
    pub decision: &'static str,
    /// Why not allowed, if so.
    pub reason: Option<&'static str>,
    /// The requests the browser sends, in order.
    pub steps: Vec<Step>,
}

const SAFELISTED_METHODS: [&str; 3] = ["GET", "HEAD", "POST"];
const SAFELISTED_HEADERS: [&str; 3] = ["accept", "accept-language", "content-language"];

/// Simulates `req`. Errors: [`Error::Unprocessable`] (a bad origin, method
/// or header name), [`Error::NotFound`] (no such service).
pub async fn run(state: &AppState, req: &SimulateRequest) -> Result<SimulateResponse, Error> {
    let origin = HeaderValue::from_str(req.origin.trim())
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            Error::unprocessable(
                "origin must be a non-empty header value such as https://app.example.com",
            )
        })?;
    let method_text = req.method.as_deref().unwrap_or("GET").trim().to_string();
    let method = Method::from_bytes(method_text.as_bytes()).map_err(|_| {
        Error::unprocessable(format!(
            "method {method_text:?} is not an HTTP method token"
        ))
    })?;
    let mut names = Vec::with_capacity(req.request_headers.len());
    for h in &req.request_headers {
        let name = HeaderName::from_bytes(h.trim().as_bytes()).map_err(|_| {
            Error::unprocessable(format!("request header {h:?} is not a valid header name"))
        })?;
        names.push(name);
    }

    let effective = state
        .store
        .effective_policy(&req.service)
        .await?
        .ok_or_else(|| Error::NotFound(format!("service {:?} not found", req.service)))?;
    let policy = Policy::compile(&effective.spec).map_err(|e| {
        Error::unprocessable(format!("the service's stored policy does not compile: {e}"))
    })?;

    let mut steps = Vec::new();
    let needs_preflight = !SAFELISTED_METHODS.contains(&method.as_str())
        || names
            .iter()
            .any(|n| !SAFELISTED_HEADERS.contains(&n.as_str()));
    if needs_preflight {
        let mut headers = HeaderMap::new();
        headers.insert(ORIGIN, origin.clone());
        headers.insert(
            ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_str(method.as_str())
                .map_err(|e| Error::unprocessable(e.to_string()))?,
        );
        if !names.is_empty() {
            let list = names
                .iter()
                .map(HeaderName::as_str)
                .collect::<Vec<_>>()
                .join(",");
            headers.insert(
                ACCESS_CONTROL_REQUEST_HEADERS,
                HeaderValue::from_str(&list).map_err(|e| Error::unprocessable(e.to_string()))?,
            );
        }
        let decision = policy.evaluate(&RequestParts {
            method: &Method::OPTIONS,
            headers: &headers,
        });
        let granted = decision.local_response().is_some_and(|s| s.is_success());
        steps.push(step("preflight", &decision));
        if !granted {
            return Ok(verdict(effective.service, effective.revision, steps));
        }
    }
    let mut headers = HeaderMap::new();
    headers.insert(ORIGIN, origin);
    let decision = policy.evaluate(&RequestParts {
        method: &method,
        headers: &headers,
    });
    steps.push(step("actual", &decision));
    Ok(verdict(effective.service, effective.revision, steps))
}

fn step(request: &'static str, d: &Decision<'_>) -> Step {
    let mut headers = Map::new();
    for (name, value) in d.response_headers().iter() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers.insert(name.as_str().to_string(), Value::String(value));
    }
    Step {
        request,
        decision: d.kind().as_str(),
        reason: d.reason().map(|r| r.as_str()),
        would_block: d.would_block(),
        status: d.local_response().map(|s| s.as_u16()),
        headers,
    }
}

fn verdict(service: String, revision: i64, steps: Vec<Step>) -> SimulateResponse {
    // The last step decides: a refused preflight ends the simulation, and an
    // actual request is readable only if it got Access-Control-Allow-Origin.
    let last = steps.last();
    let allowed = last.is_some_and(|s| {
        s.headers.contains_key("access-control-allow-origin") && s.status.is_none_or(|c| c < 400)
    });
    SimulateResponse {
        service,
        revision,
        allowed,
        decision: last.map_or("not_cors", |s| s.decision),
        reason: last.and_then(|s| s.reason),
        steps,
    }
}
