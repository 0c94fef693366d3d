//! The control-plane Helm chart (`deploy/helm/corsair-control-plane`),
//! offline: `helm lint --strict` and `kubernetes-validate --strict` (1.29,
//! 1.33) over the default values, `values-ha.yaml` and every example;
//! golden renders; reproducible renders with no generating template
//! function; the values schema refusing bad values; every rendered flag
//! accepted by the real binary (and the SSO example's by its `requires`
//! rules too); every metric an alert or dashboard panel names exposed by
//! the binaries.
//!
//! Golden files: `UPDATE_GOLDEN=1 cargo test -p corsair-control-plane --test
//! deploy_chart`, then review the diff.

#[path = "../../deploy/tests/helm_support.rs"]
mod helm_support;

use helm_support::*;
use std::path::{Path, PathBuf};

const CHART: &str = "corsair-control-plane";
/// Renders for golden files and flag checks: the version's newest
/// features (preStop sleep) and the monitoring API present.
const GOLDEN_FLAGS: [&str; 2] = ["--api-versions", "monitoring.coreos.com/v1"];

fn render(values: &Option<PathBuf>, kube: &str, extra: &[&str]) -> String {
    template(&chart(CHART), values, kube, extra)
        .unwrap_or_else(|e| panic!("render {}: {e}", values_name(values)))
}

fn values_file(dir: &Path, text: &str) -> Option<PathBuf> {
    let path = dir.join("values.yaml");
    std::fs::write(&path, text).expect("values file");
    Some(path)
}

#[test]
fn lints_strict_with_every_values_file() {
    for values in values_files(&chart(CHART)) {
        lint(&chart(CHART), &values)
            .unwrap_or_else(|e| panic!("lint with {}: {e}", values_name(&values)));
    }
}

#[test]
fn renders_validate_for_kubernetes_1_29_and_1_33() {
    for values in values_files(&chart(CHART)) {
        for kube in KUBE_VERSIONS {
            for extra in [&[][..], &GOLDEN_FLAGS[..]] {
                let manifests = render(&values, kube, extra);
                validate(&manifests, kube).unwrap_or_else(|e| {
                    panic!("{} on {kube} {extra:?}: {e}", values_name(&values))
                });
            }
        }
    }
}

#[test]
fn renders_match_the_golden_files() {
    for values in values_files(&chart(CHART)) {
        let manifests = render(&values, "1.33.0", &GOLDEN_FLAGS);
        let golden = chart(CHART)
            .join("golden")
            .join(format!("{}.yaml", values_name(&values)));
        check_golden(&golden, &manifests);
    }
}

#[test]
fn renders_are_reproducible_and_no_template_generates_anything() {
    let hits = forbidden_calls(&chart(CHART));
    assert!(
        hits.is_empty(),
        "templates calling forbidden functions: {hits:?}"
    );
    let problems = schema_problems(&chart(CHART));
    assert!(problems.is_empty(), "values.schema.json: {problems:?}");
    for values in values_files(&chart(CHART)) {
        let first = render(&values, "1.33.0", &GOLDEN_FLAGS);
        let second = render(&values, "1.33.0", &GOLDEN_FLAGS);
        assert!(
            first == second,
            "two renders of {} differ",
            values_name(&values)
        );
    }
}

#[test]
fn default_values_render_the_documented_secrets_and_probes() {
    let docs = documents(&render(&None, "1.33.0", &[]));
    let names = kinds(&docs);
    for expected in [
        "Deployment/corsair-corsair-control-plane",
        "Service/corsair-corsair-control-plane",
        "PodDisruptionBudget/corsair-corsair-control-plane",
        "Job/corsair-corsair-control-plane-migrate-1",
    ] {
        assert!(
            names.contains(expected),
            "{expected} missing from {names:?}"
        );
    }
    assert!(
        !names.iter().any(|n| n.starts_with("Secret/")),
        "default values create no Secret: {names:?}"
    );
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(
        pod["topologySpreadConstraints"].as_array().map(Vec::len),
        Some(2)
    );
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(
        c["env"][0]["valueFrom"]["secretKeyRef"]["name"], "corsair-database",
        "the documented database Secret"
    );
    assert_eq!(
        pod["volumes"][0]["secret"]["secretName"],
        "corsair-signing-key"
    );
}

#[test]
fn pdb_only_when_more_than_one_replica_can_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (values, pdb) in [
        ("replicaCount: 1\n", false),
        ("replicaCount: 2\n", true),
        (
            "replicaCount: 1\nautoscaling: {enabled: true, minReplicas: 1, maxReplicas: 3}\n",
            false,
        ),
        (
            "replicaCount: 1\nautoscaling: {enabled: true, minReplicas: 2, maxReplicas: 3}\n",
            true,
        ),
    ] {
        let docs = documents(&render(&values_file(dir.path(), values), "1.33.0", &[]));
        let has = docs.iter().any(|d| d["kind"] == "PodDisruptionBudget");
        assert_eq!(has, pdb, "PodDisruptionBudget with {values:?}");
    }
}

#[test]
fn service_monitor_only_with_its_api_or_when_forced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let has_monitor = |manifests: &str| {
        documents(manifests)
            .iter()
            .any(|d| d["kind"] == "ServiceMonitor")
    };
    assert!(!has_monitor(&render(&None, "1.33.0", &[])));
    assert!(has_monitor(&render(&None, "1.33.0", &GOLDEN_FLAGS)));
    let forced = values_file(dir.path(), "serviceMonitor: {force: true}\n");
    assert!(has_monitor(&render(&forced, "1.33.0", &[])));
    let off = values_file(dir.path(), "serviceMonitor: {enabled: false}\n");
    assert!(!has_monitor(&render(&off, "1.33.0", &GOLDEN_FLAGS)));
}

#[test]
fn the_values_schema_refuses_bad_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (values, field) in [
        ("replicaCount: \"two\"\n", "replicaCount"),
        ("replicaCount: 0\n", "replicaCount"),
        ("replicas: 2\n", "replicas"),
        ("signingKey: {value: \"abc\"}\n", "value"),
        ("config: {logFormat: yaml}\n", "logFormat"),
        ("config: {maxStreamAgeSeconds: -1}\n", "maxStreamAgeSeconds"),
        (
            "config: {maxStreamAgeSeconds: 31536001}\n",
            "maxStreamAgeSeconds",
        ),
        ("database: {url: \"mysql://x\"}\n", "url"),
        (
            "oidc: {issuerUrl: https://id.example.com, clientId: corsair, redirectUrl: https://corsair.example.com/login/oidc/callback, roleMap: {ops: root}}\n",
            "roleMap.ops",
        ),
        (
            "oidc: {issuerUrl: https://id.example.com, clientId: corsair, redirectUrl: https://corsair.example.com/login/oidc/callback, roleMap: {\"a,b\": admin}}\n",
            "roleMap",
        ),
        (
            "oidc: {issuerUrl: https://id.example.com, redirectUrl: https://corsair.example.com/login/oidc/callback, roleMap: {ops: admin}}\n",
            "clientId",
        ),
        (
            "oidc: {issuerUrl: https://id.example.com, clientId: corsair, redirectUrl: https://corsair.example.com/callback, roleMap: {ops: admin}}\n",
            "redirectUrl",
        ),
        (
            "oidc: {issuerUrl: https://id.example.com, clientId: corsair, redirectUrl: https://corsair.example.com/login/oidc/callback}\n",
            "roleMap",
        ),
        ("oidc: {disableLocalLogin: true}\n", "issuerUrl"),
        (
            "oidc: {breakGlassAdmin: a@example.com}\n",
            "disableLocalLogin",
        ),
        (
            "oidc: {clientSecret: {existingSecret: s, value: x}}\n",
            "clientSecret",
        ),
        (
            "oidc: {clientSecret: {existingSecretKey: \"a key\"}}\n",
            "existingSecretKey",
        ),
    ] {
        let err = template(
            &chart(CHART),
            &values_file(dir.path(), values),
            "1.33.0",
            &[],
        )
        .expect_err(values);
        assert!(
            err.contains("schema") && err.contains(field),
            "{values:?} refused for another reason: {err}"
        );
    }
}

#[test]
fn every_rendered_flag_is_accepted_by_the_binary() {
    let binary = Path::new(env!("CARGO_BIN_EXE_corsair-control-plane"));
    let dir = tempfile::tempdir().expect("tempdir");
    // Every example, plus the switches the examples leave at their defaults.
    let mut all = values_files(&chart(CHART));
    all.push(values_file(
        dir.path(),
        "migrations: {atStartup: false}\nconfig: {singleOperator: true, secureCookies: true, logFormat: text}\nbootstrapAdmin: {email: a@example.com}\ntls: {enabled: true, secretName: t, clientCA: {enabled: true, secretName: c}}\n\
         oidc: {issuerUrl: https://id.example.com, clientId: corsair, redirectUrl: https://corsair.example.com/login/oidc/callback, clientSecret: {value: s}, roleClaim: roles, roleMap: {\"Corsair: Admins\": admin}}\n",
    ));
    let mut checked = 0;
    for values in &all {
        let docs = documents(&render(values, "1.33.0", &GOLDEN_FLAGS));
        for (at, container) in containers(&docs) {
            check_accepted(binary, &container)
                .unwrap_or_else(|e| panic!("{at} with {}: {e}", values_name(values)));
            checked += 1;
        }
    }
    assert!(
        checked >= 2 * all.len() - 1,
        "too few containers checked: {checked}"
    );
}

/// `check_accepted` stops at `--help`, before clap checks `requires`
/// (e.g. --break-glass-admin needs --disable-local-login): run the SSO
/// example's `serve` for real instead. It must get past clap, the TLS
/// files and the role map, and stop at the first file it reads: the client
/// secret, absent here (so no provider is contacted, no database opened).
#[test]
fn the_sso_example_passes_the_binarys_argument_rules() {
    let binary = Path::new(env!("CARGO_BIN_EXE_corsair-control-plane"));
    let secret_file = "/etc/corsair/oidc/client-secret";
    assert!(
        !Path::new(secret_file).exists(),
        "{secret_file} exists on this machine: serve would go on to contact the provider"
    );
    let sso = Some(chart(CHART).join("examples/sso.yaml"));
    let docs = documents(&render(&sso, "1.33.0", &GOLDEN_FLAGS));
    let (_, container) = containers(&docs)
        .into_iter()
        .find(|(at, _)| at.starts_with("Deployment/"))
        .expect("the Deployment's container");
    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg"))
        .collect();
    assert!(args.contains(&"--break-glass-admin=breakglass@example.com"));
    let out = std::process::Command::new(binary)
        .args(&args)
        .env_clear()
        .env("CORSAIR_DATABASE_URL", "postgres://nobody@127.0.0.1:9/none")
        .output()
        .expect("run serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // clap's usage errors exit 2; a start-up error returned from main exits 1.
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(
        stderr.contains(&format!("reading --oidc-client-secret-file {secret_file}")),
        "{args:?} stopped elsewhere: {stderr}"
    );
}

#[test]
fn alerts_and_dashboard_name_only_metrics_the_binaries_expose() {
    let dir = tempfile::tempdir().expect("tempdir");
    let values = values_file(
        dir.path(),
        "prometheusRule: {enabled: true}\ngrafanaDashboard: {enabled: true}\n",
    );
    // The rule renders only where the Prometheus Operator's API is served.
    let manifests = render(&values, "1.33.0", &GOLDEN_FLAGS);
    // kubernetes-validate has no schema for these: check their shape here.
    let docs = documents(&manifests);
    let rule = docs
        .iter()
        .find(|d| d["kind"] == "PrometheusRule")
        .expect("PrometheusRule");
    let mut alerts = 0;
    for group in rule["spec"]["groups"].as_array().expect("groups") {
        for r in group["rules"].as_array().expect("rules") {
            assert!(r["alert"].is_string() && r["expr"].is_string(), "{r}");
            alerts += 1;
        }
    }
    assert!(alerts >= 6, "{alerts} alerts");
    let dashboard = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .and_then(|d| d["data"]["corsair.json"].as_str())
        .expect("dashboard ConfigMap");
    let dashboard: serde_json::Value =
        serde_json::from_str(dashboard).expect("the dashboard is JSON");
    assert!(dashboard["panels"].as_array().is_some_and(|p| p.len() >= 8));
    let used = metric_names_in_exprs(&manifests);
    assert!(
        used.len() >= 10,
        "too few metrics found in the rules and dashboard: {used:?}"
    );
    // What `GET /metrics` serves: the control plane's registry, and an
    // agent's. A labelled family is listed only once it has a child, so give
    // each one a sample first (names come from the registries either way).
    use corsair_control_plane::metrics::{BatchLabels, HttpLabels, metrics};
    drop(
        metrics()
            .telemetry_batches
            .get_or_create(&BatchLabels { result: "stored" }),
    );
    drop(
        metrics()
            .http_request_duration_seconds
            .get_or_create(&HttpLabels {
                method: "GET".into(),
                status: 200,
            }),
    );
    let agent = corsair_agent::metrics::AgentMetrics::new();
    drop(
        agent
            .blocked
            .get_or_create(&corsair_agent::metrics::ServiceLabel {
                service: "svc".into(),
            }),
    );
    let mut exposed = exposed_sample_names(&metrics().encode());
    exposed.extend(exposed_sample_names(&agent.encode()));
    let unknown: Vec<_> = used.difference(&exposed).collect();
    assert!(
        unknown.is_empty(),
        "alerts or panels name metrics nobody exposes: {unknown:?} (exposed: {exposed:?})"
    );
}
