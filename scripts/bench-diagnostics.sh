#!/usr/bin/env bash
# Benchmark of rendering many diagnostics: `bake check` on web.kdl with N unknown nodes pasted in (one error
# each), for the terminal (first 100 shown, the rest counted) and for `--format json` (all of them), to show that
# time grows linearly with N. Usage: scripts/bench-diagnostics.sh [path/to/bake] [sizes...]
# Prints the wall time of one run per size and format in seconds (process start included).
set -euo pipefail
cd "$(dirname "$0")/.."
BAKE=${1:-target/release/bake}
shift || true
SIZES=("${@:-1000 4000 16000 64000}")
[ -x "$BAKE" ] || { echo "build first: cargo build --release (or pass a binary)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# shellcheck disable=SC2068 # the sizes are words on purpose
for n in ${SIZES[@]}; do
  spec="$work/spec-$n.kdl"
  cp specs/web.kdl "$spec"
  awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) printf "pasted-node-%d size=%d\n", i, i }' >>"$spec"
  for format in human json; do
    start=$(date +%s.%N)
    status=0
    "$BAKE" check --format "$format" "$spec" >"$work/out" 2>&1 || status=$?
    end=$(date +%s.%N)
    [ "$status" = 1 ] || { echo "unexpected exit $status for $n errors:" >&2; head -20 "$work/out" >&2; exit 1; }
    printf '%6d errors  %-5s  %6.2f s  %8d bytes\n' "$n" "$format" "$(echo "$end - $start" | bc)" "$(wc -c <"$work/out")"
  done
done
