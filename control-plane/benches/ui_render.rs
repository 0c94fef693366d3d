//! How long the admin UI's pages take with a realistic amount of data: 500
//! services, 20,000 origins (a quarter of them pending) and 20,000 audit
//! rows, plus a week of blocked-request batches. Seeds a fresh database, serves a real node on loopback, signs in
//! through the login form and prints per-page timings (median and worst of
//! several requests, measured on loopback: server-side work dominates).
//! Prints, never asserts: run with `cargo bench -p corsair-control-plane --bench ui_render`.

use anyhow::{Context, Result};
use corsair_control_plane::auth::{Role, SigningKey, password};
use corsair_control_plane::grpc::GrpcConfig;
use corsair_control_plane::metrics::audit_figures::AUDIT_READ_INTERVAL;
use corsair_control_plane::node::Node;
use corsair_control_plane::server::Shutdown;
use corsair_control_plane::testing::TestDb;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

const SERVICES: i64 = 500;
const ORIGINS_PER_SERVICE: i64 = 40;
const RUNS: usize = 15;
const BLOCKED_HOURS: i64 = 24 * 7;

async fn seed(db: &TestDb) -> Result<()> {
    // Bulk seeding straight in SQL: going through the API would take minutes.
    let sql = format!(
        r#"
        INSERT INTO services (name, description, allow_methods, allow_headers, max_age_secs)
        SELECT format('svc-%s', lpad(i::text, 4, '0')), format('Service number %s', i),
               ARRAY['PUT','DELETE'], ARRAY['Content-Type'], 600
          FROM generate_series(1, {SERVICES}) i;
        INSERT INTO origins (service_id, pattern, status, requested_by, reason, requested_at, decided_by, decided_at)
        SELECT s.id, format('https://app%s.%s.example.com', j, s.name),
               CASE WHEN j % 4 = 0 THEN 'pending' ELSE 'approved' END,
               'requester@example.com', 'seeded', now() - make_interval(mins => j),
               CASE WHEN j % 4 = 0 THEN NULL ELSE 'approver@example.com' END,
               CASE WHEN j % 4 = 0 THEN NULL ELSE now() END
          FROM services s, generate_series(1, {ORIGINS_PER_SERVICE}) j;
        INSERT INTO change_audit (actor, action, service, target, before, after)
        SELECT 'requester@example.com', 'origin.request', s.name, format('origin:%s', o.id), NULL,
               jsonb_build_object('pattern', o.pattern, 'status', 'pending')
          FROM origins o JOIN services s ON s.id = o.service_id;
        "#
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(db.store.pool())
        .await?;
    seed_blocked(db).await
}

/// A week of hourly agent batches for the Blocked page: 10 services × 20
/// origins per hour, through the store's real ingestion path.
async fn seed_blocked(db: &TestDb) -> Result<()> {
    use corsair_control_plane::store::blocked::{BlockedCount, IngestBatch};
    let now = chrono::Utc::now();
    for hour in 0..BLOCKED_HOURS {
        let counts = (245..255)
            .flat_map(|s| {
                (0..20).map(move |o| BlockedCount {
                    service: format!("svc-{s:04}"),
                    origin: format!("https://blocked{o}.example.net"),
                    method: "GET".into(),
                    reason: "origin_not_allowed".into(),
                    would_block: o % 5 == 0,
                    count: 1 + (hour + o) % 7,
                })
            })
            .collect();
        let batch = IngestBatch {
            batch_id: format!("bench:{hour}"),
            agent_id: "bench-agent".into(),
            ts: now - chrono::Duration::hours(hour),
            counts,
            dropped_events: 0,
            dropped_service: String::new(),
            uses: Vec::new(),
            ts_end: Default::default(),
        };
        db.store.ingest_blocked_batch(&batch).await?;
    }
    Ok(())
}

fn cookie_of(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("corsair_session="))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
}

#[tokio::main]
async fn main() -> Result<()> {
    let db = TestDb::new().await?;
    let started = Instant::now();
    seed(&db).await?;
    println!(
        "seeded {SERVICES} services, {} origins, {} audit rows in {:?}",
        SERVICES * ORIGINS_PER_SERVICE,
        SERVICES * ORIGINS_PER_SERVICE,
        started.elapsed()
    );
    let pw = "bench password 123";
    let hash = password::hash(pw).map_err(anyhow::Error::msg)?;
    db.store
        .create_user("admin@example.com", &hash, Role::Admin, "bench")
        .await?;

    let http = TcpListener::bind("127.0.0.1:0").await?;
    let grpc = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", http.local_addr()?);
    let stop = Shutdown::new();
    let node = Node {
        store: db.store.clone(),
        keys: SigningKey::from_bytes(&[3; 32]),
        http,
        grpc,
        grpc_config: GrpcConfig::default(),
        single_operator: false,
        secure_cookies: false,
        retention: Default::default(),
        sign_in: Default::default(),
        audit_read_interval: AUDIT_READ_INTERVAL,
    };
    let task = tokio::spawn(node.run(stop.wait()));

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let login = client.get(format!("{base}/login")).send().await?;
    let login_cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("corsair_login_csrf="))
        .and_then(|c| c.split(';').next())
        .context("no login cookie")?
        .to_owned();
    let token = login_cookie
        .split_once('=')
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default();
    let r = client
        .post(format!("{base}/login"))
        .header("cookie", &login_cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("login_csrf={token}&email=admin%40example.com&password=bench+password+123&next=%2Fservices"))
        .send()
        .await?;
    let session = cookie_of(&r).context("login failed")?;

    println!(
        "{:<52} {:>10} {:>10} {:>10}",
        "page", "median", "worst", "bytes"
    );
    for path in [
        "/services",
        "/services?q=svc-04",
        "/services/svc-0250",
        "/approvals",
        "/audit",
        "/audit?service=svc-0250",
        "/audit?page=200",
        "/agents",
        "/simulator?service=svc-0250&origin=https%3A%2F%2Fapp1.svc-0250.example.com&method=PUT",
        "/users",
        "/blocked",
        "/blocked?service=svc-0250",
        "/blocked?service=svc-0250&range=7d",
        "/blocked?origin=blocked1&origin_match=substring&range=30d",
    ] {
        let mut times = Vec::with_capacity(RUNS);
        let mut bytes = 0;
        for _ in 0..RUNS {
            let t = Instant::now();
            let r = client
                .get(format!("{base}{path}"))
                .header("cookie", &session)
                .send()
                .await?;
            let status = r.status();
            let body = r.bytes().await?;
            times.push(t.elapsed());
            bytes = body.len();
            anyhow::ensure!(status.is_success(), "{path}: {status}");
        }
        times.sort();
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
        println!(
            "{path:<52} {:>10} {:>10} {bytes:>10}",
            ms(times[RUNS / 2]),
            ms(times[RUNS - 1])
        );
    }
    stop.trigger();
    task.await??;
    Ok(())
}
