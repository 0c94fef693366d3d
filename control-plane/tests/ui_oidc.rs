//! OpenID Connect sign-in end to end: the real `serve` binary with the
//! `--oidc-*` flags, a real certified OpenID Provider (npm `oidc-provider`,
//! installed by `deploy/tools/install-oidc-provider.sh` when missing, run
//! with `node` from `tests/oidc/provider.mjs`), and headless Chromium.
//!
//! Covers: sign-in lands with the mapped role (the highest of several
//! groups wins) and the user shows on the users page with its source; a
//! user with no mapped group is refused with a page saying so; a tampered
//! `state` is refused; an ID token issued for another client (audience) is
//! refused; logout ends the session; with `--disable-local-login` only the
//! break-glass admin may use a password; every sign-in and refusal is in the
//! audit log; discovery failing stops `serve` at start-up with the reason.
//!
//! The control plane is reached as `localhost` and the provider as
//! `127.0.0.1`: two sites, as in production, so the `SameSite` cookie rules
//! apply to the redirects between them. Screenshots go to
//! `target/tmp/browser-artifacts/oidc-*.png`.

mod ui_support;

use anyhow::{Context, Result, bail, ensure};
use corsair_control_plane::auth::Role;
use corsair_control_plane::testing::{TestDb, password_hash};
use corsair_test_support::process::{Process, free_port};
use fantoccini::{Client, Locator};
use std::path::{Path, PathBuf};
use tokio::process::Command;
use ui_support::browser::{self, Driver, Session, fill, wait_for};

const BREAK_GLASS: &str = "breakglass@example.com";
const LOCAL_VIEWER: &str = "viewer@example.com";
const LOCAL_PASSWORD: &str = "correct horse battery staple";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the installer (a no-op once installed); returns the directory
/// holding `node_modules/oidc-provider`.
fn install_provider() -> Result<PathBuf> {
    let script = repo_root().join("deploy/tools/install-oidc-provider.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let printed = String::from_utf8_lossy(&out.stdout);
    let dir = printed.lines().last().unwrap_or_default().trim();
    ensure!(!dir.is_empty(), "{} printed no directory", script.display());
    Ok(PathBuf::from(dir))
}

/// The provider, on `port`, sending browsers back to `redirect_url`.
async fn start_provider(dir: &Path, port: u16, redirect_url: &str, logs: &Path) -> Result<Process> {
    let mut command = Command::new("node");
    command
        .arg(repo_root().join("control-plane/tests/oidc/provider.mjs"))
        .env("OIDC_PROVIDER_DIR", dir)
        .env("OIDC_PORT", port.to_string())
        .env("OIDC_REDIRECT_URL", redirect_url);
    let mut idp = Process::spawn("oidc-provider", command, &logs.join("oidc-provider.log"))?;
    idp.wait_log("listening").await?;
    Ok(idp)
}

/// `serve` on `http_port` with `extra` flags, not waited for.
fn spawn_serve(db: &TestDb, dir: &Path, http_port: u16, extra: &[String]) -> Result<Process> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_corsair-control-plane"));
    command
        .env_remove("CORSAIR_DATABASE_URL")
        .args(["serve", "--database-url", &db.url])
        .args(["--http", &format!("127.0.0.1:{http_port}")])
        .args(["--grpc", &format!("127.0.0.1:{}", free_port()?)])
        .arg("--signing-key-file")
        .arg(dir.join("signing.key"))
        .args(extra);
    Process::spawn(
        "corsair-control-plane serve",
        command,
        &dir.join(format!("serve-{http_port}.log")),
    )
}

/// Clicks "Sign in with your identity provider" on `base`'s login page and
/// signs in at the provider as `login`; returns once back at the control
/// plane, on a page with `#logout` (signed in) or `#login-error` (refused).
async fn provider_sign_in(c: &Client, base: &str, login: &str) -> Result<()> {
    c.goto(&format!("{base}/login")).await?;
    wait_for(c, "#oidc-login").await?.click().await?;
    // The provider's own login page (its development interaction views).
    wait_for(c, "input[name=login]").await?;
    fill(c, "input[name=login]", login).await?;
    fill(c, "input[name=password]", "any password").await?;
    c.find(Locator::Css("button[type=submit]"))
        .await?
        .click()
        .await?;
    wait_for(c, "#logout, #login-error").await?;
    Ok(())
}

async fn text(c: &Client, css: &str) -> Result<String> {
    Ok(wait_for(c, css).await?.text().await?)
}

/// A fresh browser (no provider session left from the previous person).
async fn fresh(driver: &Driver) -> Result<Session> {
    browser::session(driver).await
}

#[tokio::test(flavor = "multi_thread")]
async fn oidc_sign_in_roles_refusals_and_logout_in_chromium() -> Result<()> {
    let provider_dir = tokio::task::spawn_blocking(install_provider).await??;
    let db = TestDb::new().await?;
    let hash = password_hash()?;
    db.store
        .create_user(BREAK_GLASS, &hash, Role::Admin, "test")
        .await?;
    db.store
        .create_user(LOCAL_VIEWER, &hash, Role::Viewer, "test")
        .await?;
    let dir = tempfile::tempdir()?;
    let (idp_port, http_port) = (free_port()?, free_port()?);
    let issuer = format!("http://127.0.0.1:{idp_port}");
    let base = format!("http://localhost:{http_port}");
    let redirect = format!("{base}/login/oidc/callback");
    let _idp = start_provider(&provider_dir, idp_port, &redirect, dir.path()).await?;
    let secret_file = dir.path().join("oidc-client-secret");
    std::fs::write(&secret_file, "corsair-test-secret\n")?;
    let flags: Vec<String> = [
        "--oidc-issuer-url",
        &issuer,
        "--oidc-client-id",
        "corsair",
        "--oidc-client-secret-file",
        &secret_file.display().to_string(),
        "--oidc-redirect-url",
        &redirect,
        "--oidc-scope",
        "groups",
        "--oidc-role-map",
        "corsair-viewers=viewer",
        "--oidc-role-map",
        "corsair-approvers=approver",
        "--oidc-role-map",
        "corsair-admins=admin",
        "--disable-local-login",
        "--break-glass-admin",
        BREAK_GLASS,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut serve = spawn_serve(&db, dir.path(), http_port, &flags)?;
    serve.wait_log("control plane serving").await?;
    let http = reqwest::Client::new();
    let driver = Driver::start().await?;

    // Alice (groups corsair-admins, staff) lands as admin; logout ends it.
    let c = fresh(&driver).await?;
    let result = async {
        provider_sign_in(&c, &base, "alice").await?;
        ensure!(
            c.current_url().await?.path() == "/services",
            "landed on {}",
            c.current_url().await?
        );
        let who = text(&c, ".who").await?;
        ensure!(
            who.contains("alice@example.test") && who.contains("admin"),
            "header: {who}"
        );
        c.goto(&format!("{base}/users")).await?;
        let users = text(&c, "#users").await?;
        let alice = users
            .lines()
            .find(|l| l.contains("alice@example.test"))
            .with_context(|| format!("alice not on the users page:\n{users}"))?;
        ensure!(
            alice.contains("oidc") && alice.contains(&issuer) && alice.contains("alice"),
            "row: {alice}"
        );
        let breakglass = users
            .lines()
            .find(|l| l.contains(BREAK_GLASS))
            .unwrap_or_default();
        ensure!(breakglass.contains("local"), "row: {breakglass}");
        browser::shot(&c, "oidc-users").await?;
        wait_for(&c, "#logout").await?.click().await?;
        wait_for(&c, "#oidc-login").await?;
        c.goto(&format!("{base}/services")).await?;
        wait_for(&c, "#oidc-login").await?;
        ensure!(
            c.current_url().await?.path() == "/login",
            "still signed in after logout"
        );
        Ok(())
    }
    .await;
    c.finish("oidc-alice-failure", result).await?;

    // Carol (corsair-viewers and corsair-approvers): the highest role wins.
    let c = fresh(&driver).await?;
    let result = async {
        provider_sign_in(&c, &base, "carol").await?;
        let who = text(&c, ".who").await?;
        ensure!(
            who.contains("carol@example.test") && who.contains("approver"),
            "header: {who}"
        );
        Ok(())
    }
    .await;
    c.finish("oidc-carol-failure", result).await?;

    // Mallory (marketing only): refused, with a page saying so.
    let c = fresh(&driver).await?;
    let result = async {
        provider_sign_in(&c, &base, "mallory").await?;
        let error = text(&c, "#login-error").await?;
        ensure!(
            error.contains("mallory@example.test")
                && error.contains("none of your groups (marketing)"),
            "{error}"
        );
        browser::shot(&c, "oidc-no-mapped-group").await?;
        c.goto(&format!("{base}/services")).await?;
        wait_for(&c, "#oidc-login").await?;
        Ok(())
    }
    .await;
    c.finish("oidc-mallory-failure", result).await?;

    // A tampered state (valid code, wrong state) is refused.
    http.post(format!("{issuer}/test/tamper-state"))
        .send()
        .await?
        .error_for_status()?;
    let c = fresh(&driver).await?;
    let result = async {
        provider_sign_in(&c, &base, "victor").await?;
        let error = text(&c, "#login-error").await?;
        ensure!(error.contains("state mismatch"), "{error}");
        c.goto(&format!("{base}/services")).await?;
        wait_for(&c, "#oidc-login").await?;
        Ok(())
    }
    .await;
    c.finish("oidc-tampered-state-failure", result).await?;

    // An ID token issued to another client of the provider is refused.
    http.post(format!("{issuer}/test/other-audience"))
        .send()
        .await?
        .error_for_status()?;
    let c = fresh(&driver).await?;
    let result = async {
        provider_sign_in(&c, &base, "victor").await?;
        let error = text(&c, "#login-error").await?;
        ensure!(
            error.contains("ID token was refused") && error.to_lowercase().contains("audience"),
            "{error}"
        );
        browser::shot(&c, "oidc-other-audience").await?;
        c.goto(&format!("{base}/services")).await?;
        wait_for(&c, "#oidc-login").await?;
        Ok(())
    }
    .await;
    c.finish("oidc-other-audience-failure", result).await?;

    // Passwords are off, except for the break-glass admin.
    let c = fresh(&driver).await?;
    let result = async {
        c.goto(&format!("{base}/login")).await?;
        wait_for(&c, "#break-glass summary").await?.click().await?;
        fill(&c, "input[name=email]", LOCAL_VIEWER).await?;
        fill(&c, "input[name=password]", LOCAL_PASSWORD).await?;
        c.find(Locator::Css("#login-form button[type=submit]"))
            .await?
            .click()
            .await?;
        let error = text(&c, "#login-error").await?;
        ensure!(error.contains("Password sign-in is turned off"), "{error}");
        c.goto(&format!("{base}/login")).await?;
        wait_for(&c, "#break-glass summary").await?.click().await?;
        fill(&c, "input[name=email]", BREAK_GLASS).await?;
        fill(&c, "input[name=password]", LOCAL_PASSWORD).await?;
        c.find(Locator::Css("#login-form button[type=submit]"))
            .await?
            .click()
            .await?;
        let who = text(&c, ".who").await?;
        ensure!(
            who.contains(BREAK_GLASS) && who.contains("admin"),
            "header: {who}"
        );
        Ok(())
    }
    .await;
    c.finish("oidc-break-glass-failure", result).await?;
    let api_login = http
        .post(format!("http://127.0.0.1:{http_port}/api/v1/login"))
        .json(&serde_json::json!({ "email": LOCAL_VIEWER, "password": LOCAL_PASSWORD }))
        .send()
        .await?;
    ensure!(
        api_login.status() == 401,
        "REST login with passwords off: {}",
        api_login.status()
    );

    // Every sign-in and refusal is in the audit log.
    let audit = db.store.list_audit(None, 1000).await?;
    let rows = |action: &str| -> Vec<String> {
        audit
            .iter()
            .filter(|e| e.action == action)
            .map(|e| format!("{} {}", e.actor, e.after.clone().unwrap_or_default()))
            .collect()
    };
    let signed_in = rows("auth.oidc.sign_in");
    ensure!(signed_in.len() == 2, "sign-ins: {signed_in:?}");
    ensure!(
        signed_in
            .iter()
            .any(|r| r.starts_with("alice@example.test") && r.contains("\"admin\"")),
        "{signed_in:?}"
    );
    let refused = rows("auth.oidc.refused");
    ensure!(refused.len() == 3, "refusals: {refused:?}");
    ensure!(
        refused
            .iter()
            .any(|r| r.starts_with("mallory@example.test") && r.contains("marketing")),
        "{refused:?}"
    );
    ensure!(
        refused
            .iter()
            .any(|r| r.starts_with("anonymous") && r.contains("state mismatch")),
        "{refused:?}"
    );
    ensure!(
        refused.iter().any(|r| r.contains("audience")),
        "{refused:?}"
    );
    let created = rows("user.create");
    ensure!(
        created.iter().filter(|r| r.starts_with("oidc ")).count() == 2,
        "{created:?}"
    );
    ensure!(
        rows("auth.break_glass").len() == 1,
        "{:?}",
        rows("auth.break_glass")
    );
    serve.stop().await?;
    Ok(())
}

#[tokio::test]
async fn serve_stops_at_start_up_when_discovery_fails() -> Result<()> {
    let db = TestDb::new().await?;
    let dir = tempfile::tempdir()?;
    let http_port = free_port()?;
    // Nothing listens there.
    let issuer = format!("http://127.0.0.1:{}", free_port()?);
    let flags: Vec<String> = [
        "--oidc-issuer-url",
        &issuer,
        "--oidc-client-id",
        "corsair",
        "--oidc-redirect-url",
        &format!("http://localhost:{http_port}/login/oidc/callback"),
        "--oidc-role-map",
        "admins=admin",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut serve = spawn_serve(&db, dir.path(), http_port, &flags)?;
    serve.wait_log("OpenID Connect discovery at").await?;
    let status = serve.stop().await?;
    ensure!(!status.success(), "serve kept running: {}", serve.log());
    ensure!(
        !serve.log().contains("control plane serving"),
        "{}",
        serve.log()
    );
    ensure!(serve.log().contains(&issuer), "{}", serve.log());
    Ok(())
}
