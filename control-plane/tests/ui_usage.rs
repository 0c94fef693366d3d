//! Origin usage in the admin UI over real HTTP: "Last used" and the 30-day
//! count beside each origin on the service page, the Stale origins page
//! with its pre-filled "Request revocation" form, and the revocation
//! request confirmed by a second approver on the Approvals page.

mod ui_support;

use anyhow::{Context, Result};
use chrono::Utc;
use corsair_control_plane::auth::Role;
use corsair_control_plane::domain::OriginStatus;
use corsair_control_plane::store::blocked::IngestBatch;
use corsair_control_plane::store::origins::Decision;
use corsair_control_plane::store::usage::OriginUse;
use ui_support::{Server, email};

/// Approves `pattern` on `payments-api` `days` days ago; returns its id.
async fn approved(server: &Server, pattern: &str, days: i32) -> Result<i64> {
    let store = &server.db.store;
    let o = store
        .request_origin(
            "payments-api",
            pattern,
            "test",
            None,
            "requester@example.com",
        )
        .await?;
    store
        .decide_origin(o.id, Decision::Approve, None, "approver@example.com")
        .await?;
    sqlx::query("UPDATE origins SET decided_at = now() - make_interval(days => $2) WHERE id = $1")
        .bind(o.id)
        .bind(days)
        .execute(server.db.store.pool())
        .await?;
    Ok(o.id)
}

/// The `<tr>` of `pattern` in `body`.
fn row<'a>(body: &'a str, pattern: &str) -> Option<&'a str> {
    let at = body.find(&format!("<tr data-origin=\"{pattern}\""))?;
    let rest = &body[at..];
    Some(&rest[..rest.find("</tr>")?])
}

#[tokio::test]
async fn stale_origins_lead_to_a_confirmed_revocation() -> Result<()> {
    let server = Server::start(false).await?;
    let used = approved(&server, "https://used.example.com", 200).await?;
    let stale = approved(&server, "https://stale.example.com", 200).await?;
    let _ = used;
    let now = Utc::now();
    server
        .db
        .store
        .ingest_blocked_batch(&IngestBatch {
            batch_id: "agent-1:1".into(),
            agent_id: "agent-1".into(),
            ts: now,
            counts: Vec::new(),
            dropped_events: 0,
            dropped_service: String::new(),
            uses: vec![OriginUse {
                service: "payments-api".into(),
                pattern: "https://used.example.com".into(),
                count: 42,
            }],
            ts_end: now,
        })
        .await?;

    // The service page: last used and the 30-day count per origin.
    let mut viewer = server.signed_in(Role::Viewer).await?;
    let page = viewer.get("/services/payments-api").await?;
    assert_eq!(page.status, 200, "{}", page.body);
    let used_row = row(&page.body, "https://used.example.com").context("used row")?;
    assert!(
        used_row.contains("<td class=\"allowed-30d\">42</td>"),
        "{used_row}"
    );
    assert!(
        used_row.contains(&now.format("%Y-%m-%d").to_string()),
        "{used_row}"
    );
    let stale_row = row(&page.body, "https://stale.example.com").context("stale row")?;
    assert!(
        stale_row.contains("<td class=\"allowed-30d\">0</td>"),
        "{stale_row}"
    );
    assert!(
        stale_row.contains("<td class=\"last-used\">—</td>"),
        "{stale_row}"
    );

    // The stale page lists only the unused one; a viewer gets no form.
    let page = viewer.get("/origins/stale?unused_days=90").await?;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        row(&page.body, "https://used.example.com").is_none(),
        "{}",
        page.body
    );
    let listed = row(&page.body, "https://stale.example.com").context("stale listed")?;
    assert!(listed.contains("never"), "{listed}");
    assert!(!listed.contains("Request revocation"), "{listed}");
    // The CSV link (askama escapes its `&`).
    assert!(
        page.body
            .contains("href=\"/api/v1/origins/stale?unused_days=90&#38;format=csv\""),
        "{}",
        page.body
    );
    let bad = viewer.get("/origins/stale?unused_days=0").await?;
    assert_eq!(bad.status, 422, "{}", bad.body);

    // The requester files the revocation with the pre-filled reason.
    let mut requester = server.signed_in(Role::Requester).await?;
    let page = requester.get("/origins/stale?unused_days=90").await?;
    let listed = row(&page.body, "https://stale.example.com").context("stale listed")?;
    assert!(listed.contains("Request revocation"), "{listed}");
    let reason = listed
        .split("<textarea")
        .nth(1)
        .and_then(|t| t.split('>').nth(1))
        .and_then(|t| t.split("</textarea").next())
        .context("pre-filled reason")?
        .to_string();
    assert!(reason.starts_with("Unused for 90 days"), "{reason}");
    let r = requester
        .post(
            &format!("/origins/{stale}/revocation-request"),
            &[
                ("reason", reason.as_str()),
                ("next", "/origins/stale?unused_days=90"),
            ],
        )
        .await?;
    assert_eq!(r.status, 303, "{}", r.body);
    let shown = requester.follow(&r).await?;
    assert!(
        shown.body.contains("Revocation requested"),
        "{}",
        shown.body
    );
    let origin = server.db.store.get_origin(stale).await?;
    assert_eq!(origin.status, OriginStatus::Approved);
    assert_eq!(
        origin.revocation_requested_by.as_deref(),
        Some(email(Role::Requester).as_str())
    );

    // An approver confirms it on the Approvals page.
    let mut approver = server.signed_in(Role::Approver).await?;
    let page = approver.get("/approvals").await?;
    let pending = row(&page.body, "https://stale.example.com").context("on approvals")?;
    assert!(pending.contains("Confirm revocation"), "{pending}");
    assert!(pending.contains("Unused for 90 days"), "{pending}");
    let r = approver
        .post(
            &format!("/origins/{stale}/revocation-request/confirm"),
            &[("note", "agreed"), ("next", "/approvals")],
        )
        .await?;
    assert_eq!(r.status, 303, "{}", r.body);
    let shown = approver.follow(&r).await?;
    assert!(
        shown.body.contains("Revoked https://stale.example.com"),
        "{}",
        shown.body
    );
    assert_eq!(
        server.db.store.get_origin(stale).await?.status,
        OriginStatus::Revoked
    );
    Ok(())
}

#[tokio::test]
async fn whoever_asks_cannot_confirm() -> Result<()> {
    let server = Server::start(false).await?;
    let id = approved(&server, "https://stale.example.com", 200).await?;
    let mut approver = server.signed_in(Role::Approver).await?;
    let r = approver
        .post(
            &format!("/origins/{id}/revocation-request"),
            &[("reason", "unused")],
        )
        .await?;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = approver
        .post(
            &format!("/origins/{id}/revocation-request/confirm"),
            &[("note", "")],
        )
        .await?;
    assert_eq!(r.status, 303, "{}", r.body);
    let shown = approver.follow(&r).await?;
    assert!(shown.body.contains("four-eyes"), "{}", shown.body);
    assert_eq!(
        server.db.store.get_origin(id).await?.status,
        OriginStatus::Approved
    );
    Ok(())
}
