//! Test support for the integration tests: a fresh, migrated database per
//! test ([`TestDb`], this file) and the control-plane fixture on top of it
//! ([`ControlPlane`]: users of every role, a node on its own ports).
//!
//! The server is, in order: `CORSAIR_TEST_DATABASE_URL` (an admin URL whose
//! user may create databases), the machine's server on 127.0.0.1:5432 when
//! one answers, or a private server started once per test process from the
//! machine's PostgreSQL binaries (as `dev` does).

mod fixture;

pub use fixture::{
    ControlPlane, Options, PASSWORD, ROLES, TestNode, email, password_hash, seed_users,
    signing_key, signing_key_hex, user_token,
};

use crate::pg::PrivatePostgres;
use crate::store::{PoolConfig, Store};
use anyhow::{Context, Result};
use sqlx::{Connection, PgConnection};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// A database that exists for one test and is dropped with it.
#[derive(Debug)]
pub struct TestDb {
    /// Connection URL of the test's database.
    pub url: String,
    /// A store on it (migrations applied).
    pub store: Store,
    admin_url: String,
    name: String,
}

/// Admin URL of the server the tests use, decided once per process.
static SERVER: OnceLock<std::result::Result<String, String>> = OnceLock::new();
/// Keeps the private server (if any) alive for the whole test process.
static PRIVATE: Mutex<Option<PrivatePostgres>> = Mutex::new(None);

fn server_admin_url() -> Result<String> {
    SERVER
        .get_or_init(|| pick_server().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

fn pick_server() -> Result<String> {
    if let Ok(url) = std::env::var("CORSAIR_TEST_DATABASE_URL") {
        return Ok(url);
    }
    let local = "postgres://postgres@127.0.0.1:5432/postgres";
    let reachable = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(3), PgConnection::connect(local))
                .await
                .ok()?
                .ok()
        })
        .map(|_| ())
    })
    .join()
    .ok()
    .flatten()
    .is_some();
    if reachable {
        return Ok(local.to_string());
    }
    let dir = std::env::temp_dir().join(format!("corsair-test-pg-{}", std::process::id()));
    let pg = PrivatePostgres::start(&dir)
        .context("no PostgreSQL on 127.0.0.1:5432; starting a private one")?;
    pg.stop_when_process_exits(std::process::id())?;
    let url = pg.url("postgres");
    if let Ok(mut slot) = PRIVATE.lock() {
        *slot = Some(pg);
    }
    Ok(url)
}

fn with_database(admin_url: &str, name: &str) -> String {
    match admin_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => format!("{admin_url}/{name}"),
    }
}

impl TestDb {
    /// Creates a fresh database and applies the migrations.
    pub async fn new() -> Result<Self> {
        let admin_url = tokio::task::spawn_blocking(server_admin_url).await??;
        let name = format!("corsair_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .context("connecting to the test server")?;
        // The name is ours (a UUID), not input.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        let url = with_database(&admin_url, &name);
        // Generous: many tests share one machine and one server, and a
        // busy moment must not read as a database outage (503).
        let pool = PoolConfig {
            acquire_timeout: Duration::from_secs(10),
            ..PoolConfig::default()
        };
        let store = Store::connect_with(&url, pool).await?;
        store.migrate().await?;
        Ok(Self {
            url,
            store,
            admin_url,
            name,
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside or outside a runtime; do the async work on a
        // thread of its own so neither case deadlocks. The pool is not
        // closed first: its connections belong to the test's runtime, which
        // is blocked here; FORCE terminates them instead.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await;
                }
            });
        })
        .join();
    }
}
