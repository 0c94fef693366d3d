//! Origin usage over REST against real Postgres: allowed counts stored with
//! their telemetry batch (idempotent by batch id), "last used" and 30-day
//! counts on a service's origins, `GET /origins/stale` (JSON and CSV), and
//! the revocation request it leads to, through four eyes and the audit log.

mod api_common;

use api_common::Api;
use axum::body::Body;
use chrono::{Duration, Utc};
use corsair_control_plane::auth::Role;
use corsair_control_plane::store::blocked::{IngestBatch, Ingested};
use corsair_control_plane::store::usage::OriginUse;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

fn uses(batch_id: &str, ts_days_ago: i64, uses: &[(&str, i64)]) -> IngestBatch {
    let ts = Utc::now() - Duration::days(ts_days_ago);
    IngestBatch {
        batch_id: format!("agent-1:{batch_id}"),
        agent_id: "agent-1".into(),
        ts,
        counts: Vec::new(),
        dropped_events: 0,
        dropped_service: String::new(),
        uses: uses
            .iter()
            .map(|(pattern, count)| OriginUse {
                service: "shop".into(),
                pattern: (*pattern).into(),
                count: *count,
            })
            .collect(),
        ts_end: ts,
    }
}

async fn approve(api: &Api, pattern: &str) -> i64 {
    let id = api.request_origin("shop", pattern).await;
    let r = api
        .as_role(
            Role::Approver,
            Method::POST,
            &format!("/api/v1/origins/{id}/approve"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    id
}

/// Moves an origin's approval `days` into the past (the only way to have
/// an origin approved 90 days ago in a test).
async fn approved_days_ago(api: &Api, id: i64, days: i64) {
    sqlx::query("UPDATE origins SET decided_at = now() - make_interval(days => $2) WHERE id = $1")
        .bind(id)
        .bind(i32::try_from(days).expect("small"))
        .execute(api.store.pool())
        .await
        .expect("backdate");
}

fn by_pattern(list: &Value) -> std::collections::BTreeMap<String, (Value, i64)> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|o| {
            (
                o["pattern"].as_str().unwrap_or_default().to_owned(),
                (
                    o["last_allowed_at"].clone(),
                    o["allowed_30d"].as_i64().expect("allowed_30d"),
                ),
            )
        })
        .collect()
}

async fn raw(api: &Api, path: &str, role: Role) -> (StatusCode, String, String) {
    let req = Request::builder()
        .uri(path)
        .header("authorization", format!("Bearer {}", api.token(role)))
        .body(Body::empty())
        .expect("request");
    let res = api.app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        content_type,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

#[tokio::test]
async fn usage_is_stored_once_per_batch_and_shown_beside_each_origin() {
    let api = Api::new().await;
    api.create_service("shop", json!({})).await;
    approve(&api, "https://app.example.com").await;
    approve(&api, "https://*.example.org").await;

    let first = uses(
        "1",
        40,
        &[("https://app.example.com", 5), ("https://*.example.org", 2)],
    );
    assert!(matches!(
        api.store
            .ingest_blocked_batch(&first)
            .await
            .expect("ingest"),
        Ingested::Stored { .. }
    ));
    // A retry of the same batch adds nothing.
    assert_eq!(
        api.store.ingest_blocked_batch(&first).await.expect("retry"),
        Ingested::Duplicate
    );
    let recent = uses("2", 0, &[("https://*.example.org", 7)]);
    api.store
        .ingest_blocked_batch(&recent)
        .await
        .expect("ingest");

    let list = api
        .as_role(
            Role::Viewer,
            Method::GET,
            "/api/v1/services/shop/origins",
            None,
        )
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let got = by_pattern(&list.body);
    // 40 days ago is outside the 30-day count, but it is the last use.
    let (last, count) = &got["https://app.example.com"];
    assert_eq!(*count, 0);
    assert!(last.is_string(), "{last}");
    let (last, count) = &got["https://*.example.org"];
    assert_eq!(*count, 7);
    let last = last.as_str().expect("a time");
    let last: chrono::DateTime<Utc> = last.parse().expect("RFC 3339");
    assert!(Utc::now() - last < Duration::hours(1), "{last}");
}

#[tokio::test]
async fn stale_origins_lists_unused_approved_origins_as_json_and_csv() {
    let api = Api::new().await;
    api.create_service("shop", json!({})).await;
    let used = approve(&api, "https://used.example.com").await;
    let idle = approve(&api, "https://idle.example.com").await;
    let never = approve(&api, "https://never.example.com").await;
    let fresh = approve(&api, "https://fresh.example.com").await;
    for id in [used, idle, never] {
        approved_days_ago(&api, id, 120).await;
    }
    approved_days_ago(&api, fresh, 10).await;
    api.store
        .ingest_blocked_batch(&uses("1", 100, &[("https://idle.example.com", 3)]))
        .await
        .expect("ingest");
    api.store
        .ingest_blocked_batch(&uses("2", 1, &[("https://used.example.com", 1)]))
        .await
        .expect("ingest");

    let stale = api
        .as_role(
            Role::Viewer,
            Method::GET,
            "/api/v1/origins/stale?unused_days=90",
            None,
        )
        .await;
    assert_eq!(stale.status, StatusCode::OK, "{}", stale.body);
    let patterns: Vec<&str> = stale
        .body
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|o| o["pattern"].as_str())
        .collect();
    // Never used first, then least recently used; the used one and the one
    // approved 10 days ago are not stale.
    assert_eq!(
        patterns,
        ["https://never.example.com", "https://idle.example.com"]
    );
    assert_eq!(stale.body[0]["service"], "shop");
    assert_eq!(stale.body[0]["last_allowed_at"], Value::Null);
    assert_eq!(stale.body[0]["id"], never);

    // Fewer days: the one approved 10 days ago is stale too.
    let shorter = api
        .as_role(
            Role::Viewer,
            Method::GET,
            "/api/v1/origins/stale?unused_days=5",
            None,
        )
        .await;
    assert_eq!(
        shorter.body.as_array().map(Vec::len),
        Some(3),
        "{}",
        shorter.body
    );

    let (status, content_type, csv) = raw(
        &api,
        "/api/v1/origins/stale?unused_days=90&format=csv",
        Role::Viewer,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "id,service,pattern,approved_at,approved_by,last_allowed_at,revocation_requested_by"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines[1].starts_with(&format!("{never},shop,https://never.example.com,")),
        "{csv}"
    );

    for bad in ["0", "3651", "-1"] {
        let r = api
            .as_role(
                Role::Viewer,
                Method::GET,
                &format!("/api/v1/origins/stale?unused_days={bad}"),
                None,
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            r.body
        );
        assert!(r.error_message().contains("unused_days"), "{}", r.body);
    }
    for bad in ["", "?unused_days=ninety", "?unused_days=9&extra=1"] {
        let r = api
            .as_role(
                Role::Viewer,
                Method::GET,
                &format!("/api/v1/origins/stale{bad}"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
    }
    let anonymous = api
        .call(
            Method::GET,
            "/api/v1/origins/stale?unused_days=9",
            None,
            None,
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn revocation_requests_need_a_second_person_and_are_audited() {
    let api = Api::new().await;
    api.create_service("shop", json!({})).await;
    let id = approve(&api, "https://idle.example.com").await;
    let path = |suffix: &str| format!("/api/v1/origins/{id}/revocation-request{suffix}");

    // A viewer cannot ask; a blank reason is refused.
    let r = api
        .as_role(
            Role::Viewer,
            Method::POST,
            &path(""),
            Some(json!({"reason": "old"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = api
        .as_role(
            Role::Approver,
            Method::POST,
            &path(""),
            Some(json!({"reason": "  "})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);

    // The approver asks; nothing changes for agents yet.
    let rev_before = api
        .as_role(
            Role::Viewer,
            Method::GET,
            "/api/v1/services/shop/policy",
            None,
        )
        .await
        .body["revision"]
        .clone();
    let asked = api
        .as_role(
            Role::Approver,
            Method::POST,
            &path(""),
            Some(json!({"reason": "Unused for 90 days"})),
        )
        .await;
    assert_eq!(asked.status, StatusCode::OK, "{}", asked.body);
    assert_eq!(asked.body["status"], "approved");
    assert_eq!(
        asked.body["revocation_requested_by"],
        "approver@example.com"
    );
    assert_eq!(asked.body["revocation_reason"], "Unused for 90 days");
    let policy = api
        .as_role(
            Role::Viewer,
            Method::GET,
            "/api/v1/services/shop/policy",
            None,
        )
        .await;
    assert_eq!(policy.body["revision"], rev_before);
    assert_eq!(
        policy.body["spec"]["origins"],
        json!(["https://idle.example.com"])
    );

    // Asking twice conflicts; whoever asked cannot confirm (four eyes).
    let again = api
        .as_role(
            Role::Requester,
            Method::POST,
            &path(""),
            Some(json!({"reason": "x"})),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    let own = api
        .as_role(Role::Approver, Method::POST, &path("/confirm"), None)
        .await;
    assert_eq!(own.status, StatusCode::FORBIDDEN, "{}", own.body);
    assert!(own.error_message().contains("four-eyes"), "{}", own.body);

    // A bad wait is refused before anything changes.
    let bad_wait = api
        .as_role(
            Role::Admin,
            Method::POST,
            &format!("{}?wait=bogus", path("/confirm")),
            None,
        )
        .await;
    assert_eq!(
        bad_wait.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        bad_wait.body
    );

    // A second approver confirms: revoked, out of the policy; with
    // `?wait=applied` (no agent connected) the rollout is complete at once.
    let confirmed = api
        .as_role(
            Role::Admin,
            Method::POST,
            &format!("{}?wait=applied&timeout=2s", path("/confirm")),
            Some(json!({"note": "agreed"})),
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert_eq!(confirmed.body["status"], "revoked");
    assert_eq!(confirmed.body["rollout"]["agents"], 0, "{}", confirmed.body);
    assert_eq!(confirmed.body["decided_by"], "admin@example.com");
    assert_eq!(
        confirmed.body["revocation_requested_by"],
        "approver@example.com"
    );
    let policy = api
        .as_role(
            Role::Viewer,
            Method::GET,
            "/api/v1/services/shop/policy",
            None,
        )
        .await;
    assert_eq!(policy.body["spec"]["origins"], json!([]));
    let again = api
        .as_role(Role::Admin, Method::POST, &path("/confirm"), None)
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);

    // Dismissing keeps the origin.
    let kept = approve(&api, "https://kept.example.com").await;
    let kept_path = format!("/api/v1/origins/{kept}/revocation-request");
    api.as_role(
        Role::Requester,
        Method::POST,
        &kept_path,
        Some(json!({"reason": "old?"})),
    )
    .await;
    let dismissed = api
        .as_role(
            Role::Approver,
            Method::POST,
            &format!("{kept_path}/dismiss"),
            None,
        )
        .await;
    assert_eq!(dismissed.status, StatusCode::OK, "{}", dismissed.body);
    assert_eq!(dismissed.body["status"], "approved");
    assert_eq!(dismissed.body["revocation_requested_by"], Value::Null);
    let none = api
        .as_role(
            Role::Admin,
            Method::POST,
            &format!("{kept_path}/confirm"),
            None,
        )
        .await;
    assert_eq!(none.status, StatusCode::CONFLICT, "{}", none.body);

    // Every step is in the audit log.
    let audit = api
        .as_role(
            Role::Viewer,
            Method::GET,
            "/api/v1/audit?service=shop",
            None,
        )
        .await;
    let actions: Vec<&str> = audit
        .body
        .as_array()
        .or_else(|| audit.body["rows"].as_array())
        .expect("audit rows")
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    for action in [
        "origin.revocation_request",
        "origin.revoke",
        "origin.revocation_dismiss",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
}
