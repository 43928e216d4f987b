'use strict';
// pnpm as the platform uses it: the root and linux-x64-gnu tarballs (`npm pack`) installed with
// pnpm (scripts/platforms/runtimes.sh fetches it from npm) into a fresh project and into a pnpm
// workspace app; each app runs with no Rust on PATH, loads the binary from the platform package
// in pnpm's store layout, and publishes an event that is read back from the stream and the table.
// The optional platform dependency is pointed at its tarball with `pnpm.overrides`, as the
// registry would serve it.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const Redis = require('ioredis');
const { Pool } = require('pg');
const { REDIS_URL, DATABASE_URL, uid, ensureDatabase } = require('../support/stores');

jest.setTimeout(300_000);

const ROOT = path.resolve(__dirname, '..', '..');
const R = process.env.HYVVE_RUNTIMES || execFileSync('bash', [path.join(ROOT, 'scripts/platforms/runtimes.sh')], { encoding: 'utf8' }).trim();
const PNPM = path.join(R, 'pnpm/node_modules/pnpm/bin/pnpm.cjs');
const PLATFORM = '@hyvve/event-publisher-linux-x64-gnu';
const NODE_FILE = 'event-publisher.linux-x64-gnu.node';
const NO_RUST_PATH = [path.dirname(process.execPath), '/usr/bin', '/bin'].join(path.delimiter);
const STREAM = uid('hyvve:test:pnpm');
const TENANT = uid('ws-pnpm');

let tmp;
let tarballs;
let redis;
let pool;

/** The environment of the temp projects: none of the repo's npm/pnpm run variables. */
function cleanEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(npm|pnpm)_/i.test(k) || k === 'INIT_CWD') continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

function run(cmd, args, cwd, env = cleanEnv()) {
  try {
    return execFileSync(cmd, args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 240_000 });
  } catch (err) {
    throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) failed:\n${err.stdout || ''}\n${err.stderr || ''}`);
  }
}

const pnpm = (args, cwd) => run(process.execPath, [PNPM, ...args, '--store-dir', path.join(R, 'pnpm-store'), '--reporter=silent'], cwd);

function pack(dir) {
  const [info] = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', tmp], dir));
  return path.join(tmp, info.filename);
}

const APP = `const { EventPublisher } = require('@hyvve/event-publisher');
const loaded = Object.keys(require.cache).filter((f) => f.endsWith('.node'));
(async () => {
  const p = await EventPublisher.connect({ stream: process.env.STREAM });
  const id = await p.publish('approval.item.approved', { approvalId: 'appr-1', decision: 'approved' },
    { tenantId: process.env.TENANT, userId: process.env.USER_ID, source: 'approvals' });
  await p.close();
  console.log(JSON.stringify({ id, loaded }));
})().catch((e) => { console.error(e); process.exit(1); });
`;

function runApp(dir, userId) {
  const out = run(process.execPath, ['app.js'], dir, cleanEnv({ PATH: NO_RUST_PATH, REDIS_URL, DATABASE_URL, STREAM, TENANT, USER_ID: userId }));
  return JSON.parse(out.trim().split('\n').pop());
}

async function expectReadBack(id, userId) {
  const entries = (await redis.xrange(STREAM, '-', '+')).filter(([, f]) => JSON.parse(f[1]).id === id);
  expect(entries).toHaveLength(1);
  expect(JSON.parse(entries[0][1][1])).toMatchObject({ tenantId: TENANT, userId, type: 'approval.item.approved' });
  const { rows } = await pool.query('SELECT stream_id FROM event_metadata WHERE event_id = $1', [id]);
  expect(rows).toEqual([{ stream_id: entries[0][0] }]);
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hyvve-pnpm-'));
  tarballs = { platform: pack(path.join(ROOT, 'npm', 'linux-x64-gnu')), root: pack(ROOT) };
  await ensureDatabase();
  redis = new Redis(REDIS_URL);
  pool = new Pool({ connectionString: DATABASE_URL, max: 1 });
  const { EventPublisher } = require('../..');
  await EventPublisher.migrate({ databaseUrl: DATABASE_URL });
});

afterAll(async () => {
  if (pool) {
    await pool.query('DELETE FROM event_metadata WHERE tenant_id = $1', [TENANT]);
    await pool.end();
  }
  if (redis) {
    await redis.del(STREAM);
    redis.disconnect();
  }
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('pnpm is the one scripts/platforms/runtimes.sh pins', () => {
  const pinned = /^PNPM=(\S+)$/m.exec(fs.readFileSync(path.join(ROOT, 'scripts/platforms/runtimes.sh'), 'utf8'))[1];
  expect(run(process.execPath, [PNPM, '--version'], tmp).trim()).toBe(pinned);
});

test('a fresh project: `pnpm add root.tgz` installs the platform package and loads the binary from it', async () => {
  const dir = path.join(tmp, 'app');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({
    name: 'app', version: '1.0.0', private: true, pnpm: { overrides: { [PLATFORM]: `file:${tarballs.platform}` } },
  }));
  pnpm(['add', tarballs.root], dir);
  fs.writeFileSync(path.join(dir, 'app.js'), APP);
  const { id, loaded } = runApp(dir, 'user-pnpm');
  expect(loaded).toHaveLength(1);
  // pnpm's layout: the platform package sits in its virtual store, beside the root package.
  expect(loaded[0]).toContain(`${path.sep}node_modules${path.sep}.pnpm${path.sep}`);
  expect(loaded[0].endsWith(path.join('node_modules', '@hyvve', 'event-publisher-linux-x64-gnu', NODE_FILE))).toBe(true);
  await expectReadBack(id, 'user-pnpm');
});

test('a pnpm workspace: an app package depending on it loads the binary from the platform package', async () => {
  const ws = path.join(tmp, 'workspace');
  const app = path.join(ws, 'apps', 'api');
  fs.mkdirSync(app, { recursive: true });
  fs.writeFileSync(path.join(ws, 'pnpm-workspace.yaml'), "packages:\n  - 'apps/*'\n");
  fs.writeFileSync(path.join(ws, 'package.json'), JSON.stringify({
    name: 'platform', version: '1.0.0', private: true, pnpm: { overrides: { [PLATFORM]: `file:${tarballs.platform}` } },
  }));
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({
    name: 'api', version: '1.0.0', private: true, dependencies: { '@hyvve/event-publisher': `file:${tarballs.root}` },
  }));
  pnpm(['install'], ws);
  fs.writeFileSync(path.join(app, 'app.js'), APP);
  const { id, loaded } = runApp(app, 'user-pnpm-ws');
  expect(loaded).toHaveLength(1);
  expect(loaded[0].startsWith(path.join(fs.realpathSync(ws), 'node_modules', '.pnpm'))).toBe(true);
  expect(path.basename(loaded[0])).toBe(NODE_FILE);
  await expectReadBack(id, 'user-pnpm-ws');
});
