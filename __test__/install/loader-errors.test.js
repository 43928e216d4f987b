'use strict';
// The loader (binding.js, lib/native-loader.js) as a user meets it: the package laid out in a
// temporary node_modules, loaded by a fresh Node process. Each way the binary can fail to load is
// forced for real (a missing platform package; a binary whose glibc need is above this system's,
// made by rewriting one version name in a built binary, so the dynamic loader itself refuses it;
// the other libc's package installed instead), and the message must name the runtime, the
// package looked for, the cause and the fix. Cases that need a musl runtime or the musl binary
// are in __test__/platforms/.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { explain, targetOf, runtimeFacts } = require('../../lib/native-loader.js');

const ROOT = path.resolve(__dirname, '..', '..');
const FACTS = runtimeFacts();
const TARGET = targetOf(FACTS);
const BUILT = path.join(ROOT, `event-publisher.${TARGET}.node`);
const onLinuxGnu = FACTS.platform === 'linux' && FACTS.libc === 'glibc';

let tmp;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hyvve-loader-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A project whose node_modules holds the root package's loader and the given platform packages. */
function layout(name, platformPackages) {
  const dir = path.join(tmp, name);
  const pkg = path.join(dir, 'node_modules', '@hyvve', 'event-publisher');
  fs.mkdirSync(path.join(pkg, 'lib'), { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'binding.js'), path.join(pkg, 'binding.js'));
  fs.copyFileSync(path.join(ROOT, 'lib', 'native-loader.js'), path.join(pkg, 'lib', 'native-loader.js'));
  fs.writeFileSync(path.join(pkg, 'package.json'), JSON.stringify({ name: '@hyvve/event-publisher', version: '0.1.0', main: 'binding.js' }));
  for (const [target, binary] of Object.entries(platformPackages)) {
    const p = path.join(dir, 'node_modules', '@hyvve', `event-publisher-${target}`);
    fs.mkdirSync(p, { recursive: true });
    const file = `event-publisher.${target}.node`;
    fs.writeFileSync(path.join(p, 'package.json'), JSON.stringify({ name: `@hyvve/event-publisher-${target}`, version: '0.1.0', main: file }));
    fs.writeFileSync(path.join(p, file), binary);
  }
  return dir;
}

/** Loads the package in a fresh Node in `dir`: { ok, code, message, cause } or { ok, exports }. */
function load(dir) {
  const script = `try {
  const b = require('@hyvve/event-publisher');
  console.log(JSON.stringify({ ok: true, exports: Object.keys(b) }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, code: e.code, message: e.message, cause: e.cause && e.cause.message }));
}`;
  const env = { ...process.env };
  delete env.NAPI_RS_NATIVE_LIBRARY_PATH;
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: dir, env, encoding: 'utf8' }));
}

const runtime = `${FACTS.platform} ${FACTS.arch} glibc ${FACTS.glibcVersion}, Node ${process.version}`;

(onLinuxGnu ? describe : describe.skip)('on this glibc Linux, a user whose install', () => {
  test('has the platform package loads the binary from it', () => {
    const r = load(layout('ok', { [TARGET]: fs.readFileSync(BUILT) }));
    expect(r).toEqual({ ok: true, exports: expect.arrayContaining(['NativePublisher']) });
  });

  test('lacks the platform package is told so, with the runtime seen and the fix', () => {
    const r = load(layout('missing', {}));
    expect(r.ok).toBe(false);
    expect(r.code).toBe('ERR_NATIVE_BINARY');
    expect(r.message).toContain(`on this runtime: ${runtime}.`);
    expect(r.message).toContain(`the package @hyvve/event-publisher-${TARGET} (not found)`);
    expect(r.message).toContain(`Cause: @hyvve/event-publisher-${TARGET} is not installed.`);
    expect(r.message).toContain('`npm install --include=optional @hyvve/event-publisher`');
    expect(r.message).not.toMatch(/glibc too old|mix-up/);
  });

  test('has a binary that needs a newer glibc is told the versions found and needed, not "not installed"', () => {
    // The highest GLIBC_2.NN the binary needs, renamed GLIBC_2.99 (same length): the dynamic
    // loader then refuses it exactly as an older system refuses a binary linked on a newer one.
    const bin = fs.readFileSync(BUILT);
    const names = [...bin.toString('latin1').matchAll(/GLIBC_2\.(\d\d)\0/g)];
    expect(names.length).toBeGreaterThan(0);
    const highest = names.reduce((a, b) => (Number(b[1]) > Number(a[1]) ? b : a));
    bin.write('GLIBC_2.99', highest.index, 'latin1');
    const r = load(layout('old-glibc', { [TARGET]: bin }));
    expect(r.ok).toBe(false);
    expect(r.code).toBe('ERR_NATIVE_BINARY');
    expect(r.cause).toMatch(/version `GLIBC_2\.99' not found/);
    expect(r.message).toContain(`on this runtime: ${runtime}.`);
    expect(r.message).toContain(`the package @hyvve/event-publisher-${TARGET} (found, failed to load)`);
    expect(r.message).toContain(`Cause: glibc too old. The package @hyvve/event-publisher-${TARGET} needs glibc >= 2.99, this system has glibc ${FACTS.glibcVersion}.`);
    expect(r.message).toContain('needs only glibc 2.17');
    expect(r.message).not.toContain('not installed');
  });

  test('has only the musl package (node_modules made on Alpine) is told of the mix-up', () => {
    const musl = TARGET.replace(/-gnu$/, '-musl');
    const r = load(layout('mixed', { [musl]: Buffer.from('not loaded') }));
    expect(r.ok).toBe(false);
    expect(r.message).toContain(`on this runtime: ${runtime}.`);
    expect(r.message).toContain(`the package @hyvve/event-publisher-${TARGET} (not found)`);
    expect(r.message).toContain(`Cause: musl/glibc mix-up. @hyvve/event-publisher-${musl} (the musl build) is installed, but this Node runs on glibc`);
    expect(r.message).toContain('run the install on this system');
  });
});

describe('the message for runtimes this machine cannot be', () => {
  const alpine = { platform: 'linux', arch: 'arm64', libc: 'musl', glibcVersion: null, node: 'v22.0.0' };

  test('a musl Node whose node_modules came from a glibc host', () => {
    const m = explain(alpine, targetOf(alpine), [
      { what: 'the package @hyvve/event-publisher-linux-arm64-musl', file: null, error: null },
    ], ['linux-arm64-gnu']);
    expect(m).toContain('on this runtime: linux arm64 musl, Node v22.0.0.');
    expect(m).toContain('Cause: musl/glibc mix-up. @hyvve/event-publisher-linux-arm64-gnu (the glibc build) is installed, but this Node runs on musl');
    expect(m).toContain('--libc=musl');
  });

  test('a platform nothing is published for lists what is', () => {
    const f = { platform: 'freebsd', arch: 'x64', libc: null, glibcVersion: null, node: 'v22.0.0' };
    expect(targetOf(f)).toBeNull();
    const m = explain(f, null, [], []);
    expect(m).toContain('No binary is published for freebsd-x64.');
    expect(m).toContain('darwin-arm64');
    expect(m).toContain('build from source');
  });

  test('the targets: musl only from the runtime libc, msvc on Windows', () => {
    expect(targetOf({ platform: 'linux', arch: 'x64', libc: 'musl' })).toBe('linux-x64-musl');
    expect(targetOf({ platform: 'linux', arch: 'x64', libc: 'glibc' })).toBe('linux-x64-gnu');
    expect(targetOf({ platform: 'win32', arch: 'arm64' })).toBe('win32-arm64-msvc');
    expect(targetOf({ platform: 'darwin', arch: 'arm64' })).toBe('darwin-arm64');
  });
});
