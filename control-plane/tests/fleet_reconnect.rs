//! No reconnect storm (issue 12 item 3): 200 real agent sync clients on a
//! real `corsair-control-plane serve`, which is `kill -9`ed and started
//! again on the same address. A change is approved in the database while
//! it is down and another through the API right after the restart.
//! Figures at 1,000 agents are in BENCHMARKS.md (`--storm`).

use corsair_fleet_bench::fleet::Fleet;
use corsair_fleet_bench::harness::Harness;
use corsair_fleet_bench::stats::histogram;
use corsair_fleet_bench::{raise_open_files_limit, storm};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const AGENTS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_reconnects_jittered_after_kill_9_and_converges() {
    raise_open_files_limit().expect("raising RLIMIT_NOFILE");
    let binary = Path::new(env!("CARGO_BIN_EXE_corsair-control-plane"));
    let mut harness = Harness::start(binary).await.expect("control plane starts");
    let caches = tempfile::tempdir().expect("cache root");
    let fleet = Arc::new(
        Fleet::start(
            AGENTS,
            &harness.grpc_url(),
            &harness.agent_token,
            caches.path(),
        )
        .expect("sync clients"),
    );
    let origin = harness.request_and_approve().await.expect("approval");
    let revision = harness.revision().await.expect("revision");
    fleet
        .wait_converged(revision, Duration::from_secs(120))
        .await
        .expect("every agent connects and applies the approval");

    let report = storm::run(&mut harness, &fleet, &origin, Duration::from_secs(2))
        .await
        .unwrap_or_else(|e| panic!("crash and recovery: {e:#}\n{}", harness.log()));

    // Converged: `storm::run` waited until every agent was connected again
    // and held the final revision, and checked that every handle grants the
    // origins approved before, during and right after the outage.
    assert!(report.revision_while_down > revision);
    assert!(report.final_revision > report.revision_while_down);
    assert!(fleet.agents.iter().all(|a| a.status.borrow().connected));

    // Enforcing throughout: every check while down and recovering found
    // every agent granting the origin approved before the crash.
    assert!(
        report.enforcement_checks > 0,
        "the enforcement check never ran"
    );
    assert_eq!(
        report.enforcement_failures, 0,
        "{} of {} checks found an agent not granting {origin}",
        report.enforcement_failures, report.enforcement_checks
    );

    // Every agent tried again (at least once each) ...
    assert!(
        report.attempts.len() >= AGENTS,
        "only {} attempts after the kill",
        report.attempts.len()
    );
    // ... and not in lockstep: the jittered backoff spreads the attempts,
    // so no 100 ms window holds half of them, and they fall in many windows.
    let buckets = histogram(&report.attempts, Duration::from_millis(100));
    let busiest = buckets.iter().copied().max().unwrap_or(0);
    assert!(
        busiest * 2 < report.attempts.len(),
        "{busiest} of {} attempts in one 100 ms window: {buckets:?}",
        report.attempts.len()
    );
    let windows = buckets.iter().filter(|c| **c > 0).count();
    assert!(
        windows >= 5,
        "attempts in only {windows} windows: {buckets:?}"
    );

    if let Ok(fleet) = Arc::try_unwrap(fleet) {
        fleet.stop().await;
    }
}
