//! The crash scenario: `kill -9` the control plane under a connected
//! fleet, approve a change while it is down (in the shared database, as
//! another replica would), start it again on the same address, approve
//! another change at once, and watch the fleet come back.

use crate::fleet::Fleet;
use crate::harness::Harness;
use crate::proc_stats::{self, Sample};
use anyhow::{Context, Result, bail};
use corsair_control_plane::store::origins::Decision;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What the crash and recovery looked like.
#[derive(Debug, Clone)]
pub struct StormReport {
    /// Connection attempts of every agent after the kill, as offsets from it.
    pub attempts: Vec<Duration>,
    /// From the kill to the restart (the control plane was down this long).
    pub down_for: Duration,
    /// From the restarted process's start to every agent connected and
    /// holding the final revision.
    pub converged_after_restart: Duration,
    /// The revision approved in the database while the control plane was down.
    pub revision_while_down: i64,
    /// The revision approved through the REST API right after the restart;
    /// every agent ends here.
    pub final_revision: i64,
    /// Checks of "every agent's handle grants the origin approved before
    /// the crash" made while the control plane was down or recovering, and
    /// how many found an agent that did not.
    pub enforcement_checks: u64,
    /// See [`StormReport::enforcement_checks`].
    pub enforcement_failures: u64,
    /// The restarted control plane, every 100 ms until convergence.
    pub samples: Vec<(Duration, Sample)>,
}

/// Runs the scenario on a converged `fleet` whose agents grant
/// `enforced_origin`. The control plane stays down for `down_for`.
pub async fn run(
    harness: &mut Harness,
    fleet: &Arc<Fleet>,
    enforced_origin: &str,
    down_for: Duration,
) -> Result<StormReport> {
    let (down_id, down_origin) = harness.request_origin().await?;
    let checks = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let checker = {
        let (fleet, checks, origin) = (fleet.clone(), checks.clone(), enforced_origin.to_owned());
        tokio::spawn(async move {
            loop {
                let all = fleet.agents.iter().all(|a| a.allows(&origin));
                checks.0.fetch_add(1, Ordering::Relaxed);
                checks.1.fetch_add(u64::from(!all), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    let killed_at = Instant::now();
    harness.kill().await?;
    harness
        .db()
        .store
        .decide_origin(
            down_id,
            Decision::Approve,
            Some("approved while the control plane was down"),
            "approver@example.com",
        )
        .await
        .context("approving in the database")?;
    let revision_while_down: i64 =
        sqlx::query_scalar("SELECT revision FROM services WHERE name = $1")
            .bind(crate::harness::SERVICE)
            .fetch_one(harness.db().store.pool())
            .await?;
    tokio::time::sleep(down_for.saturating_sub(killed_at.elapsed())).await;

    let restarted_at = Instant::now();
    let down_for = restarted_at - killed_at;
    harness.restart()?;
    let pid = harness
        .pid()
        .context("restarted control plane has no pid")?;
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let keep_sampling = sampling.clone();
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        while keep_sampling.load(Ordering::Relaxed)
            && let Ok(sample) = proc_stats::sample(pid)
        {
            samples.push((restarted_at.elapsed(), sample));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        samples
    });
    harness.wait_serving().await?;
    let after_origin = harness.request_and_approve().await?;
    let final_revision = harness.revision().await?;
    let converged = fleet
        .wait_converged(final_revision, Duration::from_secs(300))
        .await;
    let converged_after_restart = restarted_at.elapsed();
    checker.abort();
    let _ = checker.await;
    sampling.store(false, Ordering::Relaxed);
    // A sampler that panicked leaves no samples; the figures say so.
    let samples: Vec<_> = sampler.await.unwrap_or_default();
    converged?;

    for (i, agent) in fleet.agents.iter().enumerate() {
        for origin in [enforced_origin, &down_origin, &after_origin] {
            if !agent.allows(origin) {
                bail!("agent {i} does not grant {origin} after recovery");
            }
        }
    }
    let attempts = fleet
        .agents
        .iter()
        .flat_map(|a| a.log().attempts)
        .filter(|t| *t >= killed_at)
        .map(|t| t - killed_at)
        .collect();
    Ok(StormReport {
        attempts,
        down_for,
        converged_after_restart,
        revision_while_down,
        final_revision,
        enforcement_checks: checks.0.load(Ordering::Relaxed),
        enforcement_failures: checks.1.load(Ordering::Relaxed),
        samples,
    })
}
