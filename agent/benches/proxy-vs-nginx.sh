#!/usr/bin/env bash
# The Corsair agent proxy beside nginx doing the same CORS job, on loopback,
# side by side in one run (figures and machine in BENCHMARKS.md, "Proxy").
#
#   agent/benches/proxy-vs-nginx.sh             # full run: 10 s per cell
#   agent/benches/proxy-vs-nginx.sh --smoke     # 1 s cells, proves the script works
#
# It starts, itself, on 127.0.0.1 only:
#   - an upstream nginx (one worker) that answers every request with a small 200;
#   - nginx as a CORS gateway: `map $http_origin` over N origins, preflights
#     answered locally, actual requests proxied with upstream keepalive;
#   - the Corsair control plane (`serve`, on a throwaway database) with one
#     service and the same N origins approved over REST, and an agent token;
#   - the Corsair agent proxy (release build) enforcing that service's policy.
# wrk (1 thread, 32 connections) runs on CPU 0; the proxy under test and the
# upstream share CPU 1. Every request carries the last listed origin (allowed).
# Cells: direct (upstream alone), nginx, agent x actual/preflight x N origins.
#
# Options:
#   --smoke              1 s cells, 1 and 10 origins, debug binaries allowed
#   --duration SECONDS   per cell (default 10)
#   --runs N             run every cell N times, round-robin over direct,
#                        nginx and agent, and keep each one's best req/s
#                        (with that run's p99 and CPU) for the table: on a
#                        shared machine, the run least disturbed by others
#                        (default 1)
#   --origins "1 1000"   origin counts (default "1 1000")
#   --bin-dir DIR        where corsair-agent and corsair-control-plane are
#                        (default: build them with `cargo build --release`)
#   --agent-args "..."   extra flags for `corsair-agent proxy`
#   --keep DIR           keep configs and logs in DIR (default: a temp dir, removed)
set -euo pipefail

duration=10
runs=1
origin_counts="1 1000"
bin_dir=""
agent_args=""
keep=""
smoke=""
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) smoke=1; duration=1; origin_counts="1 10" ;;
        --duration) duration="$2"; shift ;;
        --runs) runs="$2"; shift ;;
        --origins) origin_counts="$2"; shift ;;
        --bin-dir) bin_dir="$2"; shift ;;
        --agent-args) agent_args="$2"; shift ;;
        --keep) keep="$2"; shift ;;
        -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

die() { echo "proxy-vs-nginx: $*" >&2; exit 1; }
for tool in nginx wrk taskset curl python3; do
    command -v "$tool" >/dev/null 2>&1 || die "needs $tool (apt-get install nginx wrk util-linux curl python3)"
done
[ "$(nproc --all)" -ge 2 ] || die "needs 2 CPUs (wrk on CPU 0, proxy and upstream on CPU 1)"

repo="$(cd "$(dirname "$0")/../.." && pwd)"
if [ -z "$bin_dir" ]; then
    (cd "$repo" && SQLX_OFFLINE=true cargo build --release --quiet \
        -p corsair-agent -p corsair-control-plane --bins)
    bin_dir="${CARGO_TARGET_DIR:-$repo/target}/release"
fi
agent_bin="$bin_dir/corsair-agent"
cp_bin="$bin_dir/corsair-control-plane"
[ -x "$agent_bin" ] || die "no $agent_bin (build it: cargo build --release -p corsair-agent)"
[ -x "$cp_bin" ] || die "no $cp_bin (build it: cargo build --release -p corsair-control-plane)"

if [ -n "$keep" ]; then
    work="$keep"; mkdir -p "$work"
else
    work="$(mktemp -d /tmp/corsair-proxy-bench.XXXXXX)"
fi
chmod 755 "$work"
pids=()
db_name=""
pg_dir=""
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -n "$db_name" ]; then
        psql -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres \
            -c "DROP DATABASE IF EXISTS $db_name" >/dev/null 2>&1 || true
    fi
    if [ -n "$pg_dir" ]; then
        runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 \
            || "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    [ -n "$keep" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_http URL [EXPECTED_STATUS]: polls with a deadline (30 s).
wait_http() {
    local url="$1" want="${2:-200}" i
    for i in $(seq 1 300); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$url" 2>/dev/null)" = "$want" ] && return 0
        sleep 0.1
    done
    die "timed out waiting for $url to answer $want (logs in $work)"
}

# --- PostgreSQL: the shared server on 127.0.0.1:5432, else a private one ---
pg_port=5432
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    db_name="corsair_proxy_bench_$$"
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $db_name" >/dev/null
else
    pg_bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
    [ -x "$pg_bin/initdb" ] || die "needs PostgreSQL on 127.0.0.1:5432 or its server binaries"
    pg_dir="$work/pg"; mkdir -p "$pg_dir"; chmod 777 "$pg_dir"
    pg_port="$(free_port)"
    as_pg=(); [ "$(id -u)" = 0 ] && as_pg=(runuser -u postgres --)
    "${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null
    "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" \
        -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1" -w start >/dev/null
    db_name="corsair_proxy_bench"
    psql -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -c "CREATE DATABASE $db_name" >/dev/null
fi
db_url="postgres://postgres@127.0.0.1:$pg_port/$db_name"

# --- Control plane: serve, an admin, then per run a service, N origins, a token ---
cp_http="$(free_port)"; cp_grpc="$(free_port)"
"$cp_bin" migrate --database-url "$db_url" >"$work/cp-migrate.log" 2>&1
echo "bench-password-$$" | "$cp_bin" user add --database-url "$db_url" \
    --email bench@corsair.test --role admin --password-stdin >"$work/cp-user.log" 2>&1
RUST_LOG=warn "$cp_bin" serve --database-url "$db_url" --http "127.0.0.1:$cp_http" \
    --grpc "127.0.0.1:$cp_grpc" --signing-key-file "$work/signing.key" --single-operator \
    >"$work/cp.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$cp_http/api/v1/openapi.json"

# seed SERVICE N: the service with N approved origins, over REST; prints an agent token.
seed() {
    python3 - "$cp_http" "$1" "$2" "bench-password-$$" <<'PY'
import http.client, json, sys
port, service, n, password = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
def call(method, path, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    c.request(method, "/api/v1" + path, json.dumps(body) if body is not None else None, headers)
    r = c.getresponse()
    data = r.read()
    if r.status >= 300:
        sys.exit(f"{method} {path}: {r.status} {data[:300]!r}")
    return json.loads(data) if data else None
token = call("POST", "/login", {"email": "bench@corsair.test", "password": password})["token"]
call("POST", "/services", {"name": service, "allow_methods": ["PUT", "DELETE", "PATCH"],
     "allow_headers": ["content-type", "x-custom"], "expose_headers": ["x-request-id"],
     "max_age_secs": 600}, token)
for i in range(n):
    o = call("POST", f"/services/{service}/origins",
             {"pattern": f"https://app{i}.example.com", "reason": "benchmark"}, token)
    call("POST", f"/origins/{o['id']}/approve", {}, token)
print(call("POST", "/agent-tokens", {"name": f"bench-{service}", "services": [service]}, token)["token"])
PY
}

# --- nginx: the upstream, and the CORS gateway ---
nginx_common() { # nginx_common NAME
    mkdir -p "$work/$1"
    cat <<EOF
worker_processes 1;
daemon off;
pid $work/$1/nginx.pid;
error_log $work/$1/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/$1/body;
    proxy_temp_path $work/$1/proxy;
    fastcgi_temp_path $work/$1/fastcgi;
    uwsgi_temp_path $work/$1/uwsgi;
    scgi_temp_path $work/$1/scgi;
    # wrk and the proxies keep their connections: never close them midway.
    keepalive_requests 1000000;
    keepalive_timeout 300s;
EOF
}
up_port="$(free_port)"
{
    nginx_common upstream
    cat <<EOF
    server {
        listen 127.0.0.1:$up_port backlog=4096;
        default_type text/plain;
        location / { return 200 "ok\n"; }
    }
}
EOF
} >"$work/upstream.conf"
taskset -c 1 nginx -e "$work/upstream/error.log" -c "$work/upstream.conf" 2>>"$work/upstream/stderr" &
up_pid=$!; pids+=("$up_pid")

# The gateway: the same answers as the agent's policy. Preflights from a
# listed origin get 204 with the policy's methods, headers and max-age; from
# an unlisted origin 403. Actual requests are proxied (HTTP/1.1, pooled
# upstream connections) with X-Forwarded-* set, the upstream's own
# Access-Control-* hidden, and the origin echoed only when listed.
nginx_conf() { # nginx_conf N PORT
    local n="$1" port="$2" i
    {
        for ((i = 0; i < n; i++)); do echo "    \"https://app$i.example.com\" \$http_origin;"; done
    } >"$work/origins-$n.map"
    nginx_common "nginx-$n"
    cat <<EOF
    map_hash_max_size 65536;
    map_hash_bucket_size 128;
    map \$http_origin \$cors_origin {
        default "";
        include $work/origins-$n.map;
    }
    map \$cors_origin \$cors_expose {
        "" "";
        default "x-request-id";
    }
    upstream app {
        server 127.0.0.1:$up_port;
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$port backlog=4096;
        location / {
            set \$preflight "";
            if (\$request_method = OPTIONS) { set \$preflight "\${http_access_control_request_method}"; }
            if (\$preflight != "") { set \$preflight "P\$cors_origin"; }
            if (\$preflight = "P") {
                add_header Vary "Origin, Access-Control-Request-Method, Access-Control-Request-Headers" always;
                return 403;
            }
            if (\$preflight != "") {
                add_header Access-Control-Allow-Origin \$cors_origin always;
                add_header Access-Control-Allow-Methods "PUT, DELETE, PATCH" always;
                add_header Access-Control-Allow-Headers "content-type, x-custom" always;
                add_header Access-Control-Max-Age 600 always;
                add_header Vary "Origin, Access-Control-Request-Method, Access-Control-Request-Headers" always;
                return 204;
            }
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
            proxy_buffering on;
            proxy_hide_header Access-Control-Allow-Origin;
            proxy_hide_header Access-Control-Allow-Credentials;
            proxy_hide_header Access-Control-Expose-Headers;
            add_header Access-Control-Allow-Origin \$cors_origin always;
            add_header Access-Control-Expose-Headers \$cors_expose always;
            add_header Vary Origin always;
        }
    }
}
EOF
}

cat >"$work/preflight.lua" <<'EOF'
wrk.method = "OPTIONS"
wrk.headers["Access-Control-Request-Method"] = "PUT"
wrk.headers["Access-Control-Request-Headers"] = "content-type,x-custom"
EOF

# cpu_ns PID: CPU time (ns) used so far by PID, its threads and its child
# processes (nginx's worker), from /proc/*/task/*/schedstat.
cpu_ns() {
    local pid total=0 t
    for pid in "$1" $(pgrep -P "$1" || true); do
        for t in /proc/"$pid"/task/*/schedstat; do
            [ -r "$t" ] && total=$((total + $(cut -d' ' -f1 "$t" 2>/dev/null || echo 0)))
        done
    done
    echo "$total"
}

# cell NAME URL ORIGIN KIND N PID: one wrk run; appends
# "origins kind name req/s p99 cpu-us-per-request" to the results. The CPU
# time is the gateway's own (PID and its children): steadier under load
# than req/s, which shares the machine with everything else.
results="$work/results.txt"
: >"$results"
cell() {
    local name="$1" url="$2" origin="$3" kind="$4" n="$5" pid="$6" script=() out rps p99 cpu0 cpu1 reqs cpu
    [ "$kind" = preflight ] && script=(-s "$work/preflight.lua")
    cpu0="$(cpu_ns "$pid")"
    out="$(taskset -c 0 wrk -t1 -c32 -d"${duration}s" --latency "${script[@]}" \
        -H "Origin: $origin" "$url" 2>&1)" || die "wrk failed against $url: $out"
    cpu1="$(cpu_ns "$pid")"
    reqs="$(awk '/requests in/ {print $1}' <<<"$out")"
    cpu="$(awk -v a="$cpu0" -v b="$cpu1" -v r="${reqs:-0}" 'BEGIN { if (r > 0) printf "%.2f", (b - a) / 1000 / r; else print "-" }')"
    echo "$out" >"$work/wrk-$name-$kind-$n-run$run.txt"
    if grep -q "Non-2xx" <<<"$out"; then
        die "$name answered non-2xx during the $kind cell ($n origins): $(grep Non-2xx <<<"$out")"
    fi
    rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
    p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
    [ -n "$rps" ] || die "no result from wrk against $url: $out"
    printf '%s %s %s %s %s %s\n' "$n" "$kind" "$name" "$rps" "$p99" "$cpu" >>"$results"
    printf '  %-9s %-6s %6s origins: %12s req/s  p99 %-8s %6s CPU us/request\n' "$kind" "$name" "$n" "$rps" "$p99" "$cpu"
}

# check NAME URL ORIGIN: the gateway grants the allowed origin on both kinds.
check() {
    local name="$1" url="$2" origin="$3" h
    h="$(curl -s -D - -o /dev/null -H "Origin: $origin" "$url")"
    grep -qi "^access-control-allow-origin: $origin" <<<"$h" \
        || die "$name did not grant $origin on an actual request: $h"
    h="$(curl -s -D - -o /dev/null -X OPTIONS -H "Origin: $origin" \
        -H 'Access-Control-Request-Method: PUT' -H 'Access-Control-Request-Headers: content-type,x-custom' "$url")"
    grep -q "^HTTP/1.1 204" <<<"$h" && grep -qi "^access-control-allow-methods: .*PUT" <<<"$h" \
        || die "$name did not allow the preflight from $origin: $h"
    h="$(curl -s -D - -o /dev/null -X OPTIONS -H "Origin: https://evil.example.net" \
        -H 'Access-Control-Request-Method: PUT' "$url")"
    grep -q "^HTTP/1.1 403" <<<"$h" || die "$name did not refuse a preflight from an unlisted origin: $h"
}

started=$(date +%s)
echo "# Corsair agent proxy vs nginx, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "commit: $(cd "$repo" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$repo" && git diff --quiet HEAD -- agent 2>/dev/null || echo ' (+ uncommitted changes in agent/)')"
echo "machine: $(lscpu | awk -F: '/^Model name/ {gsub(/^ +/, "", $2); print $2}'), $(nproc --all) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "tools: $(nginx -v 2>&1 | sed 's/.*: //'), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'), agent $("$agent_bin" --version | awk '{print $2}') ($agent_bin)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "cells: ${duration}s each, best of $runs run(s); wrk -t1 -c32 on CPU 0; proxy + upstream on CPU 1; loopback"
wait_http "http://127.0.0.1:$up_port/"

for n in $origin_counts; do
    origin="https://app$((n - 1)).example.com"
    token="$(seed "bench-$n" "$n")"

    ng_port="$(free_port)"
    nginx_conf "$n" "$ng_port" >"$work/nginx-$n.conf"
    taskset -c 1 nginx -e "$work/nginx-$n/error.log" -c "$work/nginx-$n.conf" 2>>"$work/nginx-$n/stderr" &
    ng_pid=$!; pids+=("$ng_pid")

    ag_port="$(free_port)"; ag_admin="$(free_port)"
    mkdir -p "$work/agent-$n"
    # shellcheck disable=SC2086 # --agent-args is a list of flags
    taskset -c 1 "$agent_bin" proxy --control-plane "http://127.0.0.1:$cp_grpc" \
        --token "$token" --service "bench-$n" --listen "127.0.0.1:$ag_port" \
        --upstream "http://127.0.0.1:$up_port" --cache-dir "$work/agent-$n" \
        --metrics "127.0.0.1:$ag_admin" $agent_args >"$work/agent-$n.log" 2>&1 &
    ag_pid=$!; pids+=("$ag_pid")

    wait_http "http://127.0.0.1:$ng_port/"
    wait_http "http://127.0.0.1:$ag_admin/readyz"
    check nginx "http://127.0.0.1:$ng_port/" "$origin"
    check agent "http://127.0.0.1:$ag_port/" "$origin"

    echo "## $n origin(s); request Origin: $origin; load $(cut -d' ' -f1-3 /proc/loadavg)"
    for kind in actual preflight; do
        for run in $(seq 1 "$runs"); do
            cell direct "http://127.0.0.1:$up_port/" "$origin" "$kind" "$n" "$up_pid"
            cell nginx "http://127.0.0.1:$ng_port/" "$origin" "$kind" "$n" "$ng_pid"
            cell agent "http://127.0.0.1:$ag_port/" "$origin" "$kind" "$n" "$ag_pid"
        done
    done
    kill "$ng_pid" "$ag_pid" 2>/dev/null || true
    wait "$ng_pid" "$ag_pid" 2>/dev/null || true
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "| origins | requests | direct req/s (p99) | nginx req/s (p99) | agent req/s (p99) | agent / nginx | p99 agent <= nginx | CPU us/request nginx / agent |"
echo "|---:|---|---:|---:|---:|---:|---|---:|"
# Each contender's best run (highest req/s) per cell, with that run's p99 and CPU.
awk 'function us(t) { if (t ~ /us$/) return t + 0; if (t ~ /ms$/) return t * 1000; if (t ~ /s$/) return t * 1000000; return t + 0 }
     { key = $1 " " $2; if (!((key, $3) in rps) || $4 + 0 > rps[key, $3] + 0) { rps[key, $3] = $4; p99[key, $3] = $5; cpu[key, $3] = $6 }
       if (!(key in seen)) { seen[key] = 1; order[++k] = key } }
     END { for (i = 1; i <= k; i++) { o = order[i]; split(o, f, " ");
         printf "| %s | %s | %.0f (%s) | %.0f (%s) | %.0f (%s) | %.2fx | %s | %s / %s |\n", f[1], f[2],
             rps[o, "direct"], p99[o, "direct"], rps[o, "nginx"], p99[o, "nginx"],
             rps[o, "agent"], p99[o, "agent"], rps[o, "agent"] / rps[o, "nginx"],
             us(p99[o, "agent"]) <= us(p99[o, "nginx"]) ? "yes" : "no", cpu[o, "nginx"], cpu[o, "agent"] } }' "$results"
echo
echo "took $(( $(date +%s) - started )) s"
[ -z "$smoke" ] || echo "smoke run: cells too short to compare; use the full run for figures"
