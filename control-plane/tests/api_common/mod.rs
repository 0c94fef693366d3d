//! Shared by the `api_*` tests: a fresh database with the control-plane
//! fixture's users and key, and a client that drives `api::app` with
//! `oneshot` (no socket).
#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use corsair_control_plane::api;
use corsair_control_plane::auth::{Role, SigningKey};
use corsair_control_plane::state::AppState;
use corsair_control_plane::store::Store;
use corsair_control_plane::testing::{self, TestDb};
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// The API over a fresh database.
pub struct Api {
    /// The router under test.
    pub app: Router,
    /// Direct access, for setup and checks.
    pub store: Store,
    /// The signing key the app uses.
    pub keys: SigningKey,
    /// The database URL.
    pub url: String,
    /// Keeps the database alive; dropping it drops the database.
    pub db: TestDb,
}

/// A response: status and JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub headers: http::HeaderMap,
}

impl Reply {
    /// The `error.code` of an error body, asserting the body has the
    /// documented shape.
    pub fn error_code(&self) -> &str {
        let e = &self.body["error"];
        assert!(
            e["message"].is_string(),
            "error without message: {}",
            self.body
        );
        e["code"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error body: {}", self.body))
    }

    /// The `error.message`.
    pub fn error_message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }
}

impl Api {
    pub async fn new() -> Api {
        let db = TestDb::new().await.expect("test database");
        let (store, url) = (db.store.clone(), db.url.clone());
        let keys = testing::signing_key();
        let app = api::app(AppState::new(store.clone(), keys.clone()));
        // The fixture's user per role, for `token(role)`.
        testing::seed_users(&store).await.expect("test users");
        Api {
            app,
            store,
            keys,
            url,
            db,
        }
    }

    /// A user token for `role` (email `<role>@example.com`).
    pub fn token(&self, role: Role) -> String {
        testing::user_token(&self.keys, role).expect("sign")
    }

    /// Sends a prepared request.
    pub async fn send(&self, req: Request<Body>) -> Reply {
        let res = self.app.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "{status}: body is not JSON: {:?}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Reply {
            status,
            body,
            headers,
        }
    }

    /// `method path` with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .expect("request");
        self.send(req).await
    }

    /// `call` as `role`.
    pub async fn as_role(
        &self,
        role: Role,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let t = self.token(role);
        self.call(method, path, Some(&t), body).await
    }

    /// Creates service `name` as admin with `settings` (a JSON object).
    pub async fn create_service(&self, name: &str, mut settings: Value) -> Reply {
        settings["name"] = Value::String(name.into());
        let r = self
            .as_role(
                Role::Admin,
                Method::POST,
                "/api/v1/services",
                Some(settings),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r
    }

    /// Requests `pattern` on `service` as requester; returns the origin id.
    pub async fn request_origin(&self, service: &str, pattern: &str) -> i64 {
        let r = self
            .as_role(
                Role::Requester,
                Method::POST,
                &format!("/api/v1/services/{service}/origins"),
                Some(serde_json::json!({ "pattern": pattern, "reason": "test" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["id"].as_i64().expect("id")
    }
}
