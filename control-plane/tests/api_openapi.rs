//! The OpenAPI document is served, parses, and lists every route.

mod api_common;

use api_common::Api;
use http::{Method, StatusCode};

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let api = Api::new().await;
    let r = api
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["openapi"], "3.1.0");
    let paths = r.body["paths"].as_object().expect("paths");
    for (path, methods) in [
        ("/login", &["post"][..]),
        ("/services", &["get", "post"]),
        ("/services/{name}", &["get", "patch", "delete"]),
        ("/services/{name}/policy", &["get"]),
        ("/services/{name}/origins", &["get", "post"]),
        ("/origins/{id}", &["get"]),
        ("/origins/{id}/approve", &["post"]),
        ("/origins/{id}/reject", &["post"]),
        ("/origins/{id}/revoke", &["post"]),
        ("/agent-tokens", &["get", "post"]),
        ("/agent-tokens/{id}/revoke", &["post"]),
        ("/agents", &["get"]),
        ("/audit", &["get"]),
        ("/openapi.json", &["get"]),
    ] {
        let item = paths.get(path).unwrap_or_else(|| panic!("{path} missing"));
        for m in methods {
            assert!(item.get(*m).is_some(), "{m} {path} missing");
        }
    }
    // Every $ref points at a defined schema.
    let schemas = r.body["components"]["schemas"]
        .as_object()
        .expect("schemas");
    let text = r.body.to_string();
    for piece in text.split("#/components/schemas/").skip(1) {
        let name: String = piece
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        assert!(schemas.contains_key(&name), "dangling $ref {name}");
    }
}
