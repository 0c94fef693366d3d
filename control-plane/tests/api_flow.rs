//! The REST workflow end to end against real Postgres.

mod api_common;

use api_common::Api;
use corsair_control_plane::auth::{Role, TokenKind, password};
use http::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn request_approve_policy_revoke_and_audit() {
    let api = Api::new().await;
    let created = api
        .create_service("payments-api", json!({ "description": "Payments", "allow_methods": ["PUT"], "allow_headers": ["x-request-id"], "max_age_secs": 600 }))
        .await;
    let rev0 = created.body["revision"].as_i64().expect("revision");
    assert_eq!(created.body["mode"], "enforce");

    let id = api
        .request_origin("payments-api", "https://app.example.com")
        .await;
    let pending = api
        .as_role(
            Role::Viewer,
            Method::GET,
            "/api/v1/services/payments-api/policy",
            None,
        )
        .await;
    assert_eq!(pending.status, StatusCode::OK);
    assert_eq!(
        pending.body["spec"]["origins"],
        json!([]),
        "pending origins do not reach agents"
    );

    let approved = api
        .as_role(
            Role::Approver,
            Method::POST,
            &format!("/api/v1/origins/{id}/approve"),
            Some(json!({ "note": "ok" })),
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.body);
    assert_eq!(approved.body["status"], "approved");
    assert_eq!(approved.body["decided_by"], "approver@example.com");
    assert_eq!(approved.body["note"], "ok");

    let policy = api
        .as_role(
            Role::Viewer,
            Method::GET,
            "/api/v1/services/payments-api/policy",
            None,
        )
        .await;
    assert_eq!(
        policy.body["spec"]["origins"],
        json!(["https://app.example.com"])
    );
    assert_eq!(policy.body["spec"]["allow_methods"], json!(["PUT"]));
    let rev1 = policy.body["revision"].as_i64().expect("revision");
    assert!(rev1 > rev0, "approval bumps the revision ({rev1} > {rev0})");

    let detail = api
        .as_role(
            Role::Viewer,
            Method::GET,
            "/api/v1/services/payments-api",
            None,
        )
        .await;
    assert_eq!(detail.body["revision"], rev1);
    assert_eq!(
        detail.body["origins"][0]["pattern"],
        "https://app.example.com"
    );

    // Approve with no body at all: the note is optional.
    let id2 = api
        .request_origin("payments-api", "https://*.example.org")
        .await;
    let r = api
        .as_role(
            Role::Approver,
            Method::POST,
            &format!("/api/v1/origins/{id2}/approve"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    let revoked = api
        .as_role(
            Role::Approver,
            Method::POST,
            &format!("/api/v1/origins/{id}/revoke"),
            Some(json!({ "note": "gone" })),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    let policy = api
        .as_role(
            Role::Viewer,
            Method::GET,
            "/api/v1/services/payments-api/policy",
            None,
        )
        .await;
    assert_eq!(
        policy.body["spec"]["origins"],
        json!(["https://*.example.org"])
    );
    assert!(policy.body["revision"].as_i64().expect("revision") > rev1);

    // Rejecting does not change the policy, so no new revision.
    let before = policy.body["revision"].clone();
    let id3 = api
        .request_origin("payments-api", "https://other.example.com")
        .await;
    let r = api
        .as_role(
            Role::Approver,
            Method::POST,
            &format!("/api/v1/origins/{id3}/reject"),
            Some(json!({ "note": "not needed" })),
        )
        .await;
    assert_eq!(r.body["status"], "rejected");
    let policy = api
        .as_role(
            Role::Viewer,
            Method::GET,
            "/api/v1/services/payments-api/policy",
            None,
        )
        .await;
    assert_eq!(policy.body["revision"], before);

    let audit = api
        .as_role(
            Role::Viewer,
            Method::GET,
            "/api/v1/audit?service=payments-api",
            None,
        )
        .await;
    assert_eq!(audit.status, StatusCode::OK);
    let actions: Vec<&str> = audit
        .body
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "origin.reject",
            "origin.request",
            "origin.revoke",
            "origin.approve",
            "origin.request",
            "origin.approve",
            "origin.request",
            "service.create"
        ]
    );
    let approve_row = &audit.body[5];
    assert_eq!(approve_row["actor"], "approver@example.com");
    assert_eq!(approve_row["target"], format!("origin:{id}"));
    assert_eq!(approve_row["before"]["status"], "pending");
    assert_eq!(approve_row["after"]["status"], "approved");
    let limited = api
        .as_role(Role::Viewer, Method::GET, "/api/v1/audit?limit=2", None)
        .await;
    assert_eq!(limited.body.as_array().map(Vec::len), Some(2));

    // Deleting removes the service and its policy, and is audited.
    let r = api
        .as_role(
            Role::Admin,
            Method::DELETE,
            "/api/v1/services/payments-api",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api
        .as_role(
            Role::Viewer,
            Method::GET,
            "/api/v1/services/payments-api/policy",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let audit = api
        .as_role(
            Role::Viewer,
            Method::GET,
            "/api/v1/audit?service=payments-api&limit=1",
            None,
        )
        .await;
    assert_eq!(audit.body[0]["action"], "service.delete");
}

#[tokio::test]
async fn patch_bumps_revision_for_policy_fields_only() {
    let api = Api::new().await;
    let created = api.create_service("orders", json!({})).await;
    let rev0 = created.body["revision"].as_i64().expect("revision");

    let r = api
        .as_role(
            Role::Approver,
            Method::PATCH,
            "/api/v1/services/orders",
            Some(json!({ "description": "Orders API" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["description"], "Orders API");
    assert_eq!(r.body["revision"], rev0, "a description is not enforced");

    let r = api
        .as_role(
            Role::Approver,
            Method::PATCH,
            "/api/v1/services/orders",
            Some(json!({ "allow_methods": ["DELETE"], "max_age_secs": 120 })),
        )
        .await;
    // Neither widens access (report-only mode would: that waits for a
    // second approver, see api_settings_four_eyes.rs), so it applies at once.
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["allow_methods"], json!(["DELETE"]));
    assert_eq!(r.body["max_age_secs"], 120);
    assert_eq!(
        r.body["description"], "Orders API",
        "unmentioned fields stay"
    );
    assert!(r.body["revision"].as_i64().expect("revision") > rev0);

    let audit = api
        .as_role(
            Role::Viewer,
            Method::GET,
            "/api/v1/audit?service=orders",
            None,
        )
        .await;
    assert_eq!(audit.body[0]["action"], "service.update");
    assert_eq!(audit.body[0]["before"]["max_age_secs"], 0);
    assert_eq!(audit.body[0]["after"]["max_age_secs"], 120);
}

#[tokio::test]
async fn login_issues_a_working_user_token() {
    let api = Api::new().await;
    let hash = password::hash("s3cret-pass").expect("hash");
    api.store
        .create_user("Ann@Example.com", &hash, Role::Approver, "test")
        .await
        .expect("user");

    let r = api
        .call(
            Method::POST,
            "/api/v1/login",
            None,
            Some(json!({ "email": "ann@example.com", "password": "s3cret-pass" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["role"], "approver");
    assert!(r.body["expires_at"].is_string());
    let token = r.body["token"].as_str().expect("token").to_owned();
    let claims = api
        .keys
        .verify(&token, TokenKind::User)
        .expect("a user token");
    assert_eq!(claims.role, Some(Role::Approver));

    let r = api
        .call(Method::GET, "/api/v1/services", Some(&token), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);

    for (email, pw) in [
        ("ann@example.com", "wrong"),
        ("nobody@example.com", "s3cret-pass"),
    ] {
        let r = api
            .call(
                Method::POST,
                "/api/v1/login",
                None,
                Some(json!({ "email": email, "password": pw })),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.error_code(), "unauthorized");
    }
}

#[tokio::test]
async fn agent_tokens_issue_list_revoke() {
    let api = Api::new().await;
    let r = api
        .as_role(
            Role::Admin,
            Method::POST,
            "/api/v1/agent-tokens",
            Some(json!({ "name": "gw-1", "services": ["payments-api", "orders"] })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["id"].as_str().expect("id").to_owned();
    let claims = api
        .keys
        .verify(r.body["token"].as_str().expect("token"), TokenKind::Agent)
        .expect("agent token");
    assert_eq!(claims.jti, id);
    assert_eq!(claims.sub, "gw-1");
    assert_eq!(claims.services, ["payments-api", "orders"]);
    let uuid: uuid::Uuid = id.parse().expect("uuid");
    assert!(api.store.agent_token_active(uuid).await.expect("query"));

    let list = api
        .as_role(Role::Admin, Method::GET, "/api/v1/agent-tokens", None)
        .await;
    assert_eq!(list.body[0]["id"], id.as_str());
    assert!(
        list.body[0].get("token").is_none(),
        "the token itself is never listed"
    );

    let r = api
        .as_role(
            Role::Admin,
            Method::POST,
            &format!("/api/v1/agent-tokens/{id}/revoke"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body["revoked_at"].is_string());
    assert!(!api.store.agent_token_active(uuid).await.expect("query"));
    let again = api
        .as_role(
            Role::Admin,
            Method::POST,
            &format!("/api/v1/agent-tokens/{id}/revoke"),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);

    let r = api
        .as_role(
            Role::Approver,
            Method::POST,
            "/api/v1/agent-tokens",
            Some(json!({ "name": "x", "services": ["a"] })),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = api
        .as_role(
            Role::Admin,
            Method::POST,
            "/api/v1/agent-tokens",
            Some(json!({ "name": "x", "services": [] })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn agents_lists_what_the_sync_server_recorded() {
    let api = Api::new().await;
    let r = api
        .as_role(Role::Viewer, Method::GET, "/api/v1/agents", None)
        .await;
    assert_eq!(r.body, json!([]));
    sqlx::query("INSERT INTO agents (id, name, services, version, connected) VALUES ('a1', 'gw', '{orders}', '0.1.0', true)")
        .execute(api.store.pool())
        .await
        .expect("insert agent");
    sqlx::query("INSERT INTO agent_services (agent_id, service, applied_revision, last_nack_revision, last_nack_error) VALUES ('a1', 'orders', 7, 8, 'bad policy')")
        .execute(api.store.pool())
        .await
        .expect("insert state");
    let r = api
        .as_role(Role::Viewer, Method::GET, "/api/v1/agents", None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let a = &r.body[0];
    assert_eq!(a["name"], "gw");
    assert_eq!(a["connected"], true);
    assert_eq!(a["services"], json!(["orders"]));
    assert_eq!(a["service_states"][0]["applied_revision"], 7);
    assert_eq!(a["service_states"][0]["last_nack_error"], "bad policy");
}

#[tokio::test]
async fn expired_grants_are_revoked_with_a_revision_bump() {
    let api = Api::new().await;
    api.create_service("temp", json!({})).await;
    let id = api.request_origin("temp", "https://tmp.example.com").await;
    let r = api
        .as_role(
            Role::Approver,
            Method::POST,
            &format!("/api/v1/origins/{id}/approve"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Make the grant lapse (the API refuses past expiries, so set it directly).
    sqlx::query("UPDATE origins SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(id)
        .execute(api.store.pool())
        .await
        .expect("update");
    let before = api
        .store
        .effective_policy("temp")
        .await
        .expect("query")
        .expect("service");
    assert!(
        before.spec.origins.is_empty(),
        "expired origins never reach agents"
    );

    let revoked = api.store.expire_origins().await.expect("expire");
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].status, "revoked");
    assert_eq!(revoked[0].note.as_deref(), Some("expired"));
    let after = api
        .store
        .effective_policy("temp")
        .await
        .expect("query")
        .expect("service");
    assert!(
        after.revision > before.revision,
        "agents must hear of the expiry"
    );
    assert!(
        api.store.expire_origins().await.expect("expire").is_empty(),
        "idempotent"
    );
    let audit = api.store.list_audit(Some("temp"), 1).await.expect("audit");
    assert_eq!(audit[0].action, "origin.revoke");
    assert_eq!(audit[0].actor, "corsair");
}
