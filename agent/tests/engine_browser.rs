//! Real-browser check: headless Chromium runs `fetch()` from pages on
//! several origins against gateways that embed `CorsairLayer`, and the page
//! reports what the browser let through.
//!
//! Covered: a preflighted PUT with an allowed custom header and with a
//! refused one; a credentialed fetch refused where credentials are off and
//! allowed where they are on; an exposed response header readable from
//! script and an unexposed one not; a wildcard subdomain origin allowed and
//! its apex refused. Test host names (`*.test`) map to 127.0.0.1 with
//! Chromium's `--host-resolver-rules`.
//!
//! Needs the machine's Chromium (`apt-get install -y chromium`); a test must
//! not download a browser. Without it the test fails, because a skipped test
//! that passes hides a broken set-up; `CORSAIR_SKIP_BROWSER_TESTS=1` skips it
//! on purpose (and says so).

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use corsair_agent::CorsairLayer;
use corsair_agent::engine::{Policy, PolicySpec};
use corsair_agent::handle::{ActivePolicy, PolicyHandle};
use corsair_test_support::browser;
use std::sync::Arc;
use tokio::net::TcpListener;

const PAGE: &str = r#"<!doctype html><pre id="out">pending</pre><script>
async function t(name, url, opts, check) {
  try { const r = await fetch(url, opts); return name + '=' + (check ? check(r) : r.status); }
  catch (e) { return name + '=blocked'; }
}
(async () => {
  const res = await Promise.all([
    t('simple', API1 + '/data', {}),
    t('put_custom', API1 + '/data', {method: 'PUT', headers: {'X-Custom': '1'}}),
    t('put_denied', API1 + '/data', {method: 'PUT', headers: {'X-Denied': '1'}}),
    t('cred_off', API1 + '/data', {credentials: 'include'}),
    t('cred_on', API2 + '/data', {credentials: 'include'}),
    t('exposed', API1 + '/data', {}, r => String(r.headers.get('x-request-id'))),
    t('unexposed', API1 + '/data', {}, r => String(r.headers.get('x-secret'))),
  ]);
  document.getElementById('out').textContent = res.join(' ');
})();
</script>"#;

async fn serve(listener: TcpListener, app: Router) {
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
}

fn api(spec: PolicySpec) -> Router {
    let policy = Policy::compile(&spec).expect("test policy compiles");
    let handle = PolicyHandle::new();
    handle.store(Some(Arc::new(ActivePolicy {
        service: "api".into(),
        revision: 1,
        policy,
    })));
    let data = || async { ([("x-request-id", "42"), ("x-secret", "s")], "data") };
    Router::new()
        .route("/data", get(data).put(data))
        .layer(CorsairLayer::new(handle))
}

/// Loads `url` in headless Chromium and returns the page's result line.
async fn run_page(url: String) -> String {
    let dom = browser::dump_dom(&url, &[browser::RESOLVE_TEST_HOSTS])
        .await
        .unwrap_or_else(|e| panic!("{url}: {e:#}"));
    let start = dom
        .find("<pre id=\"out\">")
        .map(|i| i + "<pre id=\"out\">".len());
    match start.and_then(|s| dom[s..].find("</pre>").map(|e| dom[s..s + e].to_owned())) {
        Some(line) => line,
        None => panic!("{url}: no result in the DOM:\n{dom}"),
    }
}

fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
        .unwrap_or("missing")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_enforces_what_the_engine_decides() {
    if browser::skip_requested() {
        return;
    }
    // A missing browser fails here, with the command that installs it.
    browser::chromium().expect("Chromium");
    let bind = || TcpListener::bind("127.0.0.1:0");
    let (pages, api1, api2) = (
        bind().await.expect("bind"),
        bind().await.expect("bind"),
        bind().await.expect("bind"),
    );
    let port = |l: &TcpListener| l.local_addr().expect("bound").port();
    let (pp, p1, p2) = (port(&pages), port(&api1), port(&api2));

    serve(
        api1,
        api(PolicySpec {
            origins: vec![
                format!("http://app.corsair.test:{pp}"),
                format!("http://*.wild.test:{pp}"),
            ],
            allow_methods: vec!["PUT".into()],
            allow_headers: vec!["x-custom".into()],
            expose_headers: vec!["x-request-id".into()],
            ..PolicySpec::default()
        }),
    )
    .await;
    serve(
        api2,
        api(PolicySpec {
            origins: vec![format!("http://app.corsair.test:{pp}")],
            allow_credentials: true,
            // `.test` names are not loopback by name; this is a test rig.
            allow_insecure_http: true,
            ..PolicySpec::default()
        }),
    )
    .await;
    let page = format!(
        "<script>const API1 = 'http://api.corsair.test:{p1}', API2 = 'http://api.corsair.test:{p2}';</script>{PAGE}"
    );
    serve(
        pages,
        Router::new().route("/", get(move || std::future::ready(Html(page.clone())))),
    )
    .await;

    let (app, sub, apex) = tokio::join!(
        run_page(format!("http://app.corsair.test:{pp}/")),
        run_page(format!("http://x.wild.test:{pp}/")),
        run_page(format!("http://wild.test:{pp}/")),
    );
    eprintln!("app.corsair.test: {app}\nx.wild.test: {sub}\nwild.test: {apex}");
    let expect = [
        (&app, "simple", "200"),
        (&app, "put_custom", "200"),
        (&app, "put_denied", "blocked"),
        (&app, "cred_off", "blocked"),
        (&app, "cred_on", "200"),
        (&app, "exposed", "42"),
        (&app, "unexposed", "null"),
        (&sub, "simple", "200"),
        (&sub, "put_custom", "200"),
        (&sub, "cred_on", "blocked"),
        (&apex, "simple", "blocked"),
        (&apex, "put_custom", "blocked"),
    ];
    let failures: Vec<String> = expect
        .iter()
        .filter(|(line, name, want)| field(line, name) != *want)
        .map(|(line, name, want)| format!("{name}: want {want}, page said: {line}"))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
