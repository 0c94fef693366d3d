//! A reject must carry a reason on every face: over REST, no note (no body,
//! `{}`, `null`, blank) is a 422 that says so, and the origin stays
//! pending; with a note it is rejected and the note is kept.

mod api_common;

use api_common::Api;
use corsair_control_plane::auth::Role;
use http::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn rest_reject_without_a_note_is_422_and_changes_nothing() {
    let api = Api::new().await;
    let created = api.create_service("web", json!({})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = api.request_origin("web", "https://a.example.com").await;
    let path = format!("/api/v1/origins/{id}/reject");

    for body in [
        None,
        Some(json!({})),
        Some(json!({ "note": null })),
        Some(json!({ "note": "" })),
        Some(json!({ "note": "  \t " })),
    ] {
        let r = api
            .as_role(Role::Approver, Method::POST, &path, body.clone())
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body:?}: {}",
            r.body
        );
        assert_eq!(r.error_code(), "invalid", "{}", r.body);
        assert!(
            r.error_message().contains("reason"),
            "the message should ask for a reason: {}",
            r.body
        );
    }
    let still = api
        .as_role(
            Role::Viewer,
            Method::GET,
            &format!("/api/v1/origins/{id}"),
            None,
        )
        .await;
    assert_eq!(still.body["status"], "pending", "{}", still.body);

    let r = api
        .as_role(
            Role::Approver,
            Method::POST,
            &path,
            Some(json!({ "note": " not ours " })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "rejected");
    assert_eq!(r.body["note"], "not ours");
}
