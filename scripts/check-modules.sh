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

# cargo-modules (a rust-analyzer based tool) walks the crate's `use` edges between modules;
# --acyclic makes it fail, naming the cycle, when there is one. Its version is pinned in
# scripts/install-tools.sh, which .ci/run runs.
if ! command -v cargo-modules >/dev/null; then
  echo "cargo-modules is missing: run bash scripts/install-tools.sh" >&2
  exit 1
fi
# --no-externs/--no-sysroot/--no-fns/--no-types/--no-traits: the graph of modules and the
# `use` edges between them, which is what a circle between files means.
if ! out=$(cargo modules dependencies --lib --acyclic --no-externs --no-sysroot --no-fns \
  --no-types --no-traits --no-owns 2>&1); then
  echo "import circle between modules (cargo modules dependencies --acyclic):" >&2
  echo "$out" | grep -v '^\s*$' | tail -n 40 >&2
  exit 1
fi
echo "modules: only src/binding/ names napi; no import circles"
