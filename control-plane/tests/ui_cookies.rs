//! Cookies end to end over a real socket (issue 11, item 4): a tampered
//! session cookie is refused on the UI and the API, a CSRF field of the
//! wrong length or value is refused, and the flash message survives its
//! percent-encoded cookie (a garbage flash cookie is ignored).

mod ui_support;

use anyhow::{Context, Result};
use corsair_control_plane::auth::Role;
use ui_support::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_cookies_and_tokens_are_refused() -> Result<()> {
    let server = Server::start(false).await?;
    let mut user = server.signed_in(Role::Requester).await?;
    let session = user.cookies["corsair_session"].clone();
    assert_eq!(user.get("/services").await?.status, 200);

    // One character changed in the payload, or in the signature.
    let (head, rest) = session.split_once('.').context("a JWT")?;
    let (payload, signature) = rest.split_once('.').context("a JWT")?;
    let flip = |s: &str| {
        let mut b = s.as_bytes().to_vec();
        b[3] = if b[3] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap_or_default()
    };
    for forged in [
        format!("{head}.{}.{signature}", flip(payload)),
        format!("{head}.{payload}.{}", flip(signature)),
        format!("{head}.{payload}."),
    ] {
        user.cookies
            .insert("corsair_session".into(), forged.clone());
        let page = user.get("/services").await?;
        assert_eq!(page.status, 303, "UI with {forged}");
        assert!(
            page.location.starts_with("/login?next="),
            "{}",
            page.location
        );
        let api = user
            .http
            .get(format!("{}/api/v1/services", server.base))
            .header("cookie", format!("corsair_session={forged}"))
            .send()
            .await?;
        assert_eq!(api.status(), 401, "API with {forged}");
    }
    user.cookies.insert("corsair_session".into(), session);

    // The form's CSRF field: truncated, extended, one digit off.
    let csrf = user.csrf().await?;
    let mut off = csrf.clone().into_bytes();
    off[0] = if off[0] == b'0' { b'1' } else { b'0' };
    for given in [
        csrf[..63].to_string(),
        format!("{csrf}0"),
        String::from_utf8(off)?,
    ] {
        let page = user
            .post_raw(
                "/services/payments-api/origins",
                &[
                    ("csrf", &given),
                    ("pattern", "https://t.example.com"),
                    ("reason", "r"),
                ],
            )
            .await?;
        assert_eq!(page.status, 403, "csrf {given:?}: {}", page.body);
    }
    assert!(
        server
            .db
            .store
            .list_origins("payments-api")
            .await?
            .is_empty()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flash_message_survives_its_cookie() -> Result<()> {
    let server = Server::start(false).await?;
    let mut user = server.signed_in(Role::Requester).await?;
    let page = user
        .post(
            "/services/payments-api/origins",
            &[("pattern", "https://flash.example.com"), ("reason", "r")],
        )
        .await?;
    assert_eq!(page.status, 303, "{}", page.body);
    let value = user
        .cookies
        .get("corsair_flash")
        .context("flash cookie set")?;
    // Percent-encoded by the cookie crate: no raw separators or spaces.
    assert!(value.starts_with("ok%3A"), "{value}");
    assert!(!value.contains(' ') && !value.contains(';'), "{value}");
    let next = user.follow(&page).await?;
    assert!(
        next.body.contains("class=\"flash ok\"") && next.body.contains("https://flash.example.com"),
        "{}",
        next.body
    );
    // Shown once: the page that showed it removed the cookie.
    assert!(!user.cookies.contains_key("corsair_flash"));
    // A flash cookie that is not ours shows nothing and breaks nothing.
    user.cookies.insert("corsair_flash".into(), "%ZZ%".into());
    let page = user.get("/services").await?;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("class=\"flash"), "{}", page.body);
    Ok(())
}
