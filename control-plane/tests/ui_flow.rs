//! The approval workflow through the UI's forms, over real HTTP: request,
//! four-eyes refusal, approval, viewer restrictions, CSRF, bad input on
//! every form, logout and login throttling.

mod ui_support;

use anyhow::Result;
use corsair_control_plane::auth::Role;
use ui_support::{PASSWORD, Server, email};

async fn origin_statuses(server: &Server) -> Result<Vec<(String, String)>> {
    Ok(server
        .db
        .store
        .list_origins("payments-api")
        .await?
        .into_iter()
        .map(|o| (o.pattern, o.status.to_string()))
        .collect())
}

#[tokio::test]
async fn request_then_four_eyes_then_approve() -> Result<()> {
    let server = Server::start(false).await?;
    let mut requester = server.signed_in(Role::Requester).await?;
    let r = requester
        .post(
            "/services/payments-api/origins",
            &[
                ("pattern", "https://app.example.com"),
                ("reason", "the web app"),
                ("expires_at", ""),
            ],
        )
        .await?;
    assert_eq!(r.status, 303, "{}", r.body);
    let shown = requester.follow(&r).await?;
    assert!(
        shown.body.contains("Requested https://app.example.com"),
        "{}",
        shown.body
    );
    assert!(shown.body.contains("pending"));

    // The approver files a request of their own: approving it is refused.
    let mut approver = server.signed_in(Role::Approver).await?;
    let r = approver
        .post(
            "/services/payments-api/origins",
            &[("pattern", "https://own.example.com"), ("reason", "mine")],
        )
        .await?;
    assert_eq!(r.status, 303, "{}", r.body);
    let own = server
        .db
        .store
        .list_origins("payments-api")
        .await?
        .into_iter()
        .find(|o| o.pattern == "https://own.example.com")
        .expect("own request");
    let r = approver
        .post(
            &format!("/origins/{}/approve", own.id),
            &[("note", "self"), ("next", "/approvals")],
        )
        .await?;
    let shown = approver.follow(&r).await?;
    assert!(shown.body.contains("four-eyes"), "{}", shown.body);
    assert_eq!(server.db.store.get_origin(own.id).await?.status, "pending");

    // The queue lists both, oldest first; the approver approves the other one.
    let queue = approver.get("/approvals").await?;
    let a = queue.body.find("https://app.example.com").expect("listed");
    let b = queue.body.find("https://own.example.com").expect("listed");
    assert!(a < b, "oldest first");
    let theirs = server
        .db
        .store
        .list_origins("payments-api")
        .await?
        .into_iter()
        .find(|o| o.pattern == "https://app.example.com")
        .expect("request");
    let r = approver
        .post(
            &format!("/origins/{}/approve", theirs.id),
            &[("note", "ok"), ("next", "/approvals")],
        )
        .await?;
    let shown = approver.follow(&r).await?;
    assert!(
        shown.body.contains("Approved https://app.example.com"),
        "{}",
        shown.body
    );
    let policy = server
        .db
        .store
        .effective_policy("payments-api")
        .await?
        .expect("policy");
    assert_eq!(
        policy.spec.origins,
        vec!["https://app.example.com".to_string()]
    );

    // Reject needs a note; without one nothing changes.
    let r = approver
        .post(&format!("/origins/{}/reject", own.id), &[("note", " ")])
        .await?;
    let shown = approver.follow(&r).await?;
    assert!(shown.body.contains("a note is required"), "{}", shown.body);
    assert_eq!(server.db.store.get_origin(own.id).await?.status, "pending");
    Ok(())
}

#[tokio::test]
async fn single_operator_may_approve_own_request() -> Result<()> {
    let server = Server::start(true).await?;
    let mut admin = server.signed_in(Role::Admin).await?;
    admin
        .post(
            "/services/payments-api/origins",
            &[("pattern", "https://solo.example.com"), ("reason", "demo")],
        )
        .await?;
    let id = server.db.store.list_origins("payments-api").await?[0].id;
    let r = admin
        .post(&format!("/origins/{id}/approve"), &[("note", "")])
        .await?;
    assert_eq!(r.status, 303);
    assert_eq!(server.db.store.get_origin(id).await?.status, "approved");
    Ok(())
}

#[tokio::test]
async fn viewer_sees_no_actions_and_forged_posts_are_forbidden() -> Result<()> {
    let server = Server::start(false).await?;
    let id = server
        .db
        .store
        .request_origin(
            "payments-api",
            "https://v.example.com",
            "why",
            None,
            "someone",
        )
        .await?
        .id;
    let mut viewer = server.signed_in(Role::Viewer).await?;
    for path in ["/services/payments-api", "/approvals"] {
        let page = viewer.get(path).await?;
        assert_eq!(page.status, 200);
        for action in [
            "/approve\"",
            "/reject\"",
            "Request origin",
            "Save settings",
            "Save description",
        ] {
            assert!(
                !page.body.contains(action),
                "{path} shows {action} to a viewer"
            );
        }
    }
    // A forged POST with a valid CSRF token is still refused by role.
    let r = viewer
        .post(&format!("/origins/{id}/approve"), &[("note", "forged")])
        .await?;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("approver"), "{}", r.body);
    let r = viewer
        .post(
            "/services/payments-api/origins",
            &[("pattern", "https://x.example.com"), ("reason", "x")],
        )
        .await?;
    assert_eq!(r.status, 403);
    assert_eq!(
        origin_statuses(&server).await?,
        vec![("https://v.example.com".into(), "pending".into())]
    );
    Ok(())
}

#[tokio::test]
async fn forms_without_a_csrf_token_are_refused() -> Result<()> {
    let server = Server::start(false).await?;
    let mut approver = server.signed_in(Role::Approver).await?;
    let id = server
        .db
        .store
        .request_origin(
            "payments-api",
            "https://c.example.com",
            "why",
            None,
            "someone",
        )
        .await?
        .id;
    for (path, fields) in [
        (format!("/origins/{id}/approve"), vec![("note", "x")]),
        (
            "/services/payments-api/origins".to_string(),
            vec![("pattern", "https://d.example.com"), ("reason", "x")],
        ),
        (
            "/services/payments-api/settings".to_string(),
            vec![("mode", "report_only"), ("max_age_secs", "5")],
        ),
    ] {
        let r = approver.post_raw(&path, &fields).await?;
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        assert!(r.body.contains("security token"), "{}", r.body);
        let mut wrong = vec![("csrf", "0000")];
        wrong.extend(fields.iter().copied());
        assert_eq!(approver.post_raw(&path, &wrong).await?.status, 403);
    }
    // Logout without the token does not end the session either.
    assert_eq!(approver.post_raw("/logout", &[]).await?.status, 403);
    assert_eq!(approver.get("/services").await?.status, 200);
    assert_eq!(
        origin_statuses(&server).await?,
        vec![("https://c.example.com".into(), "pending".into())]
    );
    // A login form posted from elsewhere (no login cookie) is refused.
    let mut stranger = server.client()?;
    let r = stranger
        .post_raw(
            "/login",
            &[("email", &email(Role::Admin)), ("password", PASSWORD)],
        )
        .await?;
    assert_eq!(r.status, 403);
    assert!(!stranger.cookies.contains_key("corsair_session"));
    Ok(())
}

/// A form post: path, fields, expected status, expected text on the page.
type FormCase<'a> = (&'a str, &'a [(&'a str, &'a str)], u16, &'a str);

#[tokio::test]
async fn bad_input_on_every_form_shows_a_message_and_changes_nothing() -> Result<()> {
    let server = Server::start(false).await?;
    server
        .db
        .store
        .request_origin(
            "payments-api",
            "https://dup.example.com",
            "why",
            None,
            "someone",
        )
        .await?;
    let mut approver = server.signed_in(Role::Approver).await?;
    let cases: [FormCase<'_>; 8] = [
        (
            "/services/payments-api/origins",
            &[("pattern", ""), ("reason", "x")],
            422,
            "Enter an origin",
        ),
        (
            "/services/payments-api/origins",
            &[("pattern", "not an origin"), ("reason", "x")],
            422,
            "has no scheme",
        ),
        (
            "/services/payments-api/origins",
            &[("pattern", "https://*.com"), ("reason", "x")],
            422,
            "public suffix",
        ),
        (
            "/services/payments-api/origins",
            &[("pattern", "https://dup.example.com"), ("reason", "x")],
            409,
            "already requested",
        ),
        (
            "/services/payments-api/origins",
            &[("pattern", "https://ok.example.com"), ("reason", "")],
            422,
            "reason must not be empty",
        ),
        (
            "/services/no-such-service/origins",
            &[("pattern", "https://ok.example.com"), ("reason", "x")],
            404,
            "not found",
        ),
        (
            "/services/payments-api/settings",
            &[("mode", "enforce"), ("max_age_secs", "lots")],
            422,
            "between 0 and 86400",
        ),
        (
            "/services/payments-api/settings",
            &[
                ("mode", "enforce"),
                ("max_age_secs", "0"),
                ("allow_methods", "GET, BAD METHOD"),
            ],
            422,
            "BAD METHOD",
        ),
    ];
    let before = server.db.store.get_service("payments-api").await?;
    for (path, fields, status, message) in cases {
        let r = approver.post(path, fields).await?;
        assert_eq!(r.status, status, "{path} {fields:?}: {}", r.body);
        assert!(
            r.body.contains(message),
            "{path} {fields:?}: expected {message:?} in the page: {}",
            r.body
        );
    }
    assert_eq!(
        origin_statuses(&server).await?,
        vec![("https://dup.example.com".into(), "pending".into())]
    );
    assert_eq!(server.db.store.get_service("payments-api").await?, before);

    let mut admin = server.signed_in(Role::Admin).await?;
    for (name, status, message) in [
        ("Bad Name", 422, "invalid service name"),
        ("payments-api", 409, "already exists"),
    ] {
        let r = admin
            .post("/services", &[("name", name), ("description", "")])
            .await?;
        assert_eq!(r.status, status, "{name}: {}", r.body);
        assert!(r.body.contains(message), "{name}: {}", r.body);
    }
    assert_eq!(server.db.store.list_services().await?.len(), 1);
    let users_before = server.db.store.list_users().await?.len();
    for (fields, message) in [
        (
            vec![
                ("email", ""),
                ("role", "viewer"),
                ("password", "long enough password"),
            ],
            "Enter the person",
        ),
        (
            vec![
                ("email", "x@example.com"),
                ("role", "boss"),
                ("password", "long enough password"),
            ],
            "Choose a role",
        ),
        (
            vec![
                ("email", "x@example.com"),
                ("role", "viewer"),
                ("password", "short"),
            ],
            "at least 12",
        ),
        (
            vec![
                ("email", "viewer@example.com"),
                ("role", "viewer"),
                ("password", "long enough password"),
            ],
            "already exists",
        ),
    ] {
        let r = admin.post("/users", &fields).await?;
        assert!(r.status >= 400, "{fields:?}");
        assert!(r.body.contains(message), "{fields:?}: {}", r.body);
    }
    assert_eq!(server.db.store.list_users().await?.len(), users_before);
    for (fields, message) in [
        (
            vec![("name", ""), ("role", "viewer"), ("days", "")],
            "name must not be empty",
        ),
        (
            vec![("name", "ci"), ("role", "viewer"), ("days", "-3")],
            "number of days",
        ),
    ] {
        let r = admin.post("/tokens", &fields).await?;
        assert_eq!(r.status, 422);
        assert!(r.body.contains(message), "{fields:?}: {}", r.body);
    }
    assert!(server.db.store.list_api_tokens().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn logout_ends_the_session_for_good() -> Result<()> {
    let server = Server::start(false).await?;
    let mut user = server.signed_in(Role::Requester).await?;
    let cookie = user
        .cookies
        .get("corsair_session")
        .cloned()
        .expect("session cookie");
    assert_eq!(user.get("/services").await?.status, 200);
    let r = user.post("/logout", &[]).await?;
    assert_eq!((r.status, r.location.as_str()), (303, "/login"));
    assert!(
        !user.cookies.contains_key("corsair_session"),
        "cookie cleared"
    );
    // The old cookie, replayed, no longer works: not in the UI, not on the API.
    user.cookies
        .insert("corsair_session".into(), cookie.clone());
    let r = user.get("/services").await?;
    assert_eq!(r.status, 303);
    assert!(r.location.starts_with("/login"), "{}", r.location);
    let api = user
        .http
        .get(format!("{}/api/v1/services", server.base))
        .header("cookie", format!("corsair_session={cookie}"))
        .send()
        .await?;
    assert_eq!(api.status(), 401);
    let api = user
        .http
        .get(format!("{}/api/v1/services", server.base))
        .bearer_auth(&cookie)
        .send()
        .await?;
    assert_eq!(api.status(), 401);
    Ok(())
}

#[tokio::test]
async fn session_cookie_flags() -> Result<()> {
    let server = Server::start(false).await?;
    let mut b = server.client()?;
    let form = b.get("/login").await?;
    let token = form.input("login_csrf").expect("login csrf");
    let r = b
        .http
        .post(format!("{}/login", server.base))
        .header("cookie", format!("corsair_login_csrf={token}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string([
            ("login_csrf", token.as_str()),
            ("email", "viewer@example.com"),
            ("password", PASSWORD),
            ("next", "//evil.example"),
        ])?)
        .send()
        .await?;
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/services",
        "an off-site next is ignored"
    );
    let set = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("corsair_session="))
        .expect("cookie")
        .to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(set.contains(flag), "{set}");
    }
    Ok(())
}

#[tokio::test]
async fn repeated_failures_lock_the_account_and_are_audited() -> Result<()> {
    let server = Server::start(false).await?;
    let mut b = server.client()?;
    for _ in 0..5 {
        let r = b.login(&email(Role::Viewer), "wrong password").await?;
        assert_eq!(r.status, 401);
        assert!(r.body.contains("Wrong email or password"));
    }
    // Locked now, even with the right password.
    let r = b.login(&email(Role::Viewer), PASSWORD).await?;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains("too many failed logins"));
    let audit = server.db.store.list_audit(None, 10).await?;
    let lockout = audit
        .iter()
        .find(|e| e.action == "auth.lockout")
        .expect("lockout in the audit log");
    assert_eq!(lockout.target, "account:viewer@example.com");
    // Another account from the same address is not locked yet.
    assert_eq!(
        b.login(&email(Role::Requester), PASSWORD).await?.status,
        303
    );
    Ok(())
}
