#!/usr/bin/env bash
# One plugin call (`access`) through the plugin host, for the no-op plugin (the host's floor), the
# template plugin, correlation-id, key-auth and rate-limiting (criterion, gateway/benches/plugins.rs). Replaces the "Plugin
# call" section of docs/benchmarks.md. The whole-request cost of plugins is in bench/proxy.sh.
#
#   bench/plugins.sh [criterion options]      (e.g. --measurement-time 10)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

cargo bench -p gateway --bench plugins -- "$@"
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
median_ns() { # PLUGIN
  grep -o '"median":{"confidence_interval":{[^}]*},"point_estimate":[0-9.e+-]*' \
    "$target_dir/criterion/plugin-access/$1/new/estimates.json" | sed 's/.*://'
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
  echo "key-auth: a key found in a header, its credential and consumer looked up in the configuration's"
  echo 'index, five upstream headers set; rate-limiting (`hour`, by ip): its counter counted, its headers'
  echo 'kept in the request context for `header_filter`.'
  echo
  echo "Target (issues 12 and 13): ≤ 5 µs of CPU per plugin per request, the whole request considered"
  echo "(bench/proxy.sh's plugin rows)."
  echo "<!-- /bench/plugins.sh -->"
} >"$section"

write_section plugins "$section"
