# Sourced by the bench scripts.

# A TCP port on 127.0.0.1 nothing listens on now, below the kernel's ephemeral range (an outgoing
# connection's local port there makes a later bind fail even though nothing listens).
free_port() {
  local port low
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  while :; do
    port=$((10000 + RANDOM % (low - 10000)))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
  done
}

# write_section NAME SECTION_FILE replaces the section between `<!-- bench/NAME` and
# `<!-- /bench/NAME` in docs/benchmarks.md with SECTION_FILE (which carries both markers), or
# appends it, keeping whatever else the document holds.
write_section() {
  local name=$1 section=$2 doc=docs/benchmarks.md tmp
  tmp=$(mktemp)
  if [ -f "$doc" ] && grep -q "<!-- bench/$name" "$doc"; then
    awk -v section="$section" -v open="<!-- bench/$name" -v closing="<!-- /bench/$name" '
      index($0, open) == 1 { while ((getline line < section) > 0) print line; skip = 1; next }
      index($0, closing) == 1 { skip = 0; next }
      !skip { print }' "$doc" >"$tmp" && mv "$tmp" "$doc"
  else
    [ -f "$doc" ] || printf '# Benchmarks\n\nNumbers from this repository'"'"'s bench scripts and criterion benches, always as ratios against a\nreference measured in the same run. Rerun the command under each section to refresh it.\n' >"$doc"
    printf '\n' >>"$doc"
    cat "$section" >>"$doc"
    rm -f "$tmp"
  fi
  echo "wrote $doc"
}

# The gateway's messages on stderr, where the scripts redirect them (Kong's defaults are files
# under the prefix).
export KONG_PROXY_ERROR_LOG=${KONG_PROXY_ERROR_LOG:-/dev/stderr}
export KONG_ADMIN_ERROR_LOG=${KONG_ADMIN_ERROR_LOG:-/dev/stderr}
export KONG_STATUS_ERROR_LOG=${KONG_STATUS_ERROR_LOG:-/dev/stderr}

# bench_workdir: a temporary directory in $work, and an EXIT trap that stops every process whose
# pid was added to `pids` (by its own pid, then waited for) and removes the directory.
bench_workdir() {
  work=$(mktemp -d)
  pids=()
  trap bench_cleanup EXIT
}
bench_cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}

# nginx_conf DIR WORKERS HTTP_BLOCK writes DIR/nginx.conf: nginx in the foreground with WORKERS
# workers, no access log, keep-alive without limit, its files under DIR, and HTTP_BLOCK (servers,
# upstreams) inside `http`.
nginx_conf() {
  mkdir -p "$1"
  cat >"$1/nginx.conf" <<EOF
worker_processes $2;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $1; proxy_temp_path $1; fastcgi_temp_path $1; uwsgi_temp_path $1; scgi_temp_path $1;
  $3
}
EOF
}

# upstream_conf DIR PORT writes DIR/nginx.conf: the upstream the proxy benches load, nginx with one
# worker answering `200 ok` on 127.0.0.1:PORT over keep-alive, its files under DIR.
upstream_conf() {
  nginx_conf "$1" 1 "server { listen 127.0.0.1:$2; location / { return 200 'ok'; } }"
}
