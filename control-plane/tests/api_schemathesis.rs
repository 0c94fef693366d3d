//! The API keeps the contract its OpenAPI document states, checked from
//! outside: schemathesis (PyPI; installed into a cache by
//! `deploy/tools/install-schemathesis.sh`) generates valid and invalid
//! requests from `/api/v1/openapi.json` and runs every check it has
//! (`--checks all`: no 5xx, only documented statuses and content types,
//! bodies that match their schemas, invalid input refused, valid input
//! accepted, authentication not ignored, ...) against a real control plane
//! on loopback sockets over a fresh database, with a seeded service, origin
//! and agent token so that path parameters resolve.
//!
//! Rules a schema cannot express (the engine's judgement of origins and
//! settings, "in the future", "since before until") are documented as 422
//! and allowed for positive data in `tests/schemathesis.toml`, which says
//! why for each. A run is bounded by `--max-examples` and `--max-time`.

mod e2e_support;

use anyhow::{Context, Result, bail};
use corsair_control_plane::auth::Role;
use e2e_support::ControlPlane;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Seconds schemathesis may spend generating and sending requests.
const MAX_TIME_SECS: u64 = 100;
/// The hard limit on the whole run, beyond which the test fails.
const KILL_AFTER: Duration = Duration::from_secs(300);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crate in a workspace")
        .to_path_buf()
}

/// The schemathesis executable, installed into the cache when missing.
fn schemathesis() -> Result<PathBuf> {
    let script = repo_root().join("deploy/tools/install-schemathesis.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let printed = String::from_utf8_lossy(&out.stdout);
    let line = printed.lines().last().unwrap_or_default().trim();
    if line.is_empty() {
        bail!("{} printed no path", script.display());
    }
    Ok(PathBuf::from(line))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_failures() -> Result<()> {
    let exe = tokio::task::spawn_blocking(schemathesis).await??;
    let cp = ControlPlane::start().await?;
    let admin = cp.login_as("admin@example.com", Role::Admin).await?;

    // The document's examples name these: `payments-api` for reads and
    // writes, `retired-api` for DELETE, origin 1.
    for name in ["payments-api", "retired-api"] {
        admin
            .post(
                "/services",
                json!({ "name": name, "allow_methods": ["PUT"], "max_age_secs": 600 }),
            )
            .await?;
    }
    let origin = admin
        .post(
            "/services/payments-api/origins",
            json!({ "pattern": "https://app.example.com", "reason": "seed" }),
        )
        .await?;
    assert_eq!(origin["id"], 1, "the document's example origin id");
    admin
        .post(
            "/agent-tokens",
            json!({ "name": "gateway-eu-1", "services": ["payments-api"] }),
        )
        .await?;

    let work = tempfile::tempdir()?;
    let base = cp.api("");
    let mut child = tokio::process::Command::new(&exe)
        .arg("--config-file")
        .arg(repo_root().join("control-plane/tests/schemathesis.toml"))
        .arg("run")
        .arg(format!("{base}/openapi.json"))
        .args(["--url", &base])
        .args(["-H", &format!("Authorization: Bearer {}", admin.token)])
        .args(["--checks", "all"])
        .args(["--max-examples", "25"])
        .args(["--max-time", &MAX_TIME_SECS.to_string()])
        // One worker: hypothesis describes strategies with `ast.parse`, which
        // CPython 3.11 can fail with a SystemError when threads do it at once.
        .args(["--workers", "1"])
        .args(["--seed", "11"])
        .args(["--generation-database", "none"])
        .arg("--no-color")
        // Hypothesis and reports write into the working directory.
        .current_dir(work.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let stdout = child.stdout.take().context("stdout")?;
    let stderr = child.stderr.take().context("stderr")?;
    let read = |mut pipe: Box<dyn tokio::io::AsyncRead + Unpin + Send>| {
        tokio::spawn(async move {
            let mut text = String::new();
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut pipe, &mut text).await;
            text
        })
    };
    let (out, err) = (read(Box::new(stdout)), read(Box::new(stderr)));
    let status = match tokio::time::timeout(KILL_AFTER, child.wait()).await {
        Ok(status) => status?,
        Err(_) => {
            child.kill().await?;
            bail!(
                "schemathesis still running after {KILL_AFTER:?}:\n{}",
                out.await?
            );
        }
    };
    let (out, err) = (out.await?, err.await?);
    assert!(
        status.success(),
        "schemathesis reported failures ({status}):\n{out}\n{err}"
    );
    // Exit 0 with nothing tested would prove nothing: the summary's
    // "Test cases: N generated, N passed, ..." must count some.
    let passed = out
        .lines()
        .find_map(|l| l.split_once(" generated, "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok());
    assert!(
        passed.is_some_and(|n| n > 0),
        "schemathesis ran no test case:\n{out}\n{err}"
    );
    println!("{out}");
    Ok(())
}
