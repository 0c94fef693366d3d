//! The agent Helm chart (`deploy/helm/corsair-agent`) and the example
//! gateway chart that includes its sidecar templates
//! (`deploy/helm/examples/gateway-with-sidecar`), offline: `helm lint
//! --strict` and `kubernetes-validate --strict` (1.29, 1.33) over the
//! default values, `values-ha.yaml` and every example; golden renders;
//! reproducible renders with no generating template function; the values
//! schema refusing bad values (an unknown mode); every rendered flag accepted
//! by the real `corsair-agent` binary; the upstream CA (`upstreamTls`)
//! mounted and passed in the proxy and both sidecar forms, and refused with
//! an `http://` upstream.
//!
//! Golden files: `UPDATE_GOLDEN=1 cargo test -p corsair-agent --test
//! deploy_chart`, then review the diff.

#[path = "../../deploy/tests/helm_support.rs"]
mod helm_support;

use helm_support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

const CHART: &str = "corsair-agent";

fn render(values: &Option<PathBuf>, kube: &str) -> String {
    template(&chart(CHART), values, kube, &[])
        .unwrap_or_else(|e| panic!("render {}: {e}", values_name(values)))
}

fn values_file(dir: &Path, text: &str) -> Option<PathBuf> {
    let path = dir.join("values.yaml");
    std::fs::write(&path, text).expect("values file");
    Some(path)
}

/// The example gateway chart with this agent chart copied in as its
/// dependency (what `helm dependency build` would do), in `dir`.
fn gateway_chart(dir: &Path) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read_dir") {
            let entry = entry.expect("entry");
            let target = to.join(entry.file_name());
            if entry.file_type().expect("type").is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).expect("copy");
            }
        }
    }
    let gateway = dir.join("gateway-with-sidecar");
    copy(&chart("examples/gateway-with-sidecar"), &gateway);
    copy(&chart(CHART), &gateway.join("charts/corsair-agent"));
    gateway
}

/// Renders of the gateway chart: (name, manifests) for the native and the
/// classic sidecar form.
fn gateway_renders(dir: &Path, kube: &str) -> Vec<(String, String)> {
    gateway_forms(dir, kube, &[])
        .into_iter()
        .map(|(name, manifests)| {
            let manifests =
                manifests.unwrap_or_else(|e| panic!("render the gateway ({name}): {e}"));
            (name, manifests)
        })
        .collect()
}

/// The gateway chart rendered in the native and the classic sidecar form
/// with `extra` helm flags: (name, manifests or helm's error).
fn gateway_forms(dir: &Path, kube: &str, extra: &[&str]) -> Vec<(String, Result<String, String>)> {
    let gateway = gateway_chart(dir);
    [("native", "true"), ("classic", "false")]
        .into_iter()
        .map(|(name, native)| {
            let set = format!("nativeSidecar={native}");
            let mut flags = vec!["--set", &set];
            flags.extend_from_slice(extra);
            (
                format!("gateway-sidecar-{name}"),
                template(&gateway, &None, kube, &flags),
            )
        })
        .collect()
}

#[test]
fn lints_strict_with_every_values_file() {
    for values in values_files(&chart(CHART)) {
        lint(&chart(CHART), &values)
            .unwrap_or_else(|e| panic!("lint with {}: {e}", values_name(&values)));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    lint(&gateway_chart(dir.path()), &None).expect("lint the gateway example");
}

#[test]
fn renders_validate_for_kubernetes_1_29_and_1_33() {
    let dir = tempfile::tempdir().expect("tempdir");
    for kube in KUBE_VERSIONS {
        for values in values_files(&chart(CHART)) {
            validate(&render(&values, kube), kube)
                .unwrap_or_else(|e| panic!("{} on {kube}: {e}", values_name(&values)));
        }
        for (name, manifests) in gateway_renders(dir.path(), kube) {
            validate(&manifests, kube).unwrap_or_else(|e| panic!("{name} on {kube}: {e}"));
        }
    }
}

#[test]
fn renders_match_the_golden_files() {
    let golden = chart(CHART).join("golden");
    for values in values_files(&chart(CHART)) {
        let path = golden.join(format!("{}.yaml", values_name(&values)));
        check_golden(&path, &render(&values, "1.33.0"));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, manifests) in gateway_renders(dir.path(), "1.33.0") {
        check_golden(&golden.join(format!("{name}.yaml")), &manifests);
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
        assert!(
            render(&values, "1.33.0") == render(&values, "1.33.0"),
            "two renders of {} differ",
            values_name(&values)
        );
    }
}

fn agent_container(docs: &[Value]) -> Value {
    containers(docs)
        .into_iter()
        .find(|(_, c)| c["name"] == "corsair-agent")
        .map(|(_, c)| c)
        .expect("an agent container")
}

#[test]
fn proxy_mode_reads_the_token_from_a_file_and_gates_on_readyz() {
    let docs = documents(&render(&None, "1.33.0"));
    let names = kinds(&docs);
    for expected in [
        "Deployment/corsair-corsair-agent",
        "Service/corsair-corsair-agent",
        "PodDisruptionBudget/corsair-corsair-agent",
    ] {
        assert!(
            names.contains(expected),
            "{expected} missing from {names:?}"
        );
    }
    let c = agent_container(&docs);
    let args: Vec<&str> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(args[0], "proxy");
    assert!(
        args.contains(&"--token-file=/etc/corsair/token/token"),
        "{args:?}"
    );
    assert!(
        !args.iter().any(|a| a.starts_with("--token=")),
        "a token on the command line shows in ps: {args:?}"
    );
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["lifecycle"]["preStop"]["sleep"]["seconds"], 5);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("Deployment");
    let pod = &deployment["spec"]["template"];
    assert_eq!(pod["metadata"]["annotations"]["prometheus.io/port"], "9090");
    let volumes = pod["spec"]["volumes"].as_array().expect("volumes");
    assert!(
        volumes
            .iter()
            .any(|v| v["name"] == "corsair-cache" && v["emptyDir"].is_object())
    );
    assert!(
        volumes
            .iter()
            .any(|v| v["secret"]["secretName"] == "corsair-agent-token")
    );

    // The preStop sleep keeps it serving while endpoints update: no delay
    // of the agent's own on top.
    assert!(args.contains(&"--drain-timeout=10"), "{args:?}");
    assert!(
        !args.iter().any(|a| a.starts_with("--drain-delay")),
        "{args:?}"
    );

    // Kubernetes 1.29 has no preStop sleep action by default: none
    // rendered, and the agent keeps accepting after SIGTERM instead.
    let c = agent_container(&documents(&render(&None, "1.29.0")));
    assert!(c["lifecycle"].is_null(), "{}", c["lifecycle"]);
    assert!(
        c["args"]
            .as_array()
            .expect("args")
            .iter()
            .any(|a| a == "--drain-delay=5"),
        "{}",
        c["args"]
    );
}

#[test]
fn the_grace_period_must_cover_the_drain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let values = "drainSeconds: 5\ndrainTimeoutSeconds: 30\nterminationGracePeriodSeconds: 30\n";
    let err = template(
        &chart(CHART),
        &values_file(dir.path(), values),
        "1.33.0",
        &[],
    )
    .expect_err("a grace period shorter than the drain");
    assert!(
        err.contains("must cover drainSeconds + drainTimeoutSeconds (35)"),
        "{err}"
    );
}

#[test]
fn sidecar_templates_render_the_native_and_the_classic_form() {
    let dir = tempfile::tempdir().expect("tempdir");
    let renders = gateway_renders(dir.path(), "1.33.0");
    let native = documents(&renders[0].1);
    let deployment = native
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["initContainers"][0]["name"], "corsair-agent");
    assert_eq!(pod["initContainers"][0]["restartPolicy"], "Always");
    assert_eq!(pod["containers"].as_array().map(Vec::len), Some(1));
    // The gateway outlives endpoint removal too: a native sidecar stops only
    // after it, so without this the agent would forward to nothing.
    assert_eq!(
        pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"],
        serde_json::json!(["sleep", "5"])
    );
    assert_eq!(pod["terminationGracePeriodSeconds"], 25);

    let classic = documents(&renders[1].1);
    let deployment = classic
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert!(pod["initContainers"].is_null());
    assert_eq!(pod["containers"][1]["name"], "corsair-agent");
    assert!(pod["containers"][1]["restartPolicy"].is_null());
    // Sidecar mode of the agent chart itself: no workload of its own.
    assert!(
        !kinds(&classic).iter().any(|k| k.contains("corsair-agent")),
        "{:?}",
        kinds(&classic)
    );
}

#[test]
fn the_values_schema_refuses_bad_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (values, field) in [
        ("mode: gateway\n", "mode"),
        ("replicaCount: \"two\"\n", "replicaCount"),
        ("controlPlane: corsair:50051\n", "controlPlane"),
        ("ports: {http: 0, admin: 9090}\n", "http"),
        (
            "token: {secretName: \"\", secretKey: token}\n",
            "secretName",
        ),
        ("upstreamTls: {caSecret: Upstream_CA}\n", "caSecret"),
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
    let binary = Path::new(env!("CARGO_BIN_EXE_corsair-agent"));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut renders: Vec<(String, String)> = values_files(&chart(CHART))
        .iter()
        .map(|v| (values_name(v), render(v, "1.33.0")))
        .collect();
    renders.extend(gateway_renders(dir.path(), "1.33.0"));
    let mut checked = 0;
    for (name, manifests) in &renders {
        for (at, container) in containers(&documents(manifests)) {
            if container["name"] != "corsair-agent" {
                continue;
            }
            check_accepted(binary, &container).unwrap_or_else(|e| panic!("{at} in {name}: {e}"));
            checked += 1;
        }
    }
    // Every values file but the chart's own sidecar mode runs an agent.
    assert!(
        checked >= renders.len() - 1,
        "too few agent containers checked: {checked}"
    );
}

/// The agent container's args, its `volumeMounts` and the pod's `volumes`
/// of a rendered Deployment (the proxy's or a gateway's).
fn agent_pod(docs: &[Value]) -> (Value, Vec<String>, Value, Value) {
    let c = agent_container(docs);
    let args = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("Deployment");
    let volumes = deployment["spec"]["template"]["spec"]["volumes"].clone();
    let mounts = c["volumeMounts"].clone();
    (c, args, mounts, volumes)
}

#[test]
fn an_upstream_ca_is_mounted_and_passed_in_every_form() {
    let binary = Path::new(env!("CARGO_BIN_EXE_corsair-agent"));
    let example = Some(chart(CHART).join("examples/https-upstream.yaml"));
    let dir = tempfile::tempdir().expect("tempdir");
    let sets = [
        "--set",
        "corsair-agent.upstream=https://127.0.0.1:8443",
        "--set",
        "corsair-agent.upstreamTls.caSecret=upstream-ca",
        "--set",
        "corsair-agent.upstreamTls.caKey=bundle.pem",
    ];
    let mut renders = vec![(
        "https-upstream".to_owned(),
        render(&example, "1.33.0"),
        "payments-api-ca",
        "ca.crt",
    )];
    for (name, manifests) in gateway_forms(dir.path(), "1.33.0", &sets) {
        let manifests = manifests.unwrap_or_else(|e| panic!("{name}: {e}"));
        renders.push((name, manifests, "upstream-ca", "bundle.pem"));
    }
    for (name, manifests, secret, key) in renders {
        let (container, args, mounts, volumes) = agent_pod(&documents(&manifests));
        let flag = format!("--upstream-ca-file=/etc/corsair/upstream-ca/{key}");
        assert!(args.contains(&flag), "{name}: {args:?}");
        // Mounted as a directory, read-only: a subPath mount would never see
        // a rotated Secret, and the agent re-reads the file per connection.
        let mount = mounts
            .as_array()
            .expect("volumeMounts")
            .iter()
            .find(|m| m["name"] == "corsair-upstream-ca")
            .unwrap_or_else(|| panic!("{name}: no upstream CA mount in {mounts}"));
        assert_eq!(mount["mountPath"], "/etc/corsair/upstream-ca", "{name}");
        assert_eq!(mount["readOnly"], true, "{name}");
        assert!(mount["subPath"].is_null(), "{name}: {mount}");
        let volume = volumes
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == "corsair-upstream-ca")
            .unwrap_or_else(|| panic!("{name}: no upstream CA volume in {volumes}"));
        assert_eq!(volume["secret"]["secretName"], secret, "{name}");
        check_accepted(binary, &container).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn an_upstream_ca_with_an_http_upstream_is_refused() {
    let expected = "upstreamTls.caSecret (upstream-ca) is for an https:// upstream, \
                    but upstream is http://";
    let fix = "make upstream an https:// URL, or unset upstreamTls.caSecret";
    let dir = tempfile::tempdir().expect("tempdir");
    let values = "upstream: http://my-api.default.svc:80\nupstreamTls: {caSecret: upstream-ca}\n";
    let err = template(
        &chart(CHART),
        &values_file(dir.path(), values),
        "1.33.0",
        &[],
    )
    .expect_err("an upstream CA with an http:// upstream (proxy)");
    assert!(err.contains(expected) && err.contains(fix), "{err}");
    // The sidecar forms too (the gateway's upstream is http://127.0.0.1:8081).
    let sets = ["--set", "corsair-agent.upstreamTls.caSecret=upstream-ca"];
    for (name, manifests) in gateway_forms(dir.path(), "1.33.0", &sets) {
        let err = manifests.expect_err(&name);
        assert!(err.contains(expected) && err.contains(fix), "{name}: {err}");
    }
}
