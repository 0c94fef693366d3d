//! `corsair-control-plane dev`: everything a newcomer needs, in one process.
//!
//! A private PostgreSQL (unless `DATABASE_URL` is given), migrations, an
//! admin user, a demo service with a pending origin request, a control-plane
//! node, a demo upstream, a real agent proxy (over real gRPC) in front of it,
//! and a demo page on another origin whose buttons call the API through the
//! agent. State lives in `--state-dir` so a second run resumes the first.
//!
//! - [`demo`]: the demo upstream and the demo page.

pub mod demo;

use crate::auth::{Role, SigningKey, issue_agent_token, password};
use crate::domain::OriginStatus;
use crate::grpc::GrpcConfig;
use crate::node::Node;
use crate::pg::PrivatePostgres;
use crate::server::Shutdown;
use crate::store::services::ServiceSettings;
use crate::store::{Store, StoreError};
use anyhow::Context;
use corsair_agent::control_plane::ControlPlaneConfig;
use corsair_agent::engine::Mode;
use corsair_agent::proxy::sidecar::{self, SidecarConfig};
use sqlx::{Connection, PgConnection};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio::net::TcpListener;

/// The demo service's name.
pub const DEMO_SERVICE: &str = "demo-api";
/// The admin user `dev` creates.
pub const ADMIN_EMAIL: &str = "admin@corsair.test";
const ACTOR: &str = "corsair-dev";

/// Options of `dev` (flags with `CORSAIR_*` twins, see `main.rs`).
#[derive(Debug, Clone)]
pub struct DevOptions {
    /// Use this database instead of starting a private PostgreSQL.
    pub database_url: Option<String>,
    /// Where the private database, signing key, admin password and agent cache live.
    pub state_dir: PathBuf,
    /// Control-plane HTTP (API, UI).
    pub http: SocketAddr,
    /// Control-plane gRPC.
    pub grpc: SocketAddr,
    /// The agent proxy (what the demo page calls).
    pub agent: SocketAddr,
    /// The agent's admin endpoints.
    pub agent_admin: SocketAddr,
    /// The demo page (another origin).
    pub demo: SocketAddr,
}

/// Runs the whole demo system until `shutdown` completes.
pub async fn run(
    options: DevOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.state_dir)
        .with_context(|| format!("creating --state-dir {}", options.state_dir.display()))?;
    let state_dir = options.state_dir.canonicalize()?;

    // Database: the given one, or a private server that lives as long as we do.
    let (database_url, mut private_pg) = match &options.database_url {
        Some(url) => (url.clone(), None),
        None => {
            let dir = state_dir.join("postgres");
            let pg = tokio::task::spawn_blocking(move || PrivatePostgres::start(&dir))
                .await
                .context("PostgreSQL start task")??;
            let url = pg.url("corsair");
            ensure_database(&pg.url("postgres"), "corsair").await?;
            (url, Some(pg))
        }
    };
    let result = run_with_database(
        &options,
        &state_dir,
        &database_url,
        private_pg.is_some(),
        shutdown,
    )
    .await;
    if let Some(pg) = private_pg.as_mut() {
        let stopped = tokio::task::block_in_place(|| pg.stop());
        if let Err(e) = stopped {
            tracing::warn!(error = %e, "stopping the private PostgreSQL");
        }
    }
    result
}

async fn run_with_database(
    options: &DevOptions,
    state_dir: &Path,
    database_url: &str,
    private: bool,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let store = Store::connect(database_url)
        .await
        .context("connecting to the database")?;
    store.migrate().await.context("applying migrations")?;
    let keys = SigningKey::load_or_create(&state_dir.join("signing.key"))?;
    let admin_password = ensure_admin(&store, state_dir).await?;

    // Bind everything first so a taken port fails before anything starts.
    let bind = |addr: SocketAddr, what: &'static str| async move {
        TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the {what} to {addr} (pick another with its flag)"))
    };
    let http = bind(options.http, "control-plane HTTP").await?;
    let grpc = bind(options.grpc, "control-plane gRPC").await?;
    let agent = bind(options.agent, "agent proxy").await?;
    let agent_admin = bind(options.agent_admin, "agent admin endpoints").await?;
    let demo = bind(options.demo, "demo page").await?;
    let upstream = bind(SocketAddr::from(([127, 0, 0, 1], 0)), "demo upstream").await?;
    let http_url = format!("http://{}", http.local_addr()?);
    let grpc_url = format!("http://{}", grpc.local_addr()?);
    let agent_url = format!("http://{}", agent.local_addr()?);
    let agent_admin_url = format!("http://{}", agent_admin.local_addr()?);
    let demo_origin = format!("http://{}", demo.local_addr()?);
    let upstream_url = format!("http://{}", upstream.local_addr()?);

    ensure_demo_service(&store).await?;
    let pending = ensure_pending_request(&store, &demo_origin).await?;
    let token_id = uuid::Uuid::new_v4();
    let services = vec![DEMO_SERVICE.to_string()];
    let token = issue_agent_token(&keys, token_id, "dev-agent", &services, None)?;
    store
        .create_agent_token(token_id, "dev-agent", &services, None, ACTOR)
        .await?;
    // The agent keeps its id in the state directory across runs: each run's
    // token replaces the previous run's, so it may act as that agent again.
    let previous = store
        .list_agent_tokens()
        .await?
        .into_iter()
        .filter(|t| t.name == "dev-agent" && t.id != token_id)
        .max_by_key(|t| t.created_at);
    if let Some(previous) = previous {
        store
            .replace_agent_token(token_id, previous.id, ACTOR)
            .await?;
    }

    let stop = Shutdown::new();
    // One person at a keyboard: let them approve their own requests.
    let node = Node {
        store: store.clone(),
        keys,
        http,
        grpc,
        grpc_config: GrpcConfig::default(),
        single_operator: true,
        secure_cookies: false,
        retention: Default::default(),
        sign_in: Default::default(),
        audit_read_interval: crate::metrics::audit_figures::AUDIT_READ_INTERVAL,
    };
    let mut node_task = tokio::spawn(node.run(stop.wait()));
    let upstream_task = tokio::spawn(
        axum::serve(upstream, demo::upstream_router())
            .with_graceful_shutdown(stop.wait())
            .into_future(),
    );
    let page = demo::page_router(
        demo_origin.clone(),
        agent_url.clone(),
        DEMO_SERVICE.to_string(),
    );
    let demo_task = tokio::spawn(
        axum::serve(demo, page)
            .with_graceful_shutdown(stop.wait())
            .into_future(),
    );
    let sidecar_config = SidecarConfig {
        control_plane: ControlPlaneConfig::new(grpc_url.clone(), token.token),
        service: DEMO_SERVICE.to_string(),
        upstream: upstream_url,
        cache_dir: state_dir.join("agent-cache"),
        agent_name: "dev-agent".to_string(),
        proxy: Default::default(),
    };
    let agent_task = tokio::spawn(sidecar::run(
        sidecar_config,
        agent,
        Some(agent_admin),
        stop.wait(),
    ));

    print_banner(&Banner {
        database: if private {
            format!(
                "{database_url} (private, data in {})",
                state_dir.join("postgres").display()
            )
        } else {
            database_url.to_string()
        },
        http_url: &http_url,
        grpc_url: &grpc_url,
        agent_url: &agent_url,
        agent_admin_url: &agent_admin_url,
        demo_origin: &demo_origin,
        admin_password: &admin_password,
        pending,
    });

    tokio::select! {
        () = shutdown => {}
        result = &mut node_task => {
            stop.trigger();
            result.context("control plane task")??;
            anyhow::bail!("the control plane stopped unexpectedly");
        }
    }
    println!("\nstopping…");
    stop.trigger();
    agent_task.await.context("agent task")??;
    demo_task.await.context("demo page task")??;
    upstream_task.await.context("demo upstream task")??;
    node_task.await.context("control plane task")??;
    Ok(())
}

async fn ensure_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(admin_url)
        .await
        .context("connecting to the private PostgreSQL")?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        // `name` is our constant, not input.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
    }
    Ok(())
}

/// Creates the admin user on first run with a random password kept in the
/// state dir (mode 0600), and reads it back on later runs.
async fn ensure_admin(store: &Store, state_dir: &Path) -> anyhow::Result<String> {
    let file = state_dir.join("admin-password");
    if let Ok(saved) = std::fs::read_to_string(&file) {
        return Ok(saved.trim().to_string());
    }
    let mut bytes = [0u8; 12];
    rand::fill(&mut bytes[..]);
    let password: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let hash = {
        let password = password.clone();
        tokio::task::spawn_blocking(move || password::hash(&password))
            .await?
            .map_err(anyhow::Error::msg)?
    };
    match store
        .create_user(ADMIN_EMAIL, &hash, Role::Admin, ACTOR)
        .await
    {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => anyhow::bail!(
            "{ADMIN_EMAIL} exists but its password file {} is gone; remove the state dir to start afresh",
            file.display()
        ),
        Err(e) => return Err(e.into()),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(&file)?, password.as_bytes())?;
    Ok(password)
}

async fn ensure_demo_service(store: &Store) -> anyhow::Result<()> {
    match store.get_service(DEMO_SERVICE).await {
        Ok(_) => return Ok(()),
        Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let settings = ServiceSettings {
        allow_methods: vec!["PUT".into(), "DELETE".into()],
        allow_headers: vec!["X-Demo".into(), "Content-Type".into()],
        expose_headers: vec![],
        allow_credentials: true,
        max_age_secs: 600,
        allow_private_network: false,
        mode: Mode::Enforce,
        strict: false,
        allow_insecure_http: false,
    };
    store
        .create_service(
            DEMO_SERVICE,
            "Demo API behind the dev agent",
            &settings,
            ACTOR,
        )
        .await?;
    Ok(())
}

/// A pending request for the demo page's origin, unless one is already live.
/// Returns (id, status) of the live request.
async fn ensure_pending_request(
    store: &Store,
    origin: &str,
) -> anyhow::Result<(i64, OriginStatus)> {
    let live = store
        .list_origins(DEMO_SERVICE)
        .await?
        .into_iter()
        .find(|o| o.pattern == origin && o.status.is_live());
    if let Some(o) = live {
        return Ok((o.id, o.status));
    }
    let o = store
        .request_origin(
            DEMO_SERVICE,
            origin,
            "the dev demo page calls demo-api",
            None,
            ACTOR,
        )
        .await?;
    Ok((o.id, o.status))
}

struct Banner<'a> {
    database: String,
    http_url: &'a str,
    grpc_url: &'a str,
    agent_url: &'a str,
    agent_admin_url: &'a str,
    demo_origin: &'a str,
    admin_password: &'a str,
    pending: (i64, OriginStatus),
}

fn print_banner(b: &Banner<'_>) {
    let (id, status) = &b.pending;
    println!(
        r#"
Corsair dev is running. Ctrl-C stops everything.

  Admin UI            {http}/   (sign in with the admin login below)
  Control plane API   {http}/api/v1   (OpenAPI: {http}/api/v1/openapi.json)
  Control plane gRPC  {grpc}
  Agent proxy         {agent}   (service {service}; health: {admin}/healthz)
  Demo page           {demo}/   (origin {demo})
  Database            {db}

  Admin login         {email} / {password}

The demo page's origin has origin request #{id} ({status}). Open the demo page,
click "Run all" (blocked), then approve the request in the admin UI (Approvals) or
through the API, and click again:

  TOKEN=$(curl -s {http}/api/v1/login -H 'content-type: application/json' \
    -d '{{"email":"{email}","password":"{password}"}}' | sed 's/.*"token":"\([^"]*\)".*/\1/')
  curl -s -X POST {http}/api/v1/origins/{id}/approve -H "authorization: Bearer $TOKEN" \
    -H 'content-type: application/json' -d '{{"note":"approved from the dev banner"}}'
"#,
        http = b.http_url,
        grpc = b.grpc_url,
        agent = b.agent_url,
        admin = b.agent_admin_url,
        service = DEMO_SERVICE,
        demo = b.demo_origin,
        db = b.database,
        email = ADMIN_EMAIL,
        password = b.admin_password,
    );
}
