//! `agent/benches/proxy-vs-nginx.sh --smoke`: the proxy-vs-nginx bench script
//! still works end to end (real nginx, real wrk, the real control plane and
//! agent binaries), with 1 s cells so it stays cheap. It proves the script
//! runs and that nginx and the agent give the same CORS answers it checks;
//! it asserts nothing about speed (figures live in BENCHMARKS.md).
//!
//! Needs nginx, wrk, curl, python3, 2 CPUs, and the control-plane binary
//! beside the agent's (`cargo test --workspace` builds both).

use std::path::Path;
use std::process::Command;

#[test]
fn the_bench_script_runs_every_cell_and_prints_the_table() {
    let agent = Path::new(env!("CARGO_BIN_EXE_corsair-agent"));
    let bin_dir = agent
        .parent()
        .expect("the agent binary lives in a directory");
    assert!(
        bin_dir.join("corsair-control-plane").exists(),
        "no corsair-control-plane beside {}: build it with `cargo build -p corsair-control-plane` \
         (`cargo test --workspace` does)",
        agent.display()
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/proxy-vs-nginx.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("--smoke")
        .arg("--bin-dir")
        .arg(bin_dir)
        .output()
        .expect("bash runs the bench script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "script failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // One table row per (origins, kind), each with three positive rates.
    for origins in ["1", "10"] {
        for kind in ["actual", "preflight"] {
            let row = stdout
                .lines()
                .find(|l| l.starts_with(&format!("| {origins} | {kind} |")))
                .unwrap_or_else(|| panic!("no row for {origins} origins, {kind}:\n{stdout}"));
            let rates: Vec<f64> = row
                .split('|')
                .skip(3)
                .take(3)
                .filter_map(|cell| cell.split_whitespace().next()?.parse().ok())
                .collect();
            assert_eq!(
                rates.len(),
                3,
                "row {row:?} lacks direct, nginx and agent rates"
            );
            assert!(
                rates.iter().all(|r| *r > 0.0),
                "a cell served nothing: {row}"
            );
        }
    }
    assert!(stdout.contains("machine: "), "the machine is not stated");
    assert!(stdout.contains("load before: "), "the load is not stated");
}
