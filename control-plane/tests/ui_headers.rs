//! The security headers (issue 11, item 5) on every UI page: signed in as an
//! admin and anonymously, over a real socket; HSTS only with
//! `--secure-cookies`; and in real headless Chromium, every page renders
//! with its stylesheet and script under the CSP and has no inline script,
//! inline style or `on*` handler the CSP would block.

mod ui_support;

use anyhow::{Context, Result};
use corsair_control_plane::auth::{Role, SigningKey};
use corsair_control_plane::server::http_app;
use corsair_control_plane::state::AppState;
use corsair_control_plane::testing::TestDb;
use corsair_control_plane::ui::headers::{CSP, HSTS};
use fantoccini::Locator;
use tower::ServiceExt as _;
use ui_support::browser::{self, Driver};
use ui_support::{PASSWORD, Server, email};

/// Every GET route of the UI (with the query strings its forms send), the
/// static files, the probes and an unknown path (the 404 page).
const PAGES: &[&str] = &[
    "/",
    "/login",
    "/login?next=%2Fapprovals",
    "/static/app.css",
    "/static/app.js",
    "/services",
    "/services?q=pay",
    "/services/payments-api",
    "/services/no-such-service",
    "/approvals",
    "/audit",
    "/audit?action=origin.request",
    "/audit.csv",
    "/agents",
    "/blocked",
    "/blocked?service=payments-api&range=7d",
    "/simulator",
    "/simulator?service=payments-api&origin=https%3A%2F%2Fa.example.com&method=PUT",
    "/users",
    "/no-such-page",
    "/healthz",
    "/api/v1/services",
];

/// The headers every response must carry, as (name, value); failures listed.
fn check(path: &str, headers: &http::HeaderMap, hsts: bool, failures: &mut Vec<String>) {
    let want = [
        ("content-security-policy", Some(CSP)),
        ("x-content-type-options", Some("nosniff")),
        ("referrer-policy", Some("same-origin")),
        ("strict-transport-security", hsts.then_some(HSTS)),
    ];
    for (name, value) in want {
        let got = headers.get(name).and_then(|v| v.to_str().ok());
        if got != value {
            failures.push(format!("{path}: {name} is {got:?}, expected {value:?}"));
        }
    }
}

#[test]
fn the_csp_allows_no_inline_script_and_no_framing() {
    let directives: Vec<&str> = CSP.split(';').map(str::trim).collect();
    for needed in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(directives.contains(&needed), "{needed} missing from {CSP}");
    }
    assert!(!CSP.contains("unsafe-inline") && !CSP.contains("unsafe-eval"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_carries_the_security_headers_signed_in_and_anonymous() -> Result<()> {
    let server = Server::start(false).await?;
    let mut admin = server.signed_in(Role::Admin).await?;
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut failures = Vec::new();
    for path in PAGES {
        let r = admin
            .http
            .get(format!("{}{path}", server.base))
            .header(
                "cookie",
                format!("corsair_session={}", admin.cookies["corsair_session"]),
            )
            .send()
            .await?;
        // The admin sees the pages themselves (not a login redirect).
        let expected_redirect = *path == "/";
        let status = r.status().as_u16();
        if expected_redirect != (status == 303) {
            failures.push(format!("{path} as admin: status {status}"));
        }
        check(path, r.headers(), false, &mut failures);
        let r = anonymous
            .get(format!("{}{path}", server.base))
            .send()
            .await?;
        check(
            &format!("{path} (anonymous)"),
            r.headers(),
            false,
            &mut failures,
        );
    }
    // The answers to forms too: a flash redirect, a rendered error page.
    let page = admin
        .post(
            "/services/payments-api/origins",
            &[("pattern", "https://x.example.com"), ("reason", "r")],
        )
        .await?;
    assert_eq!(page.status, 303, "{}", page.body);
    let r = admin
        .http
        .post(format!("{}/services/payments-api/origins", server.base))
        .header(
            "cookie",
            format!("corsair_session={}", admin.cookies["corsair_session"]),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf=forged&pattern=https%3A%2F%2Fy.example.com&reason=r")
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    check("forged form", r.headers(), false, &mut failures);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

#[tokio::test]
async fn hsts_only_with_secure_cookies() -> Result<()> {
    let db = TestDb::new().await?;
    let keys = SigningKey::from_bytes(&[7; 32]);
    let mut failures = Vec::new();
    for secure in [false, true] {
        let app =
            http_app(AppState::new(db.store.clone(), keys.clone()).with_secure_cookies(secure));
        for path in ["/login", "/services", "/no-such-page", "/api/v1/services"] {
            let request = http::Request::get(path).body(axum::body::Body::empty())?;
            let response = app.clone().oneshot(request).await?;
            check(
                &format!("{path} secure={secure}"),
                response.headers(),
                secure,
                &mut failures,
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

/// JavaScript run on each page: the inline content the CSP would block
/// (and so must not exist), whether the stylesheet applied, and whether
/// `app.js` ran (it marks `<html>` once loaded).
const PROBE: &str = r#"
const inline = [];
document.querySelectorAll('script:not([src]), style, [style]').forEach(e => inline.push(e.outerHTML.slice(0, 80)));
document.querySelectorAll('*').forEach(e => {
  for (const a of e.attributes) if (a.name.startsWith('on')) inline.push(e.tagName + ' ' + a.name);
  for (const a of e.attributes) if (/^\s*javascript:/i.test(a.value)) inline.push(e.tagName + ' ' + a.name);
});
const skip = document.querySelector('.skip');
return {
  inline,
  styled: skip ? getComputedStyle(skip).position === 'absolute' : false,
  scripted: document.documentElement.dataset.js === 'ready',
};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_works_under_the_csp_in_chromium() -> Result<()> {
    let server = Server::start(false).await?;
    let driver = Driver::start().await?;
    let c = browser::session(&driver).await?;
    let result = async {
        c.goto(&format!("{}/login", server.base)).await?;
        let mut failures = Vec::new();
        let mut probe = |path: String, v: serde_json::Value| {
            if v["inline"].as_array().is_none_or(|a| !a.is_empty()) {
                failures.push(format!("{path}: inline content {}", v["inline"]));
            }
            if v["styled"] != true {
                failures.push(format!("{path}: app.css not applied"));
            }
            if v["scripted"] != true {
                failures.push(format!("{path}: app.js did not run"));
            }
        };
        probe("/login".into(), c.execute(PROBE, vec![]).await?);
        browser::login(&c, &server.base, &email(Role::Admin), PASSWORD).await?;
        for path in PAGES.iter().filter(|p| {
            !p.starts_with("/static")
                && !p.starts_with("/api")
                && **p != "/healthz"
                && **p != "/audit.csv"
        }) {
            c.goto(&format!("{}{path}", server.base)).await?;
            probe(path.to_string(), c.execute(PROBE, vec![]).await?);
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        // app.js behaviour under the CSP: typing a date picks the custom range.
        c.goto(&format!("{}/blocked", server.base)).await?;
        c.execute(
            "const i = document.querySelector('#blocked-filter input[type=datetime-local]');\
             i.value = '2026-01-01T00:00:00'; i.dispatchEvent(new Event('change'));",
            vec![],
        )
        .await?;
        let range = c
            .find(Locator::Css("#blocked-filter select[name=range]"))
            .await?
            .prop("value")
            .await?
            .context("no range value")?;
        assert_eq!(range, "custom", "app.js did not run on /blocked");
        browser::shot(&c, "headers-blocked").await?;
        anyhow::Ok(())
    }
    .await;
    c.finish("headers-failure", result).await
}
