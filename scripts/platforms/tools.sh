#!/usr/bin/env bash
# Installs the pinned cross-build tools into a cache venv (nothing system-wide but rustup targets):
# zig (PyPI `ziglang`) and cargo-zigbuild, which `napi build --target <T> -x` drives. Idempotent;
# prints the venv's bin directory, to be put first on PATH.
# Env: HYVVE_TOOLS_DIR (default ~/.cache/hyvve-event-publisher/tools).
set -euo pipefail

ZIGLANG_VERSION=0.17.1
CARGO_ZIGBUILD_VERSION=0.24.1
TOOLS_DIR="${HYVVE_TOOLS_DIR:-$HOME/.cache/hyvve-event-publisher/tools}"
VENV="$TOOLS_DIR/venv-zig-$ZIGLANG_VERSION-czb-$CARGO_ZIGBUILD_VERSION"

if [ ! -x "$VENV/bin/cargo-zigbuild" ] || ! "$VENV/bin/python" -c 'import ziglang' 2>/dev/null; then
  mkdir -p "$TOOLS_DIR"
  rm -rf "$VENV"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$CARGO_ZIGBUILD_VERSION" >&2
fi

# The four Linux targets; rustup adds only what is missing.
installed="$(rustup target list --installed)"
for t in x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
  grep -qx "$t" <<<"$installed" || rustup target add "$t" >&2
done
echo "$VENV/bin"
