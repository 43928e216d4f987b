#!/usr/bin/env node
'use strict';
// Checks a built Linux .node file against what its platform package promises, with binutils'
// readelf: the ELF machine; the libraries it needs (gnu: glibc's own only, no libgcc_s; musl:
// only libc.so); for gnu, the highest GLIBC symbol version it needs (<= the 2.17 floor); and
// that it exports exactly one symbol, napi_register_module_v1.
// Usage: node scripts/platforms/check-binary.js [npm/<platform>/<file>.node ...]
//   (no argument: every npm/linux-*/ binary present). Exits 1 on a failed check.

const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..', '..');
const GLIBC_FLOOR = '2.17';
const MACHINE = { x64: 'Advanced Micro Devices X86-64', arm64: 'AArch64' };
// glibc's own libraries; anything else (libgcc_s, libstdc++) would not be on every system.
const GLIBC_LIBS = /^(libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|ld-linux-(x86-64|aarch64)\.so\.[12])$/;

const readelf = (args, file) => execFileSync('readelf', [...args, '-W', file], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });

const versionCmp = (a, b) => {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] || 0) !== (y[i] || 0)) return (x[i] || 0) - (y[i] || 0);
  return 0;
};

/** The facts of one ELF file: machine, NEEDED, highest GLIBC version, exported symbols. */
function inspect(file) {
  const machine = /Machine:\s+(.+)/.exec(readelf(['-h'], file))[1].trim();
  const needed = [...readelf(['-d'], file).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
  const glibc = [...new Set([...readelf(['-V'], file).matchAll(/Name: GLIBC_([\d.]+)/g)].map((m) => m[1]))].sort(versionCmp);
  // Defined (Ndx not UND), global or weak, default or protected visibility: what dlsym can find.
  const exported = readelf(['--dyn-syms'], file)
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((c) => c.length >= 8 && /^\d+:$/.test(c[0]) && /^(GLOBAL|WEAK)$/.test(c[4]) && /^(DEFAULT|PROTECTED)$/.test(c[5]) && c[6] !== 'UND')
    .map((c) => c[7].replace(/@.*/, ''));
  return { machine, needed, glibcMax: glibc[glibc.length - 1] || null, exported, size: fs.statSync(file).size };
}

/** Problems of `file` built for `platform` (e.g. linux-arm64-musl); [] when it is as promised. */
function checkBinary(file, platform) {
  const [os, arch, libc] = platform.split('-');
  if (os !== 'linux') return [`${platform}: only Linux binaries can be checked here`];
  const f = inspect(file);
  const problems = [];
  if (f.machine !== MACHINE[arch]) problems.push(`ELF machine is ${f.machine}, expected ${MACHINE[arch]}`);
  if (libc === 'gnu') {
    const other = f.needed.filter((n) => !GLIBC_LIBS.test(n));
    if (other.length) problems.push(`needs libraries beyond glibc's: ${other.join(', ')}`);
    if (!f.glibcMax) problems.push('needs no GLIBC symbol version: not a glibc build');
    else if (versionCmp(f.glibcMax, GLIBC_FLOOR) > 0) problems.push(`needs GLIBC_${f.glibcMax}, above the ${GLIBC_FLOOR} floor`);
  } else if (libc === 'musl') {
    if (f.needed.join(',') !== 'libc.so') problems.push(`NEEDED is [${f.needed.join(', ')}], expected only libc.so`);
    if (f.glibcMax) problems.push(`needs GLIBC_${f.glibcMax}: a glibc build under a musl name`);
  }
  if (f.exported.join(',') !== 'napi_register_module_v1') {
    problems.push(`exports ${f.exported.length} symbols (${f.exported.slice(0, 5).join(', ')}${f.exported.length > 5 ? ', ...' : ''}), expected only napi_register_module_v1`);
  }
  return problems;
}

/** The platform of an `event-publisher.<platform>.node` path. */
const platformOf = (file) => /event-publisher\.([\w-]+)\.node$/.exec(file)[1];

module.exports = { inspect, checkBinary, platformOf, GLIBC_FLOOR };

if (require.main === module) {
  let files = process.argv.slice(2);
  if (!files.length) {
    files = fs.readdirSync(path.join(ROOT, 'npm'))
      .filter((d) => d.startsWith('linux-'))
      .map((d) => path.join(ROOT, 'npm', d, `event-publisher.${d}.node`))
      .filter((f) => fs.existsSync(f));
    if (!files.length) {
      console.error('no npm/linux-*/ binary to check: run `npm run build:linux` first');
      process.exit(1);
    }
  }
  let failed = 0;
  for (const file of files) {
    const platform = platformOf(file);
    const f = inspect(file);
    const problems = checkBinary(file, platform);
    const facts = `${(f.size / 1e6).toFixed(1)} MB, ${f.machine}, NEEDED [${f.needed.join(', ')}]${f.glibcMax ? `, GLIBC_${f.glibcMax} highest` : ''}, exports [${f.exported.join(', ')}]`;
    console.log(`${problems.length ? 'FAIL' : 'ok  '} ${platform}: ${facts}`);
    for (const p of problems) console.log(`     ${p}`);
    if (problems.length) failed++;
  }
  process.exit(failed ? 1 : 0);
}
