'use strict';
// Finds and loads the native addon for the running Node, or throws an error that says what was
// seen (platform, architecture, libc), what was looked for, why it failed and how to fix it.
// Replaces the loader `napi build` generates, which decides musl by reading the host's
// /usr/bin/ldd (wrong under a musl Node on a glibc host) and blames npm's optional-dependencies
// bug for every failure. sharp's install errors are the model.

const fs = require('node:fs');
const path = require('node:path');

const SCOPE = '@hyvve/event-publisher';
const BINARY = 'event-publisher';
/** The platform packages published beside the root package (package.json `napi.targets`). */
const TARGETS = [
  'linux-x64-gnu', 'linux-arm64-gnu', 'linux-x64-musl', 'linux-arm64-musl',
  'darwin-x64', 'darwin-arm64', 'win32-x64-msvc', 'win32-arm64-msvc',
];
/** The oldest glibc the published linux-*-gnu binaries load on (built with zig against 2.17). */
const GLIBC_FLOOR = '2.17';
const DOCS = 'the "Install errors" section of docs/packaging.md in the @hyvve/event-publisher repository';

/**
 * The running runtime's libc, asked of the runtime itself: `glibcVersionRuntime` is in Node's
 * report header exactly when the process runs on glibc. Returns { libc, glibcVersion }.
 */
function runtimeLibc() {
  if (process.platform !== 'linux') return { libc: null, glibcVersion: null };
  let header = null;
  if (process.report && typeof process.report.getReport === 'function') {
    // The report would otherwise list the process's sockets (slow with many open).
    const exclude = process.report.excludeNetwork;
    process.report.excludeNetwork = true;
    try {
      header = process.report.getReport().header;
    } finally {
      process.report.excludeNetwork = exclude;
    }
  }
  if (header && header.glibcVersionRuntime) return { libc: 'glibc', glibcVersion: header.glibcVersionRuntime };
  return { libc: header ? 'musl' : null, glibcVersion: null };
}

/** What this process runs on: { platform, arch, libc, glibcVersion, node }. */
function runtimeFacts() {
  return { platform: process.platform, arch: process.arch, ...runtimeLibc(), node: process.version };
}

/** The platform package suffix for `facts` (e.g. linux-x64-musl), or null when none is published. */
function targetOf(facts) {
  let t;
  if (facts.platform === 'linux') t = `linux-${facts.arch}-${facts.libc === 'musl' ? 'musl' : 'gnu'}`;
  else if (facts.platform === 'win32') t = `win32-${facts.arch}-msvc`;
  else t = `${facts.platform}-${facts.arch}`;
  return TARGETS.includes(t) ? t : null;
}

const cap = (s) => s[0].toUpperCase() + s.slice(1);

function describeRuntime(f) {
  const libc = f.platform !== 'linux' ? '' : f.libc === 'glibc' ? ` glibc ${f.glibcVersion}` : f.libc === 'musl' ? ' musl' : ' (libc unknown)';
  return `${f.platform} ${f.arch}${libc}, Node ${f.node}`;
}

const cmp = (a, b) => {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] || 0) !== (y[i] || 0)) return (x[i] || 0) - (y[i] || 0);
  return 0;
};

/** Reads `len` bytes of the open file `fd` at `pos`. */
function readAt(fd, pos, len) {
  const b = Buffer.alloc(len);
  fs.readSync(fd, b, 0, len, pos);
  return b;
}

/**
 * Which libc a Linux .node file was linked against, from its DT_NEEDED entries: glibc's is
 * libc.so.6, musl's libc.so (or Alpine's libc.musl-<arch>.so.1). null when it cannot tell (not a
 * 64-bit little-endian ELF file, no libc named). Only the ELF headers and the dynamic section are read.
 */
function fileLibc(file) {
  let fd;
  try {
    fd = fs.openSync(file, 'r');
    const h = readAt(fd, 0, 64);
    if (h.readUInt32BE(0) !== 0x7f454c46 || h[4] !== 2 || h[5] !== 1) return null; // ELF64, little-endian
    const shoff = Number(h.readBigUInt64LE(0x28));
    const shentsize = h.readUInt16LE(0x3a);
    const shnum = h.readUInt16LE(0x3c);
    const sh = readAt(fd, shoff, shentsize * shnum);
    const section = (i) => ({
      type: sh.readUInt32LE(i * shentsize + 4),
      offset: Number(sh.readBigUInt64LE(i * shentsize + 0x18)),
      size: Number(sh.readBigUInt64LE(i * shentsize + 0x20)),
      link: sh.readUInt32LE(i * shentsize + 0x28),
    });
    for (let i = 0; i < shnum; i++) {
      const s = section(i);
      if (s.type !== 6 /* SHT_DYNAMIC */) continue;
      const dyn = readAt(fd, s.offset, s.size);
      const strtab = section(s.link);
      const strs = readAt(fd, strtab.offset, strtab.size);
      for (let j = 0; j + 16 <= dyn.length; j += 16) {
        if (dyn.readBigUInt64LE(j) !== 1n /* DT_NEEDED */) continue;
        const at = Number(dyn.readBigUInt64LE(j + 8));
        const name = strs.toString('latin1', at, strs.indexOf(0, at));
        if (name === 'libc.so.6') return 'glibc';
        if (name === 'libc.so' || name.startsWith('libc.musl-')) return 'musl';
      }
    }
    return null;
  } catch {
    return null;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * The message for a failed load. `attempts`: [{ what, file, error }] (error absent when the file
 * was not there); `others`: installed platform packages of this package for other targets.
 */
function explain(facts, target, attempts, others) {
  const lines = [`${SCOPE} could not load its native binary on this runtime: ${describeRuntime(facts)}.`];
  if (!target) {
    lines.push(`No binary is published for ${facts.platform}-${facts.arch}${facts.libc ? ` (${facts.libc})` : ''}. Published targets: ${TARGETS.join(', ')}.`);
    lines.push(`Fix: run on one of those, or build from source on this machine (Rust toolchain, then \`npm run build\` in a clone). See ${DOCS}.`);
    return lines.join('\n');
  }
  const pkg = `${SCOPE}-${target}`;
  lines.push(`It looked for: ${attempts.map((a) => `${a.what} (${a.error ? 'found, failed to load' : 'not found'})`).join('; ')}.`);
  const failed = attempts.filter((a) => a.error);
  const causes = [];
  for (const a of failed) {
    const msg = String(a.error && a.error.message);
    const glibc = /version `GLIBC_([\d.]+)' not found/.exec(msg);
    const built = fileLibc(a.file);
    if (glibc) {
      causes.push(
        `Cause: glibc too old. ${cap(a.what)} needs glibc >= ${glibc[1]}, this system has glibc ${facts.glibcVersion || 'older'}.`,
        cmp(glibc[1], GLIBC_FLOOR) > 0
          ? `Fix: the published ${pkg} needs only glibc ${GLIBC_FLOOR}; this file was built elsewhere against a newer glibc. Reinstall it from the registry (\`npm install ${pkg}@<version>\`), or build on this system (\`npm run build\`), or run on a newer distribution.`
          : `Fix: run on a system with glibc >= ${glibc[1]} (Debian 8+, Ubuntu 14.04+, RHEL/CentOS 7+, Amazon Linux 2 have ${GLIBC_FLOOR} or newer).`,
      );
    } else if (facts.platform === 'linux' && built && facts.libc && built !== facts.libc) {
      causes.push(
        `Cause: musl/glibc mix-up. ${cap(a.what)} is linked against ${built}, but this Node runs on ${facts.libc}.`,
        `Fix: install ${pkg} (the ${facts.libc} build) on this system; if the file came from a package named for the other libc, that package is broken: reinstall it from the registry.`,
      );
    } else {
      causes.push(`Cause: ${a.what} failed to load: ${msg.split('\n')[0]}`);
    }
  }
  if (!failed.length) {
    const mixed = others.find((o) => o.startsWith(`linux-${facts.arch}-`));
    if (facts.platform === 'linux' && mixed) {
      const otherLibc = mixed.endsWith('-musl') ? 'musl' : 'glibc';
      causes.push(
        `Cause: musl/glibc mix-up. ${SCOPE}-${mixed} (the ${otherLibc} build) is installed, but this Node runs on ${facts.libc}: node_modules was installed on another system (a ${otherLibc} host or image) and copied here.`,
        `Fix: run the install on this system (in a Dockerfile: \`npm ci\` inside the image, with node_modules in .dockerignore), or install both: \`npm install --os=linux --cpu=${facts.arch} --libc=${facts.libc}\` (npm >= 10), or pnpm's \`supportedArchitectures: { libc: [glibc, musl] }\`.`,
      );
    } else {
      if (others.length) causes.push(`Installed for other platforms only: ${others.map((o) => `${SCOPE}-${o}`).join(', ')}.`);
      causes.push(
        `Cause: ${pkg} is not installed. It is an optional dependency of ${SCOPE}; package managers skip it when optional dependencies are omitted (\`--omit=optional\`, \`--no-optional\`, pnpm \`supportedArchitectures\` without this platform), or when the lockfile was made on another platform (npm/cli#4828).`,
        `Fix: \`npm install --include=optional ${SCOPE}\`; if that does not help, remove node_modules and package-lock.json and run \`npm install\` again, or add it explicitly: \`npm install ${pkg}\` (pnpm: \`pnpm add ${pkg}\`).`,
      );
    }
  }
  lines.push(...causes, `More: ${DOCS}.`);
  return lines.join('\n');
}

/** Other targets' platform packages that `req` can resolve. */
function installedOthers(req, target) {
  return TARGETS.filter((t) => t !== target).filter((t) => {
    try {
      req.resolve(`${SCOPE}-${t}/package.json`);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * Loads the addon: `NAPI_RS_NATIVE_LIBRARY_PATH` if set; else `<root>/event-publisher.<target>.node`
 * (a local build); else the platform package. `req` is the caller's `require` (resolution starts
 * at the package root, where the platform package is a dependency). `facts` defaults to this process.
 */
function loadNative(root, req, facts = runtimeFacts()) {
  const override = process.env.NAPI_RS_NATIVE_LIBRARY_PATH;
  if (override) return req(override);
  const target = targetOf(facts);
  const attempts = [];
  if (target) {
    const local = path.join(root, `${BINARY}.${target}.node`);
    const pkg = `${SCOPE}-${target}`;
    let pkgFile = null;
    try {
      pkgFile = req.resolve(pkg);
    } catch {
      // not installed
    }
    const candidates = [
      { what: `${BINARY}.${target}.node in ${root}`, file: fs.existsSync(local) ? local : null },
      { what: `the package ${pkg}`, file: pkgFile },
    ];
    for (const c of candidates) {
      const attempt = { what: c.what, file: c.file, error: null };
      attempts.push(attempt);
      if (!c.file) continue;
      // A binary for the other libc may even load (musl resolves libc.so.6 to itself) and fail
      // later: refuse it here, with the mix-up named.
      const linked = facts.platform === 'linux' && facts.libc ? fileLibc(c.file) : null;
      if (linked && linked !== facts.libc) {
        attempt.error = new Error(`${c.file} is linked against ${linked}; this runtime uses ${facts.libc}`);
        continue;
      }
      try {
        return req(c.file);
      } catch (err) {
        attempt.error = err;
      }
    }
  }
  const err = new Error(explain(facts, target, attempts, installedOthers(req, target)));
  err.code = 'ERR_NATIVE_BINARY';
  const first = attempts.find((a) => a.error);
  if (first) err.cause = first.error;
  throw err;
}

module.exports = { loadNative, explain, runtimeFacts, targetOf, fileLibc, TARGETS, GLIBC_FLOOR };
