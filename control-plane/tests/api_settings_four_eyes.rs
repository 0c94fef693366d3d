//! Four eyes on settings changes that widen what browsers are granted,
//! over real HTTP against a real control plane and Postgres: a widening
//! `PATCH` is held (202) until another person confirms it (then applied
//! like a direct `PATCH`: revision bump, agents receive it, audited); the
//! requester cannot confirm their own, nor through a token they created;
//! narrowing changes still apply at once; dismiss; a stale change is
//! refused; `--single-operator` lets one person confirm their own.

mod grpc_support;
mod ui_support;

use anyhow::{Context, Result, anyhow};
use corsair_agent::engine::Mode;
use corsair_control_plane::auth::Role;
use corsair_control_plane::store::services::ServiceSettings;
use grpc_support::Agent;
use serde_json::{Value, json};
use std::process::Command;
use ui_support::{Browser, Server, email};

const SERVICE: &str = "payments-api";

/// `method /api/v1{path}` with bearer `token` and an optional JSON body:
/// (status, JSON body).
async fn call(
    server: &Server,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let mut request = reqwest::Client::new()
        .request(method, server.api(path))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    let json =
        serde_json::from_str(&text).with_context(|| format!("{status}: not JSON: {text}"))?;
    Ok((status, json))
}

/// `call` as the fixture user with `role`.
async fn as_role(
    server: &Server,
    role: Role,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    call(server, &server.user_token(role)?, method, path, body).await
}

async fn patch(server: &Server, role: Role, body: Value) -> Result<(u16, Value)> {
    as_role(
        server,
        role,
        reqwest::Method::PATCH,
        &format!("/services/{SERVICE}"),
        Some(body),
    )
    .await
}

async fn confirm(server: &Server, role: Role, id: i64, query: &str) -> Result<(u16, Value)> {
    as_role(
        server,
        role,
        reqwest::Method::POST,
        &format!("/services/{SERVICE}/settings-changes/{id}/confirm{query}"),
        None,
    )
    .await
}

async fn pending(server: &Server) -> Result<Vec<Value>> {
    let (status, body) = as_role(
        server,
        Role::Viewer,
        reqwest::Method::GET,
        &format!("/services/{SERVICE}/settings-changes"),
        None,
    )
    .await?;
    anyhow::ensure!(status == 200, "list answered {status}: {body}");
    body.as_array().cloned().context("not a list")
}

async fn settings(server: &Server) -> Result<(ServiceSettings, i64)> {
    let s = server.db.store.get_service(SERVICE).await?;
    Ok((s.settings, s.revision))
}

/// The audit actions about [`SERVICE`], oldest first.
async fn audit_actions(server: &Server) -> Result<Vec<(String, String)>> {
    let mut rows: Vec<(String, String)> = server
        .db
        .store
        .list_audit(Some(SERVICE), 1000)
        .await?
        .into_iter()
        .map(|e| (e.action, e.actor))
        .collect();
    rows.reverse();
    Ok(rows)
}

/// `corsair-control-plane audit verify` on the server's database.
fn audit_verify(server: &Server) -> Result<()> {
    let out = Command::new(env!("CARGO_BIN_EXE_corsair-control-plane"))
        .args(["audit", "verify", "--database-url", &server.db.url])
        .env("RUST_LOG", "error")
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "audit verify failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn id_of(body: &Value) -> Result<i64> {
    body["id"]
        .as_i64()
        .with_context(|| format!("no id in {body}"))
}

#[tokio::test]
async fn a_widening_change_waits_for_another_person_then_reaches_agents() -> Result<()> {
    let server = Server::start(false).await?;
    let token = server.agent_token("gw", &[SERVICE]).await?;
    let dir = tempfile::tempdir()?;
    let agent = Agent::start_at(server.grpc_addr, &token, &[SERVICE], dir.path())
        .map_err(|e| anyhow!("{e}"))?;
    let (before, revision) = settings(&server).await?;
    agent.wait_revision(SERVICE, revision).await?;

    // Held: 202 with the pending change; nothing changes for agents.
    let (status, held) = patch(&server, Role::Approver, json!({"mode": "report_only"})).await?;
    assert_eq!(status, 202, "{held}");
    let id = id_of(&held)?;
    assert_eq!(held["status"], "pending", "{held}");
    assert_eq!(held["service"], SERVICE, "{held}");
    assert_eq!(held["settings"]["mode"], "report_only", "{held}");
    assert_eq!(held["base_settings"]["mode"], "enforce", "{held}");
    assert_eq!(held["requested_by"], email(Role::Approver), "{held}");
    assert_eq!(held["requested_by_person"], email(Role::Approver), "{held}");
    assert_eq!(held["widens"], json!(["mode"]), "{held}");
    assert_eq!(held["stale"], false, "{held}");
    assert!(held["created_at"].is_string(), "{held}");
    assert_eq!(settings(&server).await?, (before.clone(), revision));
    let listed = pending(&server).await?;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], id);

    // The requester cannot confirm it.
    let (status, body) = confirm(&server, Role::Approver, id, "").await?;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("four-eyes"), "{message}");
    assert!(message.contains(&email(Role::Approver)), "{message}");
    assert_eq!(settings(&server).await?, (before, revision));

    // Another person confirms, waiting for the agent: applied like a PATCH.
    let (status, body) = confirm(&server, Role::Admin, id, "?wait=applied&timeout=30s").await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "confirmed", "{body}");
    assert_eq!(body["decided_by"], email(Role::Admin), "{body}");
    let (now, new_revision) = settings(&server).await?;
    assert_eq!(now.mode, Mode::ReportOnly);
    assert!(new_revision > revision, "revision bumped");
    assert_eq!(body["revision"], new_revision, "{body}");
    assert_eq!(body["rollout"]["revision"], new_revision, "{body}");
    assert_eq!(body["rollout"]["complete"], true, "{body}");
    assert_eq!(body["rollout"]["applied"], 1, "{body}");
    agent.wait_revision(SERVICE, new_revision).await?;
    let held_by_agent = agent.handle.load().context("agent policy")?;
    assert_eq!(held_by_agent.policy.spec().mode, Mode::ReportOnly);
    assert!(pending(&server).await?.is_empty());

    // Decided once: a second confirm or a dismiss is a 409.
    let (status, body) = confirm(&server, Role::Admin, id, "").await?;
    assert_eq!(status, 409, "{body}");
    let (status, body) = as_role(
        &server,
        Role::Admin,
        reqwest::Method::POST,
        &format!("/services/{SERVICE}/settings-changes/{id}/dismiss"),
        None,
    )
    .await?;
    assert_eq!(status, 409, "{body}");
    let (status, body) = as_role(
        &server,
        Role::Viewer,
        reqwest::Method::GET,
        &format!("/services/{SERVICE}/settings-changes/{id}"),
        None,
    )
    .await?;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("confirmed")),
        "{body}"
    );

    // Every step is audited, and the chain holds.
    let actions = audit_actions(&server).await?;
    let tail: Vec<(&str, &str)> = actions
        .iter()
        .rev()
        .take(3)
        .rev()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let (approver, admin) = (email(Role::Approver), email(Role::Admin));
    assert_eq!(
        tail,
        vec![
            ("service.settings_change.request", approver.as_str()),
            ("service.update", admin.as_str()),
            ("service.settings_change.confirm", admin.as_str()),
        ],
        "{actions:?}"
    );
    audit_verify(&server)?;
    agent.stop().await;
    Ok(())
}

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

#[tokio::test]
async fn a_token_and_its_creator_are_one_person() -> Result<()> {
    let server = Server::start(false).await?;
    let mut admin = server.signed_in(Role::Admin).await?;
    let admin_session = server.user_token(Role::Admin)?;
    let admin_token = token_made_by(&mut admin, "admin-ci", "approver").await?;

    // The admin asks in person; their token cannot confirm it.
    let (status, held) = call(
        &server,
        &admin_session,
        reqwest::Method::PATCH,
        &format!("/services/{SERVICE}"),
        Some(json!({"allow_credentials": true})),
    )
    .await?;
    assert_eq!(status, 202, "{held}");
    assert_eq!(held["widens"], json!(["allow_credentials"]), "{held}");
    let first = id_of(&held)?;
    let path = format!("/services/{SERVICE}/settings-changes/{first}/confirm");
    let (status, body) = call(&server, &admin_token, reqwest::Method::POST, &path, None).await?;
    assert_eq!(status, 403, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("four-eyes"), "{message}");
    assert!(message.contains("token:admin-ci"), "{message}");
    assert!(!settings(&server).await?.0.allow_credentials);

    // The token asks; its creator cannot confirm it either.
    let (status, body) = call(
        &server,
        &admin_session,
        reqwest::Method::POST,
        &format!("/services/{SERVICE}/settings-changes/{first}/dismiss"),
        None,
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "dismissed", "{body}");
    let (status, held) = call(
        &server,
        &admin_token,
        reqwest::Method::PATCH,
        &format!("/services/{SERVICE}"),
        Some(json!({"allow_private_network": true})),
    )
    .await?;
    assert_eq!(status, 202, "{held}");
    assert_eq!(held["requested_by"], "token:admin-ci", "{held}");
    assert_eq!(held["requested_by_person"], email(Role::Admin), "{held}");
    let second = id_of(&held)?;
    let path = format!("/services/{SERVICE}/settings-changes/{second}/confirm");
    let (status, body) = call(&server, &admin_session, reqwest::Method::POST, &path, None).await?;
    assert_eq!(status, 403, "{body}");
    assert!(!settings(&server).await?.0.allow_private_network);

    // Another person confirms it.
    let (status, body) = confirm(&server, Role::Approver, second, "").await?;
    assert_eq!(status, 200, "{body}");
    assert!(settings(&server).await?.0.allow_private_network);
    audit_verify(&server)?;
    Ok(())
}

#[tokio::test]
async fn narrowing_and_neutral_changes_apply_at_once() -> Result<()> {
    let server = Server::start(false).await?;
    let open = ServiceSettings {
        mode: Mode::ReportOnly,
        allow_credentials: true,
        allow_private_network: true,
        allow_insecure_http: true,
        ..ServiceSettings::default()
    };
    server
        .db
        .store
        .update_service(SERVICE, "Payments", &open, "test")
        .await?;
    let mut revision = settings(&server).await?.1;
    for body in [
        json!({"mode": "enforce"}),
        json!({"allow_credentials": false}),
        json!({"allow_private_network": false, "allow_insecure_http": false}),
        json!({"strict": true}),
        json!({"max_age_secs": 600, "expose_headers": ["X-Total"]}),
        json!({"allow_methods": ["PUT", "DELETE"], "allow_headers": ["X-Request-Id"]}),
        json!({"description": "Payments API"}),
    ] {
        let (status, reply) = patch(&server, Role::Approver, body.clone()).await?;
        assert_eq!(status, 200, "{body}: {reply}");
        assert!(reply.get("widens").is_none(), "{reply}");
        let now = settings(&server).await?.1;
        assert!(now >= revision, "{body}");
        revision = now;
    }
    let (now, _) = settings(&server).await?;
    assert_eq!(
        now,
        ServiceSettings {
            strict: true,
            max_age_secs: 600,
            expose_headers: vec!["X-Total".into()],
            allow_methods: vec!["PUT".into(), "DELETE".into()],
            allow_headers: vec!["X-Request-Id".into()],
            ..ServiceSettings::default()
        }
    );
    assert!(pending(&server).await?.is_empty());

    // Turning strict off again widens: held. So is a mixed change, whole.
    let (status, held) = patch(&server, Role::Approver, json!({"strict": false})).await?;
    assert_eq!(status, 202, "{held}");
    assert_eq!(held["widens"], json!(["strict"]), "{held}");
    let (status, held) = patch(
        &server,
        Role::Approver,
        json!({"max_age_secs": 60, "mode": "report_only", "description": "opening"}),
    )
    .await?;
    assert_eq!(status, 202, "{held}");
    assert_eq!(held["description"], "opening", "{held}");
    assert_eq!(held["settings"]["max_age_secs"], 60, "{held}");
    let service = server.db.store.get_service(SERVICE).await?;
    assert_eq!(
        (service.settings.max_age_secs, service.description.as_str()),
        (600, "Payments API"),
        "nothing of a held change is applied"
    );
    Ok(())
}

#[tokio::test]
async fn dismissed_and_stale_changes_are_never_applied() -> Result<()> {
    let server = Server::start(false).await?;
    let (status, a) = patch(&server, Role::Approver, json!({"mode": "report_only"})).await?;
    assert_eq!(status, 202, "{a}");
    let (status, b) = patch(&server, Role::Approver, json!({"allow_credentials": true})).await?;
    assert_eq!(status, 202, "{b}");
    let (a, b) = (id_of(&a)?, id_of(&b)?);

    // Confirming B changes the settings A was requested against: A is stale.
    let (status, body) = confirm(&server, Role::Admin, b, "").await?;
    assert_eq!(status, 200, "{body}");
    let listed = pending(&server).await?;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (listed[0]["id"].as_i64(), &listed[0]["stale"]),
        (Some(a), &json!(true))
    );
    let (status, body) = confirm(&server, Role::Admin, a, "").await?;
    assert_eq!(status, 409, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("stale"), "{message}");
    let (now, _) = settings(&server).await?;
    assert!(now.allow_credentials, "B stays applied");
    assert_eq!(now.mode, Mode::Enforce, "A is not applied");

    // A direct (narrowing) change makes a pending change stale too.
    let (status, c) = patch(&server, Role::Approver, json!({"mode": "report_only"})).await?;
    assert_eq!(status, 202, "{c}");
    let c = id_of(&c)?;
    let (status, body) = patch(&server, Role::Admin, json!({"max_age_secs": 30})).await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = confirm(&server, Role::Admin, c, "").await?;
    assert_eq!(status, 409, "{body}");
    assert_eq!(settings(&server).await?.0.max_age_secs, 30, "not reverted");

    // The requester withdraws A; anyone approver may dismiss C.
    let dismiss = |id: i64| format!("/services/{SERVICE}/settings-changes/{id}/dismiss");
    let (status, body) = as_role(
        &server,
        Role::Approver,
        reqwest::Method::POST,
        &dismiss(a),
        None,
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "dismissed", "{body}");
    assert_eq!(body["decided_by"], email(Role::Approver), "{body}");
    let (status, body) = as_role(
        &server,
        Role::Admin,
        reqwest::Method::POST,
        &dismiss(c),
        None,
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = as_role(
        &server,
        Role::Admin,
        reqwest::Method::POST,
        &dismiss(c),
        None,
    )
    .await?;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "invalid_state", "{body}");
    assert!(pending(&server).await?.is_empty());
    assert_eq!(settings(&server).await?.0.mode, Mode::Enforce);

    // Unknown ids, another service's ids and a viewer's attempts.
    server
        .db
        .store
        .create_service("other-api", "", &ServiceSettings::default(), "test")
        .await?;
    for (role, path, status) in [
        (
            Role::Admin,
            format!("/services/{SERVICE}/settings-changes/999999/confirm"),
            404,
        ),
        (
            Role::Admin,
            format!("/services/{SERVICE}/settings-changes/999999/dismiss"),
            404,
        ),
        (
            Role::Admin,
            format!("/services/other-api/settings-changes/{a}/dismiss"),
            404,
        ),
        (
            Role::Admin,
            format!("/services/nope/settings-changes/{a}/confirm"),
            404,
        ),
        (
            Role::Admin,
            format!("/services/{SERVICE}/settings-changes/x/confirm"),
            400,
        ),
        (
            Role::Requester,
            format!("/services/{SERVICE}/settings-changes/{a}/confirm"),
            403,
        ),
    ] {
        let (got, body) = as_role(&server, role, reqwest::Method::POST, &path, None).await?;
        assert_eq!(got, status, "{path}: {body}");
        assert!(body["error"]["message"].is_string(), "{path}: {body}");
    }
    let (status, body) = as_role(
        &server,
        Role::Viewer,
        reqwest::Method::GET,
        "/services/nope/settings-changes",
        None,
    )
    .await?;
    assert_eq!(status, 404, "{body}");

    let actions = audit_actions(&server).await?;
    for action in [
        "service.settings_change.request",
        "service.settings_change.confirm",
        "service.settings_change.dismiss",
    ] {
        assert!(
            actions.iter().any(|(a, _)| a == action),
            "{action}: {actions:?}"
        );
    }
    audit_verify(&server)?;
    Ok(())
}

#[tokio::test]
async fn bad_input_holds_nothing_and_confirm_judges_the_settings_again() -> Result<()> {
    let server = Server::start(false).await?;
    // Refused by the engine at once: nothing held.
    let (status, body) = patch(
        &server,
        Role::Approver,
        json!({"allow_credentials": true, "allow_methods": ["bad method"]}),
    )
    .await?;
    assert_eq!(status, 422, "{body}");
    assert!(pending(&server).await?.is_empty());

    // Credentials requested; a plain-http origin approved meanwhile (the
    // settings did not change, so the change is not stale): confirming
    // judges the settings with the origins as they are now.
    let (status, held) = patch(&server, Role::Approver, json!({"allow_credentials": true})).await?;
    assert_eq!(status, 202, "{held}");
    let id = id_of(&held)?;
    let origin = server
        .db
        .store
        .request_origin(SERVICE, "http://app.example.com", "test", None, "someone")
        .await?;
    let (status, body) = as_role(
        &server,
        Role::Admin,
        reqwest::Method::POST,
        &format!("/origins/{}/approve", origin.id),
        None,
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    let before = settings(&server).await?;

    // A bad wait is refused before anything changes.
    let (status, body) = confirm(&server, Role::Admin, id, "?wait=soon").await?;
    assert_eq!(status, 422, "{body}");
    let (status, body) = confirm(&server, Role::Admin, id, "").await?;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("plain-http"), "{body}");
    assert_eq!(settings(&server).await?, before);
    assert_eq!(pending(&server).await?.len(), 1, "still pending");
    Ok(())
}

/// A service cannot be born in report-only mode (every origin granted by
/// one admin): creation refuses it with a 422 naming `mode`, writes
/// nothing, and the same service created in enforce mode reaches
/// report-only only through a held change.
#[tokio::test]
async fn a_new_service_cannot_start_in_report_only_mode() -> Result<()> {
    let server = Server::start(false).await?;
    let create = |body: Value| {
        as_role(
            &server,
            Role::Admin,
            reqwest::Method::POST,
            "/services",
            Some(body),
        )
    };
    let (status, body) = create(json!({"name": "open-api", "mode": "report_only"})).await?;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"][0]["field"], "mode", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("second approver"), "{message}");
    assert!(
        server.db.store.get_service("open-api").await.is_err(),
        "the refused service was written"
    );
    // With the engine's own problems, every one is listed.
    let (status, body) =
        create(json!({"name": "open-api", "mode": "report_only", "allow_methods": ["BAD METHOD"]}))
            .await?;
    assert_eq!(status, 422, "{body}");
    let fields: Vec<&str> = body["error"]["details"]
        .as_array()
        .map(|d| d.iter().filter_map(|x| x["field"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        fields.contains(&"mode") && fields.iter().any(|f| f.starts_with("allow_methods")),
        "{body}"
    );
    assert!(
        !audit_actions_for(&server, "open-api")
            .await?
            .iter()
            .any(|a| a == "service.create"),
        "the refused creation was audited as done"
    );

    // Credentials at creation are fine: they grant nothing before an
    // origin is approved (four eyes).
    let (status, body) = create(json!({"name": "open-api", "allow_credentials": true})).await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["mode"], "enforce", "{body}");
    let (status, held) = as_role(
        &server,
        Role::Admin,
        reqwest::Method::PATCH,
        "/services/open-api",
        Some(json!({"mode": "report_only"})),
    )
    .await?;
    assert_eq!(status, 202, "{held}");
    assert_eq!(held["widens"], json!(["mode"]), "{held}");
    let service = server.db.store.get_service("open-api").await?;
    assert_eq!(service.settings.mode, Mode::Enforce);
    Ok(())
}

/// The audit actions about `service`.
async fn audit_actions_for(server: &Server, service: &str) -> Result<Vec<String>> {
    Ok(server
        .db
        .store
        .list_audit(Some(service), 1000)
        .await?
        .into_iter()
        .map(|e| e.action)
        .collect())
}

#[tokio::test]
async fn single_operator_confirms_their_own_change() -> Result<()> {
    let server = Server::start(true).await?;
    let (status, held) = patch(&server, Role::Approver, json!({"mode": "report_only"})).await?;
    assert_eq!(
        status, 202,
        "still held: the confirmation is a deliberate second step"
    );
    let id = id_of(&held)?;
    assert_eq!(settings(&server).await?.0.mode, Mode::Enforce);
    let (status, body) = confirm(&server, Role::Approver, id, "").await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(settings(&server).await?.0.mode, Mode::ReportOnly);
    audit_verify(&server)?;
    Ok(())
}
