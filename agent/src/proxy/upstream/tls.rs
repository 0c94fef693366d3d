//! The upstream's TLS client config, following `--upstream-ca-file`.
//!
//! The file is read again when a new upstream connection is opened, at most
//! once per [`RECHECK_EVERY`], and its contents compared with the last
//! read, so a rotated CA (a Secret updated in place) is trusted without a
//! restart, as the agent's control-plane TLS files are. The rustls config is rebuilt only when the
//! contents changed. A changed file that cannot be used (unreadable, no
//! certificate) leaves the previous roots in place, with one warning per
//! change. Connections already open keep the session they started with.
//!
//! Contents rather than modification time and length: two certificates of
//! the same key type have the same PEM length, and a file rewritten within
//! one tick of the file system's clock keeps its time, so a rotation could
//! go unseen. Reading a few kilobytes beside a TLS handshake costs little;
//! the once-a-second bound keeps connection churn from turning into a file
//! read per connection, and the read is made outside the lock, one at a
//! time, so a slow file system holds up the one connection that reads
//! (and its worker thread), not every connection being opened.

use super::ClientError;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// How often, at most, a new upstream connection reads the CA file again:
/// a rotation is trusted within this long of the file changing (after the
/// kubelet's own Secret sync, which takes far longer).
pub(super) const RECHECK_EVERY: Duration = Duration::from_secs(1);

/// Makes upstream connections (TCP, and TLS for `https://`) with the CA
/// file's current certificates; shared by every client connection.
pub(super) struct UpstreamTls {
    /// The TCP connector every TLS connector wraps (timeouts, `TCP_NODELAY`).
    http: HttpConnector,
    provider: Arc<CryptoProvider>,
    /// The system's roots, read once at start (not watched).
    system: RootCertStore,
    /// `--upstream-ca-file`; `None`: the connector never changes.
    ca_file: Option<PathBuf>,
    /// [`RECHECK_EVERY`] (shorter in unit tests).
    recheck: Duration,
    state: Mutex<State>,
}

struct State {
    /// When the newest read of the CA file began; `None` before the first
    /// after start.
    checked: Option<Instant>,
    /// A read is under way: no other starts meanwhile, so a file system
    /// that hangs holds up one connection (and its worker thread), not one
    /// more every [`RECHECK_EVERY`].
    reading: bool,
    /// What the last read of the CA file gave: its bytes, or why it could
    /// not be read. Compared with each new read to notice a change.
    seen: Result<Vec<u8>, String>,
    /// Built from the last usable contents.
    connector: HttpsConnector<HttpConnector>,
}

/// What [`UpstreamTls::refresh`] found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refresh {
    /// No CA file, or the same contents as the last read.
    Unchanged,
    /// New contents, now trusted: the number of certificates in the file.
    Reloaded(usize),
    /// New contents (or a new read error) that cannot be used: the
    /// previous roots stay. The message says what is wrong.
    Kept(String),
}

impl UpstreamTls {
    /// The connector with the system's roots (only when `https`) and the
    /// certificates of `ca_file`, which must be readable and hold at least
    /// one certificate now ([`ClientError::CaFile`]). [`ClientError::NoRoots`]
    /// for an `https` upstream with no root at all.
    pub(super) fn new(
        http: HttpConnector,
        https: bool,
        ca_file: Option<&Path>,
    ) -> Result<Self, ClientError> {
        let mut system = RootCertStore::empty();
        if https {
            let native = rustls_native_certs::load_native_certs();
            for e in &native.errors {
                tracing::warn!(error = %e, "reading the system's CA certificates");
            }
            let (added, ignored) = system.add_parsable_certificates(native.certs);
            tracing::debug!(added, ignored, "system CA certificates for the upstream");
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let (seen, roots) = match ca_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| ClientError::CaFile {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?;
                let (roots, added) =
                    with_ca_file(&system, &pem).map_err(|message| ClientError::CaFile {
                        path: path.to_path_buf(),
                        message,
                    })?;
                tracing::info!(path = %path.display(), added, "trusting extra CA certificates for the upstream");
                (Ok(pem), roots)
            }
            None => (Ok(Vec::new()), system.clone()),
        };
        if https && roots.is_empty() {
            return Err(ClientError::NoRoots);
        }
        let connector = build(&http, &provider, roots)?;
        Ok(Self {
            http,
            provider,
            system,
            ca_file: ca_file.map(Path::to_path_buf),
            recheck: RECHECK_EVERY,
            state: Mutex::new(State {
                checked: None,
                reading: false,
                seen,
                connector,
            }),
        })
    }

    /// The connector for a new upstream connection, with the CA file as it
    /// is now (see the module's doc); logs a reload, or one warning per
    /// unusable change naming the file and the problem.
    pub(super) fn current(&self) -> HttpsConnector<HttpConnector> {
        match self.refresh() {
            Refresh::Unchanged => {}
            Refresh::Reloaded(added) => tracing::info!(
                path = %self.path_text(),
                added,
                "--upstream-ca-file changed: new upstream connections trust its certificates"
            ),
            Refresh::Kept(problem) => tracing::warn!(
                path = %self.path_text(),
                problem = %problem,
                "--upstream-ca-file changed but cannot be used; new upstream connections keep trusting the previous certificates until it is fixed"
            ),
        }
        self.lock().connector.clone()
    }

    fn path_text(&self) -> String {
        self.ca_file
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain data: a panic elsewhere leaves it usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Unit tests: `self`, reading the file again at every connection.
    #[cfg(test)]
    pub(super) fn rechecking_always(mut self) -> Self {
        self.recheck = Duration::ZERO;
        self
    }

    /// Reads the CA file, unless a read began less than [`RECHECK_EVERY`]
    /// ago or is still under way, and, when its contents (or the read error) differ from the
    /// last read, rebuilds the connector from them or keeps the current
    /// one. Either way the new read becomes the one compared next, so an
    /// unusable file is reported once, not at every connection.
    pub(super) fn refresh(&self) -> Refresh {
        let Some(path) = &self.ca_file else {
            return Refresh::Unchanged;
        };
        let started = Instant::now();
        {
            let mut state = self.lock();
            if state.reading
                || state
                    .checked
                    .is_some_and(|at| started.duration_since(at) < self.recheck)
            {
                return Refresh::Unchanged;
            }
            state.checked = Some(started);
            state.reading = true;
        }
        // Outside the lock, so other connections open meanwhile with the
        // current roots. A blocking read in the connection's task (and on
        // its worker thread), of a small local file (a mounted Secret), as
        // the control-plane client reads its TLS files; one at a time.
        let now = std::fs::read(path).map_err(|e| format!("cannot read: {e}"));
        let mut state = self.lock();
        state.reading = false;
        if state.seen == now {
            return Refresh::Unchanged;
        }
        let outcome = match &now {
            Err(e) => Err(e.clone()),
            Ok(pem) => with_ca_file(&self.system, pem).and_then(|(roots, added)| {
                build(&self.http, &self.provider, roots)
                    .map(|connector| (connector, added))
                    .map_err(|e| e.to_string())
            }),
        };
        state.seen = now;
        match outcome {
            Ok((connector, added)) => {
                state.connector = connector;
                Refresh::Reloaded(added)
            }
            Err(problem) => Refresh::Kept(problem),
        }
    }
}

/// `system` plus every certificate of `pem`, and how many `pem` held; an
/// error (for the log) when it holds no certificate, a malformed block or
/// a certificate rustls cannot use as a root.
fn with_ca_file(system: &RootCertStore, pem: &[u8]) -> Result<(RootCertStore, usize), String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("malformed PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate in the file".into());
    }
    let mut roots = system.clone();
    let added = certs.len();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
    }
    Ok((roots, added))
}

/// hyper-rustls's connector trusting `roots`, over `http` (HTTP/1.1 only;
/// plain `http://` URIs pass through untouched).
fn build(
    http: &HttpConnector,
    provider: &Arc<CryptoProvider>,
    roots: RootCertStore,
) -> Result<HttpsConnector<HttpConnector>, ClientError> {
    let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http.clone()))
}

#[cfg(test)]
mod tests;
