//! Every UI and API route × every role and anonymous: allowed → 2xx (or
//! the 303 of a successful form), forbidden → 403 (an HTML page in the UI,
//! JSON on the API), anonymous → redirect to /login (UI) or 401 (API).
//! Also: API tokens made on the users page work as `Authorization: Bearer`.

mod ui_support;

use anyhow::{Context, Result};
use corsair_control_plane::auth::Role;
use corsair_control_plane::store::origins::Decision;
use corsair_control_plane::store::services::ServiceSettings;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use ui_support::{Browser, ROLES, Server};

static FRESH: AtomicUsize = AtomicUsize::new(0);

fn fresh() -> usize {
    FRESH.fetch_add(1, Ordering::Relaxed)
}

/// One request, with fixtures made fresh for each caller.
enum Call {
    Get(String),
    Form(String, Vec<(String, String)>),
    Api(&'static str, String, Option<Value>),
}

async fn pending(server: &Server) -> Result<i64> {
    let o = server
        .db
        .store
        .request_origin(
            "payments-api",
            &format!("https://p{}.example.com", fresh()),
            "why",
            None,
            "someone",
        )
        .await?;
    Ok(o.id)
}

async fn approved(server: &Server) -> Result<i64> {
    let id = pending(server).await?;
    server
        .db
        .store
        .decide_origin(id, Decision::Approve, Some("ok"), "approver@example.com")
        .await?;
    Ok(id)
}

/// The request for `route`, with fresh fixtures.
async fn call(server: &Server, route: &str) -> Result<Call> {
    let form = |path: String, fields: &[(&str, &str)]| {
        Call::Form(
            path,
            fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    };
    Ok(match route {
        "ui services" => Call::Get("/services?q=pay".into()),
        "ui service" => Call::Get("/services/payments-api".into()),
        "ui approvals" => Call::Get("/approvals".into()),
        "ui audit" => Call::Get("/audit?action=origin.request".into()),
        "ui audit csv" => Call::Get("/audit.csv".into()),
        "ui agents" => Call::Get("/agents".into()),
        "ui blocked" => Call::Get(
            "/blocked?service=payments-api&origin=example&origin_match=substring&range=7d".into(),
        ),
        "ui simulator" => Call::Get(
            "/simulator?service=payments-api&origin=https%3A%2F%2Fa.example.com&method=PUT".into(),
        ),
        "ui users" => Call::Get("/users".into()),
        "ui request origin" => form(
            "/services/payments-api/origins".into(),
            &[
                ("pattern", &format!("https://r{}.example.com", fresh())),
                ("reason", "x"),
            ],
        ),
        "ui description" => form(
            "/services/payments-api/description".into(),
            &[("description", "Payments API")],
        ),
        "ui settings" => form(
            "/services/payments-api/settings".into(),
            &[
                ("mode", "enforce"),
                ("max_age_secs", "60"),
                ("allow_methods", "PUT"),
            ],
        ),
        "ui approve" => form(
            format!("/origins/{}/approve", pending(server).await?),
            &[("note", "ok")],
        ),
        "ui reject" => form(
            format!("/origins/{}/reject", pending(server).await?),
            &[("note", "no")],
        ),
        "ui revoke" => form(
            format!("/origins/{}/revoke", approved(server).await?),
            &[("note", "gone")],
        ),
        "ui create service" => form(
            "/services".into(),
            &[("name", &format!("new-{}", fresh())), ("description", "x")],
        ),
        "ui create user" => form(
            "/users".into(),
            &[
                ("email", &format!("u{}@example.com", fresh())),
                ("role", "viewer"),
                ("password", "a long enough password"),
            ],
        ),
        "ui update user" => {
            let hash = corsair_control_plane::auth::password::hash("a long enough password")
                .map_err(anyhow::Error::msg)?;
            let u = server
                .db
                .store
                .create_user(
                    &format!("t{}@example.com", fresh()),
                    &hash,
                    Role::Viewer,
                    "test",
                )
                .await?;
            form(format!("/users/{}", u.id), &[("role", "requester")])
        }
        "ui create token" => form(
            "/tokens".into(),
            &[("name", "ci"), ("role", "viewer"), ("days", "30")],
        ),
        "ui revoke token" => {
            let id = uuid::Uuid::new_v4();
            server
                .db
                .store
                .create_api_token(id, "t", Role::Viewer, None, "test")
                .await?;
            form(format!("/tokens/{id}/revoke"), &[])
        }
        "api services" => Call::Api("GET", "/api/v1/services".into(), None),
        "api service" => Call::Api("GET", "/api/v1/services/payments-api".into(), None),
        "api policy" => Call::Api("GET", "/api/v1/services/payments-api/policy".into(), None),
        "api origins" => Call::Api("GET", "/api/v1/services/payments-api/origins".into(), None),
        "api origin" => Call::Api(
            "GET",
            format!("/api/v1/origins/{}", pending(server).await?),
            None,
        ),
        "api agents" => Call::Api("GET", "/api/v1/agents".into(), None),
        "api audit" => Call::Api("GET", "/api/v1/audit".into(), None),
        "api simulate" => Call::Api(
            "POST",
            "/api/v1/simulate".into(),
            Some(json!({"service": "payments-api", "origin": "https://a.example.com"})),
        ),
        "api request origin" => Call::Api(
            "POST",
            "/api/v1/services/payments-api/origins".into(),
            Some(json!({"pattern": format!("https://q{}.example.com", fresh()), "reason": "x"})),
        ),
        "api approve" => Call::Api(
            "POST",
            format!("/api/v1/origins/{}/approve", pending(server).await?),
            None,
        ),
        "api reject" => Call::Api(
            "POST",
            format!("/api/v1/origins/{}/reject", pending(server).await?),
            Some(json!({"note": "no"})),
        ),
        "api revoke" => Call::Api(
            "POST",
            format!("/api/v1/origins/{}/revoke", approved(server).await?),
            None,
        ),
        "api update service" => Call::Api(
            "PATCH",
            "/api/v1/services/payments-api".into(),
            Some(json!({"max_age_secs": 30})),
        ),
        "api create service" => Call::Api(
            "POST",
            "/api/v1/services".into(),
            Some(json!({"name": format!("svc-{}", fresh())})),
        ),
        "api delete service" => {
            let name = format!("gone-{}", fresh());
            server
                .db
                .store
                .create_service(&name, "", &ServiceSettings::default(), "test")
                .await?;
            Call::Api("DELETE", format!("/api/v1/services/{name}"), None)
        }
        "api agent tokens" => Call::Api("GET", "/api/v1/agent-tokens".into(), None),
        "api issue agent token" => Call::Api(
            "POST",
            "/api/v1/agent-tokens".into(),
            Some(json!({"name": "gw", "services": ["payments-api"]})),
        ),
        other => anyhow::bail!("unknown route {other}"),
    })
}

const ROUTES: [(&str, Role); 37] = [
    ("ui services", Role::Viewer),
    ("ui service", Role::Viewer),
    ("ui approvals", Role::Viewer),
    ("ui audit", Role::Viewer),
    ("ui audit csv", Role::Viewer),
    ("ui agents", Role::Viewer),
    ("ui blocked", Role::Viewer),
    ("ui simulator", Role::Viewer),
    ("ui users", Role::Admin),
    ("ui request origin", Role::Requester),
    ("ui description", Role::Requester),
    ("ui settings", Role::Approver),
    ("ui approve", Role::Approver),
    ("ui reject", Role::Approver),
    ("ui revoke", Role::Approver),
    ("ui create service", Role::Admin),
    ("ui create user", Role::Admin),
    ("ui update user", Role::Admin),
    ("ui create token", Role::Admin),
    ("ui revoke token", Role::Admin),
    ("api services", Role::Viewer),
    ("api service", Role::Viewer),
    ("api policy", Role::Viewer),
    ("api origins", Role::Viewer),
    ("api origin", Role::Viewer),
    ("api agents", Role::Viewer),
    ("api audit", Role::Viewer),
    ("api simulate", Role::Viewer),
    ("api request origin", Role::Requester),
    ("api approve", Role::Approver),
    ("api reject", Role::Approver),
    ("api revoke", Role::Approver),
    ("api update service", Role::Approver),
    ("api create service", Role::Admin),
    ("api delete service", Role::Admin),
    ("api agent tokens", Role::Admin),
    ("api issue agent token", Role::Admin),
];

async fn api_token(server: &Server, role: Role) -> Result<String> {
    let reply: Value = reqwest::Client::new()
        .post(format!("{}/api/v1/login", server.base))
        .json(&json!({"email": ui_support::email(role), "password": ui_support::PASSWORD}))
        .send()
        .await?
        .json()
        .await?;
    Ok(reply["token"].as_str().context("no token")?.to_string())
}

/// Sends `call` as `who` (None = anonymous); returns (status, location, body).
async fn send(
    server: &Server,
    who: Option<(&mut Browser, &str)>,
    call: Call,
) -> Result<(u16, String, String)> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    match (call, who) {
        (Call::Get(path), Some((b, _))) => {
            let p = b.get(&path).await?;
            Ok((p.status, p.location, p.body))
        }
        (Call::Form(path, fields), Some((b, _))) => {
            let f: Vec<(&str, &str)> = fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let p = b.post(&path, &f).await?;
            Ok((p.status, p.location, p.body))
        }
        (Call::Get(path), None) => {
            let r = http.get(format!("{}{path}", server.base)).send().await?;
            let loc = r
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            Ok((r.status().as_u16(), loc, r.text().await?))
        }
        (Call::Form(path, fields), None) => {
            let r = http
                .post(format!("{}{path}", server.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(serde_urlencoded::to_string(&fields)?)
                .send()
                .await?;
            let loc = r
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            Ok((r.status().as_u16(), loc, r.text().await?))
        }
        (Call::Api(method, path, body), who) => {
            let mut req = http.request(method.parse()?, format!("{}{path}", server.base));
            if let Some((_, token)) = who {
                req = req.bearer_auth(token);
            }
            if let Some(body) = body {
                req = req.json(&body);
            }
            let r = req.send().await?;
            Ok((r.status().as_u16(), String::new(), r.text().await?))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_for_every_role() -> Result<()> {
    let server = Server::start(false).await?;
    let mut sessions = Vec::new();
    for role in ROLES {
        sessions.push((
            role,
            server.signed_in(role).await?,
            api_token(&server, role).await?,
        ));
    }
    let mut failures = Vec::new();
    for (route, least) in ROUTES {
        for (role, browser, token) in sessions.iter_mut() {
            let (status, _, body) = send(
                &server,
                Some((browser, token.as_str())),
                call(&server, route).await?,
            )
            .await?;
            let ok = if *role >= least {
                (200..300).contains(&status) || status == 303
            } else {
                let html = !route.starts_with("api");
                status == 403
                    && (if html {
                        body.contains("<h1>Not allowed</h1>")
                    } else {
                        body.contains("\"forbidden\"")
                    })
            };
            if !ok {
                failures.push(format!(
                    "{route} as {role:?}: {status} {}",
                    body.chars().take(200).collect::<String>()
                ));
            }
        }
        let (status, location, body) = send(&server, None, call(&server, route).await?).await?;
        let ok = if route.starts_with("api") {
            status == 401 && body.contains("\"unauthorized\"")
        } else {
            status == 303 && location.starts_with("/login?next=")
        };
        if !ok {
            failures.push(format!("{route} anonymous: {status} {location}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}

#[tokio::test]
async fn api_tokens_from_the_users_page_work_on_the_rest_api_until_revoked() -> Result<()> {
    let server = Server::start(false).await?;
    let mut admin = server.signed_in(Role::Admin).await?;
    let page = admin
        .post(
            "/tokens",
            &[("name", "ci-deploy"), ("role", "requester"), ("days", "")],
        )
        .await?;
    assert_eq!(page.status, 201, "{}", page.body);
    let marker = "<code id=\"secret\">";
    let at = page.body.find(marker).context("secret shown")? + marker.len();
    let secret = page.body[at..]
        .split('<')
        .next()
        .context("secret")?
        .to_string();
    // Shown once: the list does not show it again.
    assert!(!admin.get("/users").await?.body.contains(&secret));

    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/services/payments-api/origins", server.base);
    let r = http
        .post(&url)
        .bearer_auth(&secret)
        .json(&json!({"pattern": "https://ci.example.com", "reason": "pipeline"}))
        .send()
        .await?;
    assert_eq!(r.status(), 201, "{}", r.text().await?);
    let origin = server
        .db
        .store
        .list_origins("payments-api")
        .await?
        .remove(0);
    assert_eq!(origin.requested_by, "token:ci-deploy");
    // Scoped by role: a requester token cannot approve.
    let r = http
        .post(format!(
            "{}/api/v1/origins/{}/approve",
            server.base, origin.id
        ))
        .bearer_auth(&secret)
        .send()
        .await?;
    assert_eq!(r.status(), 403);

    let id = server.db.store.list_api_tokens().await?.remove(0).id;
    let r = admin.post(&format!("/tokens/{id}/revoke"), &[]).await?;
    assert_eq!(r.status, 303);
    let r = http
        .get(format!("{}/api/v1/services", server.base))
        .bearer_auth(&secret)
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    Ok(())
}
