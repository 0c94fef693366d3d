//! Four eyes compares people, not actor names: an API token stands for the
//! person who created it (`api_tokens.created_by`). Over real HTTP: tokens
//! made on the users page, requests and approvals through the REST API with
//! them, and approvals in the UI.

mod ui_support;

use anyhow::{Context, Result};
use corsair_control_plane::auth::Role;
use corsair_control_plane::testing;
use serde_json::{Value, json};
use ui_support::{Browser, Server, email};

/// An API token with `role`, created on the users page by `creator`.
async fn token_made_by(creator: &mut Browser, name: &str, role: &str) -> Result<String> {
    let page = creator
        .post("/tokens", &[("name", name), ("role", role), ("days", "")])
        .await?;
    assert_eq!(page.status, 201, "{}", page.body);
    let marker = "<code id=\"secret\">";
    let at = page.body.find(marker).context("secret shown")? + marker.len();
    Ok(page.body[at..]
        .split('<')
        .next()
        .context("secret")?
        .to_string())
}

/// Requests `pattern` on `payments-api` with bearer `token`; the origin's id.
async fn request(server: &Server, token: &str, pattern: &str) -> Result<i64> {
    let r = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/services/payments-api/origins",
            server.base
        ))
        .bearer_auth(token)
        .json(&json!({"pattern": pattern, "reason": "four eyes"}))
        .send()
        .await?;
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await?;
    body["id"].as_i64().context("no id")
}

/// Approves origin `id` with bearer `token`: (status, body).
async fn approve(server: &Server, token: &str, id: i64) -> Result<(u16, Value)> {
    post(server, token, &format!("/origins/{id}/approve"), json!({})).await
}

/// A session token for `role`, from `POST /api/v1/login`.
async fn login(server: &Server, role: Role) -> Result<String> {
    let reply: Value = reqwest::Client::new()
        .post(format!("{}/api/v1/login", server.base))
        .json(&json!({"email": email(role), "password": ui_support::PASSWORD}))
        .send()
        .await?
        .json()
        .await?;
    Ok(reply["token"].as_str().context("no token")?.to_string())
}

#[tokio::test]
async fn a_token_cannot_approve_its_creators_own_request() -> Result<()> {
    let server = Server::start(false).await?;
    let mut admin = server.signed_in(Role::Admin).await?;
    let admin_session = login(&server, Role::Admin).await?;
    let id = request(&server, &admin_session, "https://own.example.com").await?;

    let own_token = token_made_by(&mut admin, "admin-ci", "approver").await?;
    let (status, body) = approve(&server, &own_token, id).await?;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("four-eyes"), "{message}");
    assert!(message.contains(&email(Role::Admin)), "{message}");
    assert_eq!(server.db.store.get_origin(id).await?.status, "pending");

    // A token another person (a second admin) created is a second pair of eyes.
    let other = "second-admin@example.com";
    server
        .db
        .store
        .create_user(other, &testing::password_hash()?, Role::Admin, "test")
        .await?;
    let mut second = server.client()?;
    assert_eq!(second.login(other, ui_support::PASSWORD).await?.status, 303);
    let other_token = token_made_by(&mut second, "approver-ci", "approver").await?;
    let (status, body) = approve(&server, &other_token, id).await?;
    assert_eq!(status, 200, "{body}");
    let origin = server.db.store.get_origin(id).await?;
    assert_eq!(origin.status, "approved");
    assert_eq!(origin.decided_by.as_deref(), Some("token:approver-ci"));
    Ok(())
}

#[tokio::test]
async fn a_tokens_creator_cannot_approve_what_the_token_requested() -> Result<()> {
    let server = Server::start(false).await?;
    let mut admin = server.signed_in(Role::Admin).await?;
    let token = token_made_by(&mut admin, "deploy", "requester").await?;
    let id = request(&server, &token, "https://via-token.example.com").await?;
    let origin = server.db.store.get_origin(id).await?;
    assert_eq!(origin.requested_by, "token:deploy");
    assert_eq!(origin.requested_by_person, email(Role::Admin));

    // In the UI: marked as their own in the queue, and refused.
    let queue = admin.get("/approvals").await?;
    assert_eq!(queue.status, 200);
    assert!(
        queue
            .body
            .contains("token:deploy <span class=\"badge own\">you</span>"),
        "{}",
        queue.body
    );
    let r = admin
        .post(&format!("/origins/{id}/approve"), &[("note", "")])
        .await?;
    let shown = admin.follow(&r).await?;
    assert!(shown.body.contains("four-eyes"), "{}", shown.body);
    assert_eq!(server.db.store.get_origin(id).await?.status, "pending");

    // Through the API with the creator's session: refused too.
    let admin_session = login(&server, Role::Admin).await?;
    let (status, body) = approve(&server, &admin_session, id).await?;
    assert_eq!(status, 403, "{body}");

    // Another person approves it.
    let approver_session = login(&server, Role::Approver).await?;
    let (status, body) = approve(&server, &approver_session, id).await?;
    assert_eq!(status, 200, "{body}");
    Ok(())
}

/// POSTs `body` to `/api/v1{path}` with bearer `token`: (status, body).
async fn post(server: &Server, token: &str, path: &str, body: Value) -> Result<(u16, Value)> {
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1{path}", server.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    Ok((r.status().as_u16(), r.json().await?))
}

#[tokio::test]
async fn a_tokens_creator_cannot_confirm_the_revocation_the_token_requested() -> Result<()> {
    let server = Server::start(false).await?;
    let mut admin = server.signed_in(Role::Admin).await?;
    let approver_session = login(&server, Role::Approver).await?;
    let admin_session = login(&server, Role::Admin).await?;
    let id = request(&server, &admin_session, "https://to-revoke.example.com").await?;
    let (status, body) = approve(&server, &approver_session, id).await?;
    assert_eq!(status, 200, "{body}");

    // The admin's token asks for the revocation...
    let token = token_made_by(&mut admin, "cleanup", "requester").await?;
    let path = format!("/origins/{id}/revocation-request");
    let (status, body) = post(&server, &token, &path, json!({"reason": "unused"})).await?;
    assert_eq!(status, 200, "{body}");
    let origin = server.db.store.get_origin(id).await?;
    assert_eq!(
        origin.revocation_requested_by.as_deref(),
        Some("token:cleanup")
    );
    assert_eq!(
        origin.revocation_requested_by_person.as_deref(),
        Some(email(Role::Admin).as_str())
    );

    // ...so the admin is marked as the asker in the UI queue and cannot
    // confirm it, in the UI or through the API with their own session.
    let queue = admin.get("/approvals").await?;
    assert!(
        queue
            .body
            .contains("token:cleanup <span class=\"badge own\">you</span>"),
        "{}",
        queue.body
    );
    let (status, body) = post(
        &server,
        &admin_session,
        &format!("{path}/confirm"),
        json!({}),
    )
    .await?;
    assert_eq!(status, 403, "{body}");
    assert!(body.to_string().contains("four-eyes"), "{body}");
    let r = admin
        .post(
            &format!("/origins/{id}/revocation-request/confirm"),
            &[("note", "")],
        )
        .await?;
    let shown = admin.follow(&r).await?;
    assert!(shown.body.contains("four-eyes"), "{}", shown.body);
    assert_eq!(server.db.store.get_origin(id).await?.status, "approved");

    // Another person confirms it.
    let (status, body) = post(
        &server,
        &approver_session,
        &format!("{path}/confirm"),
        json!({}),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.db.store.get_origin(id).await?.status, "revoked");
    Ok(())
}

/// GETs `/api/v1{path}` with bearer `token`: the status.
async fn get_status(server: &Server, token: &str, path: &str) -> Result<u16> {
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1{path}", server.base))
        .bearer_auth(token)
        .send()
        .await?;
    Ok(r.status().as_u16())
}

#[tokio::test]
async fn a_token_never_acts_above_its_creator_now() -> Result<()> {
    let server = Server::start(false).await?;
    let mut admin = server.signed_in(Role::Admin).await?;
    let token = token_made_by(&mut admin, "ops", "admin").await?;
    assert_eq!(get_status(&server, &token, "/services").await?, 200);
    let requester_session = login(&server, Role::Requester).await?;
    let id = request(&server, &requester_session, "https://demoted.example.com").await?;

    // Demoted to requester: the admin token acts as a requester.
    sqlx::query("UPDATE users SET role = 'requester' WHERE lower(email) = lower($1)")
        .bind(email(Role::Admin))
        .execute(server.db.store.pool())
        .await?;
    let (status, body) = approve(&server, &token, id).await?;
    assert_eq!(status, 403, "{body}");
    assert_eq!(server.db.store.get_origin(id).await?.status, "pending");

    // Disabled: the token no longer authenticates at all.
    sqlx::query("UPDATE users SET disabled = true WHERE lower(email) = lower($1)")
        .bind(email(Role::Admin))
        .execute(server.db.store.pool())
        .await?;
    assert_eq!(get_status(&server, &token, "/services").await?, 401);

    // Enabled again as an admin: the token is whole again (revoking it is
    // how to end it for good).
    sqlx::query("UPDATE users SET disabled = false, role = 'admin' WHERE lower(email) = lower($1)")
        .bind(email(Role::Admin))
        .execute(server.db.store.pool())
        .await?;
    let (status, body) = approve(&server, &token, id).await?;
    assert_eq!(status, 200, "{body}");
    Ok(())
}
