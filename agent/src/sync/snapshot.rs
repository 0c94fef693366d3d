//! The domain snapshot: one service's complete policy at one revision.
//! Proto types stop here ([`TryFrom`]); everything past this file sees only
//! [`Snapshot`].

use crate::engine::{Mode, PolicySpec};
use corsair_proto::v1 as pb;
use serde::{Deserialize, Serialize};

/// One service's complete policy at one revision, as received (or cached).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Service name.
    pub service: String,
    /// The control plane's revision (0 for an absent service).
    pub revision: i64,
    /// The policy; `None` when the service does not exist (fail closed).
    pub spec: Option<PolicySpec>,
}

/// A snapshot that could not be converted: NACKed, the old policy stays.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed snapshot for {service:?} at revision {revision}: {message}")]
pub struct MalformedSnapshot {
    /// Service named in the message.
    pub service: String,
    /// Revision named in the message.
    pub revision: i64,
    /// What is wrong.
    pub message: String,
}

impl TryFrom<pb::PolicySnapshot> for Snapshot {
    type Error = MalformedSnapshot;

    fn try_from(s: pb::PolicySnapshot) -> Result<Self, Self::Error> {
        let bad = |message: String| MalformedSnapshot {
            service: s.service.clone(),
            revision: s.revision,
            message,
        };
        if s.service.is_empty() {
            return Err(bad("no service name".into()));
        }
        if s.revision < 0 {
            return Err(bad("negative revision".into()));
        }
        if s.absent {
            return Ok(Snapshot {
                service: s.service,
                revision: s.revision,
                spec: None,
            });
        }
        let mode = match pb::Mode::try_from(s.mode) {
            Ok(pb::Mode::Enforce) => Mode::Enforce,
            Ok(pb::Mode::ReportOnly) => Mode::ReportOnly,
            Ok(pb::Mode::Unspecified) | Err(_) => {
                return Err(bad(format!("unknown mode {}", s.mode)));
            }
        };
        Ok(Snapshot {
            spec: Some(PolicySpec {
                origins: s.origins,
                allow_methods: s.allow_methods,
                allow_headers: s.allow_headers,
                expose_headers: s.expose_headers,
                allow_credentials: s.allow_credentials,
                max_age_secs: i64::from(s.max_age_secs),
                allow_private_network: s.allow_private_network,
                mode,
                strict: s.strict,
                allow_insecure_http: s.allow_insecure_http,
            }),
            service: s.service,
            revision: s.revision,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_present_absent_and_rejects_bad_mode() {
        let wire = pb::PolicySnapshot {
            service: "svc".into(),
            revision: 7,
            origins: vec!["https://a.example".into()],
            max_age_secs: 600,
            mode: pb::Mode::ReportOnly as i32,
            ..Default::default()
        };
        let snap = Snapshot::try_from(wire.clone()).expect("converts");
        let spec = snap.spec.expect("present");
        assert_eq!((spec.max_age_secs, spec.mode), (600, Mode::ReportOnly));

        let absent = pb::PolicySnapshot {
            absent: true,
            revision: 0,
            ..wire.clone()
        };
        assert_eq!(Snapshot::try_from(absent).map(|s| s.spec), Ok(None));

        let bad = pb::PolicySnapshot {
            mode: 0,
            ..wire.clone()
        };
        assert!(Snapshot::try_from(bad).is_err());
        let nameless = pb::PolicySnapshot {
            service: String::new(),
            ..wire
        };
        assert!(Snapshot::try_from(nameless).is_err());
    }
}
