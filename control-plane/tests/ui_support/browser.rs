//! Headless Chromium through chromedriver for the UI browser tests (the
//! same setup as `ui_browser.rs`): a missing browser is an error, never a
//! skip. Screenshots go to `target/tmp/browser-artifacts/`.

use anyhow::{Context, Result, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

/// Where screenshots go.
pub fn artifacts() -> Result<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-artifacts");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn binary(env: &str, names: &[&str]) -> Result<PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Ok(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        if let Some(found) = std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
        {
            return Ok(found);
        }
    }
    bail!("none of {names:?} found: apt-get install -y chromium chromium-driver, or set {env}")
}

/// chromedriver on a free loopback port; killed on drop.
pub struct Driver {
    _child: Child,
    url: String,
}

impl Driver {
    /// Starts chromedriver and waits until it answers.
    pub async fn start() -> Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port();
        let path = binary("CORSAIR_CHROMEDRIVER", &["chromedriver"])?;
        let child = Command::new(&path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} (install chromium-driver)", path.display()))?;
        let url = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let up = reqwest::get(format!("{url}/status"))
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("chromedriver did not answer within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self { _child: child, url })
    }

    /// A fresh headless Chromium session with its own profile directory.
    pub async fn session(&self, profile: &Path) -> Result<Client> {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": binary("CORSAIR_CHROMIUM", &["chromium", "chromium-browser", "google-chrome"])?,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--window-size=1280,1000", format!("--user-data-dir={}", profile.display())],
            }),
        );
        Ok(ClientBuilder::rustls()?
            .capabilities(caps)
            .connect(&self.url)
            .await?)
    }
}

/// Saves a screenshot as `NAME.png` in the artifacts directory.
pub async fn shot(c: &Client, name: &str) -> Result<()> {
    let png = c.screenshot().await?;
    std::fs::write(artifacts()?.join(format!("{name}.png")), png)?;
    Ok(())
}

/// Replaces the text of the input matched by `css`.
pub async fn fill(c: &Client, css: &str, text: &str) -> Result<()> {
    let e = c
        .find(Locator::Css(css))
        .await
        .with_context(|| format!("no {css}"))?;
    e.clear().await?;
    e.send_keys(text).await?;
    Ok(())
}

/// The element matched by `css`, waiting up to 10 s for it.
pub async fn wait_for(c: &Client, css: &str) -> Result<fantoccini::elements::Element> {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .with_context(|| format!("no {css} within 10 s"))
}

/// Signs in through the login form.
pub async fn login(c: &Client, base: &str, email: &str, password: &str) -> Result<()> {
    c.goto(&format!("{base}/login")).await?;
    fill(c, "input[name=email]", email).await?;
    fill(c, "input[name=password]", password).await?;
    c.find(Locator::Css("#login-form button[type=submit]"))
        .await?
        .click()
        .await?;
    wait_for(c, "#logout").await?;
    Ok(())
}
