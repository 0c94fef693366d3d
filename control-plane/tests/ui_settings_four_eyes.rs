//! Four eyes on widening settings changes in the admin UI: the settings form
//! says a widening change awaits a second approver, the service page and the
//! approvals queue list it (with "you" on one's own), the requester's own
//! confirmation is refused, and another approver's applies it. Once with
//! the form-filling client, once in real headless Chromium (screenshots in
//! `target/tmp/browser-artifacts/ui-settings-*.png`).

mod ui_support;

use anyhow::{Context, Result, bail};
use corsair_agent::engine::Mode;
use corsair_control_plane::auth::Role;
use fantoccini::{Client, Locator};
use ui_support::browser::{self, Driver, Session};
use ui_support::{PASSWORD, Server, email};

const SERVICE: &str = "payments-api";

/// The settings form with `mode` and `allow_credentials` (on when `creds`).
fn settings_form(mode: &'static str, creds: bool) -> Vec<(&'static str, &'static str)> {
    let mut fields = vec![
        ("allow_methods", ""),
        ("allow_headers", ""),
        ("expose_headers", ""),
        ("max_age_secs", "0"),
        ("mode", mode),
    ];
    if creds {
        fields.push(("allow_credentials", "on"));
    }
    fields
}

async fn mode(server: &Server) -> Result<Mode> {
    Ok(server.db.store.get_service(SERVICE).await?.settings.mode)
}

#[tokio::test]
async fn the_settings_form_holds_a_widening_change_for_another_approver() -> Result<()> {
    let server = Server::start(false).await?;
    let mut approver = server.signed_in(Role::Approver).await?;
    let path = format!("/services/{SERVICE}/settings");

    // A widening change: held, and the form says so.
    let r = approver
        .post(&path, &settings_form("report_only", false))
        .await?;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = approver.follow(&r).await?;
    assert!(
        page.body.contains("awaits a second approver"),
        "{}",
        page.body
    );
    assert_eq!(mode(&server).await?, Mode::Enforce);
    let held = server
        .db
        .store
        .pending_settings_changes(Some(SERVICE))
        .await?;
    let id = held.first().context("a pending change")?.id;
    assert!(
        page.body
            .contains(&format!("data-settings-change=\"{id}\"")),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(&format!(
            "{} <span class=\"badge own\">you</span>",
            email(Role::Approver)
        )),
        "{}",
        page.body
    );

    // The requester's own confirmation is refused, with the reason.
    let confirm = format!("/services/{SERVICE}/settings-changes/{id}/confirm");
    let r = approver.post(&confirm, &[("next", "/approvals")]).await?;
    assert_eq!(r.status, 303, "{}", r.body);
    let shown = approver.follow(&r).await?;
    assert!(shown.body.contains("four-eyes"), "{}", shown.body);
    assert_eq!(mode(&server).await?, Mode::Enforce);

    // Another approver sees it on the approvals page (not as theirs) and
    // confirms it there.
    let mut admin = server.signed_in(Role::Admin).await?;
    let queue = admin.get("/approvals").await?;
    assert!(
        queue
            .body
            .contains(&format!("data-settings-change=\"{id}\"")),
        "{}",
        queue.body
    );
    assert!(
        !queue.body.contains(&format!(
            "{} <span class=\"badge own\">you</span>",
            email(Role::Approver)
        )),
        "{}",
        queue.body
    );
    let r = admin.post(&confirm, &[("next", "/approvals")]).await?;
    assert_eq!(r.location, "/approvals");
    let shown = admin.follow(&r).await?;
    assert!(
        shown.body.contains("confirmed and applied"),
        "{}",
        shown.body
    );
    assert_eq!(mode(&server).await?, Mode::ReportOnly);

    // A narrowing change from the form applies at once.
    let r = approver
        .post(&path, &settings_form("enforce", false))
        .await?;
    let page = approver.follow(&r).await?;
    assert!(page.body.contains("Settings saved"), "{}", page.body);
    assert_eq!(mode(&server).await?, Mode::Enforce);

    // Dismissed from the service page: nothing applied.
    let r = approver
        .post(&path, &settings_form("enforce", true))
        .await?;
    approver.follow(&r).await?;
    let id = server
        .db
        .store
        .pending_settings_changes(Some(SERVICE))
        .await?
        .first()
        .context("a pending change")?
        .id;
    let r = admin
        .post(
            &format!("/services/{SERVICE}/settings-changes/{id}/dismiss"),
            &[("next", "/services/payments-api")],
        )
        .await?;
    let shown = admin.follow(&r).await?;
    assert!(shown.body.contains("dismissed"), "{}", shown.body);
    assert!(
        !server
            .db
            .store
            .get_service(SERVICE)
            .await?
            .settings
            .allow_credentials
    );
    Ok(())
}

async fn login(c: &Client, base: &str, role: Role) -> Result<()> {
    browser::login(c, base, &email(role), PASSWORD).await
}

async fn flash(c: &Client) -> Result<String> {
    Ok(browser::wait_for(c, ".flash").await?.text().await?)
}

/// Clicks `css` after removing the current flash, so the next one read
/// answers this click.
async fn click(c: &Client, css: &str) -> Result<()> {
    c.execute(
        "document.querySelectorAll('.flash').forEach(e => e.remove());",
        vec![],
    )
    .await?;
    c.find(Locator::Css(css))
        .await
        .with_context(|| format!("no {css}"))?
        .click()
        .await?;
    Ok(())
}

async fn shot(c: &Session, name: &str) -> Result<()> {
    browser::shot(c, &format!("ui-settings-{name}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_eyes_on_settings_in_a_real_browser() -> Result<()> {
    if corsair_test_support::browser::skip_requested() {
        return Ok(());
    }
    let server = Server::start(false).await?;
    let base = server.base.clone();
    let driver = Driver::start().await?;
    let c = browser::session(&driver).await?;
    let result = async {
        // The approver switches the service to report-only: held.
        login(&c, &base, Role::Approver).await?;
        c.goto(&format!("{base}/services/{SERVICE}")).await?;
        c.find(Locator::Css("#mode"))
            .await?
            .select_by_value("report_only")
            .await?;
        click(&c, "#settings-form button[type=submit]").await?;
        let msg = flash(&c).await?;
        assert!(msg.contains("awaits a second approver"), "{msg}");
        let row = browser::wait_for(&c, "#pending-settings tr[data-settings-change]").await?;
        let text = row.text().await?;
        assert!(text.contains("you"), "{text}");
        assert!(text.contains("report_only"), "{text}");
        shot(&c, "held").await?;
        assert_eq!(mode(&server).await?, Mode::Enforce);

        // Their own confirmation is refused.
        click(
            &c,
            "#pending-settings tr[data-settings-change] button.danger",
        )
        .await?;
        let msg = flash(&c).await?;
        assert!(msg.contains("four-eyes"), "{msg}");
        assert_eq!(mode(&server).await?, Mode::Enforce);
        c.find(Locator::Css("#logout")).await?.click().await?;
        browser::wait_for(&c, "#login-form").await?;

        // An admin (another person) confirms it on the approvals page.
        login(&c, &base, Role::Admin).await?;
        c.goto(&format!("{base}/approvals")).await?;
        let row = browser::wait_for(&c, "#settings-changes tr[data-settings-change]").await?;
        let text = row.text().await?;
        assert!(!text.contains("you"), "{text}");
        shot(&c, "approvals").await?;
        click(
            &c,
            "#settings-changes tr[data-settings-change] button.danger",
        )
        .await?;
        let msg = flash(&c).await?;
        assert!(msg.contains("confirmed and applied"), "{msg}");
        assert_eq!(mode(&server).await?, Mode::ReportOnly);
        c.goto(&format!("{base}/services/{SERVICE}")).await?;
        let selected = c
            .find(Locator::Css("#mode option[selected]"))
            .await?
            .attr("value")
            .await?;
        if selected.as_deref() != Some("report_only") {
            bail!("the form shows mode {selected:?}");
        }
        shot(&c, "applied").await?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    c.finish("ui-settings-failure", result).await
}
