//! Reading the PEM files and building the two rustls server configs (HTTP
//! and gRPC). Pure apart from reading the files; errors name the file.

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The files behind `serve --tls-cert-file --tls-key-file [--tls-client-ca-file]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first (cert-manager's `tls.crt`).
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1; cert-manager's `tls.key`).
    pub key: PathBuf,
    /// PEM CA bundle: when set, gRPC clients must present a certificate
    /// signed by one of these CAs (mTLS). The HTTP listener never asks.
    pub client_ca: Option<PathBuf>,
}

/// Why the TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("cannot read TLS file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no usable PEM block of the expected kind.
    #[error("TLS file {}: {message}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the combination (e.g. the key does not match the certificate).
    #[error("TLS certificate {} with key {}: {source}", cert.display(), key.display())]
    Config {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// The client CA bundle cannot verify client certificates.
    #[error("TLS client CA file {}: {message}", path.display())]
    ClientCa {
        /// The CA file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The raw bytes of the files, compared between polls to spot a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Material {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

/// One generation of server configs: what a new handshake uses.
#[derive(Debug)]
pub(crate) struct Configs {
    /// API, UI and metrics: no client certificates; h2 and HTTP/1.1.
    pub http: Arc<ServerConfig>,
    /// Agents: client certificates when a client CA is configured; h2 only.
    pub grpc: Arc<ServerConfig>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads every file (nothing parsed yet).
pub(crate) fn read_material(files: &TlsFiles) -> Result<Material, TlsError> {
    Ok(Material {
        cert: read(&files.cert)?,
        key: read(&files.key)?,
        client_ca: files.client_ca.as_deref().map(read).transpose()?,
    })
}

fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |message: String| TlsError::Pem {
        path: path.to_path_buf(),
        message,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("malformed PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad("no CERTIFICATE block found".into()));
    }
    Ok(certs)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Parses `material` into the HTTP and gRPC server configs.
pub(crate) fn build(files: &TlsFiles, material: &Material) -> Result<Configs, TlsError> {
    let chain = certificates(&files.cert, &material.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&material.key).map_err(|e| TlsError::Pem {
        path: files.key.clone(),
        message: format!("no usable PRIVATE KEY block: {e}"),
    })?;
    let config_error = |source| TlsError::Config {
        cert: files.cert.clone(),
        key: files.key.clone(),
        source,
    };
    let builder = || {
        ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(config_error)
    };

    let mut http = builder()?
        .with_no_client_auth()
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(config_error)?;
    http.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    let grpc = builder()?;
    let grpc = match (&files.client_ca, &material.client_ca) {
        (Some(path), Some(pem)) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in certificates(path, pem)? {
                roots.add(ca).map_err(|e| TlsError::ClientCa {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider())
                .build()
                .map_err(|e| TlsError::ClientCa {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            grpc.with_client_cert_verifier(verifier)
        }
        _ => grpc.with_no_client_auth(),
    };
    let mut grpc = grpc.with_single_cert(chain, key).map_err(config_error)?;
    grpc.alpn_protocols = vec![b"h2".to_vec()];

    Ok(Configs {
        http: Arc::new(http),
        grpc: Arc::new(grpc),
    })
}
