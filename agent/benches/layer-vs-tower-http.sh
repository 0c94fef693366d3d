#!/usr/bin/env bash
# Corsair's tower layer beside tower-http's CorsLayer at N origins (default
# 1,000), both ways this machine can measure them, in one run (figures in
# BENCHMARKS.md, "Layer against layer"):
#
#   1. instructions per call, counted by callgrind inside the one function
#      that makes the call (benches/layer_instructions.rs): repeatable
#      whatever the machine's load, the comparison to trust on a busy machine;
#   2. time per call, criterion medians of the `*/layer/N` cells of
#      benches/engine.rs (the same calls), with the load before and after;
#
# each with references for actual requests (not contenders): the upstream
# alone, plus one `Vary: Origin` insert, and a plain and a lean layer that
# answer by origin (benches/common/mod.rs, MinimalCors).
#
#   agent/benches/layer-vs-tower-http.sh                  # both; ~3 min after the build
#   agent/benches/layer-vs-tower-http.sh --instructions   # counts only (~1 min)
#   agent/benches/layer-vs-tower-http.sh --time           # criterion only (~1 min)
#   options: --origins N (1, 10, 100, 1000 or 10000; default 1000), --calls N (callgrind, default 20000),
#            --allocator glibc|mimalloc (counts only; default glibc, the headline figures:
#            mimalloc is the agent binary's allocator, a side table)
set -euo pipefail

origins=1000
calls=20000
allocator=glibc
do_count=1
do_time=1
while [ $# -gt 0 ]; do
    case "$1" in
        --origins) origins="$2"; shift ;;
        --calls) calls="$2"; shift ;;
        --instructions) do_time="" ;;
        --time) do_count="" ;;
        --allocator) allocator="$2"; shift ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$allocator" in
    glibc) bench=layer_instructions ;;
    mimalloc) bench=layer_instructions_mimalloc ;;
    *) echo "unknown allocator $allocator (glibc or mimalloc)" >&2; exit 2 ;;
esac
[ -z "$do_count" ] || command -v valgrind >/dev/null 2>&1 \
    || { echo "needs valgrind (apt-get install valgrind), or use --time" >&2; exit 1; }

repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
target="${CARGO_TARGET_DIR:-$repo/target}"
scenarios="allowed disallowed preflight hostile_acrh"
start=$(date +%s)

echo "# Corsair layer vs tower-http CorsLayer, $origins origins, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- agent || echo ' (+ uncommitted changes in agent/)')"
echo "machine: $(lscpu | awk -F: '/^Model name/ {gsub(/^ +/, "", $2); print $2}'), $(nproc --all) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), $(uname -r); $(rustc --version | cut -d' ' -f1-2)"

if [ -n "$do_count" ]; then
    bin="$(cargo bench -p corsair-agent --bench "$bench" --no-run --message-format=json 2>/dev/null \
        | BENCH="$bench" python3 -c 'import json, os, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == os.environ["BENCH"] and m.get("executable"):
        print(m["executable"])')"
    [ -x "$bin" ] || { echo "could not build the layer_instructions bench (cargo bench -p corsair-agent --bench $bench --no-run)" >&2; exit 1; }
    out="$(mktemp -d /tmp/corsair-layer-count.XXXXXX)"
    trap 'rm -rf "$out"' EXIT
    # count SCENARIO LAYER: instructions per call into $out/SCENARIO-LAYER.per.
    count() {
        valgrind --tool=callgrind --toggle-collect='*measured*' --callgrind-out-file="$out/$1-$2.cg" \
            "$bin" "$1" "$2" "$origins" "$calls" >/dev/null 2>"$out/$1-$2.log" \
            || { cat "$out/$1-$2.log" >&2; exit 1; }
        awk -v c="$calls" '/^(summary|totals):/ { printf "%.0f\n", $2 / c; exit }' "$out/$1-$2.cg" >"$out/$1-$2.per"
    }
    echo
    echo "## Instructions per call (callgrind, $(valgrind --version); $calls counted calls per cell; allocator: $allocator, both layers; load $(cut -d' ' -f1-3 /proc/loadavg), which counts do not depend on)"
    echo
    echo "| scenario ($origins origins) | corsair/layer | tower-http/layer | tower-http / corsair |"
    echo "|---|---:|---:|---:|"
    for s in $scenarios; do
        for layer in corsair tower-http; do
            count "$s" "$layer"
        done
        awk -v s="$s" -v a="$(cat "$out/$s-corsair.per")" -v b="$(cat "$out/$s-tower-http.per")" \
            'BEGIN { printf "| %s | %d | %d | **%.1fx** |\n", s, a, b, b / a }'
    done
    # References for actual requests (not contenders): the upstream alone,
    # plus one Vary insert, and a plain and a lean layer answering by origin.
    echo
    echo "References for actual requests (not contenders; tower-http / 10 is what 10x allows):"
    echo
    echo "| scenario ($origins origins) | upstream alone | + one Vary insert | plain layer | lean layer | tower-http / 10 | tower-http / plain | tower-http / lean |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for s in allowed disallowed; do
        for layer in none vary-only minimal-layer lean-layer; do
            count "$s" "$layer"
        done
        awk -v s="$s" -v n="$(cat "$out/$s-none.per")" -v v="$(cat "$out/$s-vary-only.per")" \
            -v m="$(cat "$out/$s-minimal-layer.per")" -v l="$(cat "$out/$s-lean-layer.per")" \
            -v b="$(cat "$out/$s-tower-http.per")" \
            'BEGIN { printf "| %s | %d | %d | %d | %d | %d | %.1fx | %.1fx |\n", s, n, v, m, l, b / 10, b / m, b / l }'
    done
fi

if [ -n "$do_time" ]; then
    echo
    echo "## Time per call (criterion medians: cargo bench -p corsair-agent --bench engine -- --warm-up-time 1 --measurement-time 2 \"(layer|floor/.*)/$origins\$\")"
    load0="$(cut -d' ' -f1-3 /proc/loadavg)"
    cargo bench -p corsair-agent --bench engine -- --warm-up-time 1 --measurement-time 2 "(layer|floor/.*)/$origins\$" \
        >"${TMPDIR:-/tmp}/corsair-layer-criterion.log" 2>&1 \
        || { tail -30 "${TMPDIR:-/tmp}/corsair-layer-criterion.log" >&2; exit 1; }
    echo "load average before: $load0; after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| scenario ($origins origins) | corsair/layer | tower-http/layer | tower-http / corsair |"
    echo "|---|---:|---:|---:|"
    for s in $scenarios; do
        python3 - "$target/criterion/$s" "$origins" "$s" <<'PY'
import json, sys
base, n, s = sys.argv[1], sys.argv[2], sys.argv[3]
def median(contender):
    with open(f"{base}/{contender}_layer/{n}/new/estimates.json") as f:
        return json.load(f)["median"]["point_estimate"]
def fmt(ns):
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"
a, b = median("corsair"), median("tower-http")
print(f"| {s} | {fmt(a)} | {fmt(b)} | **{b / a:.1f}x** |")
PY
    done
    if [ "$origins" = 1000 ]; then
        echo
        echo "References for actual requests (not contenders):"
        echo
        echo "| scenario (1000 origins) | upstream alone | + one Vary insert | plain layer | lean layer | tower-http / 10 | tower-http / plain | tower-http / lean |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|"
        for s in allowed disallowed; do
            python3 - "$target/criterion/$s" "$s" <<'PY'
import json, sys
base, s = sys.argv[1], sys.argv[2]
def median(contender):
    with open(f"{base}/{contender}/1000/new/estimates.json") as f:
        return json.load(f)["median"]["point_estimate"]
def fmt(ns):
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"
none, vary, plain, lean, th = (median(c) for c in ("floor_upstream", "floor_upstream+vary", "floor_minimal-layer", "floor_lean-layer", "tower-http_layer"))
print(f"| {s} | {fmt(none)} | {fmt(vary)} | {fmt(plain)} | {fmt(lean)} | {fmt(th / 10)} | {th / plain:.1f}x | {th / lean:.1f}x |")
PY
        done
    fi
fi
echo
echo "took $(( $(date +%s) - start )) s"
