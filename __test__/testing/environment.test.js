'use strict';
// The in-memory publisher reads no environment: the variables of the machine it runs on neither
// break it nor configure it. Run in a child process, because native code reads the process's
// real environment (jest gives each test file its own `process.env`, invisible to it).
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const ROOT = path.join(__dirname, '..', '..');

function runWith(env, code) {
  const r = spawnSync(process.execPath, ['-e', code], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: r.status, out: r.stdout.trim(), err: r.stderr.trim() };
}

const SCRIPT = `
const { createTestPublisher } = require('./testing');
(async () => {
  const p = createTestPublisher({ source: 'unit' });
  const id = await p.publish('approval.item.approved', { approvalId: 'a1' }, { tenantId: 't1', userId: 'u1' });
  console.log(JSON.stringify({ id, n: p.published().length }));
})().catch((e) => { console.log(JSON.stringify({ code: e.code, message: e.message })); process.exit(1); });
`;

test('a bad DIRECT_URL, EVENT_PUBLISHER_LOG or REDIS_CLUSTER_NODES does not stop a test publisher', () => {
  const r = runWith(
    {
      DIRECT_URL: 'not a url at all',
      DATABASE_URL: 'mysql://nope',
      EVENT_PUBLISHER_LOG: 'loudest',
      REDIS_CLUSTER_NODES: 'redis://127.0.0.1:1',
      REDIS_URL: 'redis+sentinel://',
    },
    SCRIPT,
  );
  expect(r.err).toBe('');
  expect(r.status).toBe(0);
  const got = JSON.parse(r.out);
  expect(got.n).toBe(1);
  expect(typeof got.id).toBe('string');
});

test('the same bad environment does stop a real publisher, with ERR_CONFIG (so the test above can fail)', () => {
  const r = runWith(
    { DIRECT_URL: 'not a url at all' },
    `require('./').EventPublisher.connect({ databaseUrl: 'postgres://127.0.0.1:1/x' })
       .then(() => { console.log('connected'); process.exit(0); })
       .catch((e) => { console.log(JSON.stringify({ code: e.code, message: e.message })); process.exit(1); });`,
  );
  expect(r.status).toBe(1);
  const got = JSON.parse(r.out);
  expect(got.code).toBe('ERR_CONFIG');
  expect(got.message).toMatch(/directUrl/);
});
