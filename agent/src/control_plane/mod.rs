//! The one gRPC client setup every agent mode shares: where the control
//! plane is, how the agent proves who it is (bearer token, optional client
//! certificate) and which CA it trusts. `sync` (PolicySync) and `report`
//! (Telemetry) both connect through [`ControlPlane`].
//!
//! - [`ControlPlaneConfig`]: the settings (`--control-plane`, `--token` or
//!   `--token-file`, `--ca-file`, `--client-cert-file`, `--client-key-file`).
//! - [`args`]: those flags as a clap struct a binary flattens in.
//! - `tls`: reads the PEM files into tonic's `ClientTlsConfig`.
//! - [`backoff`]: [`Backoff`], the one jittered exponential retry schedule.
//! - [`status`]: [`classify`], what a `tonic::Status` code means (transient,
//!   unauthenticated, forbidden, invalid, unsupported), and [`explain`].
//!
//! Files are read again at every use, so rotated Secrets need no restart:
//! the token when a stream opens and for every telemetry batch; the CA and
//! client certificate whenever a new connection is made.

pub mod args;
pub mod backoff;
pub mod status;
mod tls;

pub use args::ControlPlaneArgs;
pub use backoff::Backoff;
pub use status::{FailureKind, classify, explain};

use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::Request;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Endpoint;

/// How to reach and authenticate to the control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlaneConfig {
    /// gRPC URL: `http://host:port`, or `https://host:port` for TLS.
    pub url: String,
    /// Where the agent token comes from.
    pub token: TokenSource,
    /// Extra TLS settings for an `https://` URL.
    pub tls: ClientTls,
}

impl ControlPlaneConfig {
    /// `url` with an inline token and default TLS (system roots, no client
    /// certificate).
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token: TokenSource::Inline(token.into()),
            tls: ClientTls::default(),
        }
    }
}

/// The agent token: given inline, or read from a file at every use.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `--token`: fixed for the life of the process (and visible in `ps`).
    Inline(String),
    /// `--token-file`: re-read when a stream opens and for every telemetry
    /// batch; surrounding whitespace is ignored.
    File(PathBuf),
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Never log a credential.
            TokenSource::Inline(_) => f.write_str("Inline(<redacted>)"),
            TokenSource::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

impl TokenSource {
    /// The token now (a file is read afresh).
    pub fn read(&self) -> Result<String, ConfigError> {
        let token = match self {
            TokenSource::Inline(token) => token.trim().to_owned(),
            TokenSource::File(path) => std::fs::read_to_string(path)
                .map_err(|source| ConfigError::TokenFile {
                    path: path.clone(),
                    source,
                })?
                .trim()
                .to_owned(),
        };
        if token.is_empty() {
            return Err(ConfigError::EmptyToken {
                from: match self {
                    TokenSource::Inline(_) => "--token".to_owned(),
                    TokenSource::File(path) => path.display().to_string(),
                },
            });
        }
        Ok(token)
    }

    /// The file, when the token comes from one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            TokenSource::File(path) => Some(path),
            TokenSource::Inline(_) => None,
        }
    }
}

/// TLS settings beyond the URL's scheme. All PEM files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// CA bundle to trust *instead of* the system roots (a private CA pins
    /// the control plane: no public CA can stand in for it). `None`: the
    /// system roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain for mTLS (with `client_key_file`).
    pub client_cert_file: Option<PathBuf>,
    /// Private key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
}

impl ClientTls {
    fn is_set(&self) -> bool {
        self.ca_file.is_some() || self.client_cert_file.is_some() || self.client_key_file.is_some()
    }
}

/// Why the connection settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The control-plane URL does not parse, or TLS cannot be set up.
    #[error("control plane URL {url:?}: {message}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The token cannot be sent as a header.
    #[error("agent token contains characters not allowed in a header")]
    Token,
    /// The token file cannot be read.
    #[error("cannot read the token file {}: {source}", path.display())]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The token is empty.
    #[error("the agent token from {from} is empty")]
    EmptyToken {
        /// `--token` or the file's path.
        from: String,
    },
    /// A TLS file cannot be read or holds no usable PEM.
    #[error("TLS file {}: {message}", path.display())]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// TLS files were given, but the URL is not `https://`, or a client
    /// certificate came without its key (or the other way round).
    #[error("{0}")]
    Tls(String),
}

impl From<ConfigError> for tonic::Status {
    /// A setting that broke at run time (e.g. a token file mid-rotation):
    /// FAILED_PRECONDITION, which callers retry.
    fn from(error: ConfigError) -> Self {
        tonic::Status::failed_precondition(error.to_string())
    }
}

/// A checked [`ControlPlaneConfig`]: builds endpoints and authorizes requests.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    config: ControlPlaneConfig,
    connect_timeout: Duration,
}

impl ControlPlane {
    /// Checks the URL and reads every file once, so a mistake fails
    /// start-up with the file's name rather than the first connection.
    pub fn new(config: ControlPlaneConfig, connect_timeout: Duration) -> Result<Self, ConfigError> {
        let this = Self {
            config,
            connect_timeout,
        };
        this.endpoint()?;
        this.authorization()?;
        Ok(this)
    }

    /// The settings.
    pub fn config(&self) -> &ControlPlaneConfig {
        &self.config
    }

    /// An endpoint with the TLS files as they are now (not connected):
    /// TCP_NODELAY and the connect timeout set; callers add their own
    /// keepalive and request deadlines. The [`TlsMaterial`] says which file
    /// contents it was built from.
    pub fn endpoint(&self) -> Result<(Endpoint, TlsMaterial), ConfigError> {
        let url = &self.config.url;
        let bad = |message: String| ConfigError::Url {
            url: url.clone(),
            message,
        };
        let endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| bad(e.to_string()))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true);
        let https = match endpoint.uri().scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("must start with http:// or https://".into())),
        };
        if !https {
            if self.config.tls.is_set() {
                return Err(ConfigError::Tls(format!(
                    "--ca-file, --client-cert-file and --client-key-file need an https:// control plane URL, got {url:?}"
                )));
            }
            return Ok((endpoint, TlsMaterial::default()));
        }
        let material = tls::read(&self.config.tls)?;
        let endpoint = endpoint
            .tls_config(material.client_config())
            .map_err(|e| bad(format!("TLS: {e}")))?;
        Ok((endpoint, material))
    }

    /// The `authorization` value now (a token file is read afresh).
    pub fn authorization(&self) -> Result<MetadataValue<Ascii>, ConfigError> {
        let token = self.config.token.read()?;
        format!("Bearer {token}")
            .parse()
            .map_err(|_| ConfigError::Token)
    }

    /// Puts the current token on `request`.
    pub fn authorize<T>(&self, request: &mut Request<T>) -> Result<(), ConfigError> {
        let value = self.authorization()?;
        request.metadata_mut().insert("authorization", value);
        Ok(())
    }
}

pub use tls::{TlsMaterial, hint as tls_hint};

#[cfg(test)]
mod tests;
