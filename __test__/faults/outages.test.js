'use strict';
// Store outages and the publisher's safety features (issues 2 and 4): Redis or Postgres down,
// paused past timeoutMs, the circuit breaker, backpressure, idempotent retries, retention,
// close(), secrets in errors and logs, and configuration against the real Postgres.
// Tests that stop, pause or reconfigure a store use private servers (privateRedis / startPostgres);
// the shared Redis and Postgres are only read and written.

const Redis = require('ioredis');
const { EventPublisher, EventPublisherError } = require('../..');
const {
  DATABASE_URL,
  REDIS_URL,
  uid,
  ensureDatabase,
  pgClient,
  readStream,
  startPostgres,
  privateRedis,
  runNode,
  freePort,
  tcpProxy,
  publisherFactory,
} = require('../support/stores');

const ROOT = require('node:path').resolve(__dirname, '..', '..');
const CUID2 = /^[a-z][a-z0-9]{23}$/;
const STREAM_ID = /^\d+-\d+$/;

let redis; // shared Redis, for assertions
let db; // shared Postgres (test database), for assertions
const publishers = [];
const connect = publisherFactory(publishers, 'fault:stream');
const servers = [];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const settle = (p) => {
  const t = Date.now();
  return p.then(
    (value) => ({ ok: true, value, ms: Date.now() - t }),
    (err) => ({ ok: false, err, ms: Date.now() - t }),
  );
};

async function redisServer(args, opts) {
  const s = await privateRedis(args, opts);
  servers.push(s);
  return s;
}

/** The entries of `stream` on the server `r` whose event data carries `marker`. */
async function markedEntries(r, stream, marker) {
  const client = await r.client();
  try {
    return (await readStream(client, stream)).filter((e) => e.event.data.marker === marker);
  } finally {
    client.disconnect();
  }
}

const rowsOf = async (tenant, client = db) =>
  (await client.query('SELECT * FROM event_metadata WHERE tenant_id = $1 ORDER BY created_at, event_id', [tenant])).rows;

/** Publishes until one succeeds or `ms` passes; returns { id, attempts, ms } or throws the last error. */
async function publishUntilOk(p, ctx, ms = 5000, data = { retry: true }, type = 'fault.recovery.probe') {
  const started = Date.now();
  let attempts = 0;
  let last;
  while (Date.now() - started < ms) {
    attempts++;
    const r = await settle(p.publish(type, data, ctx));
    if (r.ok) return { id: r.value, attempts, ms: Date.now() - started };
    last = r.err;
    await sleep(100);
  }
  throw new Error(`no successful publish within ${ms} ms after ${attempts} attempts; last: ${last && last.code} ${last && last.message}`);
}

beforeAll(async () => {
  await ensureDatabase();
  redis = new Redis(REDIS_URL);
  db = await pgClient();
});

/** Resolves when `promise` settles or after `ms`, whichever comes first (and clears its timer). */
function bounded(promise, ms) {
  let timer;
  return Promise.race([Promise.resolve(promise).catch(() => {}), new Promise((r) => (timer = setTimeout(r, ms)))]).finally(() => clearTimeout(timer));
}

afterAll(async () => {
  await Promise.all(publishers.map((p) => bounded(p.close(), 10_000)));
  for (const s of servers) await s.stop();
  await redis.quit();
  await db.end();
});

describe('Redis outages (private Redis)', () => {
  // The publish that meets the dead connection first cannot know whether Redis ran its script
  // (the reply was lost), so it may report outcomeUnknown = true and keep its PENDING rows (their
  // stream_id the entry ID proposed for them, with no entry there) for a retry with the same eventId; every later one is a definite refusal that leaves nothing.
  // All of them must reject promptly. (Since b0ad9bb the first one waits the whole timeoutMs: its
  // retry loop keeps retrying the definite refusals that follow the lost reply; see the report.)
  test('Redis down: publish and publishBatch reject with ERR_REDIS/ERR_CIRCUIT_OPEN well under timeoutMs; definite refusals leave no row; after a restart on the same port the same publisher recovers by itself', async () => {
    const r = await redisServer();
    const timeoutMs = 4000;
    const { p, stream } = await connect({ redisUrl: r.url, timeoutMs });
    const tenant = uid('ws');
    await expect(p.publish('fault.redis.before', { n: 0 }, { tenantId: tenant, userId: 'u' })).resolves.toMatch(CUID2);

    await r.stop();
    const down = uid('ws-down');
    const calls = [];
    for (let i = 0; i < 6; i++) {
      const events = [{ type: 'fault.redis.down', data: { i }, context: { tenantId: down, userId: 'u', eventId: uid('ev') } }];
      calls.push({ events, res: await settle(p.publish(events[0].type, events[0].data, events[0].context)) });
    }
    const batch = [1, 2, 3].map((i) => ({ type: 'fault.redis.down', data: { i }, context: { tenantId: down, userId: 'u', eventId: uid('evb') } }));
    calls.push({ events: batch, res: await settle(p.publishBatch(batch)) });
    const summary = calls.map(({ res }) => ({ ok: res.ok, code: res.err && res.err.code, unknown: res.err && res.err.outcomeUnknown, prompt: res.ms < timeoutMs / 2 }));
    for (const x of summary) {
      expect(x.ok).toBe(false);
      expect(['ERR_REDIS', 'ERR_CIRCUIT_OPEN']).toContain(x.code);
    }
    expect(summary.map((x) => ({ prompt: x.prompt }))).toEqual(summary.map(() => ({ prompt: true })));
    // After the first, every refusal is definite.
    expect(summary.slice(1).filter((x) => x.code === 'ERR_REDIS' && x.unknown)).toEqual([]);
    // Definite refusals left nothing; an ambiguous one may leave only PENDING rows.
    const rows = await rowsOf(down);
    const ambiguousIds = new Set(calls.filter(({ res }) => res.err.outcomeUnknown).flatMap(({ events }) => events.map((e) => e.context.eventId)));
    expect(rows.filter((row) => !ambiguousIds.has(row.event_id))).toEqual([]);
    rows.forEach((row) => expect(row).toMatchObject({ stream_id: expect.stringMatching(STREAM_ID), status: 'PENDING' }));
    expect(await p.health()).toMatchObject({ redis: false, database: true });

    await r.restart();
    const back = await publishUntilOk(p, { tenantId: tenant, userId: 'u' }, 5000);
    // Ambiguous ones converge when retried with the same eventIds.
    for (const { events, res } of calls) {
      if (!res.err.outcomeUnknown) continue;
      if (events.length === 1) await p.publish(events[0].type, events[0].data, events[0].context);
      else await p.publishBatch(events);
    }
    const client = await r.client();
    try {
      const entries = await readStream(client, stream);
      expect(entries.map((e) => e.event.id)).toEqual([back.id, ...ambiguousIds]);
      const sid = Object.fromEntries(entries.map((e) => [e.event.id, e.id]));
      expect((await rowsOf(tenant)).find((x) => x.event_id === back.id).stream_id).toBe(sid[back.id]);
      const after = await rowsOf(down);
      expect(after.map((x) => x.event_id).sort()).toEqual([...ambiguousIds].sort());
      after.forEach((x) => expect(x.stream_id).toBe(sid[x.event_id]));
    } finally {
      client.disconnect();
    }
    expect(await p.health()).toMatchObject({ redis: true, database: true });
  });

  test('Redis paused (SIGSTOP) past timeoutMs: ERR_TIMEOUT with outcomeUnknown within timeoutMs; after SIGCONT a retry with the same eventId converges to exactly one entry and one row', async () => {
    const r = await redisServer();
    const timeoutMs = 1000;
    const { p, stream } = await connect({ redisUrl: r.url, timeoutMs, circuitThreshold: 0 });
    const tenant = uid('ws');
    await p.publish('fault.pause.warmup', {}, { tenantId: uid('warm'), userId: 'u' });
    const eventId = uid('evt');
    const ctx = { tenantId: tenant, userId: 'u', eventId };
    r.pause();
    let res;
    try {
      res = await settle(p.publish('fault.pause.event', { n: 1 }, ctx));
      await sleep(700); // stay paused well past timeoutMs
    } finally {
      r.resume();
    }
    expect(res.ok).toBe(false);
    expect(res.err.code).toBe('ERR_TIMEOUT');
    expect(res.err.outcomeUnknown).toBe(true);
    expect(res.ms).toBeGreaterThanOrEqual(timeoutMs - 50);
    expect(res.ms).toBeLessThan(timeoutMs + 300);

    // Retry with the same id until it resolves (the connection may need a moment to come back).
    const started = Date.now();
    let id;
    for (;;) {
      const again = await settle(p.publish('fault.pause.event', { n: 1 }, ctx));
      if (again.ok) {
        id = again.value;
        break;
      }
      if (Date.now() - started > 5000) throw again.err;
      await sleep(100);
    }
    expect(id).toBe(eventId);
    const client = await r.client();
    try {
      const mine = (await readStream(client, stream)).filter((e) => e.event.id === eventId);
      expect(mine).toHaveLength(1);
      const rows = await rowsOf(tenant);
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ event_id: eventId, stream_id: mine[0].id, status: 'PENDING' });
    } finally {
      client.disconnect();
    }
  });

  test('circuit breaker: after circuitThreshold failures it rejects at once with ERR_CIRCUIT_OPEN, health() says open; after Redis is back and the cooldown passes it closes again', async () => {
    const r = await redisServer();
    const { p, stream } = await connect({ redisUrl: r.url, circuitThreshold: 3, circuitCooldownMs: 1000, timeoutMs: 3000 });
    const tenant = uid('ws');
    await p.publish('fault.circuit.warmup', {}, { tenantId: tenant, userId: 'u' });
    await r.stop();
    const ambiguous = [];
    for (let i = 0; i < 3; i++) {
      const ctx = { tenantId: tenant, userId: 'u', eventId: uid('ev') };
      const res = await settle(p.publish('fault.circuit.fail', { i }, ctx));
      expect(res.ok).toBe(false);
      expect(res.err.code).toBe('ERR_REDIS');
      if (res.err.outcomeUnknown) ambiguous.push({ i, ctx });
    }
    const open = await settle(p.publish('fault.circuit.fail', { i: 3 }, { tenantId: tenant, userId: 'u' }));
    expect(open.ok).toBe(false);
    expect(open.err.code).toBe('ERR_CIRCUIT_OPEN');
    expect(open.ms).toBeLessThan(100);
    const batch = await settle(p.publishBatch([{ type: 'fault.circuit.fail', data: {}, context: { tenantId: tenant, userId: 'u' } }]));
    expect(batch.err.code).toBe('ERR_CIRCUIT_OPEN');
    expect(await p.health()).toEqual({ redis: false, database: true, circuit: 'open', inFlightBytes: 0, outbox: { pending: 0, oldestAgeMs: 0 } });

    await r.restart();
    await sleep(1100);
    const back = await publishUntilOk(p, { tenantId: tenant, userId: 'u' }, 5000);
    expect(back.id).toMatch(CUID2);
    expect(await p.health()).toEqual({ redis: true, database: true, circuit: 'closed', inFlightBytes: 0, outbox: { pending: 0, oldestAgeMs: 0 } });
    // A failure whose outcome was unknown keeps its PENDING row until retried with its eventId;
    // then each row holds the ID of its one entry.
    for (const { i, ctx } of ambiguous) await p.publish('fault.circuit.fail', { i }, ctx);
    const rows = await rowsOf(tenant);
    expect(rows).toHaveLength(2 + ambiguous.length);
    const client = await r.client();
    try {
      // (The warm-up's entry went with the restart: this Redis keeps no data.)
      const entries = await readStream(client, stream);
      const sid = Object.fromEntries(entries.map((e) => [e.event.id, e.id]));
      const rowOf = Object.fromEntries(rows.map((row) => [row.event_id, row.stream_id]));
      const published = [back.id, ...ambiguous.map((a) => a.ctx.eventId)];
      expect(entries.map((e) => e.event.id).sort()).toEqual([...published].sort());
      expect(published.map((id) => rowOf[id])).toEqual(published.map((id) => sid[id]));
    } finally {
      client.disconnect();
    }
  });

  test('backpressure: with maxInFlight 50 and Redis paused, 500 publishes fired at once: the excess rejects immediately with ERR_OVERLOADED', async () => {
    const r = await redisServer();
    const timeoutMs = 1500;
    const { p } = await connect({ redisUrl: r.url, maxInFlight: 50, timeoutMs, circuitThreshold: 0 });
    const tenant = uid('ws');
    await p.publish('fault.overload.warmup', {}, { tenantId: tenant, userId: 'u' });
    r.pause();
    let results;
    try {
      results = await Promise.all(Array.from({ length: 500 }, (_, i) => settle(p.publish('fault.overload.event', { i }, { tenantId: tenant, userId: 'u' }))));
    } finally {
      r.resume();
    }
    const byCode = {};
    for (const res of results) {
      const code = res.ok ? 'OK' : res.err.code;
      byCode[code] = (byCode[code] || 0) + 1;
    }
    const overloaded = results.filter((res) => !res.ok && res.err.code === 'ERR_OVERLOADED');
    expect(overloaded.length).toBeGreaterThanOrEqual(400);
    expect(overloaded.length).toBeLessThanOrEqual(450);
    // Refused at admission: no waiting for the stalled store.
    for (const res of overloaded) expect(res.ms).toBeLessThan(timeoutMs / 3);
    expect(byCode.OK || 0).toBe(0);
    for (const res of results) if (!res.ok && res.err.code !== 'ERR_OVERLOADED') expect(res.err.code).toBe('ERR_TIMEOUT');
    // After the stall publishing works again.
    await publishUntilOk(p, { tenantId: tenant, userId: 'u' }, 5000);
  });

  // Regression test (bug found on 38a534f…99b68da, fixed in b0ad9bb): retry() returned the last
  // attempt's error, so a lost reply to the append (Redis may have appended) followed by a refused
  // reconnect counted as a definite failure: the rows were deleted and the caller told
  // outcomeUnknown = false, while the appended entry stayed in the stream without its row.
  test('reply to the append lost, then the reconnect refused: the entry Redis did append never ends up without its row', async () => {
    const r = await redisServer();
    const proxy = await tcpProxy(r.port);
    try {
      const { p, stream } = await connect({ redisUrl: proxy.url, timeoutMs: 3000, circuitThreshold: 0 });
      await p.publish('fault.lost.warmup', {}, { tenantId: uid('warm'), userId: 'u' });
      const tenant = uid('ws');
      const marker = uid('marker');
      const swallowed = proxy.loseReplyTo(marker);
      const res = await settle(p.publish('fault.lost.reply', { marker }, { tenantId: tenant, userId: 'u' }));
      await swallowed; // Redis did run the script
      const entries = await markedEntries(r, stream, marker);
      const rows = await rowsOf(tenant);
      expect(res.ok).toBe(false);
      expect(entries).toHaveLength(1);
      expect({
        code: res.err.code,
        outcomeUnknown: res.err.outcomeUnknown,
        entryWithoutRow: entries.length > 0 && rows.length === 0,
      }).toEqual({ code: res.err.code, outcomeUnknown: true, entryWithoutRow: false });
    } finally {
      await proxy.close();
    }
  });

  // The append's retry after a lost reply is a repeated call: the script finds the first call's
  // entries at their proposed IDs (no group token is written when every entry took its proposal)
  // and appends nothing twice, for generated ids as for a batch.
  test.each([['publish', 1], ['publishBatch', 3]])('reply to the append lost, the reconnect taken: %s resolves with one entry per event, each row holding its entry ID', async (how, n) => {
    const r = await redisServer();
    const proxy = await tcpProxy(r.port);
    try {
      const { p, stream } = await connect({ redisUrl: proxy.url, timeoutMs: 4000, circuitThreshold: 0 });
      await p.publish('fault.lost.warmup', {}, { tenantId: uid('warm'), userId: 'u' });
      const tenant = uid('ws');
      const marker = uid('marker');
      const swallowed = proxy.loseReplyTo(marker, { keepListening: true });
      const events = Array.from({ length: n }, (_, i) => ({ type: 'fault.lost.retried', data: { marker, i }, context: { tenantId: tenant, userId: 'u' } }));
      const pending = settle(how === 'publish' ? p.publish(events[0].type, events[0].data, events[0].context) : p.publishBatch(events));
      await swallowed; // Redis ran the script; its reply is gone, the connection dropped
      const res = await pending;
      expect(res.err).toBeUndefined();
      const entries = await markedEntries(r, stream, marker);
      const rows = await rowsOf(tenant);
      expect(entries).toHaveLength(n);
      const ids = [].concat(res.value);
      expect(entries.map((e) => e.event.id).sort()).toEqual([...ids].sort());
      const sid = Object.fromEntries(entries.map((e) => [e.event.id, e.id]));
      expect(rows.map((row) => [row.event_id, row.stream_id]).sort()).toEqual(ids.map((id) => [id, sid[id]]).sort());
    } finally {
      await proxy.close();
    }
  });
});

describe('Postgres outages (private Postgres)', () => {
  let pg;
  let pdb;
  beforeAll(async () => {
    pg = await startPostgres();
  }, 60_000);
  afterAll(async () => {
    if (pdb) await pdb.end().catch(() => {});
    if (pg) await pg.destroy();
  });

  test('Postgres down: publish rejects and writes no stream entry; after Postgres restarts the same publisher recovers by itself', async () => {
    const timeoutMs = 2000;
    const { p, stream } = await connect({ databaseUrl: pg.url, timeoutMs, circuitThreshold: 0 });
    const tenant = uid('ws');
    await p.publish('fault.pg.before', {}, { tenantId: tenant, userId: 'u' });
    await pg.stop();
    try {
      const single = await settle(p.publish('fault.pg.down', { n: 1 }, { tenantId: tenant, userId: 'u', eventId: uid('ev') }));
      const batch = await settle(p.publishBatch([1, 2].map((i) => ({ type: 'fault.pg.down', data: { i }, context: { tenantId: tenant, userId: 'u' } }))));
      for (const res of [single, batch]) {
        expect(res.ok).toBe(false);
        expect(['ERR_DATABASE', 'ERR_TIMEOUT']).toContain(res.err.code);
        expect(res.ms).toBeLessThan(timeoutMs + 300);
      }
      expect((await p.health()).database).toBe(false);
      // Nothing reached the stream: the row comes first and it failed.
      const entries = await readStream(redis, stream);
      expect(entries.map((e) => e.event.type)).toEqual(['fault.pg.before']);
    } finally {
      await pg.start();
    }
    const back = await publishUntilOk(p, { tenantId: tenant, userId: 'u' }, 5000);
    pdb = await pgClient(pg.url);
    pdb.on('error', () => {});
    const rows = await rowsOf(tenant, pdb);
    expect(rows.map((r) => r.event_id).sort()).toEqual([(await readStream(redis, stream))[0].event.id, back.id].sort());
    const sid = Object.fromEntries((await readStream(redis, stream)).map((e) => [e.event.id, e.id]));
    rows.forEach((row) => expect(row.stream_id).toBe(sid[row.event_id]));
    await pdb.end();
    pdb = null;
  });

  // The first publish after Postgres went away meets a dead pooled connection (outcome unknown);
  // from then on the refusal is definite. Both must be prompt. History: on 38a534f the pool retried
  // a refused connection until acquire_timeout (= timeoutMs), so every publish took the whole
  // timeoutMs and usually ended ERR_TIMEOUT/outcomeUnknown; 5f73af0 fixed that (acquire timeout
  // capped at 1 s); b0ad9bb made the first publish wait the whole timeoutMs again (see the report).
  test('Postgres down: publishes reject with ERR_DATABASE well under timeoutMs; after the first, the refusal is definite (outcomeUnknown false)', async () => {
    const timeoutMs = 5000;
    const { p } = await connect({ databaseUrl: pg.url, timeoutMs, circuitThreshold: 0 });
    await p.publish('fault.pg.before', {}, { tenantId: uid('ws'), userId: 'u' });
    await pg.stop();
    const results = [];
    try {
      for (let i = 0; i < 3; i++) results.push(await settle(p.publish('fault.pg.down', { i }, { tenantId: uid('ws'), userId: 'u' })));
    } finally {
      await pg.start();
    }
    const summary = results.map((res) => ({ ok: res.ok, code: res.err && res.err.code, prompt: res.ms < timeoutMs / 2 }));
    expect(summary).toEqual(results.map(() => ({ ok: false, code: 'ERR_DATABASE', prompt: true })));
    expect(results.slice(1).map((res) => res.err.outcomeUnknown)).toEqual([false, false]);
  });

  // Regression test (bug found on 38a534f…99b68da, fixed in b0ad9bb): when the
  // stream_id patch committed but its reply was lost and Postgres then stayed unreachable, the
  // step-3 undo removed the entries and failed to delete the rows, which kept the real stream_id of
  // the removed entries; a retry with the same eventId then found a row "already published",
  // appended nothing and resolved an event that had no entry (reconcile() never looks at such rows).
  test('stream_id patch committed but its reply lost, then Postgres unreachable: a retry with the same eventId never resolves an event that has no entry', async () => {
    const proxy = await tcpProxy(pg.port);
    const dbName = new URL(pg.url).pathname.slice(1);
    // One connection; the event id is sent twice: bound to the INSERT, then to the UPDATE.
    const url = `postgres://root@127.0.0.1:${proxy.port}/${dbName}?sslmode=disable&connection_limit=1`;
    const timeoutMs = 1500;
    const check = await pgClient(pg.url);
    check.on('error', () => {});
    try {
      // entryIds 'server': the two-step write whose second statement sets stream_id (with reserved
      // IDs that statement only runs for an ID Redis refused).
      const { p, stream } = await connect({ databaseUrl: url, timeoutMs, circuitThreshold: 0, entryIds: 'server' });
      await p.publish('fault.patch.warmup', {}, { tenantId: uid('warm'), userId: 'u' });
      const tenant = uid('ws');
      const eventId = uid('evt');
      const ctx = { tenantId: tenant, userId: 'u', eventId };
      const swallowed = proxy.loseReplyTo(eventId, { nth: 2 });
      const first = await settle(p.publish('fault.patch.lost', { n: 1 }, ctx));
      let trapTimer;
      const trapped = await Promise.race([swallowed.then(() => true), new Promise((r) => (trapTimer = setTimeout(r, 10_000, false)))]);
      clearTimeout(trapTimer);
      expect(trapped).toBe(true); // the UPDATE's reply was the one lost
      const committed = (await check.query('SELECT stream_id FROM event_metadata WHERE event_id = $1', [eventId])).rows[0];
      expect(committed && committed.stream_id).toMatch(STREAM_ID); // the patch did commit
      expect(first.ok).toBe(false);
      // Let the publish give up and undo what it can while Postgres is unreachable, then bring it back.
      await sleep(4 * timeoutMs);
      await proxy.reopen();
      const retry = await publishUntilOk(p, ctx, 8000, { n: 1 }, 'fault.patch.lost');
      expect(retry.id).toBe(eventId);
      const entries = (await readStream(redis, stream)).filter((e) => e.event.id === eventId);
      const row = (await check.query('SELECT stream_id FROM event_metadata WHERE event_id = $1', [eventId])).rows[0];
      expect({ entries: entries.length, rowStreamId: row && row.stream_id }).toEqual({ entries: 1, rowStreamId: entries[0] ? entries[0].id : 'an existing entry' });
    } finally {
      await proxy.close();
      await check.end();
    }
  }, 60_000);

  /**
   * A publisher whose Postgres is behind a proxy that loses the reply to the next statement naming
   * `tenant` (after the server ran it) and takes the reconnect at once; `body` gets it, the stream,
   * a direct client `check`, and `swallowed` (resolves once that reply was lost). Stopped after.
   */
  async function lostCommitReply(tenant, body) {
    const proxy = await tcpProxy(pg.port);
    const dbName = new URL(pg.url).pathname.slice(1);
    const url = `postgres://root@127.0.0.1:${proxy.port}/${dbName}?sslmode=disable&connection_limit=1`;
    const check = await pgClient(pg.url);
    check.on('error', () => {});
    try {
      const { p, stream } = await connect({ databaseUrl: url, timeoutMs: 3000, circuitThreshold: 0 });
      await p.publish('fault.insert.warmup', {}, { tenantId: uid('warm'), userId: 'u' });
      const swallowed = proxy.loseReplyTo(tenant, { keepListening: true }).then(() => true);
      await body({ p, stream, check, swallowed });
    } finally {
      await proxy.close();
      await check.end();
    }
  }

  // A commit whose reply is lost is retried on a new connection: with a generated id the retry
  // must find its own row (before, it met the row, failed and deleted it: a rejected publish).
  test.each([['publish', 1], ['publishBatch', 2]])('the row insert committed but its reply lost, the reconnect taken: %s with generated ids resolves, one row and one entry per event', async (how, n) => {
    const tenant = uid('ws');
    await lostCommitReply(tenant, async ({ p, stream, check, swallowed }) => {
      const ctx = { tenantId: tenant, userId: 'u' };
      const call = how === 'publish'
        ? p.publish('fault.insert.lost', { n: 1 }, ctx).then((id) => [id])
        : p.publishBatch(Array.from({ length: n }, (_, i) => ({ type: 'fault.insert.lost', data: { i }, context: ctx })));
      const res = await settle(call);
      expect(await Promise.race([swallowed, sleep(5000).then(() => false)])).toBe(true);
      expect(res.err && { code: res.err.code, message: res.err.message }).toBeUndefined();
      const entries = (await readStream(redis, stream)).filter((e) => e.event.tenantId === tenant);
      const rows = (await check.query('SELECT event_id, stream_id FROM event_metadata WHERE tenant_id = $1', [tenant])).rows;
      const sid = Object.fromEntries(entries.map((e) => [e.event.id, e.id]));
      expect(entries.map((e) => e.event.id).sort()).toEqual([...res.value].sort());
      expect(rows.map((r) => [r.event_id, r.stream_id]).sort()).toEqual(res.value.map((id) => [id, sid[id]]).sort());
    });
  }, 30_000);

  // The same lost commit reply, in a batch whose caller eventId belongs to another tenant: the
  // batch rejects ERR_EVENT_ID_CONFLICT, and the row its generated-id event got in the commit
  // that was lost must be deleted too (the repeat finds it, but it is this call's own row).
  test('the row insert committed but its reply lost, in a batch that conflicts: ERR_EVENT_ID_CONFLICT, and no row or entry is left for its generated-id event', async () => {
    const tenant = uid('ws');
    await lostCommitReply(tenant, async ({ p, stream, check, swallowed }) => {
      const taken = uid('evt');
      await p.publish('fault.insert.owner', {}, { tenantId: uid('other'), userId: 'u', eventId: taken });
      const res = await settle(p.publishBatch([
        { type: 'fault.insert.lost', data: { i: 0 }, context: { tenantId: tenant, userId: 'u', eventId: taken } },
        { type: 'fault.insert.lost', data: { i: 1 }, context: { tenantId: tenant, userId: 'u' } },
      ]));
      expect(await Promise.race([swallowed, sleep(5000).then(() => false)])).toBe(true);
      expect(res.err && res.err.code).toBe('ERR_EVENT_ID_CONFLICT');
      const entries = (await readStream(redis, stream)).filter((e) => e.event.tenantId === tenant);
      const rows = (await check.query('SELECT event_id FROM event_metadata WHERE tenant_id = $1', [tenant])).rows;
      expect({ entries: entries.length, rows: rows.length }).toEqual({ entries: 0, rows: 0 });
    });
  }, 30_000);

  // FINDING (see the report): sessions opened while the database was read-only (a failover to a
  // standby, ALTER DATABASE … default_transaction_read_only) stay read-only after it is writable
  // again; the pool keeps them (sqlx: idle 10 min, lifetime 30 min), so publishing keeps failing
  // with "cannot execute INSERT in a read-only transaction" long after the database recovered.
  test('after the database stops being read-only, the same publisher recovers by itself within a few seconds', async () => {
    const dbName = new URL(pg.url).pathname.slice(1);
    const admin = await pgClient(pg.adminUrl);
    admin.on('error', () => {});
    const kick = () => admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, [dbName]);
    // One pooled connection, so that the outcome does not depend on which session a publish gets.
    const { p } = await connect({ databaseUrl: `${pg.url}&connection_limit=1`, timeoutMs: 2000, circuitThreshold: 0 });
    const tenant = uid('ws');
    try {
      await p.publish('fault.ro.before', {}, { tenantId: tenant, userId: 'u' });
      await admin.query(`ALTER DATABASE "${dbName}" SET default_transaction_read_only = on`);
      await kick(); // the pool reconnects into read-only sessions
      let readOnly;
      for (let i = 0; i < 20 && !readOnly; i++) {
        const res = await settle(p.publish('fault.ro.during', {}, { tenantId: tenant, userId: 'u' }));
        if (!res.ok && /read-only/.test(res.err.message)) readOnly = res;
      }
      expect(readOnly && readOnly.err.code).toBe('ERR_DATABASE');
      await admin.query(`ALTER DATABASE "${dbName}" RESET default_transaction_read_only`);
      // No sessions are ended this time: the publisher has to notice by itself.
      const back = await settle(publishUntilOk(p, { tenantId: tenant, userId: 'u' }, 5000));
      expect(back.ok ? 'recovered' : back.err.message).toBe('recovered');
    } finally {
      await admin.query(`ALTER DATABASE "${dbName}" RESET default_transaction_read_only`).catch(() => {});
      await kick().catch(() => {});
      await admin.end();
    }
  });
});

describe('idempotent retries (shared stores)', () => {
  test('publishing twice with the same eventId, one after the other, resolves both with that id and writes one entry and one row', async () => {
    const { p, stream } = await connect();
    const tenant = uid('ws');
    const eventId = uid('evt');
    const ctx = { tenantId: tenant, userId: 'u', eventId };
    const a = await p.publish('fault.idem.event', { n: 1 }, ctx);
    const b = await p.publish('fault.idem.event', { n: 1 }, ctx);
    expect([a, b]).toEqual([eventId, eventId]);
    const entries = await readStream(redis, stream);
    expect(entries).toHaveLength(1);
    const rows = await rowsOf(tenant);
    expect(rows).toHaveLength(1);
    expect(rows[0].stream_id).toBe(entries[0].id);
    // A batch retry behaves the same.
    const ids = [uid('evt'), uid('evt')];
    const events = ids.map((id, i) => ({ type: 'fault.idem.batch', data: { i }, context: { tenantId: tenant, userId: 'u', eventId: id } }));
    expect(await p.publishBatch(events)).toEqual(ids);
    expect(await p.publishBatch(events)).toEqual(ids);
    expect(await redis.xlen(stream)).toBe(3);
    expect(await rowsOf(tenant)).toHaveLength(3);
  });

  test('10 concurrent publishes with the same eventId: all resolve with it, one entry, one row', async () => {
    const { p, stream } = await connect();
    const tenant = uid('ws');
    const eventId = uid('evt');
    const ids = await Promise.all(Array.from({ length: 10 }, () => p.publish('fault.idem.concurrent', { same: true }, { tenantId: tenant, userId: 'u', eventId })));
    expect(ids).toEqual(Array(10).fill(eventId));
    const entries = await readStream(redis, stream);
    expect(entries.map((e) => e.event.id)).toEqual([eventId]);
    const rows = await rowsOf(tenant);
    expect(rows).toHaveLength(1);
    expect(rows[0].stream_id).toBe(entries[0].id);
  });

  test('concurrent duplicates spread over separate groups (batches and singles racing) still give one entry and one row per id', async () => {
    const { p, stream } = await connect();
    const tenant = uid('ws');
    const eventIds = Array.from({ length: 20 }, () => uid('evt'));
    const calls = [];
    for (let round = 0; round < 5; round++) {
      calls.push(p.publishBatch(eventIds.map((id, i) => ({ type: 'fault.idem.race', data: { i }, context: { tenantId: tenant, userId: 'u', eventId: id } }))));
      for (const id of eventIds) calls.push(p.publish('fault.idem.race', { id }, { tenantId: tenant, userId: 'u', eventId: id }));
    }
    await Promise.all(calls);
    const entries = await readStream(redis, stream);
    expect(entries.map((e) => e.event.id).sort()).toEqual([...eventIds].sort());
    const rows = await rowsOf(tenant);
    expect(rows).toHaveLength(20);
    const sid = Object.fromEntries(entries.map((e) => [e.event.id, e.id]));
    rows.forEach((row) => expect(row.stream_id).toBe(sid[row.event_id]));
  });

  // FINDING (see the report): rows are inserted in the caller's order, so two concurrent groups
  // that carry the same caller eventIds in different orders (two instances retrying the same batch,
  // a retry racing the original) lock the unique index entries in opposite orders; Postgres aborts
  // one with "deadlock detected" (40P01) after deadlock_timeout (1 s), and the publisher reports it
  // to the caller as a definite ERR_DATABASE instead of retrying the (rolled back) statement. The
  // stream_id UPDATE deadlocks the same way (it is retried, but each costs deadlock_timeout).
  test('two publishers publishing the same batch of eventIds in opposite orders at the same time both resolve (no deadlock surfaces)', async () => {
    const stream = uid('fault:stream');
    const a = await connect({ stream });
    const b = await connect({ stream });
    const tenant = uid('ws');
    const failures = [];
    for (let round = 0; round < 3; round++) {
      const ids = Array.from({ length: 300 }, (_, i) => `${uid('dl')}-${i}`);
      const events = ids.map((id, i) => ({ type: 'fault.idem.deadlock', data: { i }, context: { tenantId: tenant, userId: 'u', eventId: id } }));
      const [ra, rb] = await Promise.all([settle(a.p.publishBatch(events)), settle(b.p.publishBatch([...events].reverse()))]);
      for (const r of [ra, rb]) if (!r.ok) failures.push({ round, code: r.err.code, message: r.err.message.slice(0, 120) });
      // A deadlock that the publisher retries internally still costs deadlock_timeout (1 s).
      for (const r of [ra, rb]) if (r.ok && r.ms >= 1000) failures.push({ round, slow: `${r.ms} ms (a deadlock was waited out)` });
      if (ra.ok) expect(ra.value).toEqual(ids);
      if (rb.ok) expect(rb.value).toEqual([...ids].reverse());
    }
    expect(failures).toEqual([]);
    const entries = await readStream(redis, stream);
    expect(entries).toHaveLength(900);
    expect(new Set(entries.map((e) => e.event.id)).size).toBe(900);
    const rows = await rowsOf(tenant);
    expect(rows).toHaveLength(900);
    const sid = Object.fromEntries(entries.map((e) => [e.event.id, e.id]));
    rows.forEach((row) => expect(row.stream_id).toBe(sid[row.event_id]));
  });
});

describe('retention', () => {
  test('exact trimming (private Redis with --stream-node-max-entries 1): maxAgeMs 1000 and maxLen 3', async () => {
    const r = await redisServer(['--stream-node-max-entries', '1']);
    const client = await r.client();
    try {
      const byAge = await connect({ redisUrl: r.url, retention: { maxAgeMs: 1000 } });
      for (let i = 0; i < 5; i++) await byAge.p.publish('fault.retention.age', { i }, { tenantId: uid('ws'), userId: 'u' });
      expect(await client.xlen(byAge.stream)).toBe(5);
      await sleep(1200);
      const last = await byAge.p.publish('fault.retention.age', { i: 5 }, { tenantId: uid('ws'), userId: 'u' });
      expect(await client.xlen(byAge.stream)).toBe(1);
      expect((await readStream(client, byAge.stream))[0].event.id).toBe(last);

      const byLen = await connect({ redisUrl: r.url, retention: { maxLen: 3 } });
      const ids = [];
      for (let i = 0; i < 10; i++) ids.push(await byLen.p.publish('fault.retention.len', { i }, { tenantId: uid('ws'), userId: 'u' }));
      expect(await client.xlen(byLen.stream)).toBe(3);
      expect((await readStream(client, byLen.stream)).map((e) => e.event.id)).toEqual(ids.slice(-3));
    } finally {
      client.disconnect();
    }
  });

  test('approximate trimming on a default-config Redis: maxLen 100 with 350 events keeps between 100 and 349', async () => {
    const { p, stream } = await connect({ retention: { maxLen: 100 } });
    const tenant = uid('ws');
    for (let i = 0; i < 35; i++) {
      await p.publishBatch(Array.from({ length: 10 }, (_, j) => ({ type: 'fault.retention.approx', data: { i, j }, context: { tenantId: tenant, userId: 'u' } })));
    }
    const len = await redis.xlen(stream);
    expect(len).toBeGreaterThanOrEqual(100);
    expect(len).toBeLessThan(350);
    // Trimming is the stream's business only: every row is still there.
    expect(await rowsOf(tenant)).toHaveLength(350);
  });
});

describe('close()', () => {
  // CORE BUG (see the report): a publish's admission (in-flight count + closed check in
  // Publisher::submit) runs in the task the binding spawns (NativePublisher::submit →
  // napi spawn, or the async fn publishBatch), and close() is an async fn too, so their order on the
  // tokio runtime is not the order of the JavaScript calls: a close() called after publish() can
  // set `closed` first, and publishes the caller started before close() reject with ERR_CLOSED.
  test('publishes called before close() all resolve and are written (10 rounds: 200 publishes, then close() at once)', async () => {
    const outcome = [];
    for (let round = 0; round < 10; round++) {
      const { p, stream } = await connect({ logLevel: 'off' });
      if (round % 2) await p.publish('fault.close.warmup', {}, { tenantId: uid('warm'), userId: 'u' });
      const tenant = uid('ws');
      const pending = Array.from({ length: 200 }, (_, i) => settle(p.publish('fault.close.event', { i }, { tenantId: tenant, userId: 'u' })));
      const closing = p.close();
      const results = await Promise.all(pending);
      await closing;
      const refused = results.filter((r) => !r.ok);
      const ids = results.filter((r) => r.ok).map((r) => r.value);
      // Whatever resolved is fully written.
      const entries = await readStream(redis, stream);
      expect(entries.filter((e) => e.event.type === 'fault.close.event').map((e) => e.event.id).sort()).toEqual([...ids].sort());
      expect(await rowsOf(tenant)).toHaveLength(ids.length);
      outcome.push({ round, refused: refused.length, codes: [...new Set(refused.map((r) => r.err.code))] });
    }
    expect(outcome.filter((o) => o.refused > 0)).toEqual([]);
  });

  test('close() waits for publishes in flight (stalled on a paused Redis), resolves after them, then every call rejects with ERR_CLOSED', async () => {
    const r = await redisServer();
    const { p, stream } = await connect({ redisUrl: r.url, timeoutMs: 5000, circuitThreshold: 0 });
    const tenant = uid('ws');
    await p.publish('fault.close.warmup', {}, { tenantId: tenant, userId: 'u' });
    r.pause();
    let results;
    let closedAt;
    try {
      const pending = Array.from({ length: 200 }, (_, i) =>
        p.publish('fault.close.event', { i }, { tenantId: tenant, userId: 'u' }).then(
          (value) => ({ ok: true, value, at: Date.now() }),
          (err) => ({ ok: false, err, at: Date.now() }),
        ),
      );
      await sleep(200); // all admitted and waiting for Redis
      const closing = p.close().then(() => {
        closedAt = Date.now();
      });
      await sleep(300);
      expect(closedAt).toBeUndefined(); // still waiting for the 200
      r.resume();
      await closing;
      results = await Promise.all(pending);
    } finally {
      r.resume();
    }
    expect(results.filter((x) => !x.ok).map((x) => x.err.message)).toEqual([]);
    expect(closedAt).toBeGreaterThanOrEqual(Math.max(...results.map((x) => x.at)));
    const client = await r.client();
    try {
      const entries = await readStream(client, stream);
      expect(entries).toHaveLength(201);
      const sid = Object.fromEntries(entries.map((e) => [e.event.id, e.id]));
      const rows = await rowsOf(tenant);
      expect(rows).toHaveLength(201);
      rows.forEach((row) => expect(row.stream_id).toBe(sid[row.event_id]));

      const after = await settle(p.publish('fault.close.event', {}, { tenantId: tenant, userId: 'u' }));
      expect(after.err).toBeInstanceOf(EventPublisherError);
      expect(after.err.code).toBe('ERR_CLOSED');
      const afterBatch = await settle(p.publishBatch([{ type: 'fault.close.event', data: {}, context: { tenantId: tenant, userId: 'u' } }]));
      expect(afterBatch.err.code).toBe('ERR_CLOSED');
      const afterEmpty = await settle(p.publishBatch([]));
      expect(afterEmpty.err.code).toBe('ERR_CLOSED');
      await expect(p.close()).resolves.toBeUndefined();
      expect(await client.xlen(stream)).toBe(201);
    } finally {
      client.disconnect();
    }
  });

  test('a process that connects, publishes and never calls close() exits by itself', async () => {
    const stream = uid('fault:stream');
    const code = `
      const { EventPublisher } = require(${JSON.stringify(ROOT)});
      (async () => {
        const p = await EventPublisher.connect({ databaseUrl: ${JSON.stringify(DATABASE_URL)}, redisUrl: ${JSON.stringify(REDIS_URL)}, stream: ${JSON.stringify(stream)}, logLevel: 'off' });
        const id = await p.publish('fault.exit.event', { n: 1 }, { tenantId: 'exit-test', userId: 'u' });
        console.log(JSON.stringify({ id, at: Date.now() }));
      })().catch((e) => { console.error(e); process.exit(3); });
    `;
    const res = await runNode(code, { timeoutMs: 15_000 });
    const exitedAt = Date.now();
    expect(res.timedOut).toBe(false);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const { id, at } = JSON.parse(res.stdout.trim());
    // From the publish resolving to the process being gone.
    expect(exitedAt - at).toBeLessThan(5000);
    expect(res.ms).toBeLessThan(8000);
    expect((await readStream(redis, stream)).map((e) => e.event.id)).toEqual([id]);
  });
});

describe('secrets never appear in errors, log records or stderr', () => {
  const SECRETS = ['hunter2secret', 'pgsecret99', 'wrongpass777', 'p@ss'];
  const noSecret = (text) => {
    for (const s of SECRETS) expect(String(text)).not.toContain(s);
  };

  test('unreachable Redis / Postgres with passwords in their URLs', async () => {
    const closed = await freePort();
    const logs = [];
    const redisErr = await EventPublisher.connect({
      redisUrl: `redis://:hunter2secret@127.0.0.1:${closed}`,
      databaseUrl: DATABASE_URL,
      timeoutMs: 1500,
      logLevel: 'trace',
      logger: (e) => logs.push(e),
    }).catch((e) => e);
    expect(redisErr).toBeInstanceOf(EventPublisherError);
    expect(['ERR_REDIS', 'ERR_TIMEOUT']).toContain(redisErr.code);
    noSecret(redisErr.message);
    noSecret(redisErr.stack);

    const pgErr = await EventPublisher.connect({
      redisUrl: REDIS_URL,
      databaseUrl: `postgres://root:pgsecret99@127.0.0.1:${closed}/x`,
      timeoutMs: 1500,
      logLevel: 'trace',
      logger: (e) => logs.push(e),
    }).catch((e) => e);
    expect(pgErr).toBeInstanceOf(EventPublisherError);
    expect(['ERR_DATABASE', 'ERR_TIMEOUT']).toContain(pgErr.code);
    noSecret(pgErr.message);
    noSecret(pgErr.stack);
    // Percent-encoded password: neither the encoded nor the decoded form leaks.
    const encErr = await EventPublisher.connect({ redisUrl: `redis://:p%40ss@127.0.0.1:${closed}`, databaseUrl: DATABASE_URL, timeoutMs: 1500, logLevel: 'trace', logger: (e) => logs.push(e) }).catch((e) => e);
    expect(encErr).toBeInstanceOf(EventPublisherError);
    noSecret(encErr.message);
    expect(encErr.message).not.toContain('p%40ss');
    await sleep(100);
    noSecret(JSON.stringify(logs));
  });

  test('a wrong password against a Redis with requirepass', async () => {
    const r = await redisServer(['--requirepass', 'rightpass555']);
    const logs = [];
    const err = await EventPublisher.connect({
      redisUrl: `redis://:wrongpass777@127.0.0.1:${r.port}`,
      databaseUrl: DATABASE_URL,
      timeoutMs: 2000,
      logLevel: 'trace',
      logger: (e) => logs.push(e),
    }).catch((e) => e);
    expect(err).toBeInstanceOf(EventPublisherError);
    expect(['ERR_REDIS', 'ERR_TIMEOUT']).toContain(err.code);
    expect(err.message).toMatch(/WRONGPASS|invalid|auth/i);
    noSecret(err.message);
    noSecret(JSON.stringify(logs));
    // The right password works.
    const ok = await connect({ redisUrl: `redis://:rightpass555@127.0.0.1:${r.port}` });
    await expect(ok.p.publish('fault.auth.ok', {}, { tenantId: uid('ws'), userId: 'u' })).resolves.toMatch(CUID2);
  });

  test('on stderr (the default log sink at trace level) of a child process', async () => {
    const closed = await freePort();
    const r = await redisServer(['--requirepass', 'rightpass555']);
    const code = `
      const util = require('node:util');
      const { EventPublisher } = require(${JSON.stringify(ROOT)});
      (async () => {
        const urls = [
          [${JSON.stringify(`redis://:hunter2secret@127.0.0.1:${closed}`)}, ${JSON.stringify(DATABASE_URL)}],
          [${JSON.stringify(REDIS_URL)}, ${JSON.stringify(`postgres://root:pgsecret99@127.0.0.1:${closed}/x`)}],
          [${JSON.stringify(`redis://:wrongpass777@127.0.0.1:${r.port}`)}, ${JSON.stringify(DATABASE_URL)}],
        ];
        for (const [redisUrl, databaseUrl] of urls) {
          const e = await EventPublisher.connect({ redisUrl, databaseUrl, timeoutMs: 1500 }).then(() => null, (e) => e);
          console.log(e ? e.code : 'connected');
          console.error(util.inspect(e));
        }
      })();
    `;
    const res = await runNode(code, { timeoutMs: 20_000, env: { EVENT_PUBLISHER_LOG: 'trace' } });
    expect(res.timedOut).toBe(false);
    expect(res.code).toBe(0);
    const codes = res.stdout.trim().split('\n');
    expect(codes).toHaveLength(3);
    codes.forEach((c) => expect(['ERR_REDIS', 'ERR_DATABASE', 'ERR_TIMEOUT']).toContain(c));
    noSecret(res.stdout);
    noSecret(res.stderr);
  });
});

describe('configuration against the real stores', () => {
  test('a Prisma DATABASE_URL with pgbouncer, schema, connection_limit and sslmode=require publishes', async () => {
    const url = new URL(DATABASE_URL);
    url.search = '?pgbouncer=true&schema=public&connection_limit=2&sslmode=require';
    const { p, stream } = await connect({ databaseUrl: url.toString() });
    const tenant = uid('ws');
    const ids = await Promise.all(Array.from({ length: 20 }, (_, i) => p.publish('fault.config.prisma', { i }, { tenantId: tenant, userId: 'u' })));
    const entries = await readStream(redis, stream);
    expect(entries).toHaveLength(20);
    const rows = await rowsOf(tenant);
    expect(rows.map((r) => r.event_id).sort()).toEqual([...ids].sort());
    // The connection really is TLS.
    const { rows: ssl } = await db.query(
      `SELECT count(*)::int AS n FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE s.ssl AND a.datname = current_database() AND a.pid <> pg_backend_pid()`,
    );
    expect(ssl[0].n).toBeGreaterThanOrEqual(1);
  });

  test('an unknown DATABASE_URL parameter is refused with ERR_CONFIG naming it', async () => {
    const url = new URL(DATABASE_URL);
    url.searchParams.set('frobnicate_level', '3');
    const err = await EventPublisher.connect({ databaseUrl: url.toString(), redisUrl: REDIS_URL }).catch((e) => e);
    expect(err).toBeInstanceOf(EventPublisherError);
    expect(err.code).toBe('ERR_CONFIG');
    expect(err.message).toContain('frobnicate_level');
  });

  test('environment-only configuration (REDIS_HOST/REDIS_PORT/REDIS_PASSWORD, DATABASE_URL) in a child process', async () => {
    const r = await redisServer(['--requirepass', 'envpass123']);
    const tenant = uid('ws-env');
    const code = `
      const { EventPublisher } = require(${JSON.stringify(ROOT)});
      (async () => {
        const p = await EventPublisher.connect();
        const id = await p.publish('fault.config.env', { env: true }, { tenantId: ${JSON.stringify(tenant)}, userId: 'u' });
        await p.close();
        console.log(id);
      })().catch((e) => { console.error(e.code, e.message); process.exit(3); });
    `;
    const env = { REDIS_HOST: '127.0.0.1', REDIS_PORT: String(r.port), REDIS_PASSWORD: 'envpass123', DATABASE_URL, REDIS_URL: '', EVENT_PUBLISHER_LOG: 'off' };
    const res = await runNode(code, { env, timeoutMs: 15_000 });
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const id = res.stdout.trim();
    expect(id).toMatch(CUID2);
    const client = await r.client();
    try {
      // The default stream of the private Redis.
      const entries = await readStream(client, 'hyvve:events:main');
      expect(entries.map((e) => e.event.id)).toEqual([id]);
      expect((await rowsOf(tenant))[0]).toMatchObject({ event_id: id, stream_id: entries[0].id });
    } finally {
      client.disconnect();
    }
  });
});
