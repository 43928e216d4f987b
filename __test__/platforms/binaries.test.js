'use strict';
// The four Linux binaries `npm run build:linux` put into npm/<platform>/: each is what its
// package promises (ELF machine, libraries needed, glibc floor, one exported symbol), each
// platform package packs into a tarball holding it, and the linux-x64-gnu binary the whole test
// suite loads (the repo root's) is the same glibc 2.17 build that package ships.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { inspect, checkBinary } = require('../../scripts/platforms/check-binary.js');

const ROOT = path.resolve(__dirname, '..', '..');
const LINUX = ['linux-x64-gnu', 'linux-arm64-gnu', 'linux-x64-musl', 'linux-arm64-musl'];
const file = (t) => path.join(ROOT, 'npm', t, `event-publisher.${t}.node`);

describe.each(LINUX)('%s', (target) => {
  test('is built into its platform package and passes every check', () => {
    expect(fs.existsSync(file(target))).toBe(true);
    expect(checkBinary(file(target), target)).toEqual([]);
  });

  test('its facts', () => {
    const f = inspect(file(target));
    expect(f.machine).toBe(target.includes('arm64') ? 'AArch64' : 'Advanced Micro Devices X86-64');
    expect(f.exported).toEqual(['napi_register_module_v1']);
    if (target.endsWith('-gnu')) {
      expect(f.needed).not.toContainEqual(expect.stringMatching(/libgcc_s|libstdc\+\+/));
      expect(f.needed).toContain('libc.so.6');
      // Highest GLIBC symbol version needed: the 2.17 floor (RHEL 7, Amazon Linux 2, Debian 8+, Ubuntu 14.04+).
      expect(f.glibcMax).toBe('2.17');
    } else {
      expect(f.needed).toEqual(['libc.so']);
      expect(f.glibcMax).toBeNull();
    }
  });

  test('`npm pack` of its package gives a tarball with the binary', () => {
    const dest = fs.mkdtempSync(path.join(os.tmpdir(), 'hyvve-platform-pack-'));
    try {
      const [info] = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', dest], { cwd: path.join(ROOT, 'npm', target), encoding: 'utf8' }));
      expect(info.name).toBe(`@hyvve/event-publisher-${target}`);
      expect(info.files.map((f) => f.path).sort()).toEqual(['README.md', `event-publisher.${target}.node`, 'package.json']);
      const listed = execFileSync('tar', ['tzvf', path.join(dest, info.filename)], { encoding: 'utf8' });
      expect(listed).toContain(`package/event-publisher.${target}.node`);
      expect(info.files.find((f) => f.path.endsWith('.node')).size).toBe(fs.statSync(file(target)).size);
    } finally {
      fs.rmSync(dest, { recursive: true, force: true });
    }
  });
});

test('the suite and `npm pack` use the same linux-x64-gnu binary: the glibc 2.17 build', () => {
  const root = path.join(ROOT, 'event-publisher.linux-x64-gnu.node');
  expect(fs.readFileSync(root).equals(fs.readFileSync(file('linux-x64-gnu')))).toBe(true);
  expect(inspect(root).glibcMax).toBe('2.17');
});
