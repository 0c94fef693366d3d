//! What a Kubernetes deployment relies on at start-up, against real
//! Postgres: `/healthz` and `/readyz`, migrations racing from several
//! replicas under the advisory lock, and the bootstrap admin (only while no
//! user exists, audited once, safe when replicas start together) — through
//! the library and through the real `serve` binary.

use axum::body::Body;
use corsair_control_plane::auth::bootstrap::{
    BOOTSTRAP_ACTOR, BootstrapError, BootstrapOutcome, bootstrap_admin,
};
use corsair_control_plane::auth::{Role, SigningKey, password};
use corsair_control_plane::server::http_app;
use corsair_control_plane::state::AppState;
use corsair_control_plane::store::Store;
use corsair_control_plane::testing::TestDb;
use corsair_test_support::eventually;
use corsair_test_support::process::{Serve, free_port};
use http::{Request, StatusCode};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use tower::ServiceExt as _;

/// GETs `path` from the whole HTTP app (no socket); status and JSON body.
async fn get(store: &Store, path: &str) -> (StatusCode, Value) {
    let app = http_app(AppState::new(
        store.clone(),
        SigningKey::from_bytes(&[1; 32]),
    ));
    let response = app
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, serde_json::from_slice(&bytes).expect("JSON body"))
}

/// Empties the database: as if it had never been migrated.
async fn wipe(store: &Store) {
    sqlx::raw_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        .execute(store.pool())
        .await
        .expect("empty the database");
}

async fn count(store: &Store, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(store.pool())
        .await
        .expect("count")
}

#[tokio::test]
async fn readyz_is_ready_on_a_current_schema_and_healthz_always_answers() {
    let db = TestDb::new().await.expect("test database");
    let (status, body) = get(&db.store, "/healthz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = get(&db.store, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ok");
    assert!(body["schema"]["expected"].as_i64().expect("expected") >= 4);
    assert_eq!(body["schema"]["expected"], body["schema"]["applied"]);
}

#[tokio::test]
async fn readyz_is_503_on_a_database_that_was_never_migrated() {
    let db = TestDb::new().await.expect("test database");
    wipe(&db.store).await;
    let (status, body) = get(&db.store, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["schema"]["applied"], Value::Null);
    let reason = body["reason"].as_str().expect("reason");
    assert!(reason.contains("schema behind"), "{reason}");
    // Alive all the same: a liveness probe must not restart it for this.
    assert_eq!(get(&db.store, "/healthz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn readyz_is_503_while_the_newest_migration_is_missing_or_failed() {
    let db = TestDb::new().await.expect("test database");
    let pool = db.store.pool();
    let newest: i64 = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await
        .expect("newest");

    // A failed attempt at the newest migration does not count as applied.
    sqlx::query("UPDATE _sqlx_migrations SET success = false WHERE version = $1")
        .bind(newest)
        .execute(pool)
        .await
        .expect("mark failed");
    let (status, body) = get(&db.store, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["schema"]["expected"], newest);
    assert!(body["schema"]["applied"].as_i64().expect("applied") < newest);

    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1")
        .bind(newest)
        .execute(pool)
        .await
        .expect("forget the newest");
    let (status, body) = get(&db.store, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
}

#[tokio::test]
async fn an_older_binary_stays_ready_and_starts_on_a_newer_schema() {
    // A schema ahead of this binary (a newer release migrated during a
    // rolling upgrade, or before a rollback) keeps an older replica ready.
    let db = TestDb::new().await.expect("test database");
    let pool = db.store.pool();
    let newest: i64 = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await
        .expect("newest");
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES ($1, 'applied by a newer release', true, '\\x00', 0)",
    )
    .bind(newest + 1)
    .execute(pool)
    .await
    .expect("newer row");
    let (status, body) = get(&db.store, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Its start-up migration tolerates the unknown newer migration instead
    // of refusing to start.
    db.store
        .migrate()
        .await
        .expect("migrate against a newer schema");
}

#[tokio::test]
async fn readyz_is_503_when_the_database_is_unreachable() {
    // A port nothing listens on: bind, note the port, close.
    let port = free_port().expect("a free port");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_millis(500))
        .connect_lazy(&format!("postgres://postgres@127.0.0.1:{port}/none"))
        .expect("lazy pool");
    let store = Store::from_pool(pool);
    let (status, body) = get(&store, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let reason = body["reason"].as_str().expect("reason");
    assert!(
        reason.contains("database unreachable") || reason.contains("did not answer"),
        "{reason}"
    );
    assert_eq!(get(&store, "/healthz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn concurrent_migrations_on_a_fresh_database_all_succeed() {
    let db = TestDb::new().await.expect("test database");
    wipe(&db.store).await;
    // Separate pools: separate sessions, as separate replicas would have.
    let mut stores = Vec::new();
    for _ in 0..6 {
        stores.push(Store::connect(&db.url).await.expect("connect"));
    }
    let results =
        futures_util::future::join_all(stores.iter().map(|s| async move { s.migrate().await }))
            .await;
    for (i, r) in results.iter().enumerate() {
        assert!(r.is_ok(), "migration {i} failed: {r:?}");
    }
    let schema = db.store.schema_status().await.expect("status");
    assert!(schema.is_current(), "{schema:?}");
    assert_eq!(
        count(
            &db.store,
            "SELECT count(*) FROM _sqlx_migrations WHERE success"
        )
        .await,
        schema.expected,
        "each migration applied exactly once"
    );
    assert_eq!(get(&db.store, "/readyz").await.0, StatusCode::OK);
}

fn password_file(dir: &Path, name: &str, password: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{password}\n")).expect("write password");
    path
}

#[tokio::test]
async fn bootstrap_creates_the_admin_once_and_audits_it() {
    let db = TestDb::new().await.expect("test database");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = password_file(dir.path(), "pw", "first admin password");

    let outcome = bootstrap_admin(&db.store, "root@example.com", &file)
        .await
        .expect("bootstrap");
    let BootstrapOutcome::Created(user) = outcome else {
        panic!("expected the admin to be created, got {outcome:?}");
    };
    assert_eq!(user.role, Role::Admin);
    let creds = db
        .store
        .user_credentials("root@example.com")
        .await
        .expect("read")
        .expect("the admin exists");
    assert!(password::verify(
        "first admin password",
        &creds.password_hash
    ));

    // Again, with another password: nothing changes.
    let other = password_file(dir.path(), "pw2", "a different password");
    let again = bootstrap_admin(&db.store, "root@example.com", &other)
        .await
        .expect("second bootstrap");
    assert_eq!(again, BootstrapOutcome::UsersExist);
    let after = db
        .store
        .user_credentials("root@example.com")
        .await
        .expect("read")
        .expect("still there");
    assert_eq!(after.password_hash, creds.password_hash);
    assert_eq!(count(&db.store, "SELECT count(*) FROM users").await, 1);
    let audit: Vec<(String, String, String)> =
        sqlx::query_as("SELECT actor, action, target FROM change_audit")
            .fetch_all(db.store.pool())
            .await
            .expect("audit");
    assert_eq!(
        audit,
        vec![(
            BOOTSTRAP_ACTOR.to_owned(),
            "user.create".to_owned(),
            "user:root@example.com".to_owned()
        )]
    );
}

#[tokio::test]
async fn bootstrap_never_touches_existing_users() {
    let db = TestDb::new().await.expect("test database");
    let hash = password::hash("someone's password").expect("hash");
    db.store
        .create_user("someone@example.com", &hash, Role::Viewer, "test")
        .await
        .expect("user");
    let audit_before = count(&db.store, "SELECT count(*) FROM change_audit").await;
    // The file does not even exist: with users present it is never read.
    let outcome = bootstrap_admin(
        &db.store,
        "someone@example.com",
        Path::new("/nonexistent/password"),
    )
    .await
    .expect("bootstrap");
    assert_eq!(outcome, BootstrapOutcome::UsersExist);
    let users = db.store.list_users().await.expect("users");
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].role, Role::Viewer, "not promoted to admin");
    assert_eq!(
        count(&db.store, "SELECT count(*) FROM change_audit").await,
        audit_before
    );
}

#[tokio::test]
async fn bootstrap_refuses_bad_input_with_a_clear_error() {
    let db = TestDb::new().await.expect("test database");
    let dir = tempfile::tempdir().expect("tempdir");
    let short = password_file(dir.path(), "short", "2short");
    let err = bootstrap_admin(&db.store, "root@example.com", &short)
        .await
        .expect_err("short password");
    assert!(matches!(err, BootstrapError::WeakPassword(_)), "{err}");
    let err = bootstrap_admin(&db.store, "root@example.com", &dir.path().join("missing"))
        .await
        .expect_err("missing file");
    assert!(matches!(err, BootstrapError::PasswordFile { .. }), "{err}");
    assert!(err.to_string().contains("missing"), "{err}");
    let err = bootstrap_admin(&db.store, "not-an-email", &short)
        .await
        .expect_err("bad email");
    assert!(matches!(err, BootstrapError::Email(_)), "{err}");
    assert_eq!(count(&db.store, "SELECT count(*) FROM users").await, 0);
}

#[tokio::test]
async fn concurrent_bootstraps_create_exactly_one_admin() {
    let db = TestDb::new().await.expect("test database");
    // One pool per "replica"; each has its session open before the race so
    // that all of them reach the check-then-insert together.
    let mut stores = Vec::new();
    for _ in 0..12 {
        let store = Store::connect(&db.url).await.expect("connect");
        assert!(!store.has_users().await.expect("warm up"));
        stores.push(store);
    }
    // Hashed once up front: the race is the transaction, not argon2.
    let hash = password::hash("first admin password").expect("hash");
    // Different emails, so a missing lock would show as two admins rather
    // than hide behind the unique email constraint.
    let outcomes = futures_util::future::join_all(stores.iter().enumerate().map(|(i, s)| {
        let hash = hash.clone();
        async move {
            s.create_first_admin(&format!("admin{i}@example.com"), &hash, BOOTSTRAP_ACTOR)
                .await
        }
    }))
    .await;
    let created = outcomes.iter().filter(|o| matches!(o, Ok(Some(_)))).count();
    assert_eq!(created, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(count(&db.store, "SELECT count(*) FROM users").await, 1);
    assert_eq!(
        count(
            &db.store,
            "SELECT count(*) FROM change_audit WHERE action = 'user.create'"
        )
        .await,
        1
    );

    // And through the start-up path, with its early "users exist" exit.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = password_file(dir.path(), "pw", "another password");
    let outcomes = futures_util::future::join_all(
        stores
            .iter()
            .map(|s| bootstrap_admin(s, "late@example.com", &file)),
    )
    .await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Ok(BootstrapOutcome::UsersExist))),
        "{outcomes:?}"
    );
    assert_eq!(count(&db.store, "SELECT count(*) FROM users").await, 1);
}

/// `serve` as the real binary on free ports (stopped when dropped), its
/// log beside `key`; not waited for.
fn serve(url: &str, key: &Path, extra: &[&str]) -> Serve {
    let dir = key.parent().expect("the key file's directory");
    Serve::spawn(
        env!("CARGO_BIN_EXE_corsair-control-plane"),
        url,
        key,
        extra,
        dir,
    )
    .expect("spawn serve")
}

async fn status_of(url: &str) -> Option<u16> {
    reqwest::get(url).await.ok().map(|r| r.status().as_u16())
}

#[tokio::test]
async fn replicas_started_together_migrate_and_bootstrap_once() {
    let db = TestDb::new().await.expect("test database");
    wipe(&db.store).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("signing.key");
    std::fs::write(&key, "ab".repeat(32)).expect("key");
    let pw = password_file(dir.path(), "pw", "first admin password");
    let pw_arg = pw.to_str().expect("utf-8");
    let replicas: Vec<Serve> = (0..3)
        .map(|_| {
            serve(
                &db.url,
                &key,
                &[
                    "--bootstrap-admin-email",
                    "root@example.com",
                    "--bootstrap-admin-password-file",
                    pw_arg,
                ],
            )
        })
        .collect();
    for r in &replicas {
        let url = r.url("/readyz");
        eventually("every replica to be ready", || async {
            (status_of(&url).await == Some(200)).then_some(())
        })
        .await
        .expect("ready");
    }
    assert_eq!(count(&db.store, "SELECT count(*) FROM users").await, 1);
    assert_eq!(
        count(
            &db.store,
            "SELECT count(*) FROM change_audit WHERE actor = 'bootstrap'"
        )
        .await,
        1
    );
    let login = reqwest::Client::new()
        .post(replicas[2].url("/api/v1/login"))
        .json(&serde_json::json!({"email": "root@example.com", "password": "first admin password"}))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), 200);
}

#[tokio::test]
async fn serve_skip_migrations_is_unready_until_migrate_runs() {
    let db = TestDb::new().await.expect("test database");
    wipe(&db.store).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("signing.key");
    std::fs::write(&key, "cd".repeat(32)).expect("key");
    // With a bootstrap admin too: it must wait for the schema (the Job),
    // not crash the replica.
    let password = dir.path().join("password");
    std::fs::write(&password, "correct horse battery\n").expect("password");
    let password_arg = password.to_string_lossy().into_owned();
    let replica = serve(
        &db.url,
        &key,
        &[
            "--skip-migrations",
            "--bootstrap-admin-email",
            "first@example.com",
            "--bootstrap-admin-password-file",
            &password_arg,
        ],
    );
    let healthz = replica.url("/healthz");
    let readyz = replica.url("/readyz");
    eventually("serve to answer /healthz", || async {
        (status_of(&healthz).await == Some(200)).then_some(())
    })
    .await
    .expect("alive");
    assert_eq!(status_of(&readyz).await, Some(503), "not migrated: unready");
    assert!(
        !db.store.schema_status().await.expect("status").is_current(),
        "--skip-migrations applied nothing"
    );

    // The Job's command.
    let out = Command::new(env!("CARGO_BIN_EXE_corsair-control-plane"))
        .env("RUST_LOG", "warn")
        .args(["migrate", "--database-url", &db.url])
        .output()
        .expect("migrate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually("serve to become ready after migrate", || async {
        (status_of(&readyz).await == Some(200)).then_some(())
    })
    .await
    .expect("ready");
    eventually("the deferred bootstrap admin", || async {
        db.store
            .has_users()
            .await
            .ok()
            .filter(|has| *has)
            .map(|_| ())
    })
    .await
    .expect("bootstrap admin created once the schema is current");
}

#[test]
fn serve_refuses_half_a_bootstrap_configuration() {
    let out = Command::new(env!("CARGO_BIN_EXE_corsair-control-plane"))
        .env_remove("CORSAIR_BOOTSTRAP_ADMIN_PASSWORD_FILE")
        .args([
            "serve",
            "--database-url",
            "postgres://nowhere/none",
            "--http",
            "127.0.0.1:0",
            "--grpc",
            "127.0.0.1:0",
            "--signing-key-file",
            "/nonexistent",
            "--bootstrap-admin-email",
            "root@example.com",
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--bootstrap-admin-password-file"),
        "{stderr}"
    );
}
