#!/usr/bin/env bash
# Where the gateway's CPU goes per request, by part (kernel, hyper, tokio, allocation, wasmtime,
# the plugins' own compiled code, ...), for a route without plugins and for the same route with
# Kong's everyday pair (key-auth + rate-limiting). Each route is loaded by wrk while `perf record`
# samples the gateway process; the samples are grouped by what they ran and turned into µs per
# request with the process's CPU time (/proc, user + system) over the same load. Replaces the
# "Profile by part" section of docs/benchmarks.md. Needs nginx, wrk and perf (.ci/setup installs
# nginx and wrk; perf is Debian's `linux-perf`).
#
#   bench/profile.sh [SECONDS_PER_RUN] [ROUNDS]        (defaults: 5 s, 3 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

SECONDS_PER_RUN=${1:-5}
ROUNDS=${2:-3}
CONNECTIONS=${CONNECTIONS:-50}

command -v nginx >/dev/null && command -v wrk >/dev/null && command -v perf >/dev/null ||
  { echo "needs nginx, wrk and perf (apt-get install nginx wrk linux-perf)" >&2; exit 1; }
cargo build --release -p gateway --quiet
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
GATEWAY="$target_dir/release/gateway"

bench_workdir

UPSTREAM=$(free_port); GW=$(free_port)
mkdir -p "$work/gateway"
upstream_conf "$work/upstream" "$UPSTREAM"
# The same routes as bench/proxy.sh's "gateway" and "key-auth + rate-limiting" runs.
cat >"$work/gateway/kong.yml" <<EOF
_format_version: "3.0"
services:
- name: upstream
  url: http://127.0.0.1:$UPSTREAM
  routes:
  - name: all
    paths: [/]
  - name: key-auth-rate-limiting
    paths: [/ka-rl]
    plugins:
    - name: key-auth
    - name: rate-limiting
      config: {hour: 1000000000, limit_by: consumer}
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
status_listen = off
log_level = warn
wasm_plugins_path = $target_dir/wasm-plugins/wasm32-wasip2/release
wasm_cache_path = $work/wasm-cache
EOF
nginx -p "$work/upstream" -c "$work/upstream/nginx.conf" & pids+=($!)
"$GATEWAY" precompile -c "$work/gateway/kong.conf" 2>"$work/precompile.log" ||
  { echo "gateway precompile failed:" >&2; cat "$work/precompile.log" >&2; exit 1; }
# The guests' compiled code is named in /tmp/perf-PID.map (wasm[0]::function[N]).
GATEWAY_WASM_PERFMAP=1 "$GATEWAY" -c "$work/gateway/kong.conf" 2>"$work/gateway/log" & pids+=($!); gateway_pid=$!
for _ in $(seq 300); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H 'apikey: bench-key' "http://127.0.0.1:$GW/ka-rl")" = 200 ] && break
  sleep 0.1
done
[ "$(curl -s -o /dev/null -w '%{http_code}' -H 'apikey: bench-key' "http://127.0.0.1:$GW/ka-rl")" = 200 ] ||
  { echo "the gateway did not come up:" >&2; cat "$work/gateway/log" >&2; exit 1; }

ticks() { awk '{print $14 + $15}' "/proc/$gateway_pid/stat"; }
HZ=$(getconf CLK_TCK)

# Samples by part, in percent of all samples: one line "part percent" each.
by_part() { # PERF_DATA
  perf report -i "$1" --no-children --sort dso,sym --stdio 2>/dev/null | awk '
    /^ +[0-9.]+%/ {
      p = $1; sub("%", "", p); $1 = ""; s = $0; c = "other (gateway dependencies)"
      if (s ~ /\[kernel/) c = "kernel (TCP loopback, epoll, scheduler)"
      else if (s ~ /JIT|wasm\[/) c = "plugins and router: compiled Wasm"
      else if (s ~ /wasmtime|cranelift/) c = "wasmtime: calls, lifting and lowering"
      else if (s ~ /_mi_|mi_|mimalloc|alloc::alloc|__rust_(alloc|dealloc|realloc)/) c = "allocation (mimalloc)"
      else if (s ~ /hyper|httparse/) c = "hyper, httparse"
      else if (s ~ /http::/) c = "http (header maps)"
      else if (s ~ /tokio/) c = "tokio"
      else if (s ~ /gateway::wasm/) c = "gateway: plugin host"
      else if (s ~ /gateway::/) c = "gateway: proxy, server"
      else if (s ~ /libc|vdso/) c = "libc (memmove), vdso"
      else if (s ~ /core::|std::|bytes::|alloc::/) c = "core, std, bytes"
      t[c] += p
    }
    END { for (c in t) printf "%s\t%.2f\n", c, t[c] }'
}

results="$work/results"
: >"$results"
for round in $(seq "$ROUNDS"); do
  for path in / /ka-rl; do
    name=$([ "$path" = / ] && echo none || echo pair)
    data="$work/$name-$round.data"
    load() { wrk -t1 -c"$CONNECTIONS" -d"$1" -H 'apikey: bench-key' "http://127.0.0.1:$GW$path"; }
    load 2s >/dev/null
    # CPU per request from a run without the profiler (sampling adds its own cost)...
    before=$(ticks)
    load "${SECONDS_PER_RUN}s" >"$work/wrk.out" 2>/dev/null
    after=$(ticks)
    requests=$(awk '/requests in/ {print $1}' "$work/wrk.out")
    rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
    cpu=$(awk -v t=$((after - before)) -v hz="$HZ" -v n="$requests" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
    # ...and the shares of the parts from the same load, sampled.
    perf record -q -F 999 -g -p "$gateway_pid" -o "$data" -- \
      wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" -H 'apikey: bench-key' "http://127.0.0.1:$GW$path" >/dev/null 2>&1
    echo "round $round $name: $rps requests/s, $cpu µs CPU per request"
    by_part "$data" | while IFS=$'\t' read -r part percent; do
      printf '%s\t%s\t%s\t%s\n' "$name" "$round" "$part" "$(awk -v p="$percent" -v c="$cpu" 'BEGIN {printf "%.2f", p / 100 * c}')"
    done >>"$results"
    printf '%s\t%s\t%s\t%s\n' "$name" "$round" "total" "$cpu" >>"$results"
    printf '%s\t%s\t%s\t%s\n' "$name" "$round" "rps" "$rps" >>"$results"
    rm -f "$data"
  done
done

# Median over the rounds of each part's µs per request.
median() { # NAME PART
  awk -F'\t' -v n="$1" -v p="$2" '$1 == n && $3 == p {print $4}' "$results" | sort -g |
    awk '{v[NR] = $1} END {if (NR == 0) print "0.00"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

section="$work/section.md"
{
  echo "<!-- bench/profile.sh: generated, do not edit by hand -->"
  echo "## Profile by part"
  echo
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)):"
  echo "the gateway (release build, DB-less, access log off) under wrk (1 thread, $CONNECTIONS keep-alive"
  echo "connections, ${SECONDS_PER_RUN} s), sampled by \`perf record -F 999 -g -p <gateway>\`; each part's share of"
  echo "the samples times the process's CPU per request in a run of the same load without the profiler"
  echo "just before; medians of $ROUNDS rounds."
  echo "\"none\" is the route without plugins, \"pair\" the same upstream through key-auth + rate-limiting"
  echo "(\`limit_by: consumer\`). Command: \`bench/profile.sh${*:+ $*}\`."
  echo
  echo "| part | none, µs per request | pair, µs per request | the pair's cost |"
  echo "|---|---:|---:|---:|"
  awk -F'\t' '$3 != "total" && $3 != "rps" {print $3}' "$results" | sort -u | while read -r part; do
    none=$(median none "$part"); pair=$(median pair "$part")
    printf '%s\t%s\t%s\n' "$part" "$none" "$pair"
  done | sort -t$'\t' -k3 -gr | awk -F'\t' '{printf "| %s | %.1f | %.1f | %+.1f |\n", $1, $2, $3, $3 - $2}'
  none=$(median none total); pair=$(median pair total)
  awk -v n="$none" -v p="$pair" 'BEGIN {printf "| **all** | **%.1f** | **%.1f** | **%+.1f** |\n", n, p, p - n}'
  echo
  echo "Rounds (route, round, requests/s, CPU µs per request):"
  echo
  echo '```'
  awk -F'\t' '$3 == "rps" {rps[$1 " " $2] = $4} $3 == "total" {cpu[$1 " " $2] = $4; order[++n] = $1 " " $2}
    END {for (i = 1; i <= n; i++) print order[i], rps[order[i]], cpu[order[i]]}' "$results"
  echo '```'
  echo "<!-- /bench/profile.sh -->"
} >"$section"
cat "$section"
write_section profile "$section"
