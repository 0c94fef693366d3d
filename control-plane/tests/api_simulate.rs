//! `POST /simulate` answers with the agent engine's own decision and headers.

mod api_common;

use api_common::Api;
use corsair_control_plane::auth::Role;
use http::{Method, StatusCode};
use serde_json::json;

async fn simulate(api: &Api, body: serde_json::Value) -> api_common::Reply {
    api.as_role(Role::Viewer, Method::POST, "/api/v1/simulate", Some(body))
        .await
}

#[tokio::test]
async fn simulator_shows_preflight_and_actual_steps() {
    let api = Api::new().await;
    api.create_service(
        "payments-api",
        json!({"allow_methods": ["PUT"], "allow_headers": ["X-Request-Id"], "allow_credentials": true, "max_age_secs": 600}),
    )
    .await;
    let id = api
        .request_origin("payments-api", "https://app.example.com")
        .await;

    // Pending only: refused at the preflight, no CORS headers.
    let r = simulate(&api, json!({"service": "payments-api", "origin": "https://app.example.com", "method": "PUT", "request_headers": ["X-Request-Id"]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["allowed"], false);
    assert_eq!(r.body["reason"], "origin_not_allowed");
    assert_eq!(r.body["steps"].as_array().map(Vec::len), Some(1));
    assert_eq!(r.body["steps"][0]["status"], 403);
    assert_eq!(
        r.body["steps"][0]["headers"].get("access-control-allow-origin"),
        None
    );

    let approved = api
        .as_role(
            Role::Approver,
            Method::POST,
            &format!("/api/v1/origins/{id}/approve"),
            Some(json!({"note": "ok"})),
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.body);

    let r = simulate(&api, json!({"service": "payments-api", "origin": "https://app.example.com", "method": "PUT", "request_headers": ["X-Request-Id"]})).await;
    assert_eq!(r.body["allowed"], true, "{}", r.body);
    let preflight = &r.body["steps"][0];
    assert_eq!(preflight["request"], "preflight");
    assert_eq!(preflight["decision"], "preflight_allowed");
    assert_eq!(preflight["status"], 204);
    assert_eq!(
        preflight["headers"]["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(preflight["headers"]["access-control-allow-methods"], "PUT");
    assert_eq!(
        preflight["headers"]["access-control-allow-credentials"],
        "true"
    );
    assert_eq!(preflight["headers"]["access-control-max-age"], "600");
    let actual = &r.body["steps"][1];
    assert_eq!(actual["request"], "actual");
    assert_eq!(actual["decision"], "allowed");
    assert_eq!(
        actual["status"],
        serde_json::Value::Null,
        "actual requests are forwarded"
    );
    assert_eq!(actual["headers"]["vary"], "Origin");

    // A simple GET needs no preflight; a look-alike origin is blocked.
    let r = simulate(
        &api,
        json!({"service": "payments-api", "origin": "https://app.example.com.evil.net"}),
    )
    .await;
    assert_eq!(r.body["steps"].as_array().map(Vec::len), Some(1));
    assert_eq!(r.body["steps"][0]["request"], "actual");
    assert_eq!(r.body["decision"], "blocked");
    assert_eq!(r.body["allowed"], false);
}

#[tokio::test]
async fn simulator_bad_input_is_4xx() {
    let api = Api::new().await;
    api.create_service("svc", json!({})).await;
    let unknown = simulate(
        &api,
        json!({"service": "nope", "origin": "https://a.example"}),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let bad_method = simulate(
        &api,
        json!({"service": "svc", "origin": "https://a.example", "method": "GE T"}),
    )
    .await;
    assert_eq!(bad_method.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad_method.error_message().contains("method"),
        "{}",
        bad_method.body
    );
    let bad_header = simulate(
        &api,
        json!({"service": "svc", "origin": "https://a.example", "request_headers": ["bad header"]}),
    )
    .await;
    assert_eq!(bad_header.status, StatusCode::UNPROCESSABLE_ENTITY);
    let anonymous = api
        .call(
            Method::POST,
            "/api/v1/simulate",
            None,
            Some(json!({"service": "svc", "origin": "x"})),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}
