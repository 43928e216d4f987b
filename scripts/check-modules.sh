#!/usr/bin/env bash
# Architecture checks run by `npm run lint` (docs/architecture.md, "The rules the tree keeps"):
# 1. only src/binding/ names napi; 2. no import circle between the crate's modules.
set -euo pipefail
cd "$(dirname "$0")/.."

outside=$(grep -rlE 'napi::|napi_derive|#\[napi' src --include='*.rs' | grep -v '^src/binding/' || true)
if [ -n "$outside" ]; then
  echo "napi is named outside src/binding/ (only the binding may know JavaScript):" >&2
  echo "$outside" >&2
  exit 1
fi

# cargo-modules (rust-analyzer based) lists the crate's items and the `use` edges between them.
# Its version is pinned in scripts/install-tools.sh, which .ci/run runs.
if ! command -v cargo-modules >/dev/null; then
  echo "cargo-modules is missing: run bash scripts/install-tools.sh" >&2
  exit 1
fi
# The crate's `use` edges (DOT), lifted to files and folders and checked for circles by
# scripts/module-cycles.js (cargo-modules' own --acyclic works on items, where a type and its own
# methods already count as a circle).
graph=$(cargo modules dependencies --lib --no-externs --no-sysroot 2>/dev/null) || {
  echo "cargo modules dependencies failed:" >&2
  cargo modules dependencies --lib --no-externs --no-sysroot >/dev/null
  exit 1
}
node scripts/module-cycles.js <<<"$graph"
echo "modules: only src/binding/ names napi"
