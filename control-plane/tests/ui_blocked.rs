//! The "Blocked requests" page and the service page's blocked summary.
//!
//! Over real HTTP (seeded through the store's real ingestion path): filters,
//! chart, exact counts, paging, CSV links, bad input as a 400 page, who sees
//! the "request approval" action and for which origins, and the escaped,
//! length-capped pre-fill of the request form.
//!
//! In real headless Chromium (the acceptance test): pages on two origins do
//! real `fetch()` calls that a real agent sidecar blocks; its telemetry
//! reaches the control plane over real gRPC; the page shows the exact
//! counts and a chart, the filter form narrows them, and "request approval
//! for this origin" leads, through the pre-filled form, to a pending request.

mod e2e_support;
mod ui_support;

use anyhow::{Context, Result};
use chrono::{Duration, Utc};
use corsair_agent::control_plane::ControlPlaneConfig;
use corsair_agent::proxy::sidecar::SidecarConfig;
use corsair_agent::report::ReportConfig;
use corsair_control_plane::auth::Role;
use corsair_control_plane::server::Shutdown;
use corsair_control_plane::store::services::ServiceSettings;
use e2e_support::{Agent, Upstream, eventually};
use fantoccini::Locator;
use serde_json::{Value, json};
use std::time::Duration as StdDuration;
use tokio::net::TcpListener;
use ui_support::blocked::{
    bar_sum, chart_total, count_in, fetch_from_page, href_before, row, seed_blocked, shown_count,
    unescape,
};
use ui_support::browser::{Driver, fill, login, session, shot, wait_for};
use ui_support::{PASSWORD, Server, email};

async fn seeded() -> Result<Server> {
    let server = Server::start(false).await?;
    let store = &server.db.store;
    store
        .create_service("orders-api", "", &ServiceSettings::default(), "test")
        .await?;
    let now = Utc::now();
    let reason = "origin_not_allowed";
    seed_blocked(
        store,
        "agent-a:1",
        "agent-a",
        now - Duration::minutes(30),
        &[
            ("payments-api", "https://evil.test", reason, false, 5),
            ("payments-api", "https://other.test", reason, true, 3),
            ("payments-api", "(other)", "(other)", false, 2),
            ("payments-api", "null", reason, false, 1),
            ("orders-api", "https://evil.test", reason, false, 100),
        ],
    )
    .await?;
    seed_blocked(
        store,
        "agent-b:1",
        "agent-b",
        now - Duration::minutes(10),
        &[("payments-api", "https://evil.test", reason, false, 2)],
    )
    .await?;
    // Outside the default 24 h: only a wider range sees it.
    seed_blocked(
        store,
        "agent-a:0",
        "agent-a",
        now - Duration::days(3),
        &[("payments-api", "https://old.test", reason, false, 4)],
    )
    .await?;
    Ok(server)
}

#[tokio::test]
async fn filters_chart_counts_and_actions() -> Result<()> {
    let server = seeded().await?;
    let mut viewer = server.signed_in(Role::Viewer).await?;
    let page = viewer.get("/blocked").await?;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<h1>Blocked requests</h1>"));
    assert!(
        page.body
            .contains("href=\"/blocked\" aria-current=\"page\"")
    );
    // Default: last 24 h, every service, hour buckets; old.test is outside.
    assert_eq!(
        row(&page, "https://evil.test").and_then(count_in),
        Some(107)
    );
    assert_eq!(row(&page, "https://other.test").and_then(count_in), Some(3));
    assert!(row(&page, "https://old.test").is_none());
    assert!(page.body.contains("per hour"));
    assert_eq!(bar_sum(&page.body, "data-blocked"), 110);
    assert_eq!(bar_sum(&page.body, "data-would-block"), 3);
    assert!(
        page.body
            .contains("<desc id=\"chart-desc\">110 blocked and 3 would-block")
    );
    // A viewer gets no request action and no note about it.
    assert!(!page.body.contains("Request approval"));
    assert!(!page.body.contains("action-note"));

    // Service filter, 7 days: minute buckets no longer, old.test appears.
    let page = viewer.get("/blocked?service=payments-api&range=7d").await?;
    assert_eq!(row(&page, "https://evil.test").and_then(count_in), Some(7));
    assert_eq!(row(&page, "https://old.test").and_then(count_in), Some(4));
    assert!(row(&page, "https://evil.test").is_some_and(|r| r.contains("agent-a, agent-b")));
    // Substring origin filter and a 1 h range: minute buckets.
    let page = viewer
        .get("/blocked?service=payments-api&origin=EVIL&origin_match=substring&range=1h")
        .await?;
    assert_eq!(row(&page, "https://evil.test").and_then(count_in), Some(7));
    assert!(row(&page, "https://other.test").is_none());
    assert!(page.body.contains("per minute"));
    assert_eq!(bar_sum(&page.body, "data-blocked"), 7);
    // The CSV links carry the same filters, absolute times, and work.
    let csv = href_before(&page.body, "\" id=\"csv-origins\"").context("csv link")?;
    assert!(
        csv.starts_with(
            "/api/v1/blocked?service=payments-api&origin=EVIL&origin_match=substring&since="
        ),
        "{csv}"
    );
    let export = viewer.get(&csv).await?;
    assert_eq!(export.status, 200, "{}", export.body);
    assert!(
        export.body.contains("\nhttps://evil.test,7,0,"),
        "{}",
        export.body
    );

    // Requester with a service chosen: the action for real origins only.
    let mut requester = server.signed_in(Role::Requester).await?;
    let page = requester.get("/blocked?service=payments-api").await?;
    let evil = row(&page, "https://evil.test").context("evil row")?;
    assert!(evil.contains("href=\"/services/payments-api?request_origin=https%3A%2F%2Fevil.test&#38;request_reason=Blocked+7+times"), "{evil}");
    assert!(row(&page, "https://other.test").is_some_and(|r| r.contains("request-approval")));
    for odd in ["(other)", "null"] {
        let r = row(&page, odd).with_context(|| format!("{odd} row"))?;
        assert!(!r.contains("request-approval"), "{odd}: {r}");
    }
    // Without a service filter: the services column, and one action per
    // service that refused the origin, each into that service's form.
    let page = requester.get("/blocked").await?;
    let evil = row(&page, "https://evil.test").context("evil row")?;
    assert!(evil.contains("orders-api, payments-api"), "{evil}");
    for service in ["orders-api", "payments-api"] {
        assert!(
            evil.contains(&format!("href=\"/services/{service}?request_origin=https%3A%2F%2Fevil.test&#38;request_reason=Blocked+107+times")),
            "{service}: {evil}"
        );
        assert!(
            evil.contains(&format!("Request approval for this origin on {service}")),
            "{evil}"
        );
    }
    let other = row(&page, "https://other.test").context("other row")?;
    assert!(
        other.contains("on payments-api") && !other.contains("orders-api"),
        "{other}"
    );
    assert!(!page.body.contains("action-note"));
    // An origin already pending shows its status instead.
    server
        .db
        .store
        .request_origin("payments-api", "https://evil.test", "x", None, "someone")
        .await?;
    let page = requester.get("/blocked?service=payments-api").await?;
    let evil = row(&page, "https://evil.test").context("evil row")?;
    assert!(
        evil.contains("badge pending") && !evil.contains("request-approval"),
        "{evil}"
    );
    // Unfiltered, the status is per service: pending on one, a link on the other.
    let page = requester.get("/blocked").await?;
    let evil = row(&page, "https://evil.test").context("evil row")?;
    assert!(
        evil.contains("payments-api: <span class=\"badge pending\">"),
        "{evil}"
    );
    assert!(
        evil.contains("Request approval for this origin on orders-api"),
        "{evil}"
    );
    assert!(!evil.contains("on payments-api"), "{evil}");
    Ok(())
}

#[tokio::test]
async fn bad_input_is_a_400_page_never_a_500() -> Result<()> {
    let server = seeded().await?;
    let mut viewer = server.signed_in(Role::Viewer).await?;
    for (query, message) in [
        ("since=yesterday", "is not a date and time"),
        (
            "range=custom&since=2026-11-22T12:00&until=2026-11-22T11:00",
            "From must be before To",
        ),
        (
            "since=2020-01-01T00:00&until=2026-01-01T00:00",
            "at most 366 days",
        ),
        ("range=forever", "Choose a range"),
        ("origin=a%00b", "must not contain NUL"),
        ("origin_match=regex", "exact or substring"),
        ("after=garbage", "The page link is broken"),
        (
            "since=%3Cscript%3E",
            "&#34;&#60;script&#62;&#34; is not a date",
        ),
    ] {
        let page = viewer.get(&format!("/blocked?{query}")).await?;
        assert_eq!(page.status, 400, "{query}: {}", page.body);
        assert!(page.body.contains(message), "{query}: {}", page.body);
        assert!(
            page.body.contains("id=\"blocked-filter\""),
            "the form stays"
        );
        assert!(!page.body.contains("<script>"), "{query}");
    }
    Ok(())
}

#[tokio::test]
async fn top_origins_page_with_the_keyset_cursor() -> Result<()> {
    let server = Server::start(false).await?;
    let origins: Vec<String> = (0..30).map(|i| format!("https://o{i:02}.test")).collect();
    let counts: Vec<(&str, &str, &str, bool, i64)> = origins
        .iter()
        .enumerate()
        .map(|(i, o)| {
            (
                "payments-api",
                o.as_str(),
                "origin_not_allowed",
                false,
                100 - i as i64,
            )
        })
        .collect();
    seed_blocked(
        &server.db.store,
        "a:1",
        "a",
        Utc::now() - Duration::minutes(5),
        &counts,
    )
    .await?;
    let mut viewer = server.signed_in(Role::Viewer).await?;
    let first = viewer.get("/blocked?service=payments-api").await?;
    assert_eq!(
        row(&first, "https://o00.test").and_then(count_in),
        Some(100)
    );
    assert_eq!(row(&first, "https://o24.test").and_then(count_in), Some(76));
    assert!(row(&first, "https://o25.test").is_none());
    let next = href_before(&first.body, "\" rel=\"next\"").context("next link")?;
    let second = viewer.get(&next).await?;
    assert_eq!(second.status, 200, "{}", second.body);
    assert!(row(&second, "https://o24.test").is_none());
    assert_eq!(
        row(&second, "https://o25.test").and_then(count_in),
        Some(75)
    );
    assert_eq!(
        row(&second, "https://o29.test").and_then(count_in),
        Some(71)
    );
    assert!(!second.body.contains("id=\"next-page\""));
    assert!(second.body.contains("rel=\"first\""));
    Ok(())
}

#[tokio::test]
async fn service_page_summary_and_escaped_capped_prefill() -> Result<()> {
    let server = seeded().await?;
    let mut requester = server.signed_in(Role::Requester).await?;
    let page = requester.get("/services/payments-api").await?;
    assert!(
        page.body
            .contains("<strong class=\"blocked-total\">13</strong>"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("<strong class=\"would-total\">3</strong>")
    );
    assert!(
        page.body
            .contains("<li><code>https://evil.test</code>: 7</li>")
    );
    assert!(
        page.body
            .contains("href=\"/blocked?service=payments-api&#38;range=24h\"")
    );

    // Hostile pre-fill is escaped; a long one is cut.
    let page = requester
        .get("/services/payments-api?request_origin=%22%3E%3Cscript%3Ealert(1)%3C/script%3E&request_reason=%3Cb%3Ex")
        .await?;
    assert!(!page.body.contains("<script>alert(1)"));
    assert!(
        page.body
            .contains("value=\"&#34;&#62;&#60;script&#62;alert(1)&#60;/script&#62;\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("value=\"&#60;b&#62;x\""));
    let long = "a".repeat(2000);
    let page = requester
        .get(&format!(
            "/services/payments-api?request_origin={long}&request_reason={long}"
        ))
        .await?;
    assert_eq!(page.input("pattern").map(|v| v.len()), Some(300));
    assert_eq!(page.input("reason").map(|v| v.len()), Some(500));

    // The link from the Blocked page fills the form; submitting it files the request.
    let blocked = requester.get("/blocked?service=payments-api").await?;
    let link = row(&blocked, "https://other.test")
        .and_then(|r| r.split("class=\"request-approval\" href=\"").nth(1))
        .and_then(|h| h.split('"').next())
        .map(unescape)
        .context("request link")?;
    let form = requester.get(&link).await?;
    let pattern = form.input("pattern").context("pattern")?;
    let reason = form.input("reason").context("reason")?;
    assert_eq!(pattern, "https://other.test");
    assert!(reason.starts_with("Blocked 3 times between "), "{reason}");
    let reason = unescape(&reason);
    let r = requester
        .post(
            "/services/payments-api/origins",
            &[("pattern", &pattern), ("reason", &reason)],
        )
        .await?;
    assert_eq!(r.status, 303, "{}", r.body);
    let origin = server
        .db
        .store
        .list_origins("payments-api")
        .await?
        .into_iter()
        .find(|o| o.pattern == "https://other.test")
        .context("requested")?;
    assert_eq!(origin.status, "pending");
    assert!(
        origin.reason.contains("(seen by agent-a)"),
        "{}",
        origin.reason
    );
    Ok(())
}

/// A real agent sidecar for `service` with a short telemetry interval.
async fn start_agent(
    server: &Server,
    service: &str,
    upstream: &str,
    cache: std::path::PathBuf,
) -> Result<Agent> {
    let token = server.agent_token("blocked-ui-agent", &[service]).await?;
    let config = SidecarConfig {
        control_plane: ControlPlaneConfig::new(server.grpc_url.clone(), token),
        service: service.to_string(),
        upstream: upstream.to_string(),
        cache_dir: cache,
        agent_name: "blocked-ui-agent".to_string(),
        proxy: Default::default(),
    };
    let report = ReportConfig {
        interval: StdDuration::from_millis(200),
        retry_base: StdDuration::from_millis(50),
        retry_max: StdDuration::from_millis(400),
        ..ReportConfig::default()
    };
    Agent::start_ready(config, report).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_page_in_a_real_browser_leads_to_a_pending_request() -> Result<()> {
    let server = Server::start(false).await?;
    let base = server.base.clone();
    server
        .db
        .store
        .create_service("shop-api", "Shop", &ServiceSettings::default(), "test")
        .await?;
    let stop = Shutdown::new();
    let upstream = Upstream::start().await?;
    let cache = tempfile::tempdir()?;
    let mut agent = start_agent(&server, "shop-api", &upstream.url, cache.path().into()).await?;
    let agent_url = agent.url.clone();

    // One page server, reached as two origins: 127.0.0.1 and localhost.
    let pages = TcpListener::bind("127.0.0.1:0").await?;
    let port = pages.local_addr()?.port();
    let page_router = axum::Router::new().route(
        "/",
        axum::routing::get(|| async {
            axum::response::Html(
                "<!doctype html><title>a page on another origin</title><p>calls shop-api",
            )
        }),
    );
    tokio::spawn(
        axum::serve(pages, page_router)
            .with_graceful_shutdown(stop.wait())
            .into_future(),
    );
    let loud = format!("http://127.0.0.1:{port}");
    let quiet = format!("http://localhost:{port}");

    let driver = Driver::start().await?;
    let c = session(&driver).await?;
    let result = async {
        // The browser's own fetch() calls, refused by the agent's policy.
        for (origin, n) in [(&loud, 4), (&quiet, 2)] {
            c.goto(&format!("{origin}/")).await?;
            let answers = fetch_from_page(&c, &format!("{agent_url}/api/hello"), n).await?;
            assert_eq!(answers, vec!["blocked"; n], "from {origin}");
        }

        login(&c, &base, &email(Role::Requester), PASSWORD).await?;
        // Poll the page itself until the agent's batches have arrived.
        let page = format!("{base}/blocked?service=shop-api&range=1h");
        eventually("the Blocked page to show 4 and 2", || async {
            c.goto(&page).await?;
            let shown = (shown_count(&c, &loud).await, shown_count(&c, &quiet).await);
            anyhow::ensure!(shown == (Some(4), Some(2)), "shown {shown:?}");
            Ok(())
        })
        .await?;
        assert_eq!(chart_total(&c).await?, 6);
        let desc = c.find(Locator::Css("#chart-desc")).await?.text().await?;
        assert!(desc.is_empty() || desc.starts_with("6 blocked"), "{desc}");
        shot(&c, "blocked-page").await?;

        // Every service (the default): the services column and a request
        // action naming the service.
        c.goto(&format!("{base}/blocked")).await?;
        let action = wait_for(
            &c,
            &format!("tr[data-origin=\"{loud}\"] a.request-approval"),
        )
        .await?;
        assert_eq!(
            action.text().await?,
            "Request approval for this origin on shop-api"
        );
        shot(&c, "blocked-all-services").await?;

        // The filter form: origins containing "localhost", last 24 h.
        c.find(Locator::Css("select[name=service] option[value=shop-api]"))
            .await?
            .click()
            .await?;
        fill(&c, "input[name=origin]", "localhost").await?;
        c.find(Locator::Css(
            "select[name=origin_match] option[value=substring]",
        ))
        .await?
        .click()
        .await?;
        c.find(Locator::Css("select[name=range] option[value='24h']"))
            .await?
            .click()
            .await?;
        c.find(Locator::Css("#blocked-filter button[type=submit]"))
            .await?
            .click()
            .await?;
        // Wait for the filtered page itself, not for a row the unfiltered
        // page already showed (that raced the navigation).
        eventually("the filtered Blocked page", || async {
            c.current_url()
                .await
                .is_ok_and(|u| u.as_str().contains("origin_match=substring"))
        })
        .await?;
        wait_for(&c, &format!("tr[data-origin=\"{quiet}\"]")).await?;
        let url = c.current_url().await?;
        assert!(
            url.as_str()
                .contains("origin=localhost&origin_match=substring"),
            "{url}"
        );
        assert_eq!(shown_count(&c, &quiet).await, Some(2));
        assert_eq!(shown_count(&c, &loud).await, None, "filtered out");
        assert_eq!(chart_total(&c).await?, 2);
        shot(&c, "blocked-filtered").await?;

        // Request approval for the louder origin, through the pre-filled form.
        c.goto(&format!("{base}/blocked?service=shop-api")).await?;
        wait_for(
            &c,
            &format!("tr[data-origin=\"{loud}\"] a.request-approval"),
        )
        .await?
        .click()
        .await?;
        let pattern = wait_for(&c, "#request-form #pattern")
            .await?
            .prop("value")
            .await?
            .unwrap_or_default();
        let reason = c
            .find(Locator::Css("#request-form #reason"))
            .await?
            .prop("value")
            .await?
            .unwrap_or_default();
        assert_eq!(pattern, loud);
        assert!(reason.starts_with("Blocked 4 times between "), "{reason}");
        shot(&c, "blocked-prefilled-request").await?;
        c.find(Locator::Css("#request-form button[type=submit]"))
            .await?
            .click()
            .await?;
        let flash = wait_for(&c, ".flash").await?.text().await?;
        assert!(flash.contains("Requested"), "{flash}");

        // The REST API agrees: pending, with the pre-filled reason.
        let token: Value = reqwest::Client::new()
            .post(format!("{base}/api/v1/login"))
            .json(&json!({"email": email(Role::Viewer), "password": PASSWORD}))
            .send()
            .await?
            .json()
            .await?;
        let detail: Value = reqwest::Client::new()
            .get(format!("{base}/api/v1/services/shop-api"))
            .bearer_auth(token["token"].as_str().context("token")?)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let origin = detail["origins"]
            .as_array()
            .and_then(|all| all.iter().find(|o| o["pattern"] == json!(loud)))
            .context("the origin is on the service")?;
        assert_eq!(origin["status"], json!("pending"));
        assert_eq!(origin["reason"], json!(reason));
        assert_eq!(origin["requested_by"], json!(email(Role::Requester)));

        // Back on the Blocked page the row shows the pending state.
        c.goto(&format!("{base}/blocked?service=shop-api")).await?;
        let cell = wait_for(&c, &format!("tr[data-origin=\"{loud}\"] .badge.pending")).await?;
        assert_eq!(cell.text().await?, "pending");
        shot(&c, "blocked-after-request").await?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    let result = c.finish("blocked-failure", result).await;
    stop.trigger();
    agent.stop().await?;
    result
}
