//! The change audit log: the page (newest first, filters, pages, CSV), the
//! append-only trigger, and `audit verify` detecting a row altered or
//! deleted behind the trigger's back.

mod ui_support;

use anyhow::Result;
use corsair_control_plane::auth::Role;
use corsair_test_support::eventually;
use std::process::Command;
use ui_support::Server;

fn verify(url: &str) -> Result<(bool, String)> {
    verify_with(url, &[])
}

fn verify_with(url: &str, extra: &[&str]) -> Result<(bool, String)> {
    let out = Command::new(env!("CARGO_BIN_EXE_corsair-control-plane"))
        .args(["audit", "verify", "--database-url", url])
        .args(extra)
        .env("RUST_LOG", "error")
        .output()?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

async fn tamper(server: &Server, sql: &str) -> Result<()> {
    // Only someone who can disable the trigger (the table owner) can do this.
    let pool = server.db.store.pool();
    sqlx::raw_sql("ALTER TABLE change_audit DISABLE TRIGGER change_audit_append_only")
        .execute(pool)
        .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(pool)
        .await?;
    sqlx::raw_sql("ALTER TABLE change_audit ENABLE TRIGGER change_audit_append_only")
        .execute(pool)
        .await?;
    Ok(())
}

#[tokio::test]
async fn audit_verify_detects_an_altered_row() -> Result<()> {
    let server = Server::start(false).await?;
    for i in 0..3 {
        server
            .db
            .store
            .request_origin(
                "payments-api",
                &format!("https://a{i}.example.com"),
                "why",
                None,
                "requester@example.com",
            )
            .await?;
    }
    let (ok, out) = verify(&server.db.url)?;
    assert!(ok, "{out}");
    assert!(out.contains("hash chain verified"), "{out}");

    // The triggers refuse edits, deletes and emptying the table outright.
    for sql in [
        "UPDATE change_audit SET actor = 'mallory'",
        "DELETE FROM change_audit",
        "TRUNCATE change_audit",
    ] {
        let refused = sqlx::raw_sql(sql).execute(server.db.store.pool()).await;
        let error = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("append-only"), "{sql}: {error:?}");
    }

    let victim = server.db.store.list_audit(None, 10).await?[1].id;
    tamper(
        &server,
        &format!("UPDATE change_audit SET actor = 'mallory' WHERE id = {victim}"),
    )
    .await?;
    let (ok, out) = verify(&server.db.url)?;
    assert!(!ok, "tampering not detected: {out}");
    assert!(
        out.contains(&format!("row {victim}: content does not match its hash")),
        "{out}"
    );
    Ok(())
}

#[tokio::test]
async fn audit_verify_detects_a_deleted_row() -> Result<()> {
    let server = Server::start(false).await?;
    for i in 0..3 {
        server
            .db
            .store
            .request_origin(
                "payments-api",
                &format!("https://d{i}.example.com"),
                "why",
                None,
                "requester@example.com",
            )
            .await?;
    }
    let middle = server.db.store.list_audit(None, 10).await?[1].id;
    tamper(
        &server,
        &format!("DELETE FROM change_audit WHERE id = {middle}"),
    )
    .await?;
    let (ok, out) = verify(&server.db.url)?;
    assert!(!ok, "deletion not detected: {out}");
    assert!(out.contains("does not link to the row before it"), "{out}");
    Ok(())
}

/// The `head: SEQ:HASH` line of a passing `audit verify`.
fn head_of(out: &str) -> Result<String> {
    out.lines()
        .find_map(|l| l.strip_prefix("head: "))
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no head line in {out:?}"))
}

/// Metric `name` as `GET /metrics` serves it now.
async fn metric(server: &Server, name: &str) -> Result<f64> {
    let text = reqwest::get(format!("{}/metrics", server.base))
        .await?
        .text()
        .await?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no {name} in /metrics:\n{text}"))
}

/// Rows removed from the end leave a chain whose every link checks out;
/// the head printed by an earlier verify, passed back as `--expect-head`,
/// finds them, and finds a tail rewritten with new rows too.
#[tokio::test]
async fn a_recorded_head_finds_rows_removed_from_the_end() -> Result<()> {
    let server = Server::start(false).await?;
    let request = |i: usize| {
        let origin = format!("https://t{i}.example.com");
        let store = &server.db.store;
        async move {
            store
                .request_origin(
                    "payments-api",
                    &origin,
                    "why",
                    None,
                    "requester@example.com",
                )
                .await
        }
    };
    for i in 0..3 {
        request(i).await?;
    }
    let (ok, out) = verify(&server.db.url)?;
    assert!(ok, "{out}");
    let head = head_of(&out)?;
    let seq: i64 = head
        .split_once(':')
        .and_then(|(seq, _)| seq.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("bad head {head:?}"))?;
    assert_eq!(
        metric(&server, "corsair_audit_chain_length").await?,
        seq as f64
    );
    let deleted_before = metric(&server, "corsair_audit_rows_deleted").await?;
    let (ok, out) = verify_with(&server.db.url, &["--expect-head", &head])?;
    assert!(ok && out.contains("recorded head present"), "{out}");
    // A malformed head is a usage error, not a verdict.
    let (ok, out) = verify_with(&server.db.url, &["--expect-head", "3"])?;
    assert!(!ok && out.contains("SEQ:HASH"), "{out}");

    // The newest row removed: the chain alone still verifies...
    let newest = server.db.store.list_audit(None, 1).await?[0].id;
    tamper(
        &server,
        &format!("DELETE FROM change_audit WHERE id = {newest}"),
    )
    .await?;
    let (ok, out) = verify(&server.db.url)?;
    assert!(ok, "the chain alone cannot see this: {out}");
    // ...the exported length, kept by Prometheus, shrinks once the figures
    // are read again (at most one read per interval serves /metrics), and
    // Postgres counted the delete (its statistics arrive within seconds)...
    eventually("corsair_audit_chain_length to shrink by one", || async {
        metric(&server, "corsair_audit_chain_length")
            .await
            .is_ok_and(|n| n == (seq - 1) as f64)
    })
    .await?;
    eventually(
        "the delete to show in corsair_audit_rows_deleted",
        || async {
            metric(&server, "corsair_audit_rows_deleted")
                .await
                .is_ok_and(|n| n >= deleted_before + 1.0)
        },
    )
    .await?;
    // ...the recorded head cannot.
    let (ok, out) = verify_with(&server.db.url, &["--expect-head", &head])?;
    assert!(!ok, "removal from the end not detected: {out}");
    assert!(out.contains("is gone"), "{out}");

    // A new row now takes the removed row's place: a different hash there.
    request(9).await?;
    let (ok, out) = verify_with(&server.db.url, &["--expect-head", &head])?;
    assert!(!ok, "rewritten tail not detected: {out}");
    assert!(out.contains("not the recorded"), "{out}");
    Ok(())
}

#[tokio::test]
async fn audit_page_filters_pages_and_exports() -> Result<()> {
    let server = Server::start(false).await?;
    for i in 0..60 {
        server
            .db
            .store
            .request_origin(
                "payments-api",
                &format!("https://p{i}.example.com"),
                "why",
                None,
                "requester@example.com",
            )
            .await?;
    }
    let mut viewer = server.signed_in(Role::Viewer).await?;
    let page = viewer.get("/audit?action=origin.request").await?;
    assert_eq!(page.status, 200);
    // Newest first: p59 before p58; 50 rows per page, then "Older".
    let a = page
        .body
        .find("https://p59.example.com")
        .expect("newest shown");
    let b = page
        .body
        .find("https://p58.example.com")
        .expect("next shown");
    assert!(a < b);
    assert!(
        !page.body.contains("https://p5.example.com<"),
        "page 1 holds 50 rows"
    );
    assert!(page.body.contains("rel=\"next\""));
    let two = viewer.get("/audit?action=origin.request&page=2").await?;
    assert!(two.body.contains("https://p5.example.com"), "page 2");
    // Filters: actor and a date range with nothing in it.
    let none = viewer.get("/audit?actor=nobody").await?;
    assert!(none.body.contains("No changes match"));
    let bad = viewer.get("/audit?since=yesterday").await?;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("is not a date"));
    // CSV: same selection, every row, a header line.
    let csv = viewer.get("/audit.csv?action=origin.request").await?;
    assert_eq!(csv.status, 200);
    assert_eq!(csv.body.lines().count(), 61, "header + 60 rows");
    assert!(
        csv.body
            .starts_with("id,at,actor,action,service,target,before,after")
    );
    Ok(())
}
