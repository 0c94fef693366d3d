//! Publishing: compile a snapshot, swap it into the service's
//! [`PolicyHandle`], keep the status and the last-known-good cache current.

use super::cache;
use super::snapshot::Snapshot;
use super::status::{PolicySource, SyncStatus};
use crate::engine::Policy;
use crate::handle::{ActivePolicy, PolicyHandle};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;
use tracing::{info, warn};

/// Owns the handles and the status; the only writer of both.
#[derive(Debug)]
pub(crate) struct Publisher {
    handles: HashMap<String, PolicyHandle>,
    cache_dir: PathBuf,
    status: watch::Sender<SyncStatus>,
}

impl Publisher {
    pub(crate) fn new(handles: HashMap<String, PolicyHandle>, cache_dir: PathBuf) -> Self {
        let status = SyncStatus {
            services: handles
                .keys()
                .map(|s| (s.clone(), Default::default()))
                .collect(),
            ..SyncStatus::default()
        };
        Self {
            handles,
            cache_dir,
            status: watch::Sender::new(status),
        }
    }

    pub(crate) fn status(&self) -> &watch::Sender<SyncStatus> {
        &self.status
    }

    pub(crate) fn services(&self) -> impl Iterator<Item = &String> {
        self.handles.keys()
    }

    /// Revisions in force, for the Hello.
    pub(crate) fn held(&self) -> HashMap<String, i64> {
        let status = self.status.borrow();
        status
            .services
            .iter()
            .filter_map(|(service, s)| s.revision.map(|r| (service.clone(), r)))
            .collect()
    }

    /// Compiles `snapshot` and swaps it in. `Err` (with every compile
    /// problem) means nothing changed: the old policy stays in force.
    pub(crate) fn apply(&self, snapshot: &Snapshot, source: PolicySource) -> Result<(), String> {
        let handle = self
            .handles
            .get(&snapshot.service)
            .ok_or_else(|| format!("this agent does not serve {:?}", snapshot.service))?;
        let active = match &snapshot.spec {
            None => None,
            Some(spec) => Some(Arc::new(ActivePolicy {
                service: snapshot.service.clone(),
                revision: snapshot.revision,
                policy: Policy::compile(spec).map_err(|e| e.to_string())?,
            })),
        };
        let has_policy = active.is_some();
        handle.store(active);
        self.status.send_modify(|status| {
            let s = status.services.entry(snapshot.service.clone()).or_default();
            s.revision = Some(snapshot.revision);
            s.has_policy = has_policy;
            s.source = source;
        });
        if has_policy {
            info!(service = %snapshot.service, revision = snapshot.revision, ?source, "policy applied");
        } else {
            warn!(service = %snapshot.service, revision = snapshot.revision,
                "service does not exist on the control plane: failing closed (no CORS grants)");
        }
        Ok(())
    }

    pub(crate) fn refused(&self, service: &str, revision: i64, error: &str) {
        warn!(
            service,
            revision, error, "snapshot refused; keeping the previous policy"
        );
        self.status.send_modify(|status| {
            if let Some(s) = status.services.get_mut(service) {
                s.last_nack = Some((revision, error.to_owned()));
            }
        });
    }

    /// Writes `snapshot` to the cache (off the async threads). A failure is
    /// logged, not fatal: the policy is already in force.
    pub(crate) async fn persist(&self, snapshot: Snapshot) {
        let dir = self.cache_dir.clone();
        let service = snapshot.service.clone();
        let result =
            tokio::task::spawn_blocking(move || cache::write_snapshot(&dir, &snapshot)).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => warn!(%service, %error, "cannot write the last-known-good cache"),
            Err(error) => warn!(%service, %error, "cache writer failed"),
        }
    }

    /// Applies whatever valid snapshots the cache holds; returns their
    /// revisions. Unusable entries are logged and ignored.
    pub(crate) fn load_cache(&self) -> HashMap<String, i64> {
        let mut loaded = HashMap::new();
        for service in self.handles.keys() {
            match cache::read_snapshot(&self.cache_dir, service) {
                Ok(None) => info!(%service, "no cached policy"),
                Ok(Some(snapshot)) => match self.apply(&snapshot, PolicySource::Cache) {
                    Ok(()) => {
                        loaded.insert(service.clone(), snapshot.revision);
                    }
                    Err(error) => {
                        warn!(%service, %error, "cached policy does not compile; ignored")
                    }
                },
                Err(error) => warn!(%service, %error, "cached policy unusable; ignored"),
            }
        }
        loaded
    }
}
