'use strict';
// What each kind of publish costs Redis, in commands (INFO commandstats on a private server): a
// lone event with a generated id is one plain XADD (a script call costs Redis about four times
// the XADD inside it); caller ids and batches go through the script.

const Redis = require('ioredis');
const { EventPublisher } = require('../..');
const { DATABASE_URL, uid, ensureDatabase, privateRedis } = require('../support/stores');

let srv;
let redis;
let p;
beforeAll(async () => {
  await ensureDatabase();
  srv = await privateRedis();
  redis = new Redis(srv.url);
  p = await EventPublisher.connect({ databaseUrl: DATABASE_URL, redisUrl: srv.url, stream: uid('test:cmds'), logLevel: 'off' });
});
afterAll(async () => {
  if (p) await p.close();
  if (redis) redis.disconnect();
  if (srv) await srv.stop();
});

/** Calls per command since the last CONFIG RESETSTAT, e.g. { xadd: 20 }. */
async function calls() {
  const out = {};
  for (const m of (await redis.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (!/^(info|config)/.test(m[1])) out[m[1]] = Number(m[2]); // this test's own
  }
  return out;
}

const ctx = { tenantId: 'ws-cmds', userId: 'u' };

test('20 sequential publishes with generated ids are 20 plain XADDs and nothing else', async () => {
  await p.publish('approval.item.requested', { warm: true }, ctx);
  await redis.config('RESETSTAT');
  for (let i = 0; i < 20; i++) await p.publish('approval.item.requested', { i }, ctx);
  expect(await calls()).toEqual({ xadd: 20 });
});

test('a caller-supplied eventId and a batch go through the append script, once each', async () => {
  await redis.config('RESETSTAT');
  await p.publish('approval.item.requested', { n: 1 }, { ...ctx, eventId: uid('ev') });
  await p.publishBatch([1, 2, 3].map((n) => ({ type: 'approval.item.approved', data: { n }, context: ctx })));
  const c = await calls();
  expect(c.evalsha).toBe(2);
  expect(c.xadd).toBe(4); // inside the script calls
});
