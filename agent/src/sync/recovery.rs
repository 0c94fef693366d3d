//! The policy stream's recovery policy: what each kind of failure
//! ([`crate::control_plane::classify`], shared with telemetry) means for the
//! stream. The delays come from the shared [`crate::control_plane::Backoff`].

use crate::control_plane::{FailureKind, classify};
use tonic::Code;

/// What to do after a stream failed with a given status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Transient (network, restart, overload): back off with jitter, retry.
    Retry,
    /// The control plane refused our credentials or scope. Retrying soon
    /// cannot help, but an operator may fix the token or its scope: log
    /// loudly and retry on the slow schedule, enforcing the cached policy.
    Refused,
    /// The two sides do not speak the same protocol (a bug or an
    /// incompatible version): retrying cannot help; stop syncing.
    Fatal,
}

/// Maps a gRPC status code to a [`Recovery`].
pub fn recovery(code: Code) -> Recovery {
    match classify(code) {
        FailureKind::Transient => Recovery::Retry,
        FailureKind::Unauthenticated | FailureKind::Forbidden => Recovery::Refused,
        FailureKind::Invalid | FailureKind::Unsupported => Recovery::Fatal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_recovery() {
        assert_eq!(recovery(Code::Unavailable), Recovery::Retry);
        assert_eq!(recovery(Code::Internal), Recovery::Retry);
        assert_eq!(recovery(Code::DeadlineExceeded), Recovery::Retry);
        assert_eq!(recovery(Code::Unauthenticated), Recovery::Refused);
        assert_eq!(recovery(Code::PermissionDenied), Recovery::Refused);
        assert_eq!(recovery(Code::Unimplemented), Recovery::Fatal);
        assert_eq!(recovery(Code::InvalidArgument), Recovery::Fatal);
    }
}
