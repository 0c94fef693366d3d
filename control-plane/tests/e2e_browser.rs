//! A real browser, a real `corsair-control-plane dev`: the demo page (origin
//! A) calls the agent (origin B) with `fetch()`. Before the demo origin is
//! approved Chromium refuses every call; after approval over the REST API the
//! simple GET, the preflighted PUT and the credentialed GET all succeed.

mod e2e_support;

use anyhow::{Context, Result, bail};
use corsair_control_plane::testing::TestDb;
use e2e_support::eventually;
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The calls the demo page makes, by element id.
const CALLS: [&str; 3] = ["simple-get", "preflight-put", "credentialed"];

fn chromium() -> Result<PathBuf> {
    if let Ok(path) = std::env::var("CORSAIR_CHROMIUM") {
        return Ok(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Some(found) = std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
        {
            return Ok(found);
        }
    }
    bail!("no Chromium found: install it (apt-get install -y chromium) or set CORSAIR_CHROMIUM")
}

/// Loads `url` in headless Chromium, lets its scripts finish (virtual time
/// waits for pending fetches), and returns the DOM. With `screenshot`, also
/// saves a PNG there.
async fn render(url: &str, screenshot: Option<&Path>) -> Result<String> {
    let profile = tempfile::tempdir()?;
    let mut cmd = Command::new(chromium()?);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--virtual-time-budget=15000",
        "--window-size=1100,700",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()));
    if let Some(path) = screenshot {
        cmd.arg(format!("--screenshot={}", path.display()));
    } else {
        cmd.arg("--dump-dom");
    }
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        cmd.arg(url).stdin(Stdio::null()).output(),
    )
    .await
    .context("Chromium did not finish")??;
    if !out.status.success() {
        bail!("Chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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
    child: Child,
    banner: HashMap<String, String>,
}

impl Dev {
    async fn start(database_url: &str, state_dir: &Path) -> Result<Self> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_corsair-control-plane"))
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
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut banner = HashMap::new();
        let read = async {
            while let Some(line) = lines.next_line().await? {
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
                    return Ok::<_, anyhow::Error>(());
                }
            }
            bail!("dev exited before printing its banner")
        };
        tokio::time::timeout(Duration::from_secs(60), read)
            .await
            .context("no banner from dev")??;
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child, banner })
    }

    fn get(&self, key: &str) -> Result<&str> {
        self.banner
            .get(key)
            .map(String::as_str)
            .with_context(|| format!("banner has no {key:?}: {:?}", self.banner))
    }

    /// SIGTERM, then wait for a clean exit.
    async fn stop(mut self) -> Result<()> {
        let pid = self.child.id().context("dev already exited")?;
        Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await?;
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .context("dev did not stop")??;
        if !status.success() {
            bail!("dev exited with {status}");
        }
        Ok(())
    }
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
    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-artifacts");
    std::fs::create_dir_all(&artifacts)?;

    // Before approval: the browser refuses every call.
    let before = verdicts(&render(&format!("{demo}/?autorun"), None).await?);
    for id in CALLS {
        assert_eq!(before[id], "blocked", "{id} before approval: {before:?}");
    }
    render(
        &format!("{demo}/?autorun"),
        Some(&artifacts.join("demo-before-approval.png")),
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
    let after = verdicts(&render(&format!("{demo}/?autorun"), None).await?);
    for id in CALLS {
        assert_eq!(after[id], "allowed", "{id} after approval: {after:?}");
    }
    render(
        &format!("{demo}/?autorun"),
        Some(&artifacts.join("demo-after-approval.png")),
    )
    .await?;

    dev.stop().await
}
