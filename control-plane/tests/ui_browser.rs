//! The admin UI in real headless Chromium (driven through chromedriver):
//! a requester requests the demo page's origin, an approver's own request is
//! refused by the four-eyes rule, the approver approves the requester's, and
//! then the browser's `fetch()` from that origin passes the real agent. A
//! viewer sees no action buttons and a forged POST gets 403; logout ends the
//! session. Screenshots of every page go to
//! `target/tmp/browser-artifacts/ui-*.png`.

mod e2e_support;
mod ui_support;

use anyhow::{Context, Result, bail};
use corsair_agent::engine::Mode;
use corsair_control_plane::auth::Role;
use corsair_control_plane::dev::demo;
use corsair_control_plane::server::Shutdown;
use corsair_control_plane::store::services::ServiceSettings;
use e2e_support::{Agent, Upstream};
use fantoccini::{Client, Locator};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::net::TcpListener;
use ui_support::browser::{self, Driver, Session, fill};
use ui_support::{PASSWORD, Server, email};

async fn shot(c: &Session, name: &str) -> Result<()> {
    browser::shot(c, &format!("ui-{name}")).await
}

async fn login(c: &Client, base: &str, role: Role) -> Result<()> {
    browser::login(c, base, &email(role), PASSWORD).await
}

async fn logout(c: &Client) -> Result<()> {
    c.find(Locator::Css("#logout")).await?.click().await?;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#login-form"))
        .await?;
    Ok(())
}

/// Removes the current page's flash, so the next one read is the answer to
/// the next action, not a leftover.
async fn clear_flash(c: &Client) -> Result<()> {
    c.execute(
        "document.querySelectorAll('.flash').forEach(e => e.remove());",
        vec![],
    )
    .await?;
    Ok(())
}

async fn flash(c: &Client) -> Result<String> {
    Ok(c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(".flash"))
        .await?
        .text()
        .await?)
}

async fn submit(c: &Client, css: &str) -> Result<()> {
    clear_flash(c).await?;
    c.find(Locator::Css(css)).await?.click().await?;
    Ok(())
}

/// Clicks the button labelled `label` in the table row for `origin`.
async fn row_action(c: &Client, origin: &str, label: &str, note: &str) -> Result<()> {
    let row = c
        .find(Locator::Css(&format!("tr[data-origin=\"{origin}\"]")))
        .await
        .with_context(|| format!("no row for {origin}"))?;
    for form in row.find_all(Locator::Css("form")).await? {
        let button = form.find(Locator::Css("button")).await?;
        if button.text().await? == label {
            let input = form.find(Locator::Css("input[name=note]")).await?;
            input.send_keys(note).await?;
            clear_flash(c).await?;
            button.click().await?;
            return Ok(());
        }
    }
    bail!("no {label} button for {origin}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_workflow_in_a_real_browser() -> Result<()> {
    let server = Server::start(false).await?;
    let base = server.base.clone();
    let settings = ServiceSettings {
        allow_methods: vec!["PUT".into(), "DELETE".into()],
        allow_headers: vec!["X-Demo".into(), "Content-Type".into()],
        allow_credentials: true,
        max_age_secs: 600,
        mode: Mode::Enforce,
        ..ServiceSettings::default()
    };
    server
        .db
        .store
        .create_service("demo-api", "Demo API", &settings, "test")
        .await?;

    // The agent in front of the demo upstream, and the demo page on its own origin.
    let upstream = Upstream::start().await?;
    let token = server.agent_token("ui-agent", &["demo-api"]).await?;
    let cache = tempfile::tempdir()?;
    let agent = Agent::start(
        &server.grpc_url,
        &token,
        "demo-api",
        &upstream.url,
        cache.path().to_path_buf(),
    )
    .await?;
    let page_listener = TcpListener::bind("127.0.0.1:0").await?;
    let demo_origin = format!("http://{}", page_listener.local_addr()?);
    let stop = Shutdown::new();
    let page_router = demo::page_router(
        demo_origin.clone(),
        agent.url.clone(),
        "demo-api".to_string(),
    );
    tokio::spawn(
        axum::serve(page_listener, page_router)
            .with_graceful_shutdown(stop.wait())
            .into_future(),
    );

    let driver = Driver::start().await?;
    let c = browser::session(&driver).await?;
    let result = async {
        // Anonymous: any page leads to the login form.
        c.goto(&format!("{base}/approvals")).await?;
        c.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("#login-form")).await?;
        shot(&c, "login").await?;

        // Requester: request the demo page's origin.
        login(&c, &base, Role::Requester).await?;
        c.goto(&format!("{base}/services/demo-api")).await?;
        fill(&c, "#pattern", &demo_origin).await?;
        fill(&c, "#reason", "the demo page calls demo-api").await?;
        submit(&c, "#request-form button[type=submit]").await?;
        let msg = flash(&c).await?;
        assert!(msg.contains("Requested"), "{msg}");
        // Bad input shows a message beside the field and changes nothing.
        fill(&c, "#pattern", "ftp://nope").await?;
        fill(&c, "#reason", "x").await?;
        submit(&c, "#request-form button[type=submit]").await?;
        let err = c.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("#pattern-error")).await?.text().await?;
        assert!(!err.is_empty());
        shot(&c, "service-bad-input").await?;
        logout(&c).await?;

        // Approver: their own request is refused (four eyes); the requester's is approved.
        login(&c, &base, Role::Approver).await?;
        c.goto(&format!("{base}/services/demo-api")).await?;
        fill(&c, "#pattern", "https://own.example.com").await?;
        fill(&c, "#reason", "mine").await?;
        submit(&c, "#request-form button[type=submit]").await?;
        flash(&c).await?;
        c.goto(&format!("{base}/approvals")).await?;
        shot(&c, "approvals").await?;
        row_action(&c, "https://own.example.com", "Approve", "self").await?;
        let msg = flash(&c).await?;
        assert!(msg.contains("four-eyes"), "{msg}");
        row_action(&c, &demo_origin, "Approve", "looks right").await?;
        let msg = flash(&c).await?;
        assert!(msg.contains("Approved"), "{msg}");
        c.goto(&format!("{base}/services/demo-api")).await?;
        shot(&c, "service").await?;

        // The agent gets the new policy; the browser's fetch() from that origin passes.
        agent.await_preflight(&demo_origin, "PUT", "x-demo", 204).await?;
        c.goto(&format!("{demo_origin}/?autorun")).await?;
        for id in ["simple-get", "preflight-put", "credentialed"] {
            c.wait()
                .at_most(Duration::from_secs(20))
                .for_element(Locator::Css(&format!("#{id}-result.allowed")))
                .await
                .with_context(|| format!("{id} not allowed after approval"))?;
        }
        shot(&c, "demo-after-ui-approval").await?;

        for (path, name) in [("/services", "services"), ("/audit", "audit"), ("/agents", "agents")] {
            c.goto(&format!("{base}{path}")).await?;
            shot(&c, name).await?;
        }
        c.goto(&format!("{base}/simulator?service=demo-api&origin={}&method=PUT&headers=X-Demo", demo_origin)).await?;
        c.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("#sim-result")).await?;
        shot(&c, "simulator").await?;
        logout(&c).await?;

        // Viewer: no action buttons; a forged POST (with a valid CSRF token) gets 403.
        login(&c, &base, Role::Viewer).await?;
        let id = server.db.store.list_origins("demo-api").await?.into_iter().find(|o| o.status == "pending").context("pending")?.id;
        for path in ["/services/demo-api", "/approvals"] {
            c.goto(&format!("{base}{path}")).await?;
            for b in c.find_all(Locator::Css("main button")).await? {
                let label = b.text().await?;
                assert!(!["Approve", "Reject", "Revoke", "Request origin", "Save settings"].contains(&label.as_str()), "viewer sees {label} on {path}");
            }
        }
        let status = c
            .execute(
                "const csrf = document.querySelector('input[name=csrf]').value;
                 return fetch(arguments[0], {method: 'POST', headers: {'content-type': 'application/x-www-form-urlencoded'},
                   body: 'note=forged&csrf=' + encodeURIComponent(csrf)}).then(r => r.status);",
                vec![Value::String(format!("/origins/{id}/approve"))],
            )
            .await?;
        assert_eq!(status, json!(403));
        assert_eq!(server.db.store.get_origin(id).await?.status, "pending");

        // Logout ends the session: the old cookie no longer works anywhere.
        let cookie = c.get_named_cookie("corsair_session").await?.value().to_string();
        logout(&c).await?;
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
        let old = http.get(format!("{base}/services")).header("cookie", format!("corsair_session={cookie}")).send().await?;
        assert_eq!(old.status(), 303);
        let old = http.get(format!("{base}/api/v1/services")).header("cookie", format!("corsair_session={cookie}")).send().await?;
        assert_eq!(old.status(), 401);

        // Admin: the users page.
        login(&c, &base, Role::Admin).await?;
        c.goto(&format!("{base}/users")).await?;
        shot(&c, "users").await?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    let result = c.finish("ui-failure", result).await;
    stop.trigger();
    result
}
