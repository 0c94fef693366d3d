//! TLS on the control plane's own listeners (`serve --tls-cert-file
//! --tls-key-file [--tls-client-ca-file]`), with certificates swapped in
//! while serving.
//!
//! - `load`: the PEM files → one rustls `ServerConfig` per listener (the
//!   gRPC one asks for client certificates when a client CA is given).
//! - [`listener`]: [`Listener`], a bound TCP listener, plain or TLS; the TLS
//!   one handshakes each connection on a task of its own.
//!
//! [`ServerTls`] holds the current configs in an `ArcSwap`. Each handshake
//! takes the configs current at that moment, and a connection keeps the
//! config it started with, so when [`ServerTls::watch`] swaps in a renewed
//! certificate, open agent streams carry on untouched and new connections
//! get the new certificate. The files are polled (their content compared),
//! not watched with inotify: cert-manager and kubelet replace Secret files by
//! swapping a `..data` symlink, which content comparison sees reliably.

pub mod listener;
mod load;

pub use listener::Listener;
pub use load::{TlsError, TlsFiles};

use arc_swap::ArcSwap;
use load::{Configs, Material};
use rustls::ServerConfig;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often [`ServerTls::watch`] re-reads the files by default.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// Which listener a connection arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// API, UI and `/metrics`.
    Http,
    /// Agents' `PolicySync` and `Telemetry`.
    Grpc,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Http => "http",
            Side::Grpc => "grpc",
        }
    }
}

/// The control plane's TLS settings, reloadable. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct ServerTls {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    files: TlsFiles,
    configs: ArcSwap<Configs>,
    /// The bytes last seen on disk (loaded or refused), so a bad file is
    /// reported once, not at every poll.
    seen: Mutex<Material>,
}

impl ServerTls {
    /// Reads and checks the files. Errors name the file at fault.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let material = load::read_material(&files)?;
        let configs = load::build(&files, &material)?;
        Ok(Self {
            inner: Arc::new(Inner {
                files,
                configs: ArcSwap::from_pointee(configs),
                seen: Mutex::new(material),
            }),
        })
    }

    /// The files this was loaded from.
    pub fn files(&self) -> &TlsFiles {
        &self.inner.files
    }

    /// Whether gRPC clients must present a certificate.
    pub fn requires_client_certificates(&self) -> bool {
        self.inner.files.client_ca.is_some()
    }

    /// The config a new handshake on `side` uses now.
    pub(crate) fn current(&self, side: Side) -> Arc<ServerConfig> {
        let configs = self.inner.configs.load();
        match side {
            Side::Http => configs.http.clone(),
            Side::Grpc => configs.grpc.clone(),
        }
    }

    /// Re-reads the files once; swaps in new configs when their content
    /// changed and parses. Returns whether it swapped. A file that cannot
    /// be read or parsed is logged (once per distinct content) and the
    /// configs in use are kept.
    pub fn reload(&self) -> bool {
        let files = &self.inner.files;
        let material = match load::read_material(files) {
            Ok(material) => material,
            Err(error) => {
                // Mid-swap (a symlink briefly dangling) or really gone: keep
                // serving; the next poll tries again.
                tracing::warn!(%error, "TLS files unreadable; keeping the certificate in use");
                return false;
            }
        };
        let Ok(mut seen) = self.inner.seen.lock() else {
            return false;
        };
        if *seen == material {
            return false;
        }
        let result = load::build(files, &material);
        *seen = material;
        drop(seen);
        match result {
            Ok(configs) => {
                self.inner.configs.store(Arc::new(configs));
                tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded; new connections use it");
                true
            }
            Err(error) => {
                tracing::error!(%error, "TLS files changed but are unusable; keeping the certificate in use");
                false
            }
        }
    }

    /// Calls [`ServerTls::reload`] every `interval` until `shutdown` completes.
    pub async fn watch(self, interval: Duration, shutdown: impl Future<Output = ()>) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = ticks.tick() => {}
            }
            let this = self.clone();
            // File reads block; keep them off the runtime's workers.
            let _ = tokio::task::spawn_blocking(move || this.reload()).await;
        }
    }
}
