//! The authz agent's own lines carry the `corsair_agent::authz` target, so
//! an operator who filters by target (`RUST_LOG=corsair_agent::authz=info`)
//! finds them: they once came from the code it shares with the sidecar and
//! said `corsair_agent::proxy::sidecar`.

mod proxy_support;

use corsair_agent::authz::{self, AuthzConfig};
use corsair_agent::control_plane::ControlPlaneConfig;
use corsair_agent::report::ReportConfig;
use proxy_support::{AnyError, Log, STEP, refused_port};
use std::time::Duration;
use tokio::net::TcpListener;

#[tokio::test]
async fn the_authz_agents_lines_carry_its_target() -> Result<(), AnyError> {
    // This test's runtime is current-thread: every task logs here.
    let (log, _guard) = Log::capture(tracing::Level::INFO);

    let cache = tempfile::tempdir()?;
    // Nobody listens: no policy arrives, and none is cached.
    let refused = refused_port().await?;
    let config = AuthzConfig {
        control_plane: ControlPlaneConfig::new(format!("http://{}", refused.addr), "t"),
        service: "api".into(),
        cache_dir: cache.path().to_path_buf(),
        agent_name: "test".into(),
        drain_timeout: Duration::from_secs(1),
        drain_delay: Duration::ZERO,
        head_timeout: Duration::from_secs(30),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    // Asked to stop at once: it starts, then shuts down.
    let run = authz::run(config, ReportConfig::default(), listener, None, async {});
    tokio::time::timeout(STEP, run).await??;

    let text = log.text();
    for line in [
        "WARN corsair_agent::authz: no cached policy for this service",
        "INFO corsair_agent::authz: agent authz endpoint serving",
        "INFO corsair_agent::authz: agent shutting down",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
    assert!(!text.contains("corsair_agent::proxy::sidecar"), "{text}");
    Ok(())
}
