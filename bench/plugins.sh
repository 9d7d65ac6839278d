#!/usr/bin/env bash
# One plugin call (`access`) through the plugin host, for the no-op plugin (the host's floor), the
# template plugin, correlation-id, key-auth and rate-limiting, and every plugin phase of one request
# through a configuration's runner (criterion, gateway/benches/plugins.rs). Replaces the "Plugin
# call" section of docs/benchmarks.md. The cost through the network is in bench/proxy.sh.
#
#   bench/plugins.sh [criterion options]      (e.g. --measurement-time 10)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

cargo bench -p gateway --bench plugins -- "$@"
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
median_ns() { # PLUGIN [GROUP]
  grep -o '"median":{"confidence_interval":{[^}]*},"point_estimate":[0-9.e+-]*' \
    "$target_dir/criterion/${2:-plugin-access}/$1/new/estimates.json" | sed 's/.*://'
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
section="$work/section.md"
{
  echo "<!-- bench/plugins.sh: generated, do not edit by hand -->"
  echo "## Plugin call"
  echo
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)):"
  echo "one \`access\` call on a configured instance, as the proxy makes it: the request (method, path, three"
  echo "headers) handed over as a resource, the call under its CPU budget, the request taken back."
  echo "Command: \`bench/plugins.sh${*:+ $*}\`; criterion medians."
  echo
  echo "| plugin | one access call |"
  echo "|---|---:|"
  for p in noop template correlation-id key-auth rate-limiting; do
    awk -v p="$p" -v c="$(median_ns "$p")" 'BEGIN {printf "| %s | %.2f µs |\n", p, c / 1000}'
  done
  echo
  echo "key-auth: a key found in a header, its credential looked up in the configuration's index, the"
  echo 'consumer and its five upstream headers set in one `authenticate` call; rate-limiting (`hour`, by'
  echo 'ip): its counter counted, its headers set ahead for the response (`set-response-headers`, no'
  echo '`header_filter` call).'
  echo
  echo "Every plugin phase of one request, as the pipeline runs them on a configuration's runner"
  echo "(\`access\`, then \`header_filter\`, \`body_filter\` and \`log\` when wanted), the request and response"
  echo "heads made in each iteration; \"none\" is a route without plugins (the heads alone):"
  echo
  echo "| route's plugins | hot: one request | per plugin, beyond none | cold: one request | per plugin, beyond none |"
  echo "|---|---:|---:|---:|---:|"
  none=$(median_ns none plugin-request)
  none_cold=$(median_ns none plugin-request-cold)
  for row in "none:none:0" "noop:no-op:1" "ka:key-auth:1" "rl:rate-limiting:1" "ka-rl:key-auth + rate-limiting:2"; do
    IFS=: read -r id label n <<<"$row"
    awk -v l="$label" -v c="$(median_ns "$id" plugin-request)" -v z="$none" -v n="$n" \
      -v cc="$(median_ns "$id" plugin-request-cold)" -v zc="$none_cold" \
      'function per(x, base) { return n > 0 ? sprintf("%.2f µs", (x - base) / n / 1000) : "—" }
       BEGIN {printf "| %s | %.2f µs | %s | %.2f µs | %s |\n", l, c / 1000, per(c, z), cc / 1000, per(cc, zc)}'
  done
  echo
  echo "Hot: request after request, everything in the caches. Cold: the CPU caches evicted (8 MiB"
  echo "written) before each request, untimed, as a request through the network finds them after the"
  echo "kernel's and HTTP's work: what a plugin costs there is mostly its instance, code and data coming"
  echo "back into the caches."
  echo
  echo "Target (issues 12 and 13): ≤ 5 µs of CPU per plugin per request, the whole request considered"
  echo "(the table above, and bench/proxy.sh's plugin rows for the request through the network)."
  echo "<!-- /bench/plugins.sh -->"
} >"$section"

write_section plugins "$section"
