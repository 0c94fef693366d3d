//! The control-plane connection flags, for every agent mode to flatten in
//! (`#[command(flatten)] control_plane: ControlPlaneArgs`).

use super::{ClientTls, ControlPlaneConfig, TokenSource};
use std::path::PathBuf;

/// `--control-plane`, `--token` / `--token-file`, `--ca-file`,
/// `--client-cert-file`, `--client-key-file`.
#[derive(Debug, Clone, clap::Args)]
pub struct ControlPlaneArgs {
    /// Control-plane gRPC URL, e.g. http://corsair:50051 or
    /// https://corsair:50051 (TLS, trusting the system roots or --ca-file).
    #[arg(long, env = "CORSAIR_CONTROL_PLANE")]
    pub control_plane: String,
    /// Agent token issued by the control plane (`token issue` or POST
    /// /api/v1/agent-tokens). Shows in `ps`: prefer --token-file.
    #[arg(
        long,
        env = "CORSAIR_TOKEN",
        hide_env_values = true,
        required_unless_present = "token_file",
        conflicts_with = "token_file"
    )]
    pub token: Option<String>,
    /// File holding the agent token (e.g. a mounted Secret). Re-read each
    /// time the policy stream (re)connects and for every telemetry batch, so
    /// a rotated token needs no restart; an open stream keeps going and uses
    /// the new token at its next reconnect.
    #[arg(long, env = "CORSAIR_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// PEM CA bundle to trust for an https:// control plane, instead of the
    /// system roots. Re-read at every new connection.
    #[arg(long, env = "CORSAIR_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) presented to the control plane
    /// (mTLS; needs --client-key-file). Re-read at every new connection.
    #[arg(long, env = "CORSAIR_CLIENT_CERT_FILE", requires = "client_key_file")]
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of --client-cert-file.
    #[arg(long, env = "CORSAIR_CLIENT_KEY_FILE", requires = "client_cert_file")]
    pub client_key_file: Option<PathBuf>,
}

impl From<ControlPlaneArgs> for ControlPlaneConfig {
    fn from(args: ControlPlaneArgs) -> Self {
        let token = match (args.token_file, args.token) {
            (Some(path), _) => TokenSource::File(path),
            // clap requires one of the two.
            (None, token) => TokenSource::Inline(token.unwrap_or_default()),
        };
        ControlPlaneConfig {
            url: args.control_plane,
            token,
            tls: ClientTls {
                ca_file: args.ca_file,
                client_cert_file: args.client_cert_file,
                client_key_file: args.client_key_file,
            },
        }
    }
}
