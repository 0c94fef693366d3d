//! The command-line contract from DESIGN.md "Interfaces", run as the real
//! binary: `migrate`, `user add`, `token issue`, `serve`.

use corsair_control_plane::auth::{Role, SigningKey, TokenKind, password};
use corsair_control_plane::store::Store;
use corsair_control_plane::testing::TestDb;
use corsair_test_support::eventually;
use corsair_test_support::process::Serve;
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_corsair-control-plane"));
    c.env_remove("CORSAIR_DATABASE_URL").env("RUST_LOG", "warn");
    c
}

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut pipe = child.stdin.take().expect("stdin");
    if let Some(input) = stdin {
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    drop(pipe);
    child.wait_with_output().expect("wait")
}

#[tokio::test]
async fn migrate_user_add_token_issue_and_serve() {
    let db = TestDb::new().await.expect("test database");
    let url = db.url.clone();
    // Start from an empty database so `migrate` has real work to do.
    sqlx::raw_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        .execute(db.store.pool())
        .await
        .expect("empty the database");
    db.store.pool().close().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("keys/signing.key");
    let key_path = key_file.to_str().expect("utf-8 path");

    let out = run(&["migrate", "--database-url", &url], None);
    assert!(
        out.status.success(),
        "migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = Store::connect(&url).await.expect("connect");
    assert!(
        store
            .list_services()
            .await
            .expect("schema exists")
            .is_empty()
    );

    // user add reads the password from stdin.
    let out = run(
        &[
            "user",
            "add",
            "--database-url",
            &url,
            "--email",
            "ops@example.com",
            "--role",
            "admin",
            "--password-stdin",
        ],
        Some("correct horse battery\n"),
    );
    assert!(
        out.status.success(),
        "user add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let creds = store
        .user_credentials("ops@example.com")
        .await
        .expect("query")
        .expect("user exists");
    assert_eq!(creds.user.role, Role::Admin);
    assert!(password::verify(
        "correct horse battery",
        &creds.password_hash
    ));
    let out = run(
        &[
            "user",
            "add",
            "--database-url",
            &url,
            "--email",
            "x@example.com",
            "--role",
            "root",
            "--password-stdin",
        ],
        Some("whatever-long\n"),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown role"));

    // token issue prints only the token; the key file is created 0600.
    let out = run(
        &[
            "token",
            "issue",
            "--database-url",
            &url,
            "--signing-key-file",
            key_path,
            "--name",
            "gw-1",
            "--service",
            "payments-api",
            "--service",
            "orders",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "token issue: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(stdout.lines().count(), 1, "only the token: {stdout:?}");
    let key = SigningKey::load_or_create(&key_file).expect("key");
    let claims = key
        .verify(stdout.trim(), TokenKind::Agent)
        .expect("agent token");
    assert_eq!(claims.services, ["payments-api", "orders"]);
    assert!(
        store
            .agent_token_active(claims.jti.parse().expect("uuid"))
            .await
            .expect("query")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A blocked-events partition older than the retention `serve` is given:
    // its first maintenance round (at start-up) must drop it.
    let today = chrono::Utc::now().date_naive();
    let old_day = today - chrono::Duration::days(5);
    store
        .ensure_blocked_partitions(old_day, old_day)
        .await
        .expect("old partition");
    let old_partition = format!("blocked_events_{}", old_day.format("%Y%m%d"));
    assert!(
        store
            .blocked_partitions()
            .await
            .expect("partitions")
            .contains(&old_partition)
    );

    // serve answers the API and stops cleanly on SIGTERM.
    let mut serve = Serve::spawn(
        env!("CARGO_BIN_EXE_corsair-control-plane"),
        &url,
        &key_file,
        ["--blocked-retention-days", "2"],
        dir.path(),
    )
    .expect("spawn serve")
    .serving()
    .await
    .expect("serve starts");
    let client = reqwest::Client::new();
    let base = serve.url("/api/v1");
    let openapi = client
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .expect("openapi");
    assert!(openapi.status().is_success(), "{openapi:?}");
    let login = client
        .post(format!("{base}/login"))
        .json(
            &serde_json::json!({ "email": "ops@example.com", "password": "correct horse battery" }),
        )
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), 200);
    let body: serde_json::Value = login.json().await.expect("json");
    // Tokens from `serve` verify with the same key file `token issue` used.
    key.verify(body["token"].as_str().expect("token"), TokenKind::User)
        .expect("user token");

    // --blocked-retention-days reached the retention job.
    let today_suffix = today.format("%Y%m%d").to_string();
    let partitions = eventually(
        "serve --blocked-retention-days 2 to drop the old partition",
        || async {
            let partitions = store
                .blocked_partitions()
                .await
                .map_err(|e| e.to_string())?;
            if partitions.contains(&old_partition) {
                return Err(format!("{old_partition} still in {partitions:?}"));
            }
            Ok(partitions)
        },
    )
    .await
    .expect("retention");
    assert!(
        partitions.iter().any(|p| p.ends_with(&today_suffix)),
        "today's partition is kept: {partitions:?}"
    );

    let exit = serve.process.stop().await.expect("serve stops on SIGTERM");
    assert!(
        exit.success(),
        "serve exit: {exit:?}\n{}",
        serve.process.log()
    );
}
