//! Headless Chromium for the browser tests, the one way every test starts
//! it: the machine's Chromium (never a downloaded one) with the flags of
//! `STACK.md` and a fresh profile directory per run. Two ways to use it:
//!
//! - [`Driver`] / [`Session`]: chromedriver on a free loopback port and a
//!   WebDriver session (fantoccini) that clicks through pages; a failing run
//!   leaves a screenshot ([`Session::finish`]);
//! - [`dump_dom`] / [`screenshot`]: one Chromium process per page load that
//!   lets the page's scripts finish (virtual time) and prints the DOM or
//!   saves a PNG.
//!
//! A missing browser is an error, never a silent skip; a test may offer
//! `CORSAIR_SKIP_BROWSER_TESTS=1` to skip on purpose ([`skip_requested`]).
//! Screenshots go to `target/tmp/browser-artifacts/` ([`artifacts`]).

use anyhow::{Context, Result, bail};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// The headless flags every run uses (`STACK.md`); the profile directory
/// (`--user-data-dir`) is added per run.
pub const FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// Maps every `*.test` host name to 127.0.0.1, so one loopback server can
/// be reached as several distinct origins.
pub const RESOLVE_TEST_HOSTS: &str = "--host-resolver-rules=MAP *.test 127.0.0.1";

/// How long one page load in [`dump_dom`] or [`screenshot`] may take.
const PAGE_DEADLINE: Duration = Duration::from_secs(60);

/// How long [`wait_for`] waits for an element.
pub const ELEMENT_DEADLINE: Duration = Duration::from_secs(10);

/// True (and says so) when `CORSAIR_SKIP_BROWSER_TESTS=1` asks to skip.
pub fn skip_requested() -> bool {
    let skip = std::env::var_os("CORSAIR_SKIP_BROWSER_TESTS").is_some_and(|v| v == "1");
    if skip {
        eprintln!("SKIPPED on request: CORSAIR_SKIP_BROWSER_TESTS=1");
    }
    skip
}

/// The screenshot directory, `<target tmpdir>/browser-artifacts` (a type
/// of its own, so a profile directory cannot be passed for it by mistake).
#[derive(Debug, Clone)]
pub struct Artifacts(PathBuf);

impl Artifacts {
    /// Where a screenshot called `name` goes: `<dir>/<name>.png`.
    pub fn png(&self, name: &str) -> PathBuf {
        self.0.join(format!("{name}.png"))
    }
}

/// The screenshot directory `<target_tmpdir>/browser-artifacts`, created;
/// pass `env!("CARGO_TARGET_TMPDIR")`.
pub fn artifacts(target_tmpdir: &str) -> Result<Artifacts> {
    let dir = Path::new(target_tmpdir).join("browser-artifacts");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(Artifacts(dir))
}

/// `$env` if set, else the first of `names` on `PATH`.
fn binary(env: &str, names: &[&str]) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Ok(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    names
        .iter()
        .find_map(|name| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
        .with_context(|| {
            format!(
                "none of {names:?} found: apt-get install -y chromium chromium-driver, or set \
                 {env} (or CORSAIR_SKIP_BROWSER_TESTS=1 where a test offers it)"
            )
        })
}

/// The Chromium binary: `$CORSAIR_CHROMIUM`, else `chromium`,
/// `chromium-browser` or `google-chrome` on `PATH`.
pub fn chromium() -> Result<PathBuf> {
    binary(
        "CORSAIR_CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    )
}

/// The chromedriver binary: `$CORSAIR_CHROMEDRIVER`, else `chromedriver` on `PATH`.
pub fn chromedriver() -> Result<PathBuf> {
    binary("CORSAIR_CHROMEDRIVER", &["chromedriver"])
}

/// Loads `url` once in headless Chromium, lets its scripts finish (virtual
/// time waits for pending fetches) and returns the DOM. `extra` flags go
/// after [`FLAGS`] (e.g. [`RESOLVE_TEST_HOSTS`]).
pub async fn dump_dom(url: &str, extra: &[&str]) -> Result<String> {
    let out = run_once(url, extra, "--dump-dom".into()).await?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Like [`dump_dom`], saving a PNG of the finished page at `path` instead.
pub async fn screenshot(url: &str, extra: &[&str], path: &Path) -> Result<()> {
    run_once(url, extra, format!("--screenshot={}", path.display())).await?;
    Ok(())
}

async fn run_once(url: &str, extra: &[&str], output: String) -> Result<std::process::Output> {
    let profile = tempfile::tempdir()?;
    let mut command = Command::new(chromium()?);
    command
        .args(FLAGS)
        .args(["--virtual-time-budget=15000", "--window-size=1100,700"])
        .args(extra)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(output)
        .arg(url)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(PAGE_DEADLINE, command.output())
        .await
        .with_context(|| format!("Chromium did not finish {url} within {PAGE_DEADLINE:?}"))??;
    if !out.status.success() {
        bail!(
            "Chromium failed on {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// chromedriver on a free loopback port; killed on drop.
pub struct Driver {
    _child: Child,
    url: String,
}

impl Driver {
    /// Starts chromedriver and waits until it answers `/status`.
    pub async fn start() -> Result<Self> {
        let port = crate::process::free_port()?;
        let path = chromedriver()?;
        let child = Command::new(&path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} (install chromium-driver)", path.display()))?;
        let url = format!("http://127.0.0.1:{port}");
        crate::eventually("chromedriver to answer /status", || async {
            reqwest::get(format!("{url}/status"))
                .await
                .and_then(|r| r.error_for_status())
        })
        .await?;
        Ok(Self { _child: child, url })
    }

    /// A fresh headless Chromium session with a profile directory of its
    /// own; screenshots go to `artifacts` (see [`artifacts`]).
    pub async fn session(&self, artifacts: &Artifacts) -> Result<Session> {
        let profile = tempfile::tempdir()?;
        let mut args: Vec<String> = FLAGS.iter().map(|f| f.to_string()).collect();
        args.push("--window-size=1280,1000".into());
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": chromium()?, "args": args }),
        );
        let client = ClientBuilder::rustls()?
            .capabilities(caps)
            .connect(&self.url)
            .await
            .context("opening a chromedriver session")?;
        Ok(Session {
            client,
            artifacts: artifacts.clone(),
            _profile: profile,
        })
    }
}

/// A WebDriver session (derefs to fantoccini's [`Client`]) with its own
/// profile directory, removed when dropped.
pub struct Session {
    client: Client,
    artifacts: Artifacts,
    _profile: tempfile::TempDir,
}

impl Deref for Session {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Session {
    /// Saves a screenshot of the current page as `<artifacts>/NAME.png`.
    pub async fn shot(&self, name: &str) -> Result<()> {
        let png = self.client.screenshot().await?;
        std::fs::write(self.artifacts.png(name), png)?;
        Ok(())
    }

    /// Ends the session with a test's `result`: a failure first leaves a
    /// screenshot `<artifacts>/<failure_shot>.png`. Returns `result`.
    pub async fn finish<T>(self, failure_shot: &str, result: Result<T>) -> Result<T> {
        if result.is_err() {
            let _ = self.shot(failure_shot).await;
        }
        self.client.close().await?;
        result
    }
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

/// The element matched by `css`, waiting up to [`ELEMENT_DEADLINE`] for it.
pub async fn wait_for(c: &Client, css: &str) -> Result<Element> {
    c.wait()
        .at_most(ELEMENT_DEADLINE)
        .for_element(Locator::Css(css))
        .await
        .with_context(|| format!("no {css} within {ELEMENT_DEADLINE:?}"))
}
