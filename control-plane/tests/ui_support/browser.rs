//! The browser helper (`corsair_test_support::browser`: chromedriver,
//! headless Chromium, a fresh profile per session) with this crate's
//! artifacts directory, `target/tmp/browser-artifacts/`, and the admin UI's
//! login form.

use anyhow::Result;
pub use corsair_test_support::browser::{Artifacts, Driver, Session, fill, wait_for};
use fantoccini::{Client, Locator};

/// This crate's screenshot directory, `target/tmp/browser-artifacts/`.
pub fn artifacts() -> Result<Artifacts> {
    corsair_test_support::browser::artifacts(env!("CARGO_TARGET_TMPDIR"))
}

/// A fresh session; its screenshots go to [`artifacts`].
pub async fn session(driver: &Driver) -> Result<Session> {
    driver.session(&artifacts()?).await
}

/// Saves a screenshot as `NAME.png` in the artifacts directory.
pub async fn shot(c: &Session, name: &str) -> Result<()> {
    c.shot(name).await
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
