//! `corsair-control-plane`: see `--help`.

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use corsair_control_plane::auth::bootstrap::{BootstrapOutcome, bootstrap_admin};
use corsair_control_plane::auth::login::LocalLogin;
use corsair_control_plane::auth::oidc::{OidcClient, OidcConfig};
use corsair_control_plane::auth::{Role, SigningKey, password};
use corsair_control_plane::domain::RoleMap;
use corsair_control_plane::grpc::GrpcConfig;
use corsair_control_plane::metrics::audit_figures::AUDIT_READ_INTERVAL;
use corsair_control_plane::node::{Node, NodeTls};
use corsair_control_plane::server;
use corsair_control_plane::service;
use corsair_control_plane::state::{AppState, SignIn};
use corsair_control_plane::store::overview::ChainHead;
use corsair_control_plane::store::{PoolConfig, Store};
use corsair_control_plane::telemetry::RetentionConfig;
use corsair_control_plane::tls::{ServerTls, TlsFiles};
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::net::TcpListener;
use tracing::Instrument as _;

/// Corsair control plane: the CORS policy store, approval workflow, REST API
/// and the policy stream agents subscribe to.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Log format.
    #[arg(long, env = "CORSAIR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Migrate the database (unless --skip-migrations), then serve the HTTP
    /// API and the gRPC policy stream.
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and exit.
    Migrate(DbArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage agent tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Check the change audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Run the whole system locally for a first look: a private PostgreSQL
    /// (unless DATABASE_URL is set), an admin user, a demo service, a demo
    /// upstream behind a real agent, and a demo page on another origin.
    #[cfg(feature = "dev")]
    Dev(DevArgs),
}

#[cfg(feature = "dev")]
#[derive(Debug, Args)]
struct DevArgs {
    /// Use this database instead of starting a private PostgreSQL.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Directory for the private database, signing key, admin password and agent cache.
    #[arg(long, env = "CORSAIR_STATE_DIR", default_value = ".corsair-dev")]
    state_dir: PathBuf,
    /// Control-plane HTTP address (API and UI).
    #[arg(long, env = "CORSAIR_HTTP", default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// Control-plane gRPC address.
    #[arg(long, env = "CORSAIR_GRPC", default_value = "127.0.0.1:50051")]
    grpc: SocketAddr,
    /// Agent proxy address (what the demo page calls).
    #[arg(long, env = "CORSAIR_AGENT_LISTEN", default_value = "127.0.0.1:8081")]
    agent: SocketAddr,
    /// Agent admin address (/healthz, /readyz).
    #[arg(long, env = "CORSAIR_AGENT_ADMIN", default_value = "127.0.0.1:8082")]
    agent_admin: SocketAddr,
    /// Demo page address: a different origin from the agent's.
    #[arg(long, env = "CORSAIR_DEMO_LISTEN", default_value = "127.0.0.1:8090")]
    demo: SocketAddr,
}

#[derive(Debug, Args)]
struct DbArgs {
    /// Postgres connection URL, e.g. postgres://corsair@db:5432/corsair.
    #[arg(long, env = "CORSAIR_DATABASE_URL")]
    database_url: String,
    /// Seconds a request waits for a database connection (connecting
    /// included) before giving up: while Postgres is down or restarting,
    /// the API answers 503 after this long.
    #[arg(long, env = "CORSAIR_DATABASE_ACQUIRE_TIMEOUT", default_value_t = 3.0)]
    database_acquire_timeout: f64,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Address for the HTTP API (and UI), e.g. 0.0.0.0:8080.
    #[arg(long, env = "CORSAIR_HTTP")]
    http: SocketAddr,
    /// Address for the gRPC policy stream agents connect to, e.g. 0.0.0.0:8081.
    #[arg(long, env = "CORSAIR_GRPC")]
    grpc: SocketAddr,
    /// File holding the key that signs user and agent tokens; created (mode
    /// 0600) with a fresh random key when missing. Every replica must share it.
    #[arg(long, env = "CORSAIR_SIGNING_KEY_FILE")]
    signing_key_file: PathBuf,
    /// Let a user approve their own origin requests, confirm their own
    /// revocation requests and their own widening settings changes
    /// (one-person teams, demos). Without it, four eyes are required.
    #[arg(long, env = "CORSAIR_SINGLE_OPERATOR")]
    single_operator: bool,
    /// Mark the UI session cookie `Secure` (set it when users reach the
    /// control plane over HTTPS, e.g. behind a TLS-terminating proxy).
    #[arg(long, env = "CORSAIR_SECURE_COOKIES")]
    secure_cookies: bool,
    /// Days of blocked-request telemetry kept: daily partitions wholly
    /// older than this are dropped (raw events and their hourly and daily
    /// rollups), with the batch ids of that age.
    #[arg(long, env = "CORSAIR_BLOCKED_RETENTION_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(i64).range(1..=3650))]
    blocked_retention_days: i64,
    /// Seconds after which an agent's policy stream is ended with
    /// UNAVAILABLE ("reconnect"), jittered by ±10 % per stream, so agents
    /// spread over new replicas after a scale-up (they reconnect through the
    /// load balancer with their usual backoff, keeping their policy). 0
    /// (the default): streams stay open until the agent or replica goes.
    /// 1800 (30 minutes) suits an autoscaled Deployment.
    /// At most 31536000 (a year): the jittered age must stay a valid timer.
    #[arg(long, env = "CORSAIR_MAX_STREAM_AGE", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=MAX_STREAM_AGE_LIMIT))]
    max_stream_age: u64,
    /// Do not apply migrations at start-up (when a `migrate` Job owns them,
    /// or the serving database user may not change the schema). `/readyz`
    /// answers 503 until the schema is current.
    #[arg(long, env = "CORSAIR_SKIP_MIGRATIONS")]
    skip_migrations: bool,
    /// Email of an admin to create at start-up if, and only if, no user
    /// exists yet (audited as `bootstrap`; never changes an existing user).
    #[arg(
        long,
        env = "CORSAIR_BOOTSTRAP_ADMIN_EMAIL",
        requires = "bootstrap_admin_password_file"
    )]
    bootstrap_admin_email: Option<String>,
    /// File whose first line is that admin's password (e.g. a mounted
    /// Secret); read only when the admin is about to be created.
    #[arg(
        long,
        env = "CORSAIR_BOOTSTRAP_ADMIN_PASSWORD_FILE",
        requires = "bootstrap_admin_email"
    )]
    bootstrap_admin_password_file: Option<PathBuf>,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    sign_in: SignInArgs,
}

/// `serve`'s sign-in flags: OpenID Connect, and turning passwords off.
#[derive(Debug, Args)]
struct SignInArgs {
    /// The OpenID Connect provider's issuer URL (e.g.
    /// https://keycloak.example.com/realms/corp); turns on "Sign in with
    /// your identity provider". Discovered at start-up
    /// (<issuer>/.well-known/openid-configuration): serve stops when that fails.
    #[arg(
        long,
        env = "CORSAIR_OIDC_ISSUER_URL",
        requires_all = ["oidc_client_id", "oidc_redirect_url"]
    )]
    oidc_issuer_url: Option<String>,
    /// This control plane's client id at the provider; ID tokens must name
    /// it as their audience.
    #[arg(long, env = "CORSAIR_OIDC_CLIENT_ID", requires = "oidc_issuer_url")]
    oidc_client_id: Option<String>,
    /// File whose first line is the client secret (a mounted Secret). Leave
    /// it out for a public client (PKCE only).
    #[arg(
        long,
        env = "CORSAIR_OIDC_CLIENT_SECRET_FILE",
        requires = "oidc_issuer_url"
    )]
    oidc_client_secret_file: Option<PathBuf>,
    /// Where the provider sends browsers back: this control plane's public
    /// URL followed by /login/oidc/callback (register it at the provider).
    #[arg(long, env = "CORSAIR_OIDC_REDIRECT_URL", requires = "oidc_issuer_url")]
    oidc_redirect_url: Option<String>,
    /// The ID-token claim listing the user's groups (a list of strings, or one string).
    #[arg(long, env = "CORSAIR_OIDC_ROLE_CLAIM", default_value = "groups")]
    oidc_role_claim: String,
    /// GROUP=ROLE: members of GROUP get ROLE (viewer, requester, approver,
    /// admin); repeat for several (comma-separated, also in the environment,
    /// so a group name cannot contain a comma). The highest role of a user's
    /// groups wins; a user with none is refused.
    #[arg(
        long = "oidc-role-map",
        env = "CORSAIR_OIDC_ROLE_MAP",
        value_delimiter = ','
    )]
    oidc_role_map: Vec<String>,
    /// An extra scope to request besides openid, email and profile (e.g.
    /// groups, where the provider releases the groups claim only under a
    /// scope); repeatable.
    #[arg(long = "oidc-scope", env = "CORSAIR_OIDC_SCOPE", value_delimiter = ',')]
    oidc_scopes: Vec<String>,
    /// Turn password sign-in off (UI and POST /api/v1/login): people sign in
    /// through the OpenID Connect provider; only --break-glass-admin may
    /// still use a password.
    #[arg(
        long,
        env = "CORSAIR_DISABLE_LOCAL_LOGIN",
        requires = "oidc_issuer_url"
    )]
    disable_local_login: bool,
    /// With --disable-local-login: the email of the one local admin who may
    /// still sign in with a password (for when the provider is down); each
    /// such sign-in is audited as auth.break_glass.
    #[arg(
        long,
        env = "CORSAIR_BREAK_GLASS_ADMIN",
        requires = "disable_local_login"
    )]
    break_glass_admin: Option<String>,
}

impl SignInArgs {
    /// The sign-in settings, the provider discovered; errors name the flag.
    async fn load(&self) -> anyhow::Result<SignIn> {
        let local_login = if self.disable_local_login {
            LocalLogin::BreakGlassOnly(self.break_glass_admin.as_ref().map(|e| e.trim().to_owned()))
        } else {
            LocalLogin::Enabled
        };
        let (Some(issuer_url), Some(client_id), Some(redirect_url)) = (
            &self.oidc_issuer_url,
            &self.oidc_client_id,
            &self.oidc_redirect_url,
        ) else {
            return Ok(SignIn {
                local_login,
                ..SignIn::default()
            });
        };
        let role_map = RoleMap::parse(&self.oidc_role_map).map_err(anyhow::Error::msg)?;
        if role_map.is_empty() {
            bail!(
                "--oidc-issuer-url needs at least one --oidc-role-map GROUP=ROLE (nobody could sign in)"
            );
        }
        let client_secret = match &self.oidc_client_secret_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("reading --oidc-client-secret-file {}", path.display())
                })?;
                let secret = text.lines().next().unwrap_or_default().trim().to_owned();
                if secret.is_empty() {
                    bail!("--oidc-client-secret-file {} is empty", path.display());
                }
                Some(secret)
            }
            None => None,
        };
        let config = OidcConfig {
            issuer_url: issuer_url.clone(),
            client_id: client_id.clone(),
            client_secret,
            redirect_url: redirect_url.clone(),
            role_claim: self.oidc_role_claim.clone(),
            extra_scopes: self.oidc_scopes.clone(),
        };
        let client = OidcClient::discover(config).await?;
        tracing::info!(
            issuer = client.issuer(),
            "OpenID Connect provider discovered"
        );
        Ok(SignIn {
            oidc: Some(client),
            role_map,
            local_login,
        })
    }
}

/// `serve`'s TLS flags: both listeners over TLS, certificates re-read on change.
#[derive(Debug, Args)]
struct TlsArgs {
    /// PEM certificate chain (leaf first) for both listeners, HTTP and gRPC;
    /// with --tls-key-file turns TLS on. Re-read when it changes (e.g.
    /// renewed by cert-manager): new connections get the new certificate,
    /// open agent streams keep theirs.
    #[arg(long, env = "CORSAIR_TLS_CERT_FILE", requires = "tls_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "CORSAIR_TLS_KEY_FILE", requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,
    /// PEM CA bundle: agents must present a client certificate signed by
    /// one of these CAs on the gRPC listener (mTLS). Re-read on change like
    /// the certificate. The HTTP listener never asks for client certificates.
    #[arg(long, env = "CORSAIR_TLS_CLIENT_CA_FILE", requires = "tls_cert_file")]
    tls_client_ca_file: Option<PathBuf>,
    /// How often the TLS files are checked for changes, in seconds.
    #[arg(long, env = "CORSAIR_TLS_RELOAD_INTERVAL", default_value_t = 5.0)]
    tls_reload_interval: f64,
}

impl TlsArgs {
    /// The loaded TLS settings, or `None` without `--tls-cert-file`.
    fn load(&self) -> anyhow::Result<Option<NodeTls>> {
        let (Some(cert), Some(key)) = (&self.tls_cert_file, &self.tls_key_file) else {
            return Ok(None);
        };
        if !(self.tls_reload_interval.is_finite() && self.tls_reload_interval >= 0.1) {
            bail!("--tls-reload-interval must be at least 0.1 seconds");
        }
        let files = TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: self.tls_client_ca_file.clone(),
        };
        let config = ServerTls::load(files).context("loading the --tls-* files")?;
        Ok(Some(NodeTls {
            config,
            reload_interval: std::time::Duration::from_secs_f64(self.tls_reload_interval),
        }))
    }
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Recompute the audit log's hash chain and report every row that was
    /// altered, removed or inserted out of band; exits non-zero if any.
    /// Prints the chain's head (SEQ:HASH): keep it outside the database
    /// and pass it back as --expect-head, so rows removed from the end of
    /// the log are found too.
    Verify(AuditVerifyArgs),
}

#[derive(Debug, Args)]
struct AuditVerifyArgs {
    #[command(flatten)]
    db: DbArgs,
    /// A head printed by an earlier `audit verify` (SEQ:HASH), kept where
    /// the database's writers cannot change it: the check fails unless the
    /// chain still holds that row with that hash. The chain alone cannot
    /// show rows removed from its end.
    #[arg(long, env = "CORSAIR_AUDIT_EXPECT_HEAD")]
    expect_head: Option<ChainHead>,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user.
    Add(UserAddArgs),
}

#[derive(Debug, Args)]
struct UserAddArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The user's email (their login name).
    #[arg(long, env = "CORSAIR_USER_EMAIL")]
    email: String,
    /// viewer, requester, approver or admin.
    #[arg(long, env = "CORSAIR_USER_ROLE")]
    role: String,
    /// Read the password from the first line of standard input (required, so
    /// that it never appears in a process listing or shell history).
    #[arg(long, required = true)]
    password_stdin: bool,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Issue an agent token and print it (and nothing else) on stdout.
    Issue(TokenIssueArgs),
}

#[derive(Debug, Args)]
struct TokenIssueArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The signing key file (as given to `serve`).
    #[arg(long, env = "CORSAIR_SIGNING_KEY_FILE")]
    signing_key_file: PathBuf,
    /// A name for the token, e.g. the gateway it is for.
    #[arg(long, env = "CORSAIR_TOKEN_NAME")]
    name: String,
    /// A service the agent may subscribe to; repeat for several.
    #[arg(long = "service", required = true)]
    services: Vec<String>,
    /// The id of the token this one replaces (rotation): the new token may
    /// then act as the agent ids bound to the old one. Revoke the old one
    /// once every agent has the new token.
    #[arg(long, env = "CORSAIR_TOKEN_REPLACES")]
    replaces: Option<uuid::Uuid>,
}

/// The actor recorded in the audit log for command-line writes.
const CLI_ACTOR: &str = "cli";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::Migrate(args) => {
            let store = connect(&args).await?;
            store.migrate().await.context("applying migrations")?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::User(UserCommand::Add(args)) => user_add(args).await,
        Command::Token(TokenCommand::Issue(args)) => token_issue(args).await,
        Command::Audit(AuditCommand::Verify(args)) => audit_verify(args).await,
        #[cfg(feature = "dev")]
        Command::Dev(args) => {
            let options = corsair_control_plane::dev::DevOptions {
                database_url: args.database_url,
                state_dir: args.state_dir,
                http: args.http,
                grpc: args.grpc,
                agent: args.agent,
                agent_admin: args.agent_admin,
                demo: args.demo,
            };
            corsair_control_plane::dev::run(options, server::shutdown_signal()).await
        }
    }
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Logs go to stderr: `token issue` prints only the token on stdout.
    // Colours only on a terminal: a file, a pipe or a log collector gets
    // plain text, not escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn connect(args: &DbArgs) -> anyhow::Result<Store> {
    let timeout = args.database_acquire_timeout;
    if !(timeout.is_finite() && (0.1..=300.0).contains(&timeout)) {
        bail!("--database-acquire-timeout must be between 0.1 and 300 seconds, got {timeout}");
    }
    let config = PoolConfig {
        acquire_timeout: std::time::Duration::from_secs_f64(timeout),
        ..PoolConfig::default()
    };
    Store::connect_with(&args.database_url, config)
        .await
        .context("connecting to the database")
}

/// Raises the open-file limit (`RLIMIT_NOFILE`) to its hard limit: every
/// agent stream holds a socket, and the usual soft limit (1,024) would cap a
/// replica at about a thousand agents. A failure is logged, not fatal.
fn raise_open_files_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open-file limit (RLIMIT_NOFILE)"),
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
    }
}

/// Pending connections the gRPC listener queues (the kernel caps it at
/// `net.core.somaxconn`): after a restart, thousands of agents reconnect
/// within seconds, and tokio's default of 1,024 would drop SYNs (each costing
/// an agent a one-second retransmit).
const GRPC_BACKLOG: u32 = 4096;

/// Binds the gRPC listener (address reuse on, as `TcpListener::bind`) with
/// [`GRPC_BACKLOG`].
fn bind_grpc(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(GRPC_BACKLOG)
}

/// The largest `--max-stream-age` (seconds): a year.
const MAX_STREAM_AGE_LIMIT: u64 = 365 * 24 * 3600;

/// Warns at start-up when `--break-glass-admin` names no enabled admin:
/// otherwise the mistake shows only when the provider is down and someone
/// needs that account. A warning, not a refusal: the account may be added
/// (`user add`) after the control plane starts.
async fn warn_about_break_glass_admin(store: &Store, local_login: &LocalLogin) {
    let LocalLogin::BreakGlassOnly(Some(email)) = local_login else {
        return;
    };
    match store.active_user_role(email).await {
        Ok(Some(Role::Admin)) => {}
        Ok(Some(role)) => tracing::warn!(
            email = %email,
            role = role.as_str(),
            "--break-glass-admin is not an admin; its password sign-in will be refused until it is"
        ),
        Ok(None) => tracing::warn!(
            email = %email,
            "--break-glass-admin names no enabled user; create it with `user add --role admin`"
        ),
        Err(error) => tracing::warn!(%error, "cannot check --break-glass-admin"),
    }
}

/// How often a deferred bootstrap admin checks whether the schema is current.
const BOOTSTRAP_SCHEMA_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Creates the bootstrap admin when no user exists (see `bootstrap_admin`).
async fn bootstrap(store: &Store, email: &str, file: &std::path::Path) -> anyhow::Result<()> {
    match bootstrap_admin(store, email, file)
        .await
        .context("bootstrap admin")?
    {
        BootstrapOutcome::Created(user) => {
            tracing::info!(email = %user.email, "bootstrap admin created")
        }
        BootstrapOutcome::UsersExist => {
            tracing::info!("users exist: bootstrap admin not needed")
        }
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    raise_open_files_limit();
    // Before the database: a bad certificate path is the likelier mistake.
    let tls = args.tls.load()?;
    let sign_in = args.sign_in.load().await?;
    let store = connect(&args.db).await?;
    if args.skip_migrations {
        tracing::info!("--skip-migrations: not applying migrations");
    } else {
        store.migrate().await.context("applying migrations")?;
    }
    if let (Some(email), Some(file)) = (
        args.bootstrap_admin_email.clone(),
        args.bootstrap_admin_password_file.clone(),
    ) {
        let schema_current = store
            .schema_status()
            .await
            .is_ok_and(|schema| schema.is_current());
        if schema_current {
            bootstrap(&store, &email, &file).await?;
        } else {
            // --skip-migrations before the migration Job has finished: serve
            // (unready) and create the admin once the schema is there, rather
            // than crash-looping until it is.
            tracing::info!("schema not current yet: the bootstrap admin waits for it");
            let store = store.clone();
            tokio::spawn(
                async move {
                    while !store
                        .schema_status()
                        .await
                        .is_ok_and(|schema| schema.is_current())
                    {
                        tokio::time::sleep(BOOTSTRAP_SCHEMA_POLL).await;
                    }
                    if let Err(e) = bootstrap(&store, &email, &file).await {
                        tracing::error!(error = format!("{e:#}"), "bootstrap admin not created");
                    }
                }
                .instrument(tracing::info_span!("bootstrap_admin")),
            );
        }
    }
    warn_about_break_glass_admin(&store, &sign_in.local_login).await;
    let keys = SigningKey::load_or_create(&args.signing_key_file)?;
    let http = TcpListener::bind(args.http)
        .await
        .with_context(|| format!("binding HTTP to {}", args.http))?;
    // Bound now so a taken port fails start-up, not the first agent.
    let grpc = bind_grpc(args.grpc).with_context(|| format!("binding gRPC to {}", args.grpc))?;

    let node = Node {
        store,
        keys,
        http,
        grpc,
        grpc_config: GrpcConfig {
            max_stream_age: (args.max_stream_age > 0)
                .then(|| std::time::Duration::from_secs(args.max_stream_age)),
            ..GrpcConfig::default()
        },
        single_operator: args.single_operator,
        // Browsers reach a TLS control plane over HTTPS: cookies can be Secure.
        secure_cookies: args.secure_cookies || tls.is_some(),
        retention: RetentionConfig {
            retention_days: args.blocked_retention_days,
            ..RetentionConfig::default()
        },
        sign_in,
        audit_read_interval: AUDIT_READ_INTERVAL,
    };
    node.run_with_tls(tls, server::shutdown_signal()).await
}

async fn audit_verify(args: AuditVerifyArgs) -> anyhow::Result<()> {
    let store = connect(&args.db).await?;
    let mut report = store
        .verify_audit_chain()
        .await
        .context("reading the audit log")?;
    if let Some(expected) = &args.expect_head {
        report.check_head(expected);
    }
    let head = report
        .head
        .as_ref()
        .map_or_else(|| "none (empty log)".to_owned(), ToString::to_string);
    if report.problems.is_empty() {
        println!(
            "audit log intact: {} rows, hash chain verified{}",
            report.rows,
            if args.expect_head.is_some() {
                ", recorded head present"
            } else {
                ""
            }
        );
        println!("head: {head}");
        return Ok(());
    }
    for p in &report.problems {
        println!("TAMPERED: {p}");
    }
    bail!(
        "audit log failed verification: {} problem(s) in {} rows",
        report.problems.len(),
        report.rows
    )
}

async fn user_add(args: UserAddArgs) -> anyhow::Result<()> {
    let role = Role::parse(&args.role).with_context(|| {
        format!(
            "unknown role {:?}: use viewer, requester, approver or admin",
            args.role
        )
    })?;
    let email = args.email.trim().to_owned();
    if email.is_empty() || !email.contains('@') {
        bail!("--email must be an email address, got {email:?}");
    }
    debug_assert!(args.password_stdin);
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.chars().count() < 8 {
        bail!("the password must have at least 8 characters");
    }
    let hash = tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .context("hashing task")?
        .map_err(anyhow::Error::msg)?;
    let store = connect(&args.db).await?;
    let user = store.create_user(&email, &hash, role, CLI_ACTOR).await?;
    tracing::info!(email = %user.email, role = role.as_str(), "user created");
    Ok(())
}

async fn token_issue(args: TokenIssueArgs) -> anyhow::Result<()> {
    // Checked before the key file is touched or the database is dialled.
    service::tokens::check_agent_token(&args.name, &args.services, None)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let keys = SigningKey::load_or_create(&args.signing_key_file)?;
    let store = connect(&args.db).await?;
    let state = AppState::new(store, keys);
    let (_, issued) = service::tokens::issue_agent(
        &state,
        &args.name,
        &args.services,
        None,
        args.replaces,
        CLI_ACTOR,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}", issued.token);
    Ok(())
}
