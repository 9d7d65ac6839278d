#!/usr/bin/env bash
# Proxy throughput on this machine, as ratios against nginx measured in the same run.
#
#   bench/proxy.sh [SECONDS_PER_RUN] [ROUNDS]        (defaults: 10 s, 3 rounds)
#
# Starts nginx `return 200` as the upstream, nginx `proxy_pass` (keep-alive to the upstream) as the
# reference proxy and the gateway (release build, DB-less, one route), all on 127.0.0.1 ports picked
# free. Then, ROUNDS times and interleaved so drift hits every target alike, runs the same wrk load
# (keep-alive, fixed connections) against the upstream directly, through nginx and through the
# gateway. For each run it records requests per second, p99 latency and the CPU time the proxy
# process(es) spent per request (from /proc, user + system). The same pairs are measured with
# access logs on (each one's default format, to a file), over HTTPS with HTTP/1.1 (wrk) and over
# HTTP/2 (h2load), with the same certificate. The medians and ratios replace the "Proxy
# throughput" section of docs/benchmarks.md. Needs nginx, wrk and h2load (.ci/setup installs them).
# Logs: both proxies log their default format (nginx `combined`, the gateway Kong's
# `kong_log_format`) to a file under the run's temp dir, emptied after each run.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

SECONDS_PER_RUN=${1:-10}
ROUNDS=${2:-3}
CONNECTIONS=${CONNECTIONS:-50}
WRK_THREADS=${WRK_THREADS:-1}
NGINX_WORKERS=${NGINX_WORKERS:-$(nproc)}

command -v nginx >/dev/null && command -v wrk >/dev/null && command -v h2load >/dev/null ||
  { echo "needs nginx, wrk and h2load: run .ci/setup" >&2; exit 1; }
cargo build --release -p gateway --quiet
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
GATEWAY="$target_dir/release/gateway"

bench_workdir

wait_for() { # URL: until it answers 200, at most 30 s
  for _ in $(seq 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return
    sleep 0.1
  done
  echo "$1 did not come up" >&2
  exit 1
}

UPSTREAM=$(free_port); NGINX=$(free_port); GW=$(free_port); ADMIN=$(free_port); GW10K=$(free_port)
NGINXLOG=$(free_port); GWLOG=$(free_port); NGINXTLS=$(free_port); GWTLS=$(free_port); GWOFF=$(free_port)
# One certificate for both proxies' TLS listeners (ECDSA P-256, as a modern site would use).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null

upstream_conf "$work/upstream" "$UPSTREAM"
nginx_conf "$work/nginx" "$NGINX_WORKERS" "upstream u { server 127.0.0.1:$UPSTREAM; keepalive 64; }
  server { listen 127.0.0.1:$NGINX; location / { proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }
  server { listen 127.0.0.1:$NGINXLOG; access_log $work/nginx/access.log;
    location / { proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }
  server { listen 127.0.0.1:$NGINXTLS ssl http2; ssl_certificate $work/tls.crt; ssl_certificate_key $work/tls.key;
    location / { proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
nginx -p "$work/upstream" -c "$work/upstream/nginx.conf" & pids+=($!); upstream_pid=$!
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" & pids+=($!); nginx_pid=$!

mkdir -p "$work/gateway"
# /p1 runs one plugin (template), /p3 three (template, correlation-id, noop); / runs none. /noop runs
# one plugin that does nothing in its one call (the floor of any plugin). /ka runs key-auth, /rl
# rate-limiting (a limit no run reaches), /ka-rl both: Kong's published cost of that pair.
cat >"$work/gateway/kong.yml" <<EOF
_format_version: "3.0"
services:
- name: upstream
  url: http://127.0.0.1:$UPSTREAM
  routes:
  - name: all
    paths: [/]
  - name: one-plugin
    paths: [/p1]
    plugins:
    - name: template
  - name: three-plugins
    paths: [/p3]
    plugins:
    - name: template
    - name: correlation-id
    - name: noop
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
certificates:
- snis: [localhost]
  cert: |
$(sed 's/^/    /' "$work/tls.crt")
  key: |
$(sed 's/^/    /' "$work/tls.key")
EOF
cat >"$work/gateway/kong.conf" <<EOF
database = off
declarative_config = $work/gateway/kong.yml
prefix = $work/gateway/servroot
proxy_listen = 127.0.0.1:$GW, 127.0.0.1:$GWTLS ssl http2
proxy_access_log = off
admin_listen = 127.0.0.1:$ADMIN
status_listen = off
log_level = warn
wasm_plugins_path = $target_dir/wasm-plugins/wasm32-wasip2/release
wasm_cache_path = $work/wasm-cache
plugins = bundled, template, noop
EOF
# Every gateway of this build shares one compile cache, filled once before they start (rather
# than each compiling everything at once on the same cores).
"$GATEWAY" precompile -c "$work/gateway/kong.conf" 2>"$work/precompile.log" ||
  { echo "gateway precompile failed:" >&2; cat "$work/precompile.log" >&2; exit 1; }
"$GATEWAY" -c "$work/gateway/kong.conf" 2>"$work/gateway/log" & pids+=($!); gateway_pid=$!
# 10,000 routes instead of 1 (each a prefix path; requests go to the last one), same upstream.
mkdir -p "$work/10k"
{
  printf '_format_version: "3.0"\nservices:\n- name: upstream\n  url: http://127.0.0.1:%s\n  routes:\n' "$UPSTREAM"
  for i in $(seq 10000); do printf '  - {name: r%s, paths: [/svc%s/]}\n' "$i" "$i"; done
} >"$work/10k/kong.yml"
sed -e "s|^declarative_config = .*|declarative_config = $work/10k/kong.yml|" -e "s|^prefix = .*|prefix = $work/10k/servroot|" \
  -e "s|^proxy_listen = .*|proxy_listen = 127.0.0.1:$GW10K|" -e "s|^admin_listen = .*|admin_listen = off|" \
  "$work/gateway/kong.conf" >"$work/10k/kong.conf"
"$GATEWAY" -c "$work/10k/kong.conf" 2>"$work/10k/log" & pids+=($!); gw10k_pid=$!
# The same one-route gateway with its access log on (Kong's default file and format).
mkdir -p "$work/gwlog"
sed -e "s|^prefix = .*|prefix = $work/gwlog/servroot|" -e "s|^proxy_listen = .*|proxy_listen = 127.0.0.1:$GWLOG|" \
  -e "s|^admin_listen = .*|admin_listen = off|" -e "s|^proxy_access_log = .*|proxy_access_log = logs/access.log|" \
  "$work/gateway/kong.conf" >"$work/gwlog/kong.conf"
"$GATEWAY" -c "$work/gwlog/kong.conf" 2>"$work/gwlog/log" & pids+=($!); gwlog_pid=$!
# The same one-route gateway with analytics off (`analytics = off`): the main one folds every
# request into its analytics, as a node does by default.
mkdir -p "$work/gwoff"
sed -e "s|^prefix = .*|prefix = $work/gwoff/servroot|" -e "s|^proxy_listen = .*|proxy_listen = 127.0.0.1:$GWOFF|" \
  -e "s|^admin_listen = .*|admin_listen = off|" "$work/gateway/kong.conf" >"$work/gwoff/kong.conf"
echo "analytics = off" >>"$work/gwoff/kong.conf"
"$GATEWAY" -c "$work/gwoff/kong.conf" 2>"$work/gwoff/log" & pids+=($!); gwoff_pid=$!
# BASELINE=path/to/an/older/gateway: the same configuration on that binary too, measured in the same
# rounds ("baseline", "base+ka+rl"), to compare two builds without the drift between runs.
if [ -n "${BASELINE:-}" ]; then
  GWB=$(free_port)
  mkdir -p "$work/baseline"
  sed -e "s|^prefix = .*|prefix = $work/baseline/servroot|" -e "s|^proxy_listen = .*|proxy_listen = 127.0.0.1:$GWB|" \
    -e "s|^admin_listen = .*|admin_listen = off|" -e "s|^wasm_cache_path = .*|wasm_cache_path = $work/baseline/wasm-cache|" \
    "$work/gateway/kong.conf" >"$work/baseline/kong.conf"
  "$BASELINE" -c "$work/baseline/kong.conf" 2>"$work/baseline/log" & pids+=($!); baseline_pid=$!
fi

wait_for "http://127.0.0.1:$UPSTREAM/"
wait_for "http://127.0.0.1:$NGINX/"
wait_for "http://127.0.0.1:$GW/"
wait_for "http://127.0.0.1:$GW/p3"
wait_for "http://127.0.0.1:$GW/rl"
wait_for "http://127.0.0.1:$GW10K/svc10000/"
wait_for "http://127.0.0.1:$NGINXLOG/"
wait_for "http://127.0.0.1:$GWLOG/"
wait_for "http://127.0.0.1:$GWOFF/"
curl -s -o /dev/null --cacert "$work/tls.crt" "https://localhost:$NGINXTLS/" || { echo "nginx TLS did not come up" >&2; exit 1; }
curl -s -o /dev/null --cacert "$work/tls.crt" "https://localhost:$GWTLS/" || { echo "gateway TLS did not come up" >&2; exit 1; }
[ -n "${BASELINE:-}" ] && wait_for "http://127.0.0.1:$GWB/rl"

# CPU ticks (user + system) of a process and its children that are still running (nginx workers).
ticks() {
  local total=0 pid
  for pid in "$1" $(pgrep -P "$1" || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}
HZ=$(getconf CLK_TCK)

results="$work/results"
: >"$results"
# TARGETS="nginx gateway ...": only these runs (default: all).
wanted() { [ -z "${TARGETS:-}" ] || grep -qw -- "$1" <<<"$TARGETS"; }
# Configuration changes during a run: 50 `POST /config` to the main gateway, spread over the run,
# each adding a route of its own to the same configuration. Counts the changes that were refused.
churn() {
  local i code failed=0 doc="$work/churn.yml"
  for i in $(seq 50); do
    { cat "$work/gateway/kong.yml"; printf 'routes:\n- {name: churn-%s, paths: [/churn-%s], service: upstream}\n' "$i" "$i"; } >"$doc"
    code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/yaml' -X POST --data-binary "@$doc" "http://127.0.0.1:$ADMIN/config")
    [ "$code" = 201 ] || [ "$code" = 200 ] || failed=$((failed + 1))
    sleep "$(awk -v s="$SECONDS_PER_RUN" 'BEGIN {print s / 55}')"
  done
  echo "$failed" >"$work/churn.failed"
}
run() { # NAME PORT PID_OF_THE_PROCESS_UNDER_TEST [PATH] [HEADER] [churn]
  wanted "$1" || return 0
  local before after out rps requests p99 errors churner url="${URL_BASE:-http://127.0.0.1}:$2${4:-/}" header=()
  [ -n "${5:-}" ] && header=(-H "$5")
  wrk -t "$WRK_THREADS" -c "$CONNECTIONS" -d 2s "${header[@]}" "$url" >/dev/null # warm-up: connections, pools, caches
  before=$(ticks "$3")
  if [ -n "${6:-}" ]; then churn & churner=$!; fi
  out=$(wrk -t "$WRK_THREADS" -c "$CONNECTIONS" -d "${SECONDS_PER_RUN}s" --latency "${header[@]}" "$url")
  after=$(ticks "$3")
  if [ -n "${6:-}" ]; then
    wait "$churner"
    cat "$work/churn.failed" >>"$work/churn.refused"
  fi
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  requests=$(awk '/ requests in / {print $1}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx or 3xx responses:/ {n += $NF} /Socket errors:/ {n += 1} END {print n + 0}' <<<"$out")
  # CPU microseconds per request of the process under test.
  cpu=$(awk -v t=$((after - before)) -v hz="$HZ" -v n="$requests" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
  echo "$1 $rps $p99 $cpu $errors" >>"$results"
  printf '%-8s %10s req/s  p99 %-8s  %6s µs CPU/req  errors %s\n' "$1" "$rps" "$p99" "$cpu" "$errors"
  # Access logs grow by the run's requests: emptied (both append, so they keep writing at the end).
  : >"$work/nginx/access.log"
  [ -d "$work/gwlog/servroot/logs" ] && : >"$work/gwlog/servroot/logs/access.log"
  return 0
}
# HTTP/2 over TLS with h2load: CONNECTIONS connections, 10 streams each. h2load reports no
# percentiles, so p99 is "-".
run_h2() { # NAME PORT PID
  wanted "$1" || return 0
  local before after out rps requests errors url="https://localhost:$2/"
  h2load -c "$CONNECTIONS" -m 10 -t "$WRK_THREADS" -D 2 "$url" >/dev/null
  before=$(ticks "$3")
  out=$(h2load -c "$CONNECTIONS" -m 10 -t "$WRK_THREADS" -D "$SECONDS_PER_RUN" "$url")
  after=$(ticks "$3")
  rps=$(awk '/^finished in/ {gsub(",", "", $4); print $4}' <<<"$out")
  # `requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout` and
  # `status codes: N 2xx, N 3xx, N 4xx, N 5xx`.
  requests=$(awk '/^requests:/ {print $8}' <<<"$out")
  errors=$(awk '/^requests:/ {print $10 + $12} /^status codes:/ {print $7 + $9}' <<<"$out" | awk '{n += $1} END {print n + 0}')
  cpu=$(awk -v t=$((after - before)) -v hz="$HZ" -v n="$requests" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
  echo "$1 $rps - $cpu $errors" >>"$results"
  printf '%-8s %10s req/s  p99 %-8s  %6s µs CPU/req  errors %s\n' "$1" "$rps" "-" "$cpu" "$errors"
}

for round in $(seq "$ROUNDS"); do
  echo "round $round/$ROUNDS"
  run direct "$UPSTREAM" "$upstream_pid"
  run nginx "$NGINX" "$nginx_pid"
  run gateway "$GW" "$gateway_pid"
  run gw-noanalytics "$GWOFF" "$gwoff_pid"
  run gw+1plugin "$GW" "$gateway_pid" /p1
  run gw+3plugins "$GW" "$gateway_pid" /p3
  run gw+noop "$GW" "$gateway_pid" /noop
  run gw+ka "$GW" "$gateway_pid" /ka "apikey: bench-key"
  run gw+rl "$GW" "$gateway_pid" /rl
  run gw+ka+rl "$GW" "$gateway_pid" /ka-rl "apikey: bench-key"
  run gw-10k "$GW10K" "$gw10k_pid" /svc10000/
  run gw-churn "$GW" "$gateway_pid" / "" churn
  run nginx-log "$NGINXLOG" "$nginx_pid"
  run gw-log "$GWLOG" "$gwlog_pid"
  URL_BASE=https://localhost run nginx-tls "$NGINXTLS" "$nginx_pid"
  URL_BASE=https://localhost run gw-tls "$GWTLS" "$gateway_pid"
  run_h2 nginx-h2 "$NGINXTLS" "$nginx_pid"
  run_h2 gw-h2 "$GWTLS" "$gateway_pid"
  if [ -n "${BASELINE:-}" ]; then
    run baseline "$GWB" "$baseline_pid"
    run base+ka+rl "$GWB" "$baseline_pid" /ka-rl "apikey: bench-key"
  fi
done

median() { # NAME COLUMN
  awk -v n="$1" -v c="$2" '$1 == n {print $c}' "$results" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

rps_direct=$(median direct 2); rps_nginx=$(median nginx 2); rps_gateway=$(median gateway 2)
cpu_direct=$(median direct 4); cpu_nginx=$(median nginx 4); cpu_gateway=$(median gateway 4)
rps_p1=$(median gw+1plugin 2); rps_p3=$(median gw+3plugins 2)
cpu_p1=$(median gw+1plugin 4); cpu_p3=$(median gw+3plugins 4)
rps_ka=$(median gw+ka 2); rps_rl=$(median gw+rl 2); rps_karl=$(median gw+ka+rl 2)
rps_noop=$(median gw+noop 2); cpu_noop=$(median gw+noop 4)
cpu_ka=$(median gw+ka 4); cpu_rl=$(median gw+rl 4); cpu_karl=$(median gw+ka+rl 4)
rps_off=$(median gw-noanalytics 2); cpu_off=$(median gw-noanalytics 4)
rps_10k=$(median gw-10k 2); cpu_10k=$(median gw-10k 4); rps_churn=$(median gw-churn 2)
rps_nginx_log=$(median nginx-log 2); rps_gw_log=$(median gw-log 2); cpu_nginx_log=$(median nginx-log 4); cpu_gw_log=$(median gw-log 4)
rps_nginx_tls=$(median nginx-tls 2); rps_gw_tls=$(median gw-tls 2); cpu_nginx_tls=$(median nginx-tls 4); cpu_gw_tls=$(median gw-tls 4)
rps_nginx_h2=$(median nginx-h2 2); rps_gw_h2=$(median gw-h2 2); cpu_nginx_h2=$(median nginx-h2 4); cpu_gw_h2=$(median gw-h2 4)
churn_errors=$(awk '$1 == "gw-churn" {n += $5} END {print n + 0}' "$results")
churn_refused=$(awk '{n += $1} END {print n + 0}' "$work/churn.refused" 2>/dev/null || echo "?")
minus() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", a - b}'; }
# Per round (results are in round order): NAME's COLUMN ÷ (or −) BASE's, one line per round.
# The k-th run of NAME against the k-th of BASE.
paired() { awk -v n="$1" -v b="$2" -v c="$3" '$1 == b {base[++nb] = $c} $1 == n {v[++nn] = $c} END {for (k = 1; k <= nn; k++) printf "%.2f\n", v[k] / base[k]}' "$results"; }
paired_minus() { awk -v n="$1" -v b="$2" -v c="$3" '$1 == b {base[++nb] = $c} $1 == n {v[++nn] = $c} END {for (k = 1; k <= nn; k++) printf "%.1f\n", v[k] - base[k]}' "$results"; }
errors=$(awk '{n += $5} END {print n + 0}' "$results")

if [ -n "${BASELINE:-}" ]; then
  echo "this build ÷ BASELINE, per round: $(paired gateway baseline 2 | xargs) (median $(paired gateway baseline 2 | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'))"
  echo "with key-auth + rate-limiting, per round: $(paired gw+ka+rl base+ka+rl 2 | xargs) (median $(paired gw+ka+rl base+ka+rl 2 | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'))"
  echo "CPU µs per request, median: this build $cpu_gateway, BASELINE $(median baseline 4); with the pair $cpu_karl, $(median base+ka+rl 4)"
fi
if [ -n "${TARGETS:-}" ] || [ -n "${BASELINE:-}" ]; then
  echo "(TARGETS or BASELINE set: docs/benchmarks.md left as it is)"
  exit 0
fi
section="$work/section.md"
{
  echo "<!-- bench/proxy.sh: generated, do not edit by hand -->"
  echo "## Proxy throughput"
  echo
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)),"
  echo "$(nginx -v 2>&1 | cut -d' ' -f3), wrk 4.1 with $WRK_THREADS thread(s) and $CONNECTIONS keep-alive connections, ${SECONDS_PER_RUN} s per"
  echo "run after a 2 s warm-up, $ROUNDS interleaved rounds, medians. Upstream: nginx \`return 200\` (1 worker);"
  echo "reference proxy: nginx \`proxy_pass\` with upstream keep-alive ($NGINX_WORKERS workers); gateway: release build,"
  echo "DB-less, one route, router in WebAssembly. Everything, wrk included, shares the same cores."
  echo "Command: \`bench/proxy.sh $SECONDS_PER_RUN $ROUNDS\`."
  echo
  echo "| target | requests/s | CPU µs per request (the proxy's) |"
  echo "|---|---:|---:|"
  echo "| upstream directly | $rps_direct | $cpu_direct (the upstream's) |"
  echo "| nginx proxy_pass | $rps_nginx | $cpu_nginx |"
  echo "| gateway | $rps_gateway | $cpu_gateway |"
  echo "| gateway, analytics off (\`analytics = off\`) | $rps_off | $cpu_off |"
  echo "| gateway, 1 plugin (template) | $rps_p1 | $cpu_p1 |"
  echo "| gateway, 3 plugins (template, correlation-id, noop) | $rps_p3 | $cpu_p3 |"
  echo "| gateway, 1 plugin that does nothing (noop) | $rps_noop | $cpu_noop |"
  echo "| gateway, key-auth | $rps_ka | $cpu_ka |"
  echo "| gateway, rate-limiting (local) | $rps_rl | $cpu_rl |"
  echo "| gateway, key-auth + rate-limiting | $rps_karl | $cpu_karl |"
  echo "| gateway, 10,000 routes (the last one asked) | $rps_10k | $cpu_10k |"
  echo "| gateway, one route, 50 configuration changes during the run | $rps_churn | $(median gw-churn 4) |"
  echo "| nginx proxy_pass, access log on (\`combined\` to a file) | $rps_nginx_log | $cpu_nginx_log |"
  echo "| gateway, access log on (\`kong_log_format\` to a file) | $rps_gw_log | $cpu_gw_log |"
  echo "| nginx proxy_pass, HTTPS (HTTP/1.1, wrk) | $rps_nginx_tls | $cpu_nginx_tls |"
  echo "| gateway, HTTPS (HTTP/1.1, wrk) | $rps_gw_tls | $cpu_gw_tls |"
  echo "| nginx proxy_pass, HTTP/2 over TLS (h2load, 10 streams per connection) | $rps_nginx_h2 | $cpu_nginx_h2 |"
  echo "| gateway, HTTP/2 over TLS (h2load, 10 streams per connection) | $rps_gw_h2 | $cpu_gw_h2 |"
  echo
  echo "- gateway ÷ nginx throughput: **$(ratio "$rps_gateway" "$rps_nginx")** (issue 16's target ≥ 1.0)"
  echo "- gateway ÷ nginx CPU per request: **$(ratio "$cpu_gateway" "$cpu_nginx")** (lower is better)"
  echo "- gateway ÷ direct throughput: $(ratio "$rps_gateway" "$rps_direct")"
  echo "- access logs on in both: gateway ÷ nginx throughput **$(ratio "$rps_gw_log" "$rps_nginx_log")**, CPU per request $(ratio "$cpu_gw_log" "$cpu_nginx_log"); the log costs nginx $(minus "$cpu_nginx_log" "$cpu_nginx") µs per request (a \`write\` per line) and the gateway $(minus "$cpu_gw_log" "$cpu_gateway") µs (lines buffered per worker, written by a thread of their own)."
  echo "- HTTPS, same certificate (ECDSA P-256, TLS 1.3): gateway ÷ nginx throughput **$(ratio "$rps_gw_tls" "$rps_nginx_tls")** over HTTP/1.1, **$(ratio "$rps_gw_h2" "$rps_nginx_h2")** over HTTP/2 (issue 16's target ≥ 1.0); CPU per request $(ratio "$cpu_gw_tls" "$cpu_nginx_tls") and $(ratio "$cpu_gw_h2" "$cpu_nginx_h2")."
  echo "- plugins: 1 plugin costs $(awk -v a="$cpu_p1" -v b="$cpu_gateway" 'BEGIN {printf "%.1f", a - b}') µs CPU per request, 3 plugins $(awk -v a="$cpu_p3" -v b="$cpu_gateway" 'BEGIN {printf "%.1f", a - b}') µs ($(awk -v a="$cpu_p3" -v b="$cpu_gateway" 'BEGIN {printf "%.1f", (a - b) / 3}') µs per plugin; target ≤ 5); throughput with 1 and 3 plugins ÷ without: $(ratio "$rps_p1" "$rps_gateway"), $(ratio "$rps_p3" "$rps_gateway"). The router call alone: the \"Router call\" section; one plugin call alone: \"Plugin call\"."
  echo "- Kong's everyday pair: key-auth costs $(minus "$cpu_ka" "$cpu_gateway") µs CPU per request, rate-limiting $(minus "$cpu_rl" "$cpu_gateway") µs, both $(minus "$cpu_karl" "$cpu_gateway") µs (target ≤ 5 per plugin); throughput with both ÷ without plugins: **$(ratio "$rps_karl" "$rps_gateway")** (target ≥ 0.80: Kong loses 24–26 % to this pair), ÷ nginx: $(ratio "$rps_karl" "$rps_nginx"); key-auth alone $(ratio "$rps_ka" "$rps_gateway"), rate-limiting alone $(ratio "$rps_rl" "$rps_gateway")."
  echo "- the same pair round by round (each round's gateway runs follow each other within seconds, so a ratio per round cancels the drift between rounds; the runs of one round still differ by how connections land on the worker threads, see issue 16): throughput with both ÷ without, per round: $(paired gw+ka+rl gateway 2 | xargs), median **$(paired gw+ka+rl gateway 2 | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')**; CPU per request, both − without, per round: $(paired_minus gw+ka+rl gateway 4 | xargs) µs."
  echo "- the floor of a plugin: one call that does nothing costs $(minus "$cpu_noop" "$cpu_gateway") µs CPU per request (per round: $(paired_minus gw+noop gateway 4 | xargs) µs), throughput $(ratio "$rps_noop" "$rps_gateway")× the route without plugins; whatever a plugin does costs this much more than nothing."
  echo "- analytics (on by default: every request recorded, folded once a second by the analytics component, kept in the node's store): throughput with ÷ without, per round: $(paired gateway gw-noanalytics 2 | xargs), median **$(paired gateway gw-noanalytics 2 | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')** (issue 14's target ≥ 0.95); CPU per request, with − without, per round: $(paired_minus gateway gw-noanalytics 4 | xargs) µs (median of the runs: $(minus "$cpu_gateway" "$cpu_off") µs)."
  echo "- 10,000 routes instead of 1: throughput $(ratio "$rps_10k" "$rps_gateway")× (target ≥ 0.95), CPU per request $(minus "$cpu_10k" "$cpu_gateway") µs against one route. Routing a request costs the same at any table size once its decision is cached (Kong's router cache; see \"Router call\" for the component alone)."
  echo "- configuration churn: 50 \`POST /config\` spread over each gw-churn run (each adds a route): throughput $(ratio "$rps_churn" "$rps_gateway")× the run without changes, failed requests during those runs: **$churn_errors** (target 0), changes refused: $churn_refused."
  echo "- failed requests (non-2xx or socket errors) over all runs: $errors"
  echo
  echo "Every run (name, requests/s, p99 latency, CPU µs/request, errors):"
  echo
  echo '```'
  cat "$results"
  echo '```'
  echo "<!-- /bench/proxy.sh -->"
} >"$section"

# Replace our section, keeping whatever else the document holds.
write_section proxy "$section"
