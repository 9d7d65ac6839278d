#!/usr/bin/env bash
# Kong's everyday pair (key-auth + rate-limiting) on one core: what the plugins cost a gateway
# that is the bottleneck. The gateway runs one proxy worker pinned to the last core; wrk and the
# upstream (nginx `return 200`) share the other cores, so the gateway's core is saturated and its
# throughput is the inverse of its CPU per request. Routes: none, key-auth alone, rate-limiting
# alone (`limit_by: ip`), the pair (`limit_by: consumer`), and, as the reference for what a
# plugin call costs at least, the no-op plugin; and the pair cut down to its common path
# (plugins/testing/pair-shared) as two components and as one, for what running a chain in one
# component would save. Interleaved rounds; per round, each route's
# throughput ÷ the route without plugins and its CPU per request beyond it. Replaces the "The pair
# on one core" section of docs/benchmarks.md. Needs nginx, wrk and taskset (.ci/setup installs
# nginx and wrk; taskset is util-linux) and at least 2 cores.
#
#   bench/pair.sh [SECONDS_PER_RUN] [ROUNDS] [GATEWAY_BINARY]      (defaults: 5 s, 5 rounds, release)
#
# With GATEWAY_BINARY (e.g. a build of another commit), that binary is measured instead and
# docs/benchmarks.md is left alone: two runs then compare two builds.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

SECONDS_PER_RUN=${1:-5}
ROUNDS=${2:-5}
CONNECTIONS=${CONNECTIONS:-50}
cores=$(nproc)
[ "$cores" -ge 2 ] || { echo "needs at least 2 cores" >&2; exit 1; }
command -v nginx >/dev/null && command -v wrk >/dev/null && command -v taskset >/dev/null ||
  { echo "needs nginx, wrk and taskset" >&2; exit 1; }
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
if [ -n "${3:-}" ]; then
  GATEWAY=$3
else
  cargo build --release -p gateway --quiet
  GATEWAY="$target_dir/release/gateway"
fi
gateway_core=$((cores - 1))
load_cores="0-$((cores - 2))"

bench_workdir

UPSTREAM=$(free_port); GW=$(free_port)
mkdir -p "$work/gateway"
upstream_conf "$work/upstream" "$UPSTREAM"
cat >"$work/gateway/kong.yml" <<EOF
_format_version: "3.0"
services:
- name: upstream
  url: http://127.0.0.1:$UPSTREAM
  routes:
  - name: none
    paths: [/]
  - name: noop
    paths: [/noop]
    plugins:
    - name: noop
  - name: key-auth
    paths: [/ka]
    plugins:
    - name: key-auth
  - name: rate-limiting
    paths: [/rl]
    plugins:
    - name: rate-limiting
      config: {hour: 1000000000, limit_by: ip}
  - name: pair
    paths: [/ka-rl]
    plugins:
    - name: key-auth
    - name: rate-limiting
      config: {hour: 1000000000, limit_by: consumer}
  - name: split
    paths: [/split]
    plugins:
    - name: pair-auth
    - name: pair-limit
  - name: fused
    paths: [/fused]
    plugins:
    - name: pair-fused
consumers:
- username: bench
  keyauth_credentials:
  - key: bench-key
EOF
cat >"$work/gateway/kong.conf" <<EOF
database = off
declarative_config = $work/gateway/kong.yml
prefix = $work/gateway/servroot
proxy_listen = 127.0.0.1:$GW
proxy_access_log = off
admin_listen = off
admin_gui_listen = off
status_listen = off
log_level = warn
nginx_worker_processes = 1
plugins = bundled, noop, pair-auth, pair-limit, pair-fused
wasm_plugins_path = $work/plugins
wasm_cache_path = $work/wasm-cache
EOF
# Plugins load from NAME.wasm; cargo names the artifacts with _ for -.
mkdir -p "$work/plugins"
for name in noop pair-auth pair-limit pair-fused; do
  ln -s "$target_dir/wasm-plugins/wasm32-wasip2/release/${name//-/_}.wasm" "$work/plugins/$name.wasm"
done
taskset -c "$load_cores" nginx -p "$work/upstream" -c "$work/upstream/nginx.conf" & pids+=($!)
"$GATEWAY" precompile -c "$work/gateway/kong.conf" 2>"$work/precompile.log" ||
  { echo "gateway precompile failed:" >&2; cat "$work/precompile.log" >&2; exit 1; }
taskset -c "$gateway_core" "$GATEWAY" -c "$work/gateway/kong.conf" 2>"$work/gateway/log" & pids+=($!); gateway_pid=$!
status() { curl -s -o /dev/null -w '%{http_code}' -H 'apikey: bench-key' "http://127.0.0.1:$GW$1"; }
for _ in $(seq 300); do [ "$(status /ka-rl)" = 200 ] && break; sleep 0.1; done
for path in / /noop /ka /rl /ka-rl /split /fused; do
  [ "$(status $path)" = 200 ] || { echo "$path did not answer 200:" >&2; cat "$work/gateway/log" >&2; exit 1; }
done

ticks() { awk '{print $14 + $15}' "/proc/$gateway_pid/stat"; }
HZ=$(getconf CLK_TCK)
routes="none:/ noop:/noop key-auth:/ka rate-limiting:/rl pair:/ka-rl split:/split fused:/fused"
results="$work/results"
: >"$results"
load() { taskset -c "$load_cores" wrk -t1 -c"$CONNECTIONS" -d"$1" -H 'apikey: bench-key' "http://127.0.0.1:$GW$2"; }
for route in $routes; do load 2s "${route#*:}" >/dev/null; done
for round in $(seq "$ROUNDS"); do
  for route in $routes; do
    name=${route%%:*}
    before=$(ticks)
    load "${SECONDS_PER_RUN}s" "${route#*:}" >"$work/wrk.out" 2>/dev/null
    after=$(ticks)
    requests=$(awk '/requests in/ {print $1}' "$work/wrk.out")
    rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
    bad=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {n += 1} END {print n + 0}' "$work/wrk.out")
    cpu=$(awk -v t=$((after - before)) -v hz="$HZ" -v n="$requests" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
    echo "round $round $name: $rps requests/s, $cpu µs CPU per request" >&2
    printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$rps" "$cpu" "$bad" >>"$results"
  done
done

# Per round: a route's throughput ÷ none's, and its CPU per request − none's.
per_round() { # NAME ratio|extra
  awk -F'\t' -v n="$1" -v what="$2" '
    $2 == "none" {rps[$1] = $3; cpu[$1] = $4}
    $2 == n {r[$1] = $3; c[$1] = $4}
    END {for (i = 1; i in r; i++) printf "%.2f\n", what == "ratio" ? r[i] / rps[i] : c[i] - cpu[i]}' "$results"
}
median() { sort -g | awk '{v[NR] = $1} END {printf "%.2f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

section="$work/section.md"
{
  echo "<!-- bench/pair.sh: generated, do not edit by hand -->"
  echo "## The pair on one core"
  echo
  echo "Measured $(date -u +%Y-%m-%d) on $cores cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)):"
  echo "the gateway (release build, DB-less, access log off, one proxy worker) pinned to core $gateway_core,"
  echo "wrk (1 thread, $CONNECTIONS keep-alive connections, ${SECONDS_PER_RUN} s) and the upstream (nginx \`return 200\`) on"
  echo "cores $load_cores, so the gateway's core is the bottleneck; $ROUNDS interleaved rounds, medians of the"
  echo "per-round figures. Command: \`bench/pair.sh${*:+ $*}\`."
  echo
  echo "| route | requests/s ÷ no plugins | CPU µs per request beyond no plugins |"
  echo "|---|---:|---:|"
  echo "| no plugins ($(awk -F'\t' '$2 == "none" {print $4}' "$results" | median) µs per request) | 1.00 | — |"
  for name in noop key-auth rate-limiting pair split fused; do
    label=$name
    [ "$name" = noop ] && label="a plugin that does nothing (noop)"
    [ "$name" = pair ] && label="**key-auth + rate-limiting**"
    [ "$name" = split ] && label="the pair cut down, as two components (pair-auth + pair-limit)"
    [ "$name" = fused ] && label="the same in one component and one call (pair-fused)"
    printf '| %s | %s | %s |\n' "$label" "$(per_round "$name" ratio | median)" "$(per_round "$name" extra | median)"
  done
  echo
  echo "Issue 13's targets: the pair costs ≤ 20 % of throughput (ratio ≥ 0.80; Kong loses 24–26 % to it)"
  echo "and ≤ 5 µs of CPU per plugin per request (the pair ≤ 10 µs). Per round, the pair's ratio:"
  echo "$(per_round pair ratio | xargs); its CPU beyond no plugins: $(per_round pair extra | xargs) µs."
  fastest() { awk -F'\t' -v n="$1" '$2 == n && (m == "" || $4 < m) {m = $4} END {print m}' "$results"; }
  echo "This machine's speed drifts within a round, so each route's fastest run (the least disturbed)"
  echo "is a second view: no plugins $(fastest none) µs per request; beyond it, the no-op plugin"
  echo "$(awk -v a="$(fastest noop)" -v b="$(fastest none)" 'BEGIN {printf "%.2f", a - b}') µs, key-auth $(awk -v a="$(fastest key-auth)" -v b="$(fastest none)" 'BEGIN {printf "%.2f", a - b}') µs,"
  echo "rate-limiting $(awk -v a="$(fastest rate-limiting)" -v b="$(fastest none)" 'BEGIN {printf "%.2f", a - b}') µs, the pair $(awk -v a="$(fastest pair)" -v b="$(fastest none)" 'BEGIN {printf "%.2f", a - b}') µs (throughput, as the inverse of CPU on a saturated core:"
  echo "$(awk -v a="$(fastest none)" -v b="$(fastest pair)" 'BEGIN {printf "%.2f", a / b}') × no plugins)."
  echo
  echo "One component instead of two, for the same work (the cut-down pair: split − fused), per round:"
  echo "$(awk -F'\t' '$2 == "split" {s[$1] = $4} $2 == "fused" {f[$1] = $4} END {for (i = 1; i in s; i++) printf "%.2f ", s[i] - f[i]}' "$results")µs of CPU per request."
  echo "Failed requests (non-2xx or socket errors) over all runs: $(awk -F'\t' '{n += $5} END {print n + 0}' "$results")."
  echo
  echo "Every run (round, route, requests/s, CPU µs per request):"
  echo
  echo '```'
  awk -F'\t' '{print $1, $2, $3, $4}' "$results"
  echo '```'
  echo "<!-- /bench/pair.sh -->"
} >"$section"
cat "$section"
[ -n "${3:-}" ] || write_section pair "$section"
