'use strict';
// Issue 10: outages classified exactly. A command that never reached a live connection is a
// definite failure (ERR_REDIS, outcomeUnknown false, rows deleted), however soon after the
// server went away it is sent. Redis here persists every write (appendfsync always), so an entry
// that had been appended would still be there after the restart.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { ensureDatabase, pgClient, privateRedis, publisherFactory, uid } = require('../support/stores');
const { terminate, sleep } = require('../support/redis-topologies');

const publishers = [];
const connect = publisherFactory(publishers, 'outage');
let db;
let srv;
let dir;

beforeAll(async () => {
  await ensureDatabase();
  db = await pgClient();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyvve-outage-'));
  srv = await privateRedis(['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir]);
});

afterAll(async () => {
  await Promise.all(publishers.map((p) => p.close().catch(() => {})));
  if (srv) await srv.stop();
  if (db) await db.end();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('Redis SIGTERMed and gone, then a publish after 0, 1, 5 and 50 ms (20 each, singles and batches): every one rejects ERR_REDIS with outcomeUnknown false, and leaves no row and no entry', async () => {
  const { p, stream } = await connect({ redisUrl: srv.url, timeoutMs: 3000, circuitThreshold: 0 });
  const tenant = uid('ws');
  const ctx = (eventId) => ({ tenantId: tenant, userId: 'u', eventId });
  const failed = [];
  const outcomes = [];
  let published = 0;
  for (const delay of [0, 1, 5, 50]) {
    for (let i = 0; i < 20; i++) {
      // Publishing works (the publisher reconnects by itself after each restart).
      for (let t = 0; ; t++) {
        try {
          await p.publish('outage.ok', { delay, i }, ctx(uid('ok')));
          published++;
          break;
        } catch (e) {
          if (t > 100) throw e;
          await sleep(20);
        }
      }
      await terminate(srv);
      if (delay) await sleep(delay);
      const ids = i % 2 ? [uid('ev'), uid('ev')] : [uid('ev')];
      const call =
        ids.length === 1
          ? p.publish('outage.down', { delay, i }, ctx(ids[0]))
          : p.publishBatch(ids.map((id, n) => ({ type: 'outage.down', data: { delay, i, n }, context: ctx(id) })));
      const err = await call.then(() => null, (e) => e);
      outcomes.push({ delay, i, code: err && err.code, outcomeUnknown: err && err.outcomeUnknown });
      failed.push(...ids);
      await srv.start();
    }
  }
  expect(outcomes.filter((o) => o.code !== 'ERR_REDIS' || o.outcomeUnknown !== false)).toEqual([]);
  const { rows } = await db.query('SELECT event_id FROM event_metadata WHERE event_id = ANY($1)', [failed]);
  expect(rows).toEqual([]);
  const client = await srv.client();
  try {
    const entries = await client.xrange(stream, '-', '+');
    const ids = entries.map(([, f]) => JSON.parse(f[1]).id);
    expect(ids.filter((id) => failed.includes(id))).toEqual([]);
    // The persistence works: every publish that resolved is still there.
    expect(ids).toHaveLength(published);
  } finally {
    client.disconnect();
  }
});
