#!/usr/bin/env bash
# The router call, through the WebAssembly component and natively, at 1, 100 and 10,000 routes
# (criterion, gateway/benches/router.rs). Replaces the "Router call" section of docs/benchmarks.md.
#
#   bench/router.sh [criterion options]      (e.g. --measurement-time 10)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

cargo bench -p gateway --bench router -- "$@"
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
median_ns() { # KIND ROUTES [GROUP]
  grep -o '"median":{"confidence_interval":{[^}]*},"point_estimate":[0-9.e+-]*' \
    "$target_dir/criterion/${3:-route}/$1/$2/new/estimates.json" | sed 's/.*://'
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
section="$work/section.md"
{
  echo "<!-- bench/router.sh: generated, do not edit by hand -->"
  echo "## Router call"
  echo
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)):"
  echo "one route decision for a request with a host, a path and one header, through the bundled router"
  echo "component (one long-lived instance, epoch deadline set per call) and through \`router-core\`"
  echo "natively in the same run. Tables: per route a host and a prefix path; one route in ten has a"
  echo "method list, a header rule or a regex path with a capture. The request matches the last plain route."
  echo "Command: \`bench/router.sh${*:+ $*}\`; criterion medians."
  echo
  echo "| routes | component | native | component ÷ native |"
  echo "|---:|---:|---:|---:|"
  for n in 1 100 10000; do
    c=$(median_ns component "$n"); r=$(median_ns native "$n")
    awk -v n="$n" -v c="$c" -v r="$r" 'BEGIN {printf "| %d | %.2f µs | %.3f µs | %.1f |\n", n, c / 1000, r / 1000, c / r}'
  done
  echo
  c=$(median_ns component 10000)
  echo "Target: ≤ 2 µs at 10,000 routes; measured $(awk -v c="$c" 'BEGIN {printf "%.2f", c / 1000}') µs."
  echo
  lc=$(median_ns component 10000 load); ln=$(median_ns native 10000 load)
  echo "Loading the 10,000-route table (what each configuration change costs per router instance):"
  awk -v c="$lc" -v n="$ln" 'BEGIN {printf "%.0f ms in the component, %.0f ms natively (%.1f×).\n", c / 1e6, n / 1e6, c / n}'
  echo "<!-- /bench/router.sh -->"
} >"$section"

write_section router "$section"
