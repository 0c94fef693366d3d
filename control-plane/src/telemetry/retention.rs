//! Partition maintenance for `blocked_events`: runs in every replica; a
//! transaction-scoped advisory lock makes one of them do each round.

use crate::store::Store;
use chrono::Utc;
use std::future::Future;
use std::time::Duration;

/// Retention settings.
#[derive(Debug, Clone, Copy)]
pub struct RetentionConfig {
    /// Days of blocked events kept (whole UTC days; older partitions are dropped).
    pub retention_days: i64,
    /// Daily partitions created ahead of today.
    pub ahead_days: i64,
    /// How often a round runs.
    pub interval: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            retention_days: 30,
            ahead_days: 3,
            interval: Duration::from_secs(3600),
        }
    }
}

/// Runs a maintenance round at once and then every `config.interval` until
/// `shutdown` completes. Errors are logged and retried on the next tick.
pub async fn run_retention<F>(store: Store, config: RetentionConfig, shutdown: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let mut ticks = tokio::time::interval(config.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = ticks.tick() => {}
        }
        match store
            .maintain_blocked_partitions(Utc::now(), config.ahead_days, config.retention_days)
            .await
        {
            Ok(Some((created, dropped))) => {
                if created > 0 || dropped > 0 {
                    tracing::info!(created, dropped, "blocked_events partitions maintained");
                }
            }
            Ok(None) => tracing::debug!("another replica is maintaining partitions"),
            Err(e) => tracing::warn!(error = %e, "partition maintenance failed; retrying"),
        }
    }
}
