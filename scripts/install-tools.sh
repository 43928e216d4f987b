#!/usr/bin/env bash
# Tools the lint step needs beyond the Rust toolchain, at pinned versions (run by .ci/run).
# cargo-modules: the import-circle check of scripts/check-modules.sh. 0.27.0 is the last release
# that builds with Rust 1.95 (0.28 needs 1.98). Building it takes a while once (it is
# rust-analyzer based); later runs find it on PATH.
set -euo pipefail
want=0.27.0
have=$(cargo-modules --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  echo "installing cargo-modules $want (once)" >&2
  cargo install cargo-modules --locked --version "$want" --quiet
fi
