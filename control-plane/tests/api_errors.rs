//! Bad input gets the right 4xx with a JSON error body, never a 500.

mod api_common;

use api_common::Api;
use axum::body::Body;
use corsair_control_plane::auth::Role;
use http::{Method, Request, StatusCode};
use serde_json::json;

#[tokio::test]
async fn invalid_origin_patterns_are_422_with_the_engines_message() {
    let api = Api::new().await;
    api.create_service("web", json!({})).await;
    for (pattern, expect) in [
        ("https://*.com", "public suffix"),
        ("https://app.example.com/path", "path"),
        ("null", "null"),
        ("app.example.com", "scheme"),
        ("https://user@app.example.com", "userinfo"),
        ("https://app.example.com:443", "default port"),
        ("", "empty"),
    ] {
        let r = api
            .as_role(
                Role::Requester,
                Method::POST,
                "/api/v1/services/web/origins",
                Some(json!({ "pattern": pattern, "reason": "r" })),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{pattern}: {}",
            r.body
        );
        assert_eq!(r.error_code(), "invalid");
        let engine = corsair_agent::engine::parse_origin_pattern(pattern).expect_err("invalid");
        assert!(
            r.error_message().contains(&engine),
            "{pattern}: the engine's message verbatim: {}",
            r.body
        );
        assert!(
            r.error_message().to_lowercase().contains(expect),
            "{pattern}: {}",
            r.error_message()
        );
    }
}

#[tokio::test]
async fn policy_context_is_checked() {
    let api = Api::new().await;
    api.create_service("creds", json!({ "allow_credentials": true }))
        .await;
    // Plain http with credentials: refused, loopback excepted.
    let r = api
        .as_role(
            Role::Requester,
            Method::POST,
            "/api/v1/services/creds/origins",
            Some(json!({ "pattern": "http://app.example.com", "reason": "r" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.error_message().contains("plain-http"), "{}", r.body);
    api.request_origin("creds", "http://localhost:3000").await;
    // `*` with credentials.
    let r = api
        .as_role(
            Role::Requester,
            Method::POST,
            "/api/v1/services/creds/origins",
            Some(json!({ "pattern": "*", "reason": "r" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);

    // Approval checks the settings as they are now, not as they were when
    // the request was filed.
    api.create_service("later", json!({})).await;
    let id = api
        .request_origin("later", "http://insecure.example.com")
        .await;
    let r = api
        .as_role(
            Role::Approver,
            Method::PATCH,
            "/api/v1/services/later",
            Some(json!({ "allow_credentials": true })),
        )
        .await;
    // Credentials widen access: held until a second person confirms.
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "pending origins do not block a PATCH: {}",
        r.body
    );
    let change = r.body["id"].as_i64().expect("settings change id");
    let r = api
        .as_role(
            Role::Admin,
            Method::POST,
            &format!("/api/v1/services/later/settings-changes/{change}/confirm"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = api
        .as_role(
            Role::Approver,
            Method::POST,
            &format!("/api/v1/origins/{id}/approve"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.error_message().contains("plain-http"), "{}", r.body);

    // PATCH lists every problem, with the approved origins taken into account.
    api.create_service("plain", json!({})).await;
    let id = api.request_origin("plain", "http://app.example.com").await;
    let r = api
        .as_role(
            Role::Approver,
            Method::POST,
            &format!("/api/v1/origins/{id}/approve"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = api
        .as_role(
            Role::Approver,
            Method::PATCH,
            "/api/v1/services/plain",
            Some(json!({ "allow_credentials": true, "allow_methods": ["bad method"] })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let details = r.body["error"]["details"].as_array().expect("details");
    let fields: Vec<&str> = details.iter().filter_map(|d| d["field"].as_str()).collect();
    assert!(
        fields.contains(&"allow_methods[0]") && fields.contains(&"origins[0]"),
        "{}",
        r.body
    );

    let r = api
        .as_role(
            Role::Approver,
            Method::PATCH,
            "/api/v1/services/plain",
            Some(json!({ "max_age_secs": 999999 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let r = api
        .as_role(
            Role::Approver,
            Method::PATCH,
            "/api/v1/services/plain",
            Some(json!({ "mode": "sometimes" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let r = api
        .as_role(
            Role::Approver,
            Method::PATCH,
            "/api/v1/services/plain",
            Some(json!({ "name": "renamed" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
}

#[tokio::test]
async fn unknown_things_are_404() {
    let api = Api::new().await;
    for (method, path, body) in [
        (Method::GET, "/api/v1/services/nope", None),
        (Method::GET, "/api/v1/services/nope/policy", None),
        (Method::GET, "/api/v1/services/nope/origins", None),
        (
            Method::PATCH,
            "/api/v1/services/nope",
            Some(json!({ "description": "x" })),
        ),
        (Method::DELETE, "/api/v1/services/nope", None),
        (
            Method::POST,
            "/api/v1/services/nope/origins",
            Some(json!({ "pattern": "https://a.example.com", "reason": "r" })),
        ),
        (Method::POST, "/api/v1/origins/999999/approve", None),
        (
            Method::POST,
            "/api/v1/agent-tokens/6f1c7a52-8a9e-4c43-9a34-0f8a0b3c7d11/revoke",
            None,
        ),
        (Method::GET, "/api/v1/no-such-route", None),
    ] {
        let r = api.as_role(Role::Admin, method.clone(), path, body).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {}",
            r.body
        );
        assert_eq!(r.error_code(), "not_found");
    }
}

#[tokio::test]
async fn missing_or_bad_tokens_are_401() {
    let api = Api::new().await;
    let r = api.call(Method::GET, "/api/v1/services", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.error_code(), "unauthorized");
    assert_eq!(
        r.headers.get("www-authenticate").map(|v| v.as_bytes()),
        Some(&b"Bearer"[..])
    );
    let r = api
        .call(Method::GET, "/api/v1/services", Some("not-a-jwt"), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Signed by another key.
    let other = corsair_control_plane::auth::SigningKey::from_bytes(&[1; 32]);
    let forged =
        corsair_control_plane::auth::issue_user_token(&other, "x@example.com", Role::Admin)
            .expect("sign")
            .token;
    let r = api
        .call(Method::GET, "/api/v1/services", Some(&forged), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // An agent token is not a user token.
    let agent = corsair_control_plane::auth::issue_agent_token(
        &api.keys,
        uuid::Uuid::new_v4(),
        "gw",
        &["a".into()],
        None,
    )
    .expect("sign")
    .token;
    let r = api
        .call(Method::GET, "/api/v1/services", Some(&agent), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Basic auth is not bearer.
    let req = Request::get("/api/v1/services")
        .header("authorization", "Basic YTpi")
        .body(Body::empty())
        .expect("req");
    assert_eq!(api.send(req).await.status, StatusCode::UNAUTHORIZED);
    // Auth comes before lookups: no token on an unknown service is 401, not 404.
    let r = api
        .call(Method::GET, "/api/v1/services/nope", None, None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn disabled_users_and_lowered_roles_take_effect_at_once() {
    let api = Api::new().await;
    let admin = api.token(Role::Admin);
    let r = api
        .call(Method::GET, "/api/v1/agent-tokens", Some(&admin), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    sqlx::query("UPDATE users SET role = 'viewer' WHERE email = 'admin@example.com'")
        .execute(api.store.pool())
        .await
        .expect("demote");
    let r = api
        .call(Method::GET, "/api/v1/agent-tokens", Some(&admin), None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    sqlx::query("UPDATE users SET disabled = true WHERE email = 'admin@example.com'")
        .execute(api.store.pool())
        .await
        .expect("disable");
    let r = api
        .call(Method::GET, "/api/v1/services", Some(&admin), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    // A validly signed token for someone who is not a user.
    let ghost =
        corsair_control_plane::auth::issue_user_token(&api.keys, "ghost@example.com", Role::Admin)
            .expect("sign")
            .token;
    let r = api
        .call(Method::GET, "/api/v1/services", Some(&ghost), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
}

#[tokio::test]
async fn malformed_requests_are_400_and_friends() {
    let api = Api::new().await;
    api.create_service("web", json!({})).await;
    let token = api.token(Role::Admin);
    let raw = |method: Method, path: &str, ctype: Option<&str>, body: &'static str| {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"));
        if let Some(c) = ctype {
            b = b.header("content-type", c);
        }
        b.body(Body::from(body)).expect("req")
    };
    // Not JSON at all, truncated JSON: 400.
    for body in ["{not json", "{\"name\": \"x\"", "[1,2"] {
        let r = api
            .send(raw(
                Method::POST,
                "/api/v1/services",
                Some("application/json"),
                body,
            ))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert_eq!(r.error_code(), "bad_request");
    }
    let r = api
        .send(raw(
            Method::POST,
            "/api/v1/origins/1/approve",
            Some("application/json"),
            "{oops",
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = api
        .send(raw(
            Method::POST,
            "/api/v1/login",
            Some("application/json"),
            "nope",
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Valid JSON of the wrong shape: 422.
    for body in [
        "{\"name\": 5}",
        "{\"name\": \"x\", \"allow_method\": []}",
        "[]",
    ] {
        let r = api
            .send(raw(
                Method::POST,
                "/api/v1/services",
                Some("application/json"),
                body,
            ))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.body
        );
    }
    let r = api
        .send(raw(
            Method::POST,
            "/api/v1/services/web/origins",
            Some("application/json"),
            "{\"pattern\": \"https://a.example.com\"}",
        ))
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "missing reason: {}",
        r.body
    );
    // Not declared as JSON: 415.
    let r = api
        .send(raw(
            Method::POST,
            "/api/v1/services",
            Some("text/plain"),
            "{}",
        ))
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.error_code(), "unsupported_media_type");
    let r = api
        .send(raw(Method::POST, "/api/v1/services", None, "{}"))
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Bad path or query values: 400.
    let r = api
        .as_role(
            Role::Approver,
            Method::POST,
            "/api/v1/origins/abc/approve",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = api
        .as_role(
            Role::Admin,
            Method::POST,
            "/api/v1/agent-tokens/not-a-uuid/revoke",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = api
        .as_role(Role::Viewer, Method::GET, "/api/v1/audit?limit=lots", None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = api
        .as_role(Role::Viewer, Method::GET, "/api/v1/audit?limit=0", None)
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    // Invalid names and values.
    for body in [
        json!({ "name": "Bad Name" }),
        json!({ "name": "" }),
        json!({}),
        json!({ "name": "ok", "max_age_secs": -1 }),
        json!({ "name": "ok", "max_age_secs": 99999999999i64 }),
    ] {
        let r = api
            .as_role(
                Role::Admin,
                Method::POST,
                "/api/v1/services",
                Some(body.clone()),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.body
        );
    }
    let r = api
        .as_role(Role::Requester, Method::POST, "/api/v1/services/web/origins", Some(json!({ "pattern": "https://a.example.com", "reason": "r", "expires_at": "2001-01-01T00:00:00Z" })))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let r = api
        .as_role(Role::Requester, Method::POST, "/api/v1/services/web/origins", Some(json!({ "pattern": "https://a.example.com", "reason": "r", "expires_at": "tomorrow" })))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    // NUL characters: Postgres refuses them in text, which must not be a 500.
    let r = api
        .as_role(
            Role::Requester,
            Method::POST,
            "/api/v1/services/web/origins",
            Some(json!({ "pattern": "https://nul.example.com", "reason": "a\0b" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let r = api
        .call(
            Method::POST,
            "/api/v1/login",
            None,
            Some(json!({ "email": "a\0@example.com", "password": "x" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let r = api
        .as_role(Role::Viewer, Method::GET, "/api/v1/services/a%00b", None)
        .await;
    assert!(r.status.is_client_error(), "{}", r.body);
    let r = api
        .as_role(
            Role::Viewer,
            Method::GET,
            "/api/v1/audit?service=a%00b",
            None,
        )
        .await;
    assert!(r.status.is_client_error(), "{}", r.body);
    // Wrong method on a known path.
    let r = api
        .as_role(Role::Admin, Method::PUT, "/api/v1/services", None)
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{}", r.body);
    assert_eq!(r.error_code(), "method_not_allowed");
}

#[tokio::test]
async fn roles_are_enforced_with_403() {
    let api = Api::new().await;
    api.create_service("web", json!({})).await;
    let id = api.request_origin("web", "https://a.example.com").await;
    for (role, method, path, body) in [
        (
            Role::Viewer,
            Method::POST,
            "/api/v1/services/web/origins".to_owned(),
            Some(json!({ "pattern": "https://b.example.com", "reason": "r" })),
        ),
        (
            Role::Requester,
            Method::POST,
            format!("/api/v1/origins/{id}/approve"),
            None,
        ),
        (
            Role::Requester,
            Method::PATCH,
            "/api/v1/services/web".to_owned(),
            Some(json!({ "allow_credentials": true })),
        ),
        (
            Role::Approver,
            Method::POST,
            "/api/v1/services".to_owned(),
            Some(json!({ "name": "other" })),
        ),
        (
            Role::Approver,
            Method::DELETE,
            "/api/v1/services/web".to_owned(),
            None,
        ),
        (
            Role::Approver,
            Method::GET,
            "/api/v1/agent-tokens".to_owned(),
            None,
        ),
    ] {
        let r = api.as_role(role, method.clone(), &path, body).await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "{role:?} {method} {path}: {}",
            r.body
        );
        assert_eq!(r.error_code(), "forbidden");
    }
    // And nothing happened.
    let o = api
        .as_role(
            Role::Viewer,
            Method::GET,
            &format!("/api/v1/origins/{id}"),
            None,
        )
        .await;
    assert_eq!(o.body["status"], "pending");
}

#[tokio::test]
async fn duplicates_and_wrong_states_are_409() {
    let api = Api::new().await;
    api.create_service("web", json!({})).await;
    let r = api
        .as_role(
            Role::Admin,
            Method::POST,
            "/api/v1/services",
            Some(json!({ "name": "web" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.error_code(), "conflict");

    let id = api.request_origin("web", "https://a.example.com").await;
    // The same pattern while the first request is pending: 409.
    let r = api
        .as_role(
            Role::Requester,
            Method::POST,
            "/api/v1/services/web/origins",
            Some(json!({ "pattern": "https://a.example.com", "reason": "again" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);

    // Revoke needs approved; approve twice is refused.
    let path = |verb: &str| format!("/api/v1/origins/{id}/{verb}");
    let r = api
        .as_role(Role::Approver, Method::POST, &path("revoke"), None)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.error_code(), "invalid_state");
    assert_eq!(
        api.as_role(Role::Approver, Method::POST, &path("approve"), None)
            .await
            .status,
        StatusCode::OK
    );
    let r = api
        .as_role(Role::Approver, Method::POST, &path("approve"), None)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = api
        .as_role(
            Role::Approver,
            Method::POST,
            &path("reject"),
            Some(json!({ "note": "too late" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    // Still approved: a new request for it is a duplicate.
    let r = api
        .as_role(
            Role::Requester,
            Method::POST,
            "/api/v1/services/web/origins",
            Some(json!({ "pattern": "https://a.example.com", "reason": "again" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    // After revoking, it can be requested again.
    assert_eq!(
        api.as_role(Role::Approver, Method::POST, &path("revoke"), None)
            .await
            .status,
        StatusCode::OK
    );
    api.request_origin("web", "https://a.example.com").await;

    // Duplicate user emails are a store conflict too (case-insensitive).
    api.store
        .create_user("a@example.com", "x", Role::Viewer, "test")
        .await
        .expect("first");
    let e = api
        .store
        .create_user("A@example.com", "x", Role::Viewer, "test")
        .await
        .expect_err("duplicate");
    assert!(
        matches!(e, corsair_control_plane::store::StoreError::Conflict(_)),
        "{e:?}"
    );
}
