//! `GET /metrics` answers anyone, and exports two figures read from the
//! database: however many scrapes arrive, together or one after another,
//! they cost at most one read per interval, a failed read included.
//!
//! The only test in this binary: `corsair_audit_reads_total` counts the
//! reads of the whole process, and another control plane scraped beside it
//! would add its own.

use anyhow::{Context, Result, anyhow};
use corsair_control_plane::store::services::ServiceSettings;
use corsair_control_plane::testing::{ControlPlane, Options};
use corsair_test_support::eventually;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Shorter than production's 5 s so the test sees a few intervals; still
/// long enough for a burst of scrapes to fit in one on a busy machine.
const INTERVAL: Duration = Duration::from_secs(2);

/// What one scrape said.
#[derive(Debug, Clone, Copy)]
struct Scrape {
    chain_length: f64,
    rows_deleted: f64,
    reads: f64,
    failures: f64,
}

async fn scrape(http: reqwest::Client, url: String) -> Result<Scrape> {
    let text = http
        .get(&url)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .ok_or_else(|| anyhow!("no {name} in /metrics:\n{text}"))
    };
    Ok(Scrape {
        chain_length: value("corsair_audit_chain_length")?,
        rows_deleted: value("corsair_audit_rows_deleted")?,
        reads: value("corsair_audit_reads_total")?,
        failures: value("corsair_audit_read_failures_total")?,
    })
}

/// Scrapes until `done` holds for a scrape, within `eventually`'s deadline;
/// `what` names the awaited figures.
async fn scraped_until(
    http: &reqwest::Client,
    url: &str,
    what: &str,
    done: impl Fn(&Scrape) -> bool,
) -> Result<()> {
    eventually(what, || {
        let (http, url) = (http.clone(), url.to_owned());
        let done = &done;
        async move { scrape(http, url).await.is_ok_and(|s| done(&s)) }
    })
    .await
}

/// `concurrent` scrapes at once, then `sequential` one after another.
async fn burst(
    http: &reqwest::Client,
    url: &str,
    concurrent: usize,
    sequential: usize,
) -> Result<Vec<Scrape>> {
    let mut set = JoinSet::new();
    for _ in 0..concurrent {
        set.spawn(scrape(http.clone(), url.to_owned()));
    }
    let mut seen = Vec::with_capacity(concurrent + sequential);
    while let Some(done) = set.join_next().await {
        seen.push(done.context("scrape task")??);
    }
    for _ in 0..sequential {
        seen.push(scrape(http.clone(), url.to_owned()).await?);
    }
    Ok(seen)
}

/// Reads started since `since` can be at most one per [`INTERVAL`] begun.
fn allowed_reads(since: Instant) -> f64 {
    1.0 + (since.elapsed().as_secs_f64() / INTERVAL.as_secs_f64()).floor()
}

#[tokio::test]
async fn scrapes_share_one_audit_read_per_interval() -> Result<()> {
    let cp = ControlPlane::start(Options {
        audit_read_interval: INTERVAL,
        ..Options::default()
    })
    .await?;
    let store = &cp.db.store;
    store
        .create_service(
            "payments-api",
            "Payments",
            &ServiceSettings::default(),
            "test",
        )
        .await?;
    let request = |i: usize| async move {
        store
            .request_origin(
                "payments-api",
                &format!("https://m{i}.example.com"),
                "why",
                None,
                "requester@example.com",
            )
            .await
    };
    request(0).await?;
    let http = reqwest::Client::new();
    let url = cp.url("/metrics");
    let start = Instant::now();

    // 1. Many scrapes at once and back to back: one read serves them all.
    let seen = burst(&http, &url, 32, 32).await?;
    let last = seen.last().copied().context("no scrape")?;
    let allowed = allowed_reads(start);
    assert!(
        last.reads >= 1.0 && last.reads <= allowed,
        "{} scrapes in {:?} made {} reads; at most {allowed} allowed",
        seen.len(),
        start.elapsed(),
        last.reads
    );
    assert!(
        last.chain_length >= 1.0 && !last.rows_deleted.is_nan(),
        "{last:?}"
    );
    assert_eq!(last.failures, 0.0, "{last:?}");

    // 2. A change shows once the interval is over.
    let before = last.chain_length;
    request(1).await?;
    scraped_until(
        &http,
        &url,
        "a new audit row in corsair_audit_chain_length",
        |s| s.chain_length == before + 1.0,
    )
    .await?;

    // 3. The database does not answer (the audit table locked): a read
    // times out, the figures are NaN, and that failure is reused too.
    let mut lock = store.pool().begin().await?;
    sqlx::raw_sql("LOCK TABLE change_audit IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await?;
    scraped_until(&http, &url, "a failed read to make the figures NaN", |s| {
        s.chain_length.is_nan() && s.rows_deleted.is_nan()
    })
    .await?;
    let seen = burst(&http, &url, 32, 16).await?;
    let last = seen.last().copied().context("no scrape")?;
    assert!(
        seen.iter().all(|s| s.chain_length.is_nan()),
        "figures while the table is locked: {seen:?}"
    );
    assert!(last.failures >= 1.0, "{last:?}");
    let allowed = allowed_reads(start);
    assert!(
        last.reads <= allowed,
        "{} reads in {:?} with the table locked; at most {allowed} allowed",
        last.reads,
        start.elapsed()
    );
    lock.rollback().await?;

    // 4. It answers again: the figures come back after the interval.
    scraped_until(
        &http,
        &url,
        "corsair_audit_chain_length to be read again",
        |s| s.chain_length == before + 1.0,
    )
    .await?;
    // Hundreds of scrapes over the whole test, a few intervals' reads.
    let last = scrape(http.clone(), url.clone()).await?;
    let allowed = allowed_reads(start);
    assert!(
        last.reads <= allowed,
        "{} reads in {:?}; at most {allowed} allowed",
        last.reads,
        start.elapsed()
    );
    assert!(last.failures <= last.reads, "{last:?}");
    Ok(())
}
