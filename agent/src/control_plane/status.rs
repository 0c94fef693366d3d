//! What a gRPC status from the control plane means, decided once for every
//! call (policy stream, telemetry): [`classify`] names the kind of failure,
//! each caller picks its action (the sync client: reconnect soon, slowly or
//! never; telemetry: keep a batch or drop it). [`explain`] adds the causes
//! tonic leaves out of a transport failure.

use super::tls_hint;
use tonic::{Code, Status};

/// The kind of failure a status code reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Network, restart, overload, deadline, internal error: the same call
    /// may succeed later. Back off with jitter and retry.
    Transient,
    /// `UNAUTHENTICATED`: the token was not accepted (expired, revoked,
    /// wrong key). Only a new token helps; retry slowly.
    Unauthenticated,
    /// `PERMISSION_DENIED`: the token is valid but not for what was asked
    /// (a service outside its scope, another agent's id).
    Forbidden,
    /// `INVALID_ARGUMENT`: this message was refused as malformed; sending
    /// the same one again cannot help.
    Invalid,
    /// `UNIMPLEMENTED`: the control plane does not serve this call (an
    /// incompatible version).
    Unsupported,
}

/// The kind of failure `code` reports.
pub fn classify(code: Code) -> FailureKind {
    match code {
        Code::Unauthenticated => FailureKind::Unauthenticated,
        Code::PermissionDenied => FailureKind::Forbidden,
        Code::InvalidArgument => FailureKind::Invalid,
        Code::Unimplemented => FailureKind::Unsupported,
        _ => FailureKind::Transient,
    }
}

/// A transport failure after connecting comes back as a bare "transport
/// error" or "operation was canceled" (e.g. the control plane refused our
/// client certificate, which TLS 1.3 reports only after the handshake):
/// append its causes, which say what happened, and a TLS hint when one fits.
pub fn explain(status: Status) -> Status {
    use std::error::Error as _;
    let Some(source) = status.source() else {
        return status;
    };
    let detail = error_chain(source);
    if status.message().contains(&detail) {
        return status;
    }
    Status::new(
        status.code(),
        with_hint(format!("{}: {detail}", status.message())),
    )
}

/// `text`, followed by what to do about it when it is a TLS failure.
pub(crate) fn with_hint(text: String) -> String {
    match tls_hint(&text) {
        Some(hint) => format!("{text} ({hint})"),
        None => text,
    }
}

/// `error` and its causes, joined by `": "`.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_failures() {
        assert_eq!(classify(Code::Unavailable), FailureKind::Transient);
        assert_eq!(classify(Code::Internal), FailureKind::Transient);
        assert_eq!(classify(Code::DeadlineExceeded), FailureKind::Transient);
        assert_eq!(classify(Code::FailedPrecondition), FailureKind::Transient);
        assert_eq!(
            classify(Code::Unauthenticated),
            FailureKind::Unauthenticated
        );
        assert_eq!(classify(Code::PermissionDenied), FailureKind::Forbidden);
        assert_eq!(classify(Code::InvalidArgument), FailureKind::Invalid);
        assert_eq!(classify(Code::Unimplemented), FailureKind::Unsupported);
    }
}
