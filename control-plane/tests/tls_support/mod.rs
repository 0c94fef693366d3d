//! For the TLS tests: certificates made on the spot (rcgen), and the two
//! real binaries run as processes — `corsair-control-plane serve` and
//! `corsair-agent proxy` — with their logs captured to files.
//!
//! Cargo gives a control-plane test only its own package's binaries
//! (`CARGO_BIN_EXE_corsair-control-plane`). The agent binary is built on
//! first use with `$CARGO build -p corsair-agent --bin corsair-agent` into
//! the same target directory (a no-op when it is current, so a stale agent
//! binary is never tested) and run from beside the control-plane binary.
#![allow(dead_code)]

use crate::grpc_support::{TestDb, signing_key_hex};
use corsair_test_support::process::{PROCESS_DEADLINE, Process, Serve, free_addr};
use corsair_test_support::{Check, eventually_within};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::process::Command;

pub type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// How long any wait may take. Generous: these tests run two processes
/// each, next to a `cargo build` of the agent on a busy machine.
pub const DEADLINE: Duration = PROCESS_DEADLINE;

/// A certificate authority.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate and its key, PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

impl Ca {
    pub fn new(name: &str) -> Result<Self, AnyError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        Ok(Self {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate()?)?,
        })
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn leaf(
        &self,
        names: &[&str],
        purpose: ExtendedKeyUsagePurpose,
        expired: bool,
    ) -> Result<Leaf, AnyError> {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names[0]);
        params.distinguished_name = dn;
        params.extended_key_usages = vec![purpose];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        })
    }

    /// A server certificate for `localhost` and `127.0.0.1`.
    pub fn server(&self) -> Result<Leaf, AnyError> {
        self.leaf(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
            false,
        )
    }

    /// Like [`Ca::server`], valid only during 2020.
    pub fn expired_server(&self) -> Result<Leaf, AnyError> {
        self.leaf(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
            true,
        )
    }

    /// A client certificate for an agent.
    pub fn client(&self, name: &str) -> Result<Leaf, AnyError> {
        self.leaf(&[name], ExtendedKeyUsagePurpose::ClientAuth, false)
    }

    /// Like [`Ca::client`], valid only during 2020.
    pub fn expired_client(&self, name: &str) -> Result<Leaf, AnyError> {
        self.leaf(&[name], ExtendedKeyUsagePurpose::ClientAuth, true)
    }
}

/// A directory laid out like a Secret mounted by kubelet (and renewed by
/// cert-manager): `tls.crt` and `tls.key` are symlinks into `..data`, a
/// symlink to a timestamped directory; an update writes a new directory
/// and swaps `..data` atomically.
pub struct SecretDir {
    pub dir: PathBuf,
    generation: u32,
}

impl SecretDir {
    pub fn new(dir: PathBuf, files: &[(&str, &str)]) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let mut secret = Self { dir, generation: 0 };
        secret.update(files)?;
        for (name, _) in files {
            std::os::unix::fs::symlink(Path::new("..data").join(name), secret.dir.join(name))?;
        }
        Ok(secret)
    }

    /// Swaps in new contents for every file at once.
    pub fn update(&mut self, files: &[(&str, &str)]) -> std::io::Result<()> {
        self.generation += 1;
        let version = format!("..v{}", self.generation);
        std::fs::create_dir(self.dir.join(&version))?;
        for (name, contents) in files {
            std::fs::write(self.dir.join(&version).join(name), contents)?;
        }
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&version, &tmp)?;
        std::fs::rename(&tmp, self.dir.join("..data"))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// The files of a TLS Secret.
pub fn tls_secret(leaf: &Leaf) -> [(&str, &str); 2] {
    [("tls.crt", &leaf.cert_pem), ("tls.key", &leaf.key_pem)]
}

/// Writes `contents` to `path` the way kubelet updates a mounted Secret:
/// a new file, then an atomic rename over the old name.
pub fn replace_file(path: &Path, contents: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

/// Writes `leaf` as `<dir>/<name>.crt` and `<dir>/<name>.key`.
pub fn write_leaf(dir: &Path, name: &str, leaf: &Leaf) -> std::io::Result<(PathBuf, PathBuf)> {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    replace_file(&cert, &leaf.cert_pem)?;
    replace_file(&key, &leaf.key_pem)?;
    Ok((cert, key))
}

/// `corsair-control-plane serve` with TLS, on a fresh database.
pub struct ControlPlane {
    pub process: Process,
    /// The certificate and key `serve` reads (`tls.crt`, `tls.key`).
    pub secret: SecretDir,
    pub db: TestDb,
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    pub dir: tempfile::TempDir,
}

/// The TLS files `serve` is started with.
pub struct ServeTls<'a> {
    pub server: &'a Leaf,
    pub client_ca: Option<&'a Ca>,
}

impl ControlPlane {
    /// Starts `serve` and waits until both listeners are up.
    pub async fn start(tls: ServeTls<'_>) -> Result<Self, AnyError> {
        let db = TestDb::new().await?;
        let dir = tempfile::tempdir()?;
        let key_file = dir.path().join("signing.key");
        std::fs::write(&key_file, signing_key_hex())?;
        let secret = SecretDir::new(dir.path().join("tls"), &tls_secret(tls.server))?;
        let mut args: Vec<OsString> = vec![
            "--tls-cert-file".into(),
            secret.path("tls.crt").into(),
            "--tls-key-file".into(),
            secret.path("tls.key").into(),
            "--tls-reload-interval".into(),
            "0.2".into(),
        ];
        if let Some(ca) = tls.client_ca {
            let ca_file = dir.path().join("client-ca.crt");
            std::fs::write(&ca_file, ca.pem())?;
            args.extend(["--tls-client-ca-file".into(), ca_file.into()]);
        }
        let Serve {
            process,
            http,
            grpc,
        } = Serve::spawn(
            env!("CARGO_BIN_EXE_corsair-control-plane"),
            &db.url,
            &key_file,
            args,
            dir.path(),
        )?
        .serving()
        .await?;
        Ok(Self {
            process,
            secret,
            db,
            http,
            grpc,
            dir,
        })
    }

    pub fn grpc_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.grpc.port())
    }

    pub fn https(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.http.port())
    }
}

/// The agent's TLS and token settings.
#[derive(Default)]
pub struct AgentTls {
    pub ca_pem: Option<String>,
    pub client: Option<Leaf>,
}

/// `corsair-agent proxy` in front of a dead upstream (only sync matters here).
pub struct Agent {
    pub process: Process,
    pub admin: SocketAddr,
    pub token_file: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Agent {
    /// Starts the agent with `token` in a `--token-file`.
    pub async fn start(
        cp: &ControlPlane,
        service: &str,
        token: &str,
        tls: AgentTls,
    ) -> Result<Self, AnyError> {
        let dir = tempfile::tempdir()?;
        let token_file = dir.path().join("token");
        replace_file(&token_file, token)?;
        let admin = free_addr()?;
        let mut command = Command::new(agent_binary()?);
        command
            .arg("proxy")
            .args(["--control-plane", &cp.grpc_url()])
            .arg("--token-file")
            .arg(&token_file)
            .args(["--service", service])
            .args(["--listen", &free_addr()?.to_string()])
            .args(["--upstream", "http://127.0.0.1:9"])
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(["--metrics", &admin.to_string()]);
        if let Some(ca) = &tls.ca_pem {
            let path = dir.path().join("ca.crt");
            std::fs::write(&path, ca)?;
            command.arg("--ca-file").arg(path);
        }
        if let Some(client) = &tls.client {
            let (cert, key) = write_leaf(dir.path(), "client", client)?;
            command
                .arg("--client-cert-file")
                .arg(cert)
                .arg("--client-key-file")
                .arg(key);
        }
        let process = Process::spawn(
            "corsair-agent proxy",
            command,
            &dir.path().join("agent.log"),
        )?;
        Ok(Self {
            process,
            admin,
            token_file,
            dir,
        })
    }

    /// The sync part of `/healthz`, once the admin listener answers.
    pub async fn sync_status(&self) -> Option<serde_json::Value> {
        sync_status_at(self.admin).await
    }

    /// Polls `/healthz` until `check` holds for the sync status; returns it.
    pub async fn wait_status(
        &mut self,
        what: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<serde_json::Value, AnyError> {
        let (admin, check, process) = (self.admin, &check, &mut self.process);
        let status = eventually_within(DEADLINE, &format!("the agent: {what}"), || {
            let exited = process.child.try_wait().ok().flatten();
            let log = process.log();
            async move {
                if let Some(exit) = exited {
                    return Check::Failed(format!("agent exited ({exit}):\n{log}"));
                }
                match sync_status_at(admin).await {
                    Some(status) if check(&status) => Check::Ready(status),
                    status => Check::Pending(format!("status {status:?}\n{log}")),
                }
            }
        })
        .await?;
        Ok(status)
    }

    /// The agent's id (from its cache dir), once written.
    pub fn agent_id(&self) -> Option<String> {
        let dir = self.dir.path().join("cache");
        std::fs::read_to_string(dir.join("agent-id"))
            .ok()
            .map(|s| s.trim().to_owned())
    }
}

/// The sync part of the agent's `/healthz` on `admin`, once it answers.
async fn sync_status_at(admin: SocketAddr) -> Option<serde_json::Value> {
    let body: serde_json::Value = reqwest::get(format!("http://{admin}/healthz"))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    body.get("sync").cloned()
}

/// `last_error` of a sync status, lower-cased ("" when none).
pub fn last_error(status: &serde_json::Value) -> String {
    status["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase()
}

/// The revision the agent holds for `service`.
pub fn revision(status: &serde_json::Value, service: &str) -> Option<i64> {
    status["services"][service]["revision"].as_i64()
}

/// The agent binary, built (or found current) once per test process.
pub fn agent_binary() -> Result<PathBuf, AnyError> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build_agent().map_err(|e| e.to_string()))
        .clone()
        .map_err(Into::into)
}

fn build_agent() -> Result<PathBuf, AnyError> {
    let ours = Path::new(env!("CARGO_BIN_EXE_corsair-control-plane"));
    let profile_dir = ours.parent().ok_or("binary without a directory")?;
    let target_dir = profile_dir.parent().ok_or("binary outside a target dir")?;
    let agent = profile_dir.join(format!("corsair-agent{}", std::env::consts::EXE_SUFFIX));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = std::process::Command::new(cargo);
    build
        .args(["build", "-p", "corsair-agent", "--bin", "corsair-agent"])
        .arg("--target-dir")
        .arg(target_dir);
    if profile_dir.file_name().is_some_and(|p| p == "release") {
        build.arg("--release");
    }
    let output = build.output()?;
    if !output.status.success() {
        return Err(format!(
            "building the agent binary failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    if !agent.exists() {
        return Err(format!("no agent binary at {}", agent.display()).into());
    }
    Ok(agent)
}

/// A reqwest client trusting only `ca`.
pub fn https_client(ca: &Ca) -> Result<reqwest::Client, AnyError> {
    Ok(reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.pem().as_bytes())?])
        .build()?)
}

/// Opens a TLS connection to `addr` trusting `ca` (ALPN h2) and returns
/// the certificate the server presented.
pub async fn presented_certificate(addr: SocketAddr, ca: &Ca) -> Result<Vec<u8>, AnyError> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls_pki_types::CertificateDer::from_pem_slice(
        ca.pem().as_bytes(),
    )?)?;
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost")?.to_owned();
    let tls = connector.connect(name, tcp).await?;
    let (_, connection) = tls.get_ref();
    let certs = connection
        .peer_certificates()
        .ok_or("no peer certificate")?;
    Ok(certs.first().ok_or("empty chain")?.to_vec())
}
