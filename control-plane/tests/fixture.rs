//! The test fixture itself: fresh databases are isolated and migrated, and a
//! private server can be started from the machine's binaries.

use corsair_control_plane::pg::PrivatePostgres;
use corsair_control_plane::testing::TestDb;
use corsair_test_support::eventually;
use sqlx::{Connection, PgConnection};

#[tokio::test]
async fn each_test_database_is_fresh_and_migrated() -> anyhow::Result<()> {
    let a = TestDb::new().await?;
    let b = TestDb::new().await?;
    assert_ne!(a.url, b.url);
    sqlx::query("INSERT INTO services (name) VALUES ('only-in-a')")
        .execute(a.store.pool())
        .await?;
    let in_b: i64 = sqlx::query_scalar("SELECT count(*) FROM services")
        .fetch_one(b.store.pool())
        .await?;
    assert_eq!(in_b, 0);
    Ok(())
}

#[tokio::test]
async fn private_postgres_starts_and_stops() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut pg = tokio::task::spawn_blocking({
        let path = dir.path().join("pg");
        move || PrivatePostgres::start(&path)
    })
    .await??;
    let mut conn = PgConnection::connect(&pg.url("postgres")).await?;
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await?;
    assert_eq!(one, 1);
    conn.close().await?;
    let url = pg.url("postgres");
    tokio::task::spawn_blocking(move || pg.stop()).await??;
    assert!(
        PgConnection::connect(&url).await.is_err(),
        "server still answers after stop"
    );
    Ok(())
}

#[tokio::test]
async fn watchdog_stops_the_server_when_its_owner_exits() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut pg = tokio::task::spawn_blocking({
        let path = dir.path().join("pg");
        move || PrivatePostgres::start(&path)
    })
    .await??;
    let mut owner = tokio::process::Command::new("sleep")
        .arg("600")
        .kill_on_drop(true)
        .spawn()?;
    let owner_pid = owner.id().ok_or_else(|| anyhow::anyhow!("owner exited"))?;
    pg.stop_when_process_exits(owner_pid)?;
    let url = pg.url("postgres");
    // While the owner lives, the server answers (the watchdog must not
    // mistake an owner it may not signal for a dead one).
    let mut conn = PgConnection::connect(&url).await?;
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await?;
    assert_eq!(one, 1);
    conn.close().await?;
    owner.kill().await?;
    eventually("the server to stop after its owner exited", || async {
        PgConnection::connect(&url).await.is_err()
    })
    .await?;
    tokio::task::spawn_blocking(move || pg.stop()).await??;
    Ok(())
}
