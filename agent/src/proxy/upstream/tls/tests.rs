//! When the CA file is read again and what a change does, without sockets:
//! the TLS exchange itself is in `agent/tests/proxy_tls_upstream.rs`.

use super::{Refresh, UpstreamTls};
use hyper_util::client::legacy::connect::HttpConnector;
use std::path::Path;

type AnyError = Box<dyn std::error::Error + Send + Sync>;

fn ca_pem() -> Result<String, AnyError> {
    Ok(
        rcgen::generate_simple_self_signed(vec!["ca.test".to_string()])?
            .cert
            .pem(),
    )
}

fn watching(path: &Path) -> Result<UpstreamTls, AnyError> {
    Ok(UpstreamTls::new(HttpConnector::new(), true, Some(path))?.rechecking_always())
}

#[test]
fn a_changed_ca_file_is_reloaded_once() -> Result<(), AnyError> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, ca_pem()?)?;
    let tls = watching(&path)?;
    assert_eq!(tls.refresh(), Refresh::Unchanged);

    // Rewritten at once with another CA: seen by its contents, even within
    // one tick of the file system's clock.
    std::fs::write(&path, ca_pem()?)?;
    assert_eq!(tls.refresh(), Refresh::Reloaded(1));
    assert_eq!(tls.refresh(), Refresh::Unchanged);
    std::fs::write(&path, format!("{}{}", ca_pem()?, ca_pem()?))?;
    assert_eq!(tls.refresh(), Refresh::Reloaded(2));
    Ok(())
}

#[test]
fn an_unusable_change_is_reported_once_and_the_roots_kept() -> Result<(), AnyError> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("ca.pem");
    let good = ca_pem()?;
    std::fs::write(&path, &good)?;
    let tls = watching(&path)?;

    std::fs::write(&path, "not a certificate\n")?;
    match tls.refresh() {
        Refresh::Kept(problem) => assert!(problem.contains("no PEM certificate"), "{problem}"),
        other => return Err(format!("garbage: {other:?}").into()),
    }
    // Reported once per change, not per connection.
    assert_eq!(tls.refresh(), Refresh::Unchanged);

    std::fs::remove_file(&path)?;
    match tls.refresh() {
        Refresh::Kept(problem) => assert!(problem.contains("cannot read"), "{problem}"),
        other => return Err(format!("missing: {other:?}").into()),
    }
    assert_eq!(tls.refresh(), Refresh::Unchanged);

    // Back to the first contents: rebuilt (they differ from the last read).
    std::fs::write(&path, &good)?;
    assert_eq!(tls.refresh(), Refresh::Reloaded(1));
    Ok(())
}

// Paused: tokio's clock stands still, so both calls fall in one interval
// however slow the machine.
#[tokio::test(start_paused = true)]
async fn the_file_is_read_at_most_once_per_recheck_interval() -> Result<(), AnyError> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, ca_pem()?)?;
    // The production interval: the first connection reads, the next ones
    // within a second do not, so a change in between is not seen yet.
    let tls = UpstreamTls::new(HttpConnector::new(), true, Some(&path))?;
    assert_eq!(tls.refresh(), Refresh::Unchanged);
    std::fs::write(&path, ca_pem()?)?;
    assert_eq!(tls.refresh(), Refresh::Unchanged);
    tokio::time::advance(super::RECHECK_EVERY).await;
    assert_eq!(tls.refresh(), Refresh::Reloaded(1));
    Ok(())
}

#[test]
fn without_a_ca_file_nothing_is_read() -> Result<(), AnyError> {
    let tls = UpstreamTls::new(HttpConnector::new(), false, None)?;
    assert_eq!(tls.refresh(), Refresh::Unchanged);
    Ok(())
}
