#!/usr/bin/env bash
# Seeds every fuzz target's corpus with the example specs and the broken-spec fixtures (copies into
# fuzz/corpus/<target>/, which git ignores; the originals stay where they are).
set -euo pipefail
cd "$(dirname "$0")/.."
for target in parse_check compile fmt lsp_incremental; do
  mkdir -p "fuzz/corpus/$target"
  cp specs/*.kdl tests/specs/err/*.kdl tests/specs/crash/*.kdl "fuzz/corpus/$target/"
done
echo "seeded fuzz/corpus/<target>/ for parse_check, compile, fmt and lsp_incremental"
