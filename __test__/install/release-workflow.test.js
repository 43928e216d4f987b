'use strict';
// The release workflow (.github/workflows/release.yml) cannot run here; its shape is checked:
// every target in package.json's `napi.targets` has a build job and a test job on a runner of
// its own OS, the tests load that target's artifact, and publishing makes no GitHub release.
const fs = require('node:fs');
const path = require('node:path');
const yaml = require('js-yaml');

const ROOT = path.resolve(__dirname, '..', '..');
const wf = yaml.load(fs.readFileSync(path.join(ROOT, '.github/workflows/release.yml'), 'utf8'));
const { targets } = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).napi;

// Rust triple -> platform package suffix (npm/<suffix>/).
const PLATFORM = {
  'x86_64-unknown-linux-gnu': 'linux-x64-gnu',
  'aarch64-unknown-linux-gnu': 'linux-arm64-gnu',
  'x86_64-unknown-linux-musl': 'linux-x64-musl',
  'aarch64-unknown-linux-musl': 'linux-arm64-musl',
  'x86_64-apple-darwin': 'darwin-x64',
  'aarch64-apple-darwin': 'darwin-arm64',
  'x86_64-pc-windows-msvc': 'win32-x64-msvc',
  'aarch64-pc-windows-msvc': 'win32-arm64-msvc',
};
const HOST_OS = { linux: /^ubuntu-/, darwin: /^macos-/, win32: /^windows-/ };
const builds = wf.jobs.build.strategy.matrix.settings;
const tests = [...wf.jobs['test-macos-windows'].strategy.matrix.settings, ...wf.jobs['test-linux'].strategy.matrix.settings];

test('napi.targets are the eight published targets, each with its npm/ folder', () => {
  expect(targets.map((t) => PLATFORM[t]).sort()).toEqual(Object.values(PLATFORM).sort());
  for (const t of targets) expect(fs.existsSync(path.join(ROOT, 'npm', PLATFORM[t], 'package.json'))).toBe(true);
});

describe.each(targets)('%s', (target) => {
  const platform = PLATFORM[target];
  const os = platform.split('-')[0];

  test('has one build job, on its own OS, uploading its binary', () => {
    const b = builds.filter((s) => s.target === target);
    expect(b).toHaveLength(1);
    expect(b[0].platform).toBe(platform);
    expect(b[0].host).toMatch(HOST_OS[os]);
    expect(b[0].build).toContain(os === 'linux' ? `scripts/platforms/build.js ${platform}` : `--target ${target}`);
    const upload = wf.jobs.build.steps.find((s) => String(s.uses).startsWith('actions/upload-artifact'));
    expect(upload.with.path).toBe('npm/${{ matrix.settings.platform }}/event-publisher.${{ matrix.settings.platform }}.node');
  });

  test('has a test job on a runner of its OS and CPU, after the build, running the store-free tests with its artifact', () => {
    const t = tests.filter((s) => s.platform === platform);
    expect(t).toHaveLength(1);
    expect(t[0].host).toMatch(HOST_OS[os]);
    if (os === 'linux') expect(t[0].host.includes('arm')).toBe(platform.includes('arm64'));
    if (os === 'win32') expect(t[0].host.includes('arm')).toBe(platform.includes('arm64'));
    if (os === 'darwin') expect(t[0].architecture).toBe(platform.split('-')[1]);
    if (os === 'linux') expect(t[0].image).toBe(platform.endsWith('musl') ? 'alpine' : 'bullseye-slim');
    const job = wf.jobs[os === 'linux' ? 'test-linux' : 'test-macos-windows'];
    expect(job.needs).toBe('build');
    expect(job.strategy.matrix.node).toEqual(['20', '22', '24']);
    const steps = job.steps.map((s) => `${s.uses || ''} ${s.run || ''} ${JSON.stringify(s.with || {})}`).join('\n');
    expect(steps).toContain('bindings-${{ matrix.settings.platform }}');
    expect(steps).toContain('__test__/install/no-stores.test.js');
  });
});

test('publishing waits for every test job, checks all eight binaries, and makes no GitHub release', () => {
  expect(wf.jobs.publish.needs.sort()).toEqual(['test-linux', 'test-macos-windows']);
  const run = wf.jobs.publish.steps.map((s) => s.run || '').join('\n');
  expect(run).toContain('pack-manifest.js check-release');
  expect(run).toContain('HYVVE_RELEASE=1 npm publish');
  const { scripts } = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  expect(scripts.prepublishOnly).toBe('napi prepublish -t npm --no-gh-release');
});
