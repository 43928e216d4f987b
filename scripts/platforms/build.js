#!/usr/bin/env node
'use strict';
// Builds the native addon (release) and puts each binary into its platform package folder.
//   node scripts/platforms/build.js            this machine's target; on Linux the published way
//                                              (zig, glibc 2.17 floor), elsewhere a plain build
//   node scripts/platforms/build.js --linux    the four Linux targets (npm run build:linux)
//   node scripts/platforms/build.js --native   a plain `napi build` (links against this system's glibc)
//   node scripts/platforms/build.js linux-arm64-musl ...   the named targets
// The Linux builds run `napi build --target <triple> -x`: cargo-zigbuild and zig, pinned and
// installed into a cache venv by scripts/platforms/tools.sh. Each prints its time and size.
// Env: CARGO_BUILD_JOBS is passed on (the CI machine has 2 cores).

const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..', '..');
const LINUX = {
  // glibc targets name the oldest glibc to link against (zig's `.2.17` suffix).
  'linux-x64-gnu': 'x86_64-unknown-linux-gnu.2.17',
  'linux-arm64-gnu': 'aarch64-unknown-linux-gnu.2.17',
  'linux-x64-musl': 'x86_64-unknown-linux-musl',
  'linux-arm64-musl': 'aarch64-unknown-linux-musl',
};
const NAPI = path.join(ROOT, 'node_modules', '.bin', 'napi');
// --no-js: binding.js is the package's own loader (lib/native-loader.js), not napi's generated one.
const COMMON = ['build', '--platform', '--release', '--no-js', '--dts', 'binding.d.ts'];

function run(cmd, args, env = process.env) {
  execFileSync(cmd, args, { cwd: ROOT, stdio: 'inherit', env });
}

/** The venv with zig and cargo-zigbuild, first on PATH. */
function crossEnv() {
  const bin = execFileSync('bash', [path.join(__dirname, 'tools.sh')], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  return { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH}` };
}

/** Copies the built file from the repo root into npm/<platform>/ (the root copy stays: a local build loads first). */
function place(platform, startedAt) {
  const file = `event-publisher.${platform}.node`;
  const built = path.join(ROOT, file);
  if (!fs.existsSync(built) || fs.statSync(built).mtimeMs < startedAt - 1000) throw new Error(`napi build did not write ${file}`);
  fs.copyFileSync(built, path.join(ROOT, 'npm', platform, file));
  const secs = (Date.now() - startedAt) / 1000;
  console.log(`built ${file} -> npm/${platform}/ in ${Math.floor(secs / 60)}:${String(Math.round(secs % 60)).padStart(2, '0')}, ${(fs.statSync(built).size / 1e6).toFixed(1)} MB`);
}

function hostPlatform() {
  const { runtimeFacts, targetOf } = require('../../lib/native-loader.js');
  return targetOf(runtimeFacts());
}

const args = process.argv.slice(2);
let targets = args.filter((a) => !a.startsWith('--'));
const native = args.includes('--native');
if (args.includes('--linux')) targets = Object.keys(LINUX);
if (!targets.length && !native) {
  const host = hostPlatform();
  if (LINUX[host]) targets = [host];
}
if (!targets.length) {
  // macOS, Windows, or asked for: the plain build for this machine.
  const startedAt = Date.now();
  run(NAPI, COMMON);
  place(hostPlatform(), startedAt);
} else {
  for (const t of targets) if (!LINUX[t]) throw new Error(`unknown target ${t}; known: ${Object.keys(LINUX).join(', ')}`);
  const env = crossEnv();
  for (const t of targets) {
    const startedAt = Date.now();
    run(NAPI, [...COMMON, '--target', LINUX[t], '--cross-compile'], env);
    place(t, startedAt);
  }
}
