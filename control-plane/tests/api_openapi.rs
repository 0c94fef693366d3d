//! The OpenAPI document is served, parses, lists every route (and only
//! routes that exist), and carries the statuses and constraints the API
//! enforces. `api_schemathesis.rs` checks the API against it from outside.

mod api_common;

use api_common::Api;
use corsair_control_plane::auth::Role;
use http::{Method, StatusCode};
use serde_json::Value;

async fn document(api: &Api) -> Value {
    let r = api
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.headers[http::header::CONTENT_TYPE],
        "application/json",
        "content type"
    );
    r.body
}

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let api = Api::new().await;
    let doc = document(&api).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], "/api/v1");
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in [
        ("/login", &["post"][..]),
        ("/services", &["get", "post"]),
        ("/services/{name}", &["get", "patch", "delete"]),
        ("/services/{name}/policy", &["get"]),
        ("/services/{name}/rollout", &["get"]),
        ("/services/{name}/origins", &["get", "post"]),
        ("/services/{name}/settings-changes", &["get"]),
        ("/services/{name}/settings-changes/{id}", &["get"]),
        ("/services/{name}/settings-changes/{id}/confirm", &["post"]),
        ("/services/{name}/settings-changes/{id}/dismiss", &["post"]),
        ("/origins/{id}", &["get"]),
        ("/origins/{id}/approve", &["post"]),
        ("/origins/{id}/reject", &["post"]),
        ("/origins/{id}/revoke", &["post"]),
        ("/origins/stale", &["get"]),
        ("/origins/{id}/revocation-request", &["post"]),
        ("/origins/{id}/revocation-request/confirm", &["post"]),
        ("/origins/{id}/revocation-request/dismiss", &["post"]),
        ("/agent-tokens", &["get", "post"]),
        ("/agent-tokens/{id}/revoke", &["post"]),
        ("/agents", &["get"]),
        ("/audit", &["get"]),
        ("/simulate", &["post"]),
        ("/blocked", &["get"]),
        ("/openapi.json", &["get"]),
    ] {
        let item = paths.get(path).unwrap_or_else(|| panic!("{path} missing"));
        for m in methods {
            assert!(item.get(*m).is_some(), "{m} {path} missing");
        }
    }
    // Every $ref points at a defined schema.
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    let text = doc.to_string();
    for piece in text.split("#/components/schemas/").skip(1) {
        let name: String = piece
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        assert!(schemas.contains_key(&name), "dangling $ref {name}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// Every documented operation is routed (no JSON 404 "no route", no 405),
/// and every other method on a documented path is a 405: the document and
/// the router agree both ways. (Paths the document does not name at all
/// cannot be registered: `api::routes` takes handlers with their entries,
/// and `no_route_bypasses_the_document` keeps it that way.)
#[tokio::test]
async fn router_and_document_agree() {
    let api = Api::new().await;
    let doc = document(&api).await;
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 16, "only {} paths", paths.len());
    for (path, item) in paths {
        let concrete = path.replace("{name}", "payments-api").replace("{id}", "1");
        let concrete = if path.starts_with("/agent-tokens/") {
            path.replace("{id}", "6f1c2b9e-8f57-4c1e-9d0a-2b7d3f3c1a10")
        } else {
            concrete
        };
        for method in METHODS {
            let documented = item.get(method.as_str().to_ascii_lowercase()).is_some();
            let r = api
                .call(method.clone(), &format!("/api/v1{concrete}"), None, None)
                .await;
            if documented {
                assert_ne!(
                    r.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is documented but not routed"
                );
                assert!(
                    !r.error_message().starts_with("no route for"),
                    "{method} {path} is documented but not routed"
                );
            } else {
                assert_eq!(
                    r.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} answers but is not documented"
                );
            }
        }
    }
}

/// The API's routes are registered only through `utoipa_axum`'s `routes!`
/// (handler and document entry together): a plain axum `.route(` in
/// `src/api/` would add a route the document does not know.
#[test]
fn no_route_bypasses_the_document() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("src/api") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        checked += 1;
        for (n, line) in text.lines().enumerate() {
            assert!(
                !line.contains(".route(") && !line.contains(".route_service("),
                "{}:{}: register API routes with utoipa_axum::routes!, not axum's .route",
                path.display(),
                n + 1
            );
        }
    }
    assert!(checked >= 10, "only {checked} files in src/api");
}

/// Statuses the extractors can answer are documented on every operation
/// that has them, each 4xx with the error body; the constraints the API
/// enforces are in the schemas.
#[tokio::test]
async fn statuses_and_constraints_are_documented() {
    let api = Api::new().await;
    let doc = document(&api).await;
    let error_ref = "#/components/schemas/ErrorResponse";
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let responses = op["responses"].as_object().expect("responses");
            let public = op["security"] == serde_json::json!([{}]);
            if !public {
                for s in ["401", "403"] {
                    assert!(responses.contains_key(s), "{method} {path}: no {s}");
                }
            }
            if op.get("requestBody").is_some() {
                for s in ["400", "415", "422"] {
                    assert!(responses.contains_key(s), "{method} {path}: no {s}");
                }
            }
            for (status, response) in responses {
                if status.starts_with('4') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"], error_ref,
                        "{method} {path} {status}: not the error body"
                    );
                }
            }
        }
    }
    let schemas = &doc["components"]["schemas"];
    let create = &schemas["CreateService"];
    assert!(
        create["required"]
            .as_array()
            .is_some_and(|r| r.iter().any(|n| n == "name")),
        "CreateService requires name: {create}"
    );
    assert_eq!(
        create["properties"]["name"]["pattern"],
        "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
    );
    assert_eq!(create["additionalProperties"], false);
    assert_eq!(create["properties"]["max_age_secs"]["maximum"], 86400);
    assert!(
        schemas["UpdateService"]["properties"].get("name").is_none(),
        "a service cannot be renamed"
    );
    let origin = &schemas["OriginRequest"]["properties"];
    assert!(origin["pattern"]["pattern"].is_string(), "{origin}");
    assert_eq!(origin["reason"]["maxLength"], 4096);
    let error = &schemas["ErrorResponse"];
    assert_eq!(error["required"], serde_json::json!(["error"]));
}

/// Two rules schemathesis found the API and the document disagreeing on:
/// text limits count characters, as `maxLength` does (not bytes), and the
/// optional decision body may be JSON `null`, like an empty one.
#[tokio::test]
async fn the_api_keeps_the_documented_limits() {
    let api = Api::new().await;
    api.create_service("payments-api", serde_json::json!({}))
        .await;
    let request = |pattern: &str, reason: String| {
        api.as_role(
            Role::Requester,
            Method::POST,
            "/api/v1/services/payments-api/origins",
            Some(serde_json::json!({ "pattern": pattern, "reason": reason })),
        )
    };
    // 4096 two-byte characters: 8192 bytes, within maxLength 4096.
    let r = request("https://app.example.com", "é".repeat(4096)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["id"].as_i64().expect("id");
    let r = request("https://b.example.com", "é".repeat(4097)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.error_message().contains("4096 characters"), "{}", r.body);

    let r = api
        .as_role(
            Role::Approver,
            Method::POST,
            &format!("/api/v1/origins/{id}/approve"),
            Some(Value::Null),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "approved");
    assert_eq!(r.body["note"], Value::Null);
}
