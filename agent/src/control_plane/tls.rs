//! The agent's TLS files, read and checked, turned into tonic's client config.

use super::{ClientTls, ConfigError};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// The contents of the TLS files at one moment: what an endpoint was built
/// from. Equal material means an existing channel is still right.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsMaterial {
    ca: Option<Vec<u8>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

fn read_file(path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError::TlsFile {
        path: path.to_path_buf(),
        message: format!("cannot read: {e}"),
    })
}

fn check_certificates(path: &Path, pem: &[u8]) -> Result<(), ConfigError> {
    let bad = |message: String| ConfigError::TlsFile {
        path: path.to_path_buf(),
        message,
    };
    let mut found = false;
    for cert in CertificateDer::pem_slice_iter(pem) {
        cert.map_err(|e| bad(format!("malformed PEM: {e}")))?;
        found = true;
    }
    if !found {
        return Err(bad("no CERTIFICATE block found".into()));
    }
    Ok(())
}

/// Reads and checks the files `tls` names.
pub(super) fn read(tls: &ClientTls) -> Result<TlsMaterial, ConfigError> {
    let ca = match &tls.ca_file {
        Some(path) => {
            let pem = read_file(path)?;
            check_certificates(path, &pem)?;
            Some(pem)
        }
        None => None,
    };
    let identity = match (&tls.client_cert_file, &tls.client_key_file) {
        (Some(cert_path), Some(key_path)) => {
            let cert = read_file(cert_path)?;
            check_certificates(cert_path, &cert)?;
            let key = read_file(key_path)?;
            PrivateKeyDer::from_pem_slice(&key).map_err(|e| ConfigError::TlsFile {
                path: key_path.clone(),
                message: format!("no usable PRIVATE KEY block: {e}"),
            })?;
            Some((cert, key))
        }
        (None, None) => None,
        _ => {
            return Err(ConfigError::Tls(
                "--client-cert-file and --client-key-file go together".into(),
            ));
        }
    };
    Ok(TlsMaterial { ca, identity })
}

impl TlsMaterial {
    /// tonic's client TLS config: the CA file's roots if given, else the
    /// system's; the client certificate if given.
    pub(super) fn client_config(&self) -> ClientTlsConfig {
        let mut config = ClientTlsConfig::new();
        config = match &self.ca {
            Some(ca) => config.ca_certificate(Certificate::from_pem(ca)),
            None => config.with_native_roots(),
        };
        if let Some((cert, key)) = &self.identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        config
    }
}

/// A sentence an operator can act on for a TLS failure described by
/// `error` (an error chain), when it is one.
pub fn hint(error: &str) -> Option<&'static str> {
    const HINTS: &[(&str, &str)] = &[
        (
            "alert: CertificateRequired",
            "the control plane requires a client certificate: set --client-cert-file and --client-key-file",
        ),
        (
            "alert: CertificateExpired",
            "the control plane refused this agent's client certificate: it has expired",
        ),
        (
            "alert: UnknownCA",
            "the control plane refused this agent's client certificate: not signed by its client CA",
        ),
        (
            "alert: BadCertificate",
            "the control plane refused this agent's client certificate",
        ),
        (
            "alert: CertificateUnknown",
            "the control plane refused this agent's client certificate",
        ),
        (
            "UnknownIssuer",
            "the control plane's certificate is not signed by a CA this agent trusts (check --ca-file)",
        ),
        (
            "certificate expired",
            "the control plane's certificate has expired (or this host's clock is wrong)",
        ),
        (
            "Expired",
            "the control plane's certificate has expired (or this host's clock is wrong)",
        ),
        (
            // A plain-text HTTP/2 client reading a TLS server's first bytes
            // as a frame header.
            "frame with invalid size",
            "the control plane answered with something other than plain HTTP/2: if it serves TLS, use an https:// --control-plane URL",
        ),
        (
            "NotValidForName",
            "the control plane's certificate does not name the host in --control-plane",
        ),
    ];
    HINTS
        .iter()
        .find(|(needle, _)| error.contains(needle))
        .map(|(_, hint)| *hint)
}
