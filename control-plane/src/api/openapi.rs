//! `GET /openapi.json`: a hand-written OpenAPI 3.1 document of this API.
//! Kept beside the routes it describes; `tests/api_openapi.rs` checks that
//! every route is listed.

use super::AppState;
use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use std::sync::OnceLock;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(serve))
}

async fn serve() -> axum::Json<&'static Value> {
    static DOC: OnceLock<Value> = OnceLock::new();
    axum::Json(DOC.get_or_init(document))
}

fn err(description: &str) -> Value {
    json!({ "description": description,
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn ok(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn array(of: Value) -> Value {
    json!({ "type": "array", "items": of })
}

fn name_param() -> Value {
    json!({ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } })
}

fn id_param(format: &str) -> Value {
    json!({ "name": "id", "in": "path", "required": true, "schema": { "type": if format == "uuid" { "string" } else { "integer" }, "format": format } })
}

/// Common error responses for an authenticated operation.
fn errors(extra: &[(&str, &str)]) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("401".into(), err("missing, invalid or expired token"));
    m.insert("403".into(), err("role too low"));
    for (status, what) in extra {
        m.insert((*status).into(), err(what));
    }
    m
}

fn op(summary: &str, role: &str, success: (&str, Value), extra: &[(&str, &str)]) -> Value {
    let mut responses = errors(extra);
    responses.insert(success.0.into(), success.1);
    json!({ "summary": format!("{summary} (role: {role})"), "responses": responses })
}

fn with(mut op: Value, key: &str, value: Value) -> Value {
    if let Some(m) = op.as_object_mut() {
        m.insert(key.into(), value);
    }
    op
}

/// The document.
pub fn document() -> Value {
    json!({
      "openapi": "3.1.0",
      "info": { "title": "Corsair control plane API", "version": env!("CARGO_PKG_VERSION"),
                "description": "Centrally managed CORS policies. Authenticate with `Authorization: Bearer <token>` from POST /login. Request bodies must be sent as `Content-Type: application/json` (otherwise 415); a body that is not JSON is 400, JSON of the wrong shape 422. Errors are {\"error\": {\"code\", \"message\", \"details\"?}}." },
      "servers": [{ "url": "/api/v1" }],
      "security": [{ "bearer": [] }],
      "paths": paths(),
      "components": {
        "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } },
        "schemas": schemas()
      }
    })
}

fn paths() -> Value {
    let decision = |verb: &str| {
        let op = op(
            &format!("{verb} an origin"),
            "approver",
            ("200", ok("the origin after the decision", r("Origin"))),
            &[
                ("400", "malformed JSON or id"),
                ("404", "no such origin"),
                ("409", "not allowed in the origin's current state"),
                (
                    "422",
                    "the origin does not fit the service's current settings",
                ),
            ],
        );
        let op = with(op, "parameters", json!([id_param("int64")]));
        with(
            op,
            "requestBody",
            json!({ "required": false, "content": { "application/json": { "schema": r("DecisionBody") } } }),
        )
    };
    json!({
      "/login": { "post": {
          "summary": "Exchange email and password for a user token (12 h)", "security": [],
          "requestBody": body(r("LoginRequest")),
          "responses": { "200": ok("a token", r("LoginResponse")), "400": err("malformed JSON"), "401": err("wrong email or password"), "422": err("missing fields") } } },
      "/services": {
        "get": op("List services", "viewer", ("200", ok("services", array(r("Service")))), &[]),
        "post": with(op("Create a service", "admin", ("201", ok("the new service", r("ServiceDetail"))), &[("400", "malformed JSON"), ("409", "name taken"), ("422", "invalid name or settings")]), "requestBody", body(r("ServiceBody"))) },
      "/services/{name}": {
        "parameters": [name_param()],
        "get": op("A service with its revision and origins", "viewer", ("200", ok("the service", r("ServiceDetail"))), &[("404", "no such service")]),
        "patch": with(op("Change description or policy settings (settings bump the revision)", "approver", ("200", ok("the service", r("ServiceDetail"))), &[("400", "malformed JSON"), ("404", "no such service"), ("422", "invalid settings, every problem listed")]), "requestBody", body(r("ServiceBody"))),
        "delete": op("Delete a service and its origins", "admin", ("204", json!({ "description": "deleted" })), &[("404", "no such service")]) },
      "/services/{name}/policy": {
        "parameters": [name_param()],
        "get": op("The effective policy agents receive (approved, unexpired origins)", "viewer", ("200", ok("the policy", r("EffectivePolicy"))), &[("404", "no such service")]) },
      "/services/{name}/origins": {
        "parameters": [name_param()],
        "get": op("A service's origins, all states", "viewer", ("200", ok("origins", array(r("Origin")))), &[("404", "no such service")]),
        "post": with(op("Request an origin (pending)", "requester", ("201", ok("the request", r("Origin"))), &[("400", "malformed JSON"), ("404", "no such service"), ("409", "already pending or approved"), ("422", "invalid pattern, says what is wrong")]), "requestBody", body(r("OriginRequest"))) },
      "/origins/{id}": {
        "get": with(op("One origin", "viewer", ("200", ok("the origin", r("Origin"))), &[("400", "malformed id"), ("404", "no such origin")]), "parameters", json!([id_param("int64")])) },
      "/origins/{id}/approve": { "post": decision("Approve (pending only)") },
      "/origins/{id}/reject": { "post": decision("Reject (pending only)") },
      "/origins/{id}/revoke": { "post": decision("Revoke (approved only)") },
      "/agent-tokens": {
        "get": op("List agent tokens", "admin", ("200", ok("tokens", array(r("AgentToken")))), &[]),
        "post": with(op("Issue an agent token", "admin", ("201", ok("the token, shown once", r("CreatedToken"))), &[("400", "malformed JSON"), ("404", "the token named in replaces does not exist"), ("409", "the token cannot join replaces' lineage"), ("422", "invalid name or services")]), "requestBody", body(r("CreateToken"))) },
      "/agent-tokens/{id}/revoke": {
        "post": with(op("Revoke an agent token", "admin", ("200", ok("the token", r("AgentToken"))), &[("400", "malformed id"), ("404", "no such token"), ("409", "already revoked")]), "parameters", json!([id_param("uuid")])) },
      "/agents": { "get": op("Agents seen, with applied revision and last NACK per service", "viewer", ("200", ok("agents", array(r("Agent")))), &[]) },
      "/audit": { "get": with(op("Change audit, newest first", "viewer", ("200", ok("rows", array(r("AuditEntry")))), &[("400", "malformed query"), ("422", "limit out of range")]), "parameters", json!([
          { "name": "service", "in": "query", "schema": { "type": "string" } },
          { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 } } ])) },
      "/simulate": { "post": with(op("What an agent would answer a browser: preflight and actual request, decided by the agent's engine on the effective policy", "viewer", ("200", ok("the decision", r("SimulateResponse"))), &[("400", "malformed JSON"), ("404", "no such service"), ("422", "invalid origin, method or header name")]), "requestBody", body(r("SimulateRequest"))) },
      "/blocked": { "get": with(op("Blocked and would-block requests reported by agents: rows newest first, or grouped with totals, first/last seen and agents", "viewer", ("200", ok("a page (`rows` and `next`), or text/csv with the next cursor in X-Next-Cursor", r("BlockedPage"))), &[("400", "malformed query or cursor"), ("422", "limit out of range, since not before until, sort without group_by")]), "parameters", json!([
          { "name": "service", "in": "query", "schema": { "type": "string" } },
          { "name": "origin", "in": "query", "schema": { "type": "string" } },
          { "name": "origin_match", "in": "query", "schema": { "enum": ["exact", "substring"], "default": "exact" } },
          { "name": "agent", "in": "query", "schema": { "type": "string" } },
          { "name": "reason", "in": "query", "schema": { "type": "string" }, "description": "e.g. origin_not_allowed; telemetry_dropped counts events agents had to drop" },
          { "name": "since", "in": "query", "schema": { "type": "string", "format": "date-time" } },
          { "name": "until", "in": "query", "schema": { "type": "string", "format": "date-time" } },
          { "name": "group_by", "in": "query", "schema": { "enum": ["origin", "service", "agent", "reason", "minute", "hour", "day"] } },
          { "name": "sort", "in": "query", "schema": { "enum": ["count", "key"] } },
          { "name": "order", "in": "query", "schema": { "enum": ["asc", "desc"] } },
          { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 10000, "default": 100 } },
          { "name": "after", "in": "query", "schema": { "type": "string" }, "description": "the previous page's next" },
          { "name": "format", "in": "query", "schema": { "enum": ["json", "csv"], "default": "json" } } ])) },
      "/openapi.json": { "get": { "summary": "This document", "security": [], "responses": { "200": { "description": "OpenAPI 3.1" } } } }
    })
}

fn schemas() -> Value {
    let mut m = serde_json::Map::new();
    m.insert("Error".into(), json!({ "type": "object", "required": ["error"], "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": {
              "code": { "type": "string" }, "message": { "type": "string" },
              "details": array(json!({ "type": "object", "properties": { "field": { "type": "string" }, "value": { "type": "string" }, "message": { "type": "string" } } })) } } } }));
    m.insert("LoginRequest".into(), json!({ "type": "object", "required": ["email", "password"], "properties": { "email": { "type": "string" }, "password": { "type": "string" } } }));
    m.insert("LoginResponse".into(), json!({ "type": "object", "properties": { "token": { "type": "string" }, "expires_at": { "type": "string", "format": "date-time" }, "role": { "enum": ["viewer", "requester", "approver", "admin"] } } }));
    m.insert("ServiceBody".into(), json!({ "type": "object", "additionalProperties": false, "properties": {
              "name": { "type": "string", "pattern": "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", "description": "required on create; cannot change" },
              "description": { "type": "string" },
              "allow_methods": array(json!({ "type": "string" })), "allow_headers": array(json!({ "type": "string" })), "expose_headers": array(json!({ "type": "string" })),
              "allow_credentials": { "type": "boolean" }, "max_age_secs": { "type": "integer", "minimum": 0, "maximum": 86400 },
              "allow_private_network": { "type": "boolean" }, "mode": { "enum": ["enforce", "report_only"] },
              "strict": { "type": "boolean" }, "allow_insecure_http": { "type": "boolean" } } }));
    m.insert("Service".into(), json!({ "allOf": [r("ServiceBody"), { "type": "object", "properties": {
              "revision": { "type": "integer" }, "created_at": { "type": "string", "format": "date-time" }, "updated_at": { "type": "string", "format": "date-time" } } }] }));
    m.insert("ServiceDetail".into(), json!({ "allOf": [r("Service"), { "type": "object", "properties": { "origins": array(r("Origin")) } }] }));
    m.insert("OriginRequest".into(), json!({ "type": "object", "required": ["pattern", "reason"], "additionalProperties": false, "properties": {
              "pattern": { "type": "string", "examples": ["https://app.example.com", "https://*.example.com", "http://localhost:3000"] },
              "reason": { "type": "string" }, "expires_at": { "type": "string", "format": "date-time" } } }));
    m.insert("DecisionBody".into(), json!({ "type": "object", "additionalProperties": false, "properties": { "note": { "type": "string" } } }));
    m.insert("Origin".into(), json!({ "type": "object", "properties": {
              "id": { "type": "integer" }, "service": { "type": "string" }, "pattern": { "type": "string" },
              "status": { "enum": ["pending", "approved", "rejected", "revoked"] },
              "requested_by": { "type": "string" }, "reason": { "type": "string" }, "requested_at": { "type": "string", "format": "date-time" },
              "decided_by": { "type": ["string", "null"] }, "decided_at": { "type": ["string", "null"], "format": "date-time" },
              "note": { "type": ["string", "null"] }, "expires_at": { "type": ["string", "null"], "format": "date-time" } } }));
    m.insert("EffectivePolicy".into(), json!({ "type": "object", "properties": {
              "service": { "type": "string" }, "revision": { "type": "integer" },
              "spec": { "allOf": [r("ServiceBody"), { "type": "object", "properties": { "origins": array(json!({ "type": "string" })) } }] } } }));
    m.insert("CreateToken".into(), json!({ "type": "object", "required": ["name", "services"], "additionalProperties": false, "properties": {
              "name": { "type": "string" }, "services": array(json!({ "type": "string" })), "expires_at": { "type": "string", "format": "date-time" },
              "replaces": { "type": "string", "format": "uuid" } } }));
    m.insert("CreatedToken".into(), json!({ "type": "object", "properties": { "id": { "type": "string", "format": "uuid" }, "token": { "type": "string" }, "expires_at": { "type": ["string", "null"], "format": "date-time" } } }));
    m.insert("AgentToken".into(), json!({ "type": "object", "properties": {
              "id": { "type": "string", "format": "uuid" }, "name": { "type": "string" }, "services": array(json!({ "type": "string" })),
              "created_by": { "type": "string" }, "created_at": { "type": "string", "format": "date-time" },
              "expires_at": { "type": ["string", "null"], "format": "date-time" }, "revoked_at": { "type": ["string", "null"], "format": "date-time" } } }));
    m.insert("Agent".into(), json!({ "type": "object", "properties": {
              "id": { "type": "string" }, "name": { "type": "string" }, "services": array(json!({ "type": "string" })), "version": { "type": "string" },
              "connected": { "type": "boolean" }, "first_seen": { "type": "string", "format": "date-time" }, "last_seen": { "type": "string", "format": "date-time" },
              "service_states": array(json!({ "type": "object", "properties": {
                  "service": { "type": "string" }, "applied_revision": { "type": ["integer", "null"] }, "applied_at": { "type": ["string", "null"], "format": "date-time" },
                  "last_nack_revision": { "type": ["integer", "null"] }, "last_nack_error": { "type": ["string", "null"] }, "last_nack_at": { "type": ["string", "null"], "format": "date-time" } } })) } }));
    m.insert("SimulateRequest".into(), json!({ "type": "object", "required": ["service", "origin"], "properties": {
              "service": { "type": "string" }, "origin": { "type": "string", "example": "https://app.example.com" },
              "method": { "type": "string", "default": "GET" },
              "request_headers": { "type": "array", "items": { "type": "string" } } } }));
    m.insert("SimulateStep".into(), json!({ "type": "object", "properties": {
              "request": { "type": "string", "enum": ["preflight", "actual"] },
              "decision": { "type": "string", "enum": ["not_cors", "preflight_allowed", "preflight_rejected", "allowed", "blocked"] },
              "reason": { "type": ["string", "null"] }, "would_block": { "type": "boolean" },
              "status": { "type": ["integer", "null"], "description": "status the agent answers itself with; null when it forwards" },
              "headers": { "type": "object", "additionalProperties": { "type": "string" } } } }));
    m.insert("SimulateResponse".into(), json!({ "type": "object", "properties": {
              "service": { "type": "string" }, "revision": { "type": "integer" }, "allowed": { "type": "boolean" },
              "decision": { "type": "string" }, "reason": { "type": ["string", "null"] },
              "steps": { "type": "array", "items": { "$ref": "#/components/schemas/SimulateStep" } } } }));
    m.insert("AuditEntry".into(), json!({ "type": "object", "properties": {
              "id": { "type": "integer" }, "at": { "type": "string", "format": "date-time" }, "actor": { "type": "string" }, "action": { "type": "string" },
              "service": { "type": ["string", "null"] }, "target": { "type": "string" }, "before": {}, "after": {} } }));
    m.insert("BlockedPage".into(), json!({ "type": "object", "properties": {
              "rows": array(json!({ "oneOf": [
                  { "type": "object", "description": "a row (no group_by)", "properties": {
                      "id": { "type": "integer" }, "ts": { "type": "string", "format": "date-time" }, "service": { "type": "string" }, "origin": { "type": "string" },
                      "method": { "type": "string" }, "reason": { "type": "string" }, "would_block": { "type": "boolean" }, "agent_id": { "type": "string" }, "count": { "type": "integer" } } },
                  { "type": "object", "description": "a group", "properties": {
                      "key": { "type": "string" }, "count": { "type": "integer" }, "would_block": { "type": "integer" },
                      "first_seen": { "type": "string", "format": "date-time" }, "last_seen": { "type": "string", "format": "date-time" },
                      "agents": array(json!({ "type": "string" })), "services": array(json!({ "type": "string" })) } } ] })),
              "next": { "type": ["string", "null"] } } }));
    Value::Object(m)
}
