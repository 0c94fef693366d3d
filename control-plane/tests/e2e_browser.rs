//! A real browser, a real `corsair-control-plane dev`: the demo page (origin
//! A) calls the agent (origin B) with `fetch()`. Before the demo origin is
//! approved Chromium refuses every call; after approval over the REST API the
//! simple GET, the preflighted PUT and the credentialed GET all succeed.

mod e2e_support;

use anyhow::{Context, Result, bail};
use corsair_control_plane::testing::TestDb;
use corsair_test_support::browser;
use corsair_test_support::process::Process;
use e2e_support::eventually;
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;
use tokio::process::Command;

/// The calls the demo page makes, by element id.
const CALLS: [&str; 3] = ["simple-get", "preflight-put", "credentialed"];

/// The demo page's DOM once its scripts have finished.
async fn render(url: &str) -> Result<String> {
    browser::dump_dom(url, &[]).await
}

/// The demo page's verdict per call: "allowed" / "blocked".
fn verdicts(dom: &str) -> HashMap<&'static str, String> {
    CALLS
        .iter()
        .map(|id| {
            let marker = format!("id=\"{id}-result\" class=\"");
            let class = dom
                .find(&marker)
                .map(|at| &dom[at + marker.len()..])
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("missing")
                .to_string();
            (*id, class)
        })
        .collect()
}

/// `corsair-control-plane dev` as a child process, with its banner parsed.
struct Dev {
    process: Process,
    banner: HashMap<String, String>,
}

impl Dev {
    async fn start(database_url: &str, state_dir: &Path) -> Result<Self> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_corsair-control-plane"));
        command
            .arg("dev")
            .arg("--state-dir")
            .arg(state_dir)
            .args([
                "--http",
                "127.0.0.1:0",
                "--grpc",
                "127.0.0.1:0",
                "--agent",
                "127.0.0.1:0",
            ])
            .args(["--agent-admin", "127.0.0.1:0", "--demo", "127.0.0.1:0"])
            .env("DATABASE_URL", database_url)
            .env("RUST_LOG", "warn");
        let mut process = Process::spawn("dev", command, &state_dir.join("dev.log"))?;
        // The banner ends with the demo origin's pending request.
        process.wait_log("origin request #").await?;
        let banner = parse_banner(&process.log());
        Ok(Self { process, banner })
    }

    fn get(&self, key: &str) -> Result<&str> {
        self.banner
            .get(key)
            .map(String::as_str)
            .with_context(|| format!("banner has no {key:?}: {:?}", self.banner))
    }

    /// SIGTERM, then wait for a clean exit.
    async fn stop(mut self) -> Result<()> {
        let status = self.process.stop().await?;
        if !status.success() {
            bail!("dev exited with {status}:\n{}", self.process.log());
        }
        Ok(())
    }
}

/// "Label words  URL" lines by label, the admin password and the number of
/// the demo origin's pending request.
fn parse_banner(text: &str) -> HashMap<String, String> {
    let mut banner = HashMap::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let label_end = words
            .iter()
            .position(|w| w.starts_with("http://") || w.contains('@'));
        if let Some(at) = label_end.filter(|at| *at > 0) {
            banner.insert(words[..at].join(" "), words[at].to_string());
            if words[..at].join(" ") == "Admin login" {
                banner.insert(
                    "password".into(),
                    words.get(at + 2).unwrap_or(&"").to_string(),
                );
            }
        }
        if let Some(rest) = line.split("origin request #").nth(1) {
            banner.insert(
                "request".into(),
                rest.split_whitespace().next().unwrap_or("").to_string(),
            );
        }
    }
    banner
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_fetch_is_refused_until_the_origin_is_approved() -> Result<()> {
    let db = TestDb::new().await?;
    let state = tempfile::tempdir()?;
    let dev = Dev::start(&db.url, state.path()).await?;
    let api = format!("{}/", dev.get("Control plane API")?.trim_end_matches('/'));
    let agent = dev.get("Agent proxy")?.to_string();
    let demo = dev.get("Demo page")?.trim_end_matches('/').to_string();
    assert_ne!(
        agent, demo,
        "the page and the agent must be different origins"
    );
    let artifacts = browser::artifacts(env!("CARGO_TARGET_TMPDIR"))?;

    // Before approval: the browser refuses every call.
    let before = verdicts(&render(&format!("{demo}/?autorun")).await?);
    for id in CALLS {
        assert_eq!(before[id], "blocked", "{id} before approval: {before:?}");
    }
    browser::screenshot(
        &format!("{demo}/?autorun"),
        &[],
        &artifacts.png("demo-before-approval"),
    )
    .await?;

    // Approve the demo origin's pending request through the REST API.
    let http = reqwest::Client::new();
    let login: serde_json::Value = http
        .post(format!("{api}login"))
        .json(&json!({"email": dev.get("Admin login")?, "password": dev.get("password")?}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = login["token"].as_str().context("no token")?;
    http.post(format!("{api}origins/{}/approve", dev.get("request")?))
        .bearer_auth(token)
        .json(&json!({"note": "browser test"}))
        .send()
        .await?
        .error_for_status()?;

    // Once the agent has the new policy, the same page succeeds.
    eventually("the agent to grant the demo origin", || async {
        let r = http
            .request(reqwest::Method::OPTIONS, format!("{agent}/api/items/1"))
            .header("origin", &demo)
            .header("access-control-request-method", "PUT")
            .send()
            .await
            .ok()?;
        (r.status() == 204).then_some(())
    })
    .await?;
    let after = verdicts(&render(&format!("{demo}/?autorun")).await?);
    for id in CALLS {
        assert_eq!(after[id], "allowed", "{id} after approval: {after:?}");
    }
    browser::screenshot(
        &format!("{demo}/?autorun"),
        &[],
        &artifacts.png("demo-after-approval"),
    )
    .await?;

    dev.stop().await
}
