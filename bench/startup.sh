#!/usr/bin/env bash
# Time from exec to `/status/ready` 200, with the shipped configurations, cold and warm.
#
#   bench/startup.sh [ROUNDS]        (default: 5)
#
# Runs the release build from the repository root with `conf/kong.conf` (traditional, embedded
# store) and `conf/dbless.conf` (DB-less, `conf/kong.yml`); only the prefix and the listen ports
# are overridden (KONG_* variables: a private prefix, ports picked free). Cold: the prefix's
# compile cache (`wasm-cache/`) is removed before the start, so every component is compiled; warm:
# the cache from the previous start is used. ROUNDS times, interleaved, medians. The clock starts
# just before exec; `/status/ready` is polled over bash's /dev/tcp (no process per poll) until it
# answers 200. Then, 2 s later (idle), the node's resident memory (`VmRSS`) is read. The results
# replace the "Start-up time" section of docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

ROUNDS=${1:-5}

cargo build --release -p gateway --quiet
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
GATEWAY="$target_dir/release/gateway"

work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

ready() { # PORT: true when GET /status/ready answers 200
  local line
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf 'GET /status/ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
  IFS= read -r -t 5 line <&3 || line=
  exec 3<&-
  [[ $line == "HTTP/1.1 200"* ]]
}

micros() { local t=${EPOCHREALTIME/./}; echo $((10#$t)); }

# start CONF PREFIX -> milliseconds from exec to ready, and the node's RSS in MB 2 s after; stops
# the node again.
start() {
  local conf=$1 prefix=$2 status proxy tls admin t0 t1 rss
  status=$(free_port) proxy=$(free_port) tls=$(free_port) admin=$(free_port)
  local admin_listen="127.0.0.1:$admin"
  grep -q '^admin_listen *= *off' "$conf" && admin_listen=off
  t0=$(micros)
  KONG_PREFIX="$prefix" KONG_STATUS_LISTEN="127.0.0.1:$status" KONG_ADMIN_LISTEN="$admin_listen" \
    KONG_PROXY_LISTEN="127.0.0.1:$proxy, 127.0.0.1:$tls http2 ssl" \
    "$GATEWAY" -c "$conf" 2>>"$work/gateway.log" &
  pid=$!
  until ready "$status"; do
    kill -0 "$pid" 2>/dev/null || { echo "the gateway exited; its log:" >&2; tail -20 "$work/gateway.log" >&2; exit 1; }
    [ $(($(micros) - t0)) -lt 30000000 ] || { echo "not ready after 30 s" >&2; kill "$pid"; exit 1; }
  done
  t1=$(micros)
  sleep 2 # the idle window measured, not a wait for a condition
  rss=$(awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
  kill -TERM "$pid"
  wait "$pid" || true
  pid=
  awk -v d=$((t1 - t0)) -v rss="$rss" 'BEGIN {printf "%.0f %s", d / 1000, rss}'
}

results="$work/results"
# The embedded store starts empty, and an empty node is not ready (503, as in Kong): give it one
# service and route over the Admin API first (not timed).
seed() {
  local prefix=$1 status admin
  status=$(free_port) admin=$(free_port)
  KONG_PREFIX="$prefix" KONG_STATUS_LISTEN="127.0.0.1:$status" KONG_ADMIN_LISTEN="127.0.0.1:$admin" \
    KONG_PROXY_LISTEN="127.0.0.1:$(free_port)" "$GATEWAY" -c conf/kong.conf 2>>"$work/gateway.log" &
  pid=$!
  for _ in $(seq 300); do curl -sf -o /dev/null "http://127.0.0.1:$admin/status" && break; sleep 0.1; done
  curl -sf -o /dev/null -d name=s -d url=http://127.0.0.1:9 "http://127.0.0.1:$admin/services"
  curl -sf -o /dev/null -d name=r -d 'paths[]=/' "http://127.0.0.1:$admin/services/s/routes"
  kill -TERM "$pid"
  wait "$pid" || true
  pid=
}
seed "$work/prefix-kong"
# The very first start (empty prefix) also makes the self-signed certificate and the node id.
ms=$(start conf/dbless.conf "$work/prefix-dbless")
echo "dbless first $ms" >>"$results"
for round in $(seq "$ROUNDS"); do
  for conf in conf/kong.conf conf/dbless.conf; do
    name=$(basename "$conf" .conf)
    prefix="$work/prefix-$name"
    rm -rf "$prefix/wasm-cache"
    ms=$(start "$conf" "$prefix")
    echo "$name cold $ms" >>"$results"
    ms=$(start "$conf" "$prefix")
    echo "$name warm $ms" >>"$results"
  done
  echo "round $round of $ROUNDS done" >&2
done
cat "$results" >&2

median() { # NAME KIND [COLUMN: 3 ms (default), 4 RSS]
  awk -v n="$1" -v k="$2" -v c="${3:-3}" '$1 == n && $2 == k {print $c}' "$results" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}

section="$work/section"
{
  echo "<!-- bench/startup.sh: generated, do not edit by hand -->"
  echo "## Start-up time"
  echo
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)):"
  echo "exec of the release build to the first \`/status/ready\` 200, shipped configurations with only the"
  echo "prefix and the ports changed. Cold: no compile cache (every component compiled by cranelift);"
  echo "warm: the components loaded from \`<prefix>/wasm-cache/\`. $ROUNDS interleaved rounds, medians."
  echo "Command: \`bench/startup.sh $ROUNDS\`."
  echo
  echo "| configuration | cold cache | warm cache | RSS idle, cold start | RSS idle, warm start |"
  echo "|---|---:|---:|---:|---:|"
  echo "| \`conf/kong.conf\` (embedded store holding one service and route) | $(median kong cold) ms | $(median kong warm) ms | $(median kong cold 4) MB | $(median kong warm 4) MB |"
  echo "| \`conf/dbless.conf\` (\`conf/kong.yml\`) | $(median dbless cold) ms | $(median dbless warm) ms | $(median dbless cold 4) MB | $(median dbless warm 4) MB |"
  echo
  echo "The very first DB-less start (empty prefix: also makes the node id and a self-signed certificate): $(median dbless first) ms, $(median dbless first 4) MB."
  echo "A cold start compiles in a child process (\`gateway precompile\`) and then loads from the cache, so"
  echo "its memory is a warm start's."
  echo
  echo "Targets (issue 16): ≤ 300 ms warm with the DB-less configuration; ≤ 64 MB idle."
  echo
  echo "Every start (configuration, kind, ms, MB):"
  echo
  echo '```'
  cat "$results"
  echo '```'
  echo "<!-- /bench/startup.sh -->"
} >"$section"

cat "$section"
write_section startup "$section"
