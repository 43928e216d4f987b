'use strict';
// Issue 23, part 2: no long command on the shared Redis, whatever the batch size. publishBatch
// of 1, 1,000, 10,000 and 100,000 events on a private Redis: the longest command of the
// publisher in SLOWLOG is at most 10 ms, and a PING loop in another process never waits more
// than 20 ms. A batch larger than one part is written as consecutive parts (docs/overload.md):
// a rejection's `publishedIds` are complete events (entry and row), a prefix of the batch in
// input order; the rejection (code, outcomeUnknown) is about the other events. Faults between
// parts: a WRONGTYPE reply to the second part, an OOM reply to a later part, Redis killed (with
// an append-only file, so what it acknowledged survives) between parts.

const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');
const { EventPublisher } = require('../..');
const { DATABASE_URL, uid, ensureDatabase, pgClient, privateRedis } = require('../support/stores');

// docs/overload.md: a part is at most 500 events (and at most 2 MiB of event JSON).
const PART = 500;

let db;
const servers = [];
const publishers = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  await ensureDatabase();
  db = await pgClient();
});

afterAll(async () => {
  await Promise.all(publishers.map((p) => p.close().catch(() => {})));
  for (const s of servers) await s.stop().catch(() => {});
  if (db) await db.end();
});

async function server(args = []) {
  const r = await privateRedis(args);
  servers.push(r);
  return r;
}

async function connect(r, extra = {}) {
  const stream = uid('parts');
  const p = await EventPublisher.connect({ databaseUrl: DATABASE_URL, redisUrl: r.url, stream, logLevel: 'off', timeoutMs: 10000, ...extra });
  publishers.push(p);
  await p.publish('parts.warmup', {}, { tenantId: uid('warm'), userId: 'u' });
  return { p, stream };
}

const event = (tenant, i, eventId) => ({
  type: 'parts.event',
  data: { i, note: 'a small event, about the size of the platform\'s approval events' },
  context: eventId ? { tenantId: tenant, userId: 'u', eventId } : { tenantId: tenant, userId: 'u' },
});

/** The stream's entries as [{ id, eventId }] in stream order, read in pages. */
async function entries(c, stream) {
  const out = [];
  let from = '-';
  for (;;) {
    const page = await c.xrange(stream, from, '+', 'COUNT', 5000);
    for (const [id, f] of page) {
      const e = JSON.parse(f[1]);
      out.push({ id, eventId: e.id, tenantId: e.tenantId });
    }
    if (page.length < 5000) return out;
    from = `(${page[page.length - 1][0]}`;
  }
}

/** Checks that exactly `ids` (in this order) are in the stream for `tenant`, each with its row holding its entry's ID. */
async function expectExactly(c, stream, tenant, ids) {
  const es = (await entries(c, stream)).filter((e) => e.tenantId === tenant);
  const { rows } = await db.query('SELECT event_id, stream_id FROM event_metadata WHERE tenant_id = $1', [tenant]);
  expect(es.map((e) => e.eventId)).toEqual(ids);
  expect(rows).toHaveLength(ids.length);
  const sid = new Map(es.map((e) => [e.eventId, e.id]));
  expect(rows.filter((r) => sid.get(r.event_id) !== r.stream_id)).toEqual([]);
}

function pingLoop(url) {
  const child = spawn(process.execPath, [path.join(__dirname, 'ping-loop.js'), url], { stdio: ['pipe', 'pipe', 'inherit'] });
  favour(child.pid);
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  const ready = new Promise((resolve) => {
    const check = () => (out.includes('ready') ? resolve() : setTimeout(check, 10));
    check();
  });
  return {
    ready,
    async stop() {
      child.stdin.end();
      await new Promise((r) => child.once('exit', r));
      return JSON.parse(out.split('\n').filter(Boolean).pop());
    },
  };
}

/** The publisher's commands in SLOWLOG (the append script, XADD), longest first: [{ ms, cmd }]. */
async function publisherSlowlog(c) {
  const log = await c.slowlog('GET', '-1');
  return log
    .map((e) => ({ ms: e[2] / 1000, cmd: String(e[3][0]).toUpperCase() }))
    .filter((e) => ['EVALSHA', 'EVAL', 'XADD', 'XTRIM'].includes(e.cmd))
    .sort((a, b) => b.ms - a.ms);
}

/**
 * SLOWLOG and a PING's wait are wall-clock times: on a machine whose CPUs are busy with other work
 * a command is preempted mid-way (here a single-entry XADD once showed 28 ms, a 500-event call
 * 27 ms). The server and the PING loop run with a real-time priority (SCHED_FIFO 1; we are root in
 * CI; both sleep in epoll between commands, so they take no CPU from the rest), so that what is
 * measured is the command's own length, not the scheduler's; failing that, niced; failing both,
 * measured as they come.
 */
function favour(pid) {
  for (const [cmd, args] of [['chrt', ['-f', '-p', '1', String(pid)]], ['renice', ['-n', '-10', '-p', String(pid)]]]) {
    try {
      execFileSync(cmd, args, { stdio: 'ignore' });
      return;
    } catch {
      // not permitted or not installed: the next, or as is
    }
  }
}

describe('the longest command whatever the batch size', () => {
  let r;
  let c;
  beforeAll(async () => {
    r = await server();
    favour(r.pid);
    c = await r.client();
  });
  afterAll(() => c && c.disconnect());

  test.each([1, 1000, 10000, 100000])('publishBatch of %i events: resolves; every event complete; SLOWLOG\'s longest publisher command <= 10 ms; a PING loop waited <= 20 ms', async (n) => {
    const { p, stream } = await connect(r, { timeoutMs: 5000 });
    const tenant = uid('ws');
    const events = Array.from({ length: n }, (_, i) => event(tenant, i));
    await c.config('SET', 'slowlog-log-slower-than', '1000');
    await c.config('SET', 'slowlog-max-len', '10000');
    await c.slowlog('RESET');
    const ping = pingLoop(r.url);
    await ping.ready;
    const t0 = Date.now();
    let ids;
    let pinged;
    try {
      ids = await p.publishBatch(events);
    } finally {
      pinged = await ping.stop();
    }
    const ms = Date.now() - t0;
    const { worstMs, count } = pinged;
    const slow = await publisherSlowlog(c);
    console.log(`publishBatch ${n}: ${ms} ms; longest publisher command ${slow.length ? `${slow[0].ms} ms (${slow[0].cmd})` : 'under 1 ms'}; worst PING ${worstMs.toFixed(1)} ms of ${count}`);
    expect(ids).toHaveLength(n);
    await expectExactly(c, stream, tenant, ids);
    expect(slow.filter((s) => s.ms > 10)).toEqual([]);
    expect(worstMs).toBeLessThanOrEqual(20);
  }, 180_000);
});

describe('a fault between parts', () => {
  test('WRONGTYPE reply to the second part: rejects ERR_REDIS (definite) with publishedIds = the first part; exactly those are written, complete', async () => {
    const r = await server();
    const c = await r.client();
    try {
      const { p, stream } = await connect(r);
      const tenant = uid('ws');
      const ids = Array.from({ length: 3 * PART }, () => uid('ev'));
      // The second part's first event finds its dedup key holding a hash: its script call fails
      // before it appends anything.
      await c.hset(`{${stream}}:dedup:${ids[PART]}`, 'f', 'v');
      const err = await p.publishBatch(ids.map((id, i) => event(tenant, i, id))).catch((e) => e);
      expect(err.code).toBe('ERR_REDIS');
      expect(err.message).toMatch(/WRONGTYPE/);
      expect(err.outcomeUnknown).toBe(false);
      expect(err.publishedIds).toEqual(ids.slice(0, PART));
      await expectExactly(c, stream, tenant, ids.slice(0, PART));
      // The rest goes out by itself once the fault is gone (a retry of what was not published).
      await c.del(`{${stream}}:dedup:${ids[PART]}`);
      const rest = ids.slice(PART);
      expect(await p.publishBatch(rest.map((id, i) => event(tenant, PART + i, id)))).toEqual(rest);
      await expectExactly(c, stream, tenant, ids);
    } finally {
      c.disconnect();
    }
  }, 120_000);

  test('OOM reply to a later part (maxmemory set once the first part is in): rejects ERR_REDIS (definite); publishedIds are whole parts, a prefix, exactly what is written', async () => {
    const r = await server();
    const c = await r.client();
    try {
      const { p, stream } = await connect(r);
      const tenant = uid('ws');
      const n = 40 * PART;
      let armed = true;
      const watcher = (async () => {
        while (armed) {
          if ((await c.xlen(stream)) > 1) {
            await c.config('SET', 'maxmemory', '1');
            return true;
          }
          await sleep(1);
        }
        return false;
      })();
      const err = await p.publishBatch(Array.from({ length: n }, (_, i) => event(tenant, i))).catch((e) => e);
      armed = false;
      expect(await watcher).toBe(true);
      await c.config('SET', 'maxmemory', '0');
      expect(err.code).toBe('ERR_REDIS');
      expect(err.message).toMatch(/OOM/);
      expect(err.outcomeUnknown).toBe(false);
      expect(err.publishedIds.length).toBeGreaterThanOrEqual(PART);
      expect(err.publishedIds.length % PART).toBe(0);
      expect(err.publishedIds.length).toBeLessThan(n);
      await expectExactly(c, stream, tenant, err.publishedIds);
    } finally {
      c.disconnect();
    }
  }, 120_000);

  test('Redis killed between parts (append-only file, fsync always) and restarted: publishedIds are complete; nothing of the events after the failed part; the failed part as outcomeUnknown says', async () => {
    const r = await server(['--appendonly', 'yes', '--appendfsync', 'always', '--dir', require('node:os').tmpdir(), '--appendfilename', `${uid('aof')}.aof`]);
    let c = await r.client();
    const { p, stream } = await connect(r, { circuitThreshold: 0 });
    const tenant = uid('ws');
    const n = 40 * PART;
    const ids = Array.from({ length: n }, () => uid('ev'));
    let armed = true;
    const watcher = (async () => {
      while (armed) {
        if ((await c.xlen(stream).catch(() => 0)) > 1) {
          await r.stop();
          return true;
        }
        await sleep(1);
      }
      return false;
    })();
    const err = await p.publishBatch(ids.map((id, i) => event(tenant, i, id))).catch((e) => e);
    armed = false;
    expect(await watcher).toBe(true);
    c.disconnect();
    await r.start();
    c = await r.client();
    try {
      expect(['ERR_REDIS', 'ERR_TIMEOUT']).toContain(err.code);
      const published = err.publishedIds;
      expect(published.length).toBeGreaterThanOrEqual(PART);
      expect(published).toEqual(ids.slice(0, published.length));
      const es = new Map((await entries(c, stream)).map((e) => [e.eventId, e.id]));
      const { rows } = await db.query('SELECT event_id, stream_id FROM event_metadata WHERE tenant_id = $1', [tenant]);
      const rowOf = new Map(rows.map((x) => [x.event_id, x.stream_id]));
      // Published: complete.
      for (const id of published) {
        expect(es.get(id)).toBeDefined();
        expect(rowOf.get(id)).toBe(es.get(id));
      }
      // The failed part: nothing if definite; anything (a whole part at most) if unknown.
      const failed = ids.slice(published.length, published.length + PART);
      if (!err.outcomeUnknown) for (const id of failed) expect([es.has(id), rowOf.has(id)]).toEqual([false, false]);
      // After it: nothing.
      for (const id of ids.slice(published.length + PART)) expect([es.has(id), rowOf.has(id)]).toEqual([false, false]);
      // A retry of the rest with the same eventIds converges: every event exactly once.
      let done = null;
      for (let i = 0; i < 50 && !done; i++) {
        done = await p.publishBatch(ids.slice(published.length).map((id, k) => event(tenant, published.length + k, id))).catch(() => null);
        if (!done) await sleep(200);
      }
      expect(done).toEqual(ids.slice(published.length));
      await expectExactly(c, stream, tenant, ids);
    } finally {
      c.disconnect();
    }
  }, 180_000);
});
