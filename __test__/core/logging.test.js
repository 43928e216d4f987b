'use strict';
// Logging on `tracing` (issue 9): the records a `logger` callback receives, per publisher, with
// level directives that can switch on the drivers' own records.

const { EventPublisher } = require('../..');
const { DATABASE_URL, REDIS_URL, uid, ensureDatabase, publisherFactory, runNode } = require('../support/stores');

const publishers = [];
const connect = publisherFactory(publishers, 'test:logging');
const ctx = () => ({ tenantId: uid('ws'), userId: 'u', correlationId: uid('c') });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** The logger is called asynchronously (never blocking a publish): wait for `pred`. */
async function until(pred, ms = 2000) {
  for (const end = Date.now() + ms; Date.now() < end && !pred(); ) await sleep(10);
}

beforeAll(() => ensureDatabase());
afterAll(() => Promise.all(publishers.map((p) => p.close())));

test('a logger receives the AC7 record per publish and per batch, fields at the top level', async () => {
  const { p, logs } = await connect({ logLevel: 'info' });
  const c = ctx();
  const id = await p.publish('approval.item.requested', { a: 1 }, c);
  const ids = await p.publishBatch([
    { type: 'approval.item.approved', data: {}, context: ctx() },
    { type: 'approval.item.rejected', data: {}, context: ctx() },
  ]);
  await until(() => logs.length >= 2);
  const one = logs.find((l) => l.eventId === id);
  expect(Object.keys(one).sort()).toEqual(['correlationId', 'eventId', 'level', 'msg', 'streamId', 'tenantId', 'time', 'type']);
  expect(one).toMatchObject({ level: 'info', msg: 'event published', type: 'approval.item.requested', correlationId: c.correlationId, tenantId: c.tenantId });
  expect(one.streamId).toMatch(/^\d+-\d+$/);
  expect(one.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  const batch = logs.find((l) => l.msg === 'event batch published');
  expect(Object.keys(batch).sort()).toEqual(['count', 'eventIds', 'level', 'msg', 'time']);
  expect(batch).toMatchObject({ level: 'info', count: 2, eventIds: ids });
  expect(logs).toHaveLength(2);
});

test("logLevel 'off' gives no record, not even for a failure", async () => {
  const { p, logs } = await connect({ logLevel: 'off' });
  const c = ctx();
  const eventId = uid('ev');
  await p.publish('a.b', {}, { ...c, eventId });
  // Same id, other type: a failure that would be logged at error.
  await expect(p.publish('a.c', {}, { ...c, eventId })).rejects.toMatchObject({ code: 'ERR_EVENT_ID_CONFLICT' });
  await sleep(100);
  expect(logs).toHaveLength(0);
});

test('a failure is logged at error with its code; a bad level is ERR_CONFIG', async () => {
  const { p, logs } = await connect({ logLevel: 'error' });
  const c = ctx();
  const eventId = uid('ev');
  await p.publish('a.b', {}, { ...c, eventId });
  await expect(p.publish('a.c', {}, { ...c, eventId })).rejects.toMatchObject({ code: 'ERR_EVENT_ID_CONFLICT' });
  await until(() => logs.length >= 1);
  expect(logs).toHaveLength(1);
  expect(logs[0]).toMatchObject({ level: 'error', msg: 'event publish failed', code: 'ERR_EVENT_ID_CONFLICT', eventId, type: 'a.c', tenantId: c.tenantId });
  expect(logs[0].error).toContain(eventId);
  const bad = await EventPublisher.connect({ databaseUrl: DATABASE_URL, redisUrl: REDIS_URL, logLevel: 'info,sqlx=loud' }).catch((e) => e);
  expect(bad.code).toBe('ERR_CONFIG');
  expect(bad.message).toContain('sqlx=loud');
});

test("a directive switches on sqlx's own records, and debug shows the group write's stages", async () => {
  const { p, logs } = await connect({ logLevel: 'off,sqlx=debug' });
  await p.publish('a.b', {}, ctx());
  await until(() => logs.some((l) => l.msg.startsWith('sqlx::query:')));
  expect(logs.some((l) => /^sqlx::query: .*INSERT INTO/s.test(l.msg) && l.level === 'debug')).toBe(true);
  // Only sqlx's: our own are off.
  expect(logs.filter((l) => !l.msg.startsWith('sqlx::'))).toEqual([]);

  const d = await connect({ logLevel: 'debug' });
  await d.p.publish('a.b', {}, ctx());
  await until(() => d.logs.some((l) => l.msg.startsWith('group_write took')));
  const span = d.logs.find((l) => l.msg.startsWith('group_write took'));
  expect(span.level).toBe('debug');
  expect(span.msg).toMatch(new RegExp(`^group_write took [\\d.]+ ms events=1 jobs=1 stream=${d.stream} outcome=ok$`));
  expect(d.logs.some((l) => l.msg.startsWith('sqlx::'))).toBe(false);
});

test('two publishers with different levels and loggers each get their own records', async () => {
  const a = await connect({ logLevel: 'info' });
  const b = await connect({ logLevel: 'error' });
  const ids = await Promise.all([
    ...Array.from({ length: 10 }, () => a.p.publish('a.b', {}, ctx())),
    ...Array.from({ length: 10 }, () => b.p.publish('a.b', {}, ctx())),
  ]);
  await until(() => a.logs.length >= 10);
  await sleep(50);
  expect(a.logs.map((l) => l.eventId).sort()).toEqual(ids.slice(0, 10).sort());
  expect(b.logs).toEqual([]);
});

test('a slow logger changes nothing for the publishes', async () => {
  let calls = 0;
  const { p } = await connect({
    logLevel: 'info',
    logger: () => {
      calls++;
      const end = Date.now() + 2;
      while (Date.now() < end);
    },
  });
  const ids = await Promise.all(Array.from({ length: 50 }, () => p.publish('a.b', {}, ctx())));
  expect(new Set(ids).size).toBe(50);
  await until(() => calls >= 50);
  expect(calls).toBe(50);
});

test('a process with a logger and no close() exits by itself', async () => {
  const code = `
    const { EventPublisher } = require('.');
    (async () => {
      const logs = [];
      const p = await EventPublisher.connect({ databaseUrl: ${JSON.stringify(DATABASE_URL)}, redisUrl: ${JSON.stringify(REDIS_URL)}, stream: ${JSON.stringify(uid('test:logging'))}, logLevel: 'debug', logger: (e) => logs.push(e) });
      await p.publish('a.b', {}, { tenantId: 't', userId: 'u' });
      console.log('published');
    })();
  `;
  const res = await runNode(code, { timeoutMs: 15_000 });
  expect(res.timedOut).toBe(false);
  expect(res.stdout.trim()).toBe('published');
  expect(res.code).toBe(0);
});

test('records a blocked logger cannot take are dropped and counted, never waited for', async () => {
  const logs = [];
  const { p } = await connect({ logLevel: 'info', maxInFlight: 20_000, timeoutMs: 20_000, logger: (e) => logs.push(e) });
  const n = 6000;
  const c = ctx();
  const calls = Array.from({ length: n }, (_, i) => p.publish('a.b', { i }, c));
  // Hold the JS thread (where the logger runs) until every publish is written: the queue of
  // 4,096 records fills up meanwhile.
  for (const end = Date.now() + 20_000; p.stats().inFlightEvents > 0 && Date.now() < end; );
  expect(p.stats().inFlightEvents).toBe(0);
  await Promise.all(calls);
  await until(() => logs.length + p.stats().droppedLogRecords >= n);
  const { droppedLogRecords } = p.stats();
  expect(droppedLogRecords).toBeGreaterThan(0);
  expect(logs.length + droppedLogRecords).toBe(n);
  expect(logs.length).toBeLessThanOrEqual(4096);
  const lines = (await p.metrics()).split('\n');
  expect(lines.find((l) => l.startsWith('event_publisher_dropped_log_records_total{'))).toMatch(new RegExp(` ${droppedLogRecords}$`));
});

test('records of the stores\' code (sqlx) reach the publisher whose call ran it, not another', async () => {
  const quiet = await connect({ logLevel: 'info' });
  const loud = await connect({ logLevel: 'off,sqlx=debug' });
  await Promise.all([quiet.p.publish('a.b', {}, ctx()), loud.p.publish('a.b', {}, ctx())]);
  await until(() => loud.logs.length > 0 && quiet.logs.length > 0);
  await sleep(50);
  expect(loud.logs.length).toBeGreaterThan(0);
  expect(loud.logs.every((l) => l.msg.startsWith('sqlx::'))).toBe(true);
  expect(quiet.logs.map((l) => l.msg)).toEqual(['event published']);
});

test("a redis directive switches on redis-rs's own records (it logs through `log`, bridged)", async () => {
  // redis-rs logs (through the `log` crate) only in its cluster client (standalone connections
  // log nothing at any level), and per command only at trace: a cluster of our own.
  const { startCluster } = require('../support/redis-topologies');
  const cluster = await startCluster({ masters: 3 });
  try {
    const redisUrl = cluster.urls[0];
    const loud = await connect({ redisUrl, logLevel: 'info,redis=trace' });
    const debug = await connect({ redisUrl, logLevel: 'info,redis=debug' });
    const quiet = await connect({ redisUrl, logLevel: 'info' });
    const ids = await Promise.all([loud, debug, quiet].map((x) => x.p.publish('a.b', {}, ctx())));
    await until(() => [loud, debug, quiet].every((x, i) => x.logs.some((l) => l.eventId === ids[i])));
    await sleep(50);
    const sent = loud.logs.filter((l) => l.msg === 'redis::cluster_handling::async_connection: send_packed_command');
    expect(sent.length).toBeGreaterThan(0);
    expect(sent[0].level).toBe('trace');
    // The bridged record's own fields (log.target, log.file…) are not appended to msg.
    expect(loud.logs.filter((l) => /log\.(target|file|line)=/.test(l.msg))).toEqual([]);
    expect(debug.logs.filter((l) => l.level === 'trace')).toEqual([]);
    expect(quiet.logs.map((l) => l.msg)).toEqual(['event published']);
    await Promise.all([loud, debug, quiet].map((x) => x.p.close()));
  } finally {
    await cluster.stop();
  }
});
