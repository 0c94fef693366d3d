//! REST writes authenticated by the session cookie need the session's CSRF
//! token in `X-CSRF-Token` (issue 11, item 5); bearer tokens do not. Over a
//! real socket, with a session made through the login form like a browser.

mod ui_support;

use anyhow::{Context, Result};
use corsair_control_plane::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};
use ui_support::{Browser, Server};

/// One REST call with the browser's cookies, an optional `X-CSRF-Token`
/// and an optional bearer token; returns (status, JSON body).
async fn call(
    b: &Browser,
    method: Method,
    path: &str,
    csrf: Option<&str>,
    bearer: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let cookies: Vec<String> = b.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut req = b
        .http
        .request(method, format!("{}{path}", b.base))
        .header("cookie", cookies.join("; "));
    if let Some(token) = csrf {
        req = req.header("x-csrf-token", token);
    }
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    let text = r.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

fn refused_for_csrf(status: u16, body: &Value) -> bool {
    let message = body["error"]["message"].as_str().unwrap_or_default();
    status == 403
        && body["error"]["code"] == "forbidden"
        && message.contains("X-CSRF-Token")
        && message.contains("Bearer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_writes_need_the_csrf_header_and_bearer_writes_do_not() -> Result<()> {
    let server = Server::start(false).await?;
    let mut admin = server.signed_in(Role::Admin).await?;
    let csrf = admin.csrf().await?;
    let origin = |n: u32| json!({"pattern": format!("https://c{n}.example.com"), "reason": "r"});
    let request = "/api/v1/services/payments-api/origins";

    // Reads with the cookie need nothing more.
    let (status, _) = call(&admin, Method::GET, "/api/v1/services", None, None, None).await?;
    assert_eq!(status, 200);

    // A write with the cookie alone, a wrong token, another session's token,
    // or a token with the wrong length: 403 with the way out, nothing stored.
    let mut other = server.signed_in(Role::Admin).await?;
    let others = other.csrf().await?;
    assert_ne!(others, csrf, "each session has its own token");
    for given in [
        None,
        Some("forged"),
        Some(others.as_str()),
        Some(&csrf[..32]),
        Some(""),
    ] {
        let (status, body) =
            call(&admin, Method::POST, request, given, None, Some(origin(1))).await?;
        assert!(
            refused_for_csrf(status, &body),
            "{given:?}: {status} {body}"
        );
    }
    assert!(
        server
            .db
            .store
            .list_origins("payments-api")
            .await?
            .is_empty()
    );

    // Every write method is covered: PATCH, DELETE, and POST actions.
    let (status, body) = call(
        &admin,
        Method::PATCH,
        "/api/v1/services/payments-api",
        None,
        None,
        Some(json!({"description": "x"})),
    )
    .await?;
    assert!(refused_for_csrf(status, &body), "PATCH: {status} {body}");
    let (status, body) = call(
        &admin,
        Method::DELETE,
        "/api/v1/services/payments-api",
        None,
        None,
        None,
    )
    .await?;
    assert!(refused_for_csrf(status, &body), "DELETE: {status} {body}");
    // Still there.
    server.db.store.get_service("payments-api").await?;

    // With the page's token it goes through.
    let (status, body) = call(
        &admin,
        Method::POST,
        request,
        Some(&csrf),
        None,
        Some(origin(2)),
    )
    .await?;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().context("origin id")?;
    // Another session cannot approve with its own token under this cookie,
    // but can with its own cookie (four eyes: the other admin decides).
    let approve = format!("/api/v1/origins/{id}/approve");
    let (status, body) = call(&admin, Method::POST, &approve, Some(&others), None, None).await?;
    assert!(refused_for_csrf(status, &body), "{status} {body}");

    // A bearer token needs no CSRF header, with or without a cookie beside it.
    let token = login_token(&server, Role::Approver).await?;
    let (status, body) = call(&other, Method::POST, &approve, None, Some(&token), None).await?;
    assert_eq!(status, 200, "{body}");
    let mut anonymous = server.client()?;
    anonymous.cookies.clear();
    let (status, body) = call(
        &anonymous,
        Method::POST,
        request,
        None,
        Some(&token),
        Some(origin(3)),
    )
    .await?;
    assert_eq!(status, 201, "{body}");

    // Without any credentials it is still 401, not a CSRF 403.
    let (status, body) = call(
        &anonymous,
        Method::POST,
        request,
        None,
        None,
        Some(origin(4)),
    )
    .await?;
    assert_eq!(status, 401, "{body}");

    // The UI's forms (CSRF in the body) are unaffected.
    let page = admin
        .post(
            "/services/payments-api/origins",
            &[("pattern", "https://form.example.com"), ("reason", "r")],
        )
        .await?;
    assert_eq!(page.status, 303, "{}", page.body);
    Ok(())
}

/// A user token from `POST /api/v1/login`.
async fn login_token(server: &Server, role: Role) -> Result<String> {
    let reply: Value = reqwest::Client::new()
        .post(format!("{}/api/v1/login", server.base))
        .json(&json!({"email": ui_support::email(role), "password": ui_support::PASSWORD}))
        .send()
        .await?
        .json()
        .await?;
    Ok(reply["token"].as_str().context("no token")?.to_string())
}
