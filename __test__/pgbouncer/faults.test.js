'use strict';
// Issue 11, item 5: faults through PgBouncer (transaction pooling, default_pool_size = 2, in
// front of a private Postgres). While 8 callers publish with caller eventIds:
//   1. PgBouncer is restarted (SIGINT, its safe shutdown, then started on the same port);
//   2. RECONNECT from its admin console;
//   3. PAUSE from the console for longer than timeoutMs, then RESUME;
//   4. Postgres behind it is restarted (fast shutdown).
// Every publish settles, resolved or rejected with a code, within timeoutMs (plus scheduling
// slack on this shared machine); publishing recovers without a new connect(); every rejected
// publish is retried with the same eventId until it resolves (outcome unknown converges); then
// the stream and the table hold exactly one entry and one row per event, with matching ids.
// This is also the chaos invariant check through PgBouncer, at a reduced count.

const Redis = require('ioredis');
const { Client } = require('pg');
const { EventPublisher } = require('../..');
const { REDIS_URL, uid, startPostgres, readStreamPaged } = require('../support/stores');
const { startPgBouncer, pgbouncerMissing, version } = require('../support/pgbouncer');

const TIMEOUT_MS = 1500;
const SLACK_MS = 1000; // timers on a 2-core machine shared with builds and other suites
const CALLERS = 8;
const CODES = ['ERR_DATABASE', 'ERR_TIMEOUT'];

jest.setTimeout(120_000);

let pg;
let bouncer;
let redis;
let publisher;
let stream;
const logs = [];
const tenant = uid('pgb-fault');
const ctx = (eventId) => ({ tenantId: tenant, userId: 'u', eventId });
const all = new Map(); // eventId -> last outcome
const timings = [];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  const missing = pgbouncerMissing();
  if (missing) throw new Error(missing);
  pg = await startPostgres();
  bouncer = await startPgBouncer({ serverPort: pg.port, mode: 'transaction', poolSize: 2 });
  redis = new Redis(REDIS_URL);
  stream = uid('pgb:faults');
  publisher = await EventPublisher.connect({
    redisUrl: REDIS_URL,
    databaseUrl: bouncer.url('hyvve_publisher_test'),
    stream,
    timeoutMs: TIMEOUT_MS,
    circuitThreshold: 0, // every publish reaches the stores
    logger: (e) => logs.push(e),
  });
});

afterAll(async () => {
  if (publisher) await publisher.close().catch(() => {});
  if (bouncer) await bouncer.destroy();
  if (pg) await pg.destroy();
  if (redis) redis.disconnect();
  // The figures for the closing note.
  if (timings.length) console.log(`${version()} transaction pooling, fault timings:\n${timings.join('\n')}`);
});

async function publishOne(eventId) {
  const t = Date.now();
  try {
    await publisher.publish('pgbouncer.fault', { eventId }, ctx(eventId));
    all.set(eventId, { ok: true });
    return { ok: true, ms: Date.now() - t };
  } catch (err) {
    all.set(eventId, { ok: false, err });
    return { ok: false, err, ms: Date.now() - t };
  }
}

/** Publishes from CALLERS callers while `fault()` runs, and for `afterMs` after it; returns the outcomes. */
async function underLoad(fault, afterMs = 500) {
  let stop = false;
  const outcomes = [];
  const callers = Array.from({ length: CALLERS }, async () => {
    while (!stop) {
      const r = await publishOne(uid('ev'));
      outcomes.push(r);
      if (!r.ok) await sleep(20);
    }
  });
  await sleep(200);
  await fault();
  await sleep(afterMs);
  stop = true;
  await Promise.all(callers);
  return outcomes;
}

/** Publishes until one resolves; returns how long that took (and the errors seen meanwhile). */
async function recoveryMs(limit = 20_000) {
  const t = Date.now();
  const seen = new Set();
  for (;;) {
    const r = await publishOne(uid('probe'));
    if (r.ok) {
      const ms = Date.now() - t;
      return seen.size ? `${ms} ms (meanwhile: ${[...seen].join(' | ')})` : `${ms} ms`;
    }
    seen.add(`${r.err.code} ${r.err.message.replace(/\(database [^)]*\)/, '').slice(0, 140)}`);
    if (Date.now() - t > limit) throw new Error(`publishing did not recover: ${[...seen].join(' | ')}`);
    await sleep(50);
  }
}

function check(name, outcomes, recovered) {
  const failed = outcomes.filter((o) => !o.ok);
  const slowest = Math.max(...outcomes.map((o) => o.ms));
  const codes = [...new Set(failed.map((o) => o.err.code))].sort();
  timings.push(
    `  ${name}: ${outcomes.length} publishes, ${failed.length} rejected (${codes.join(', ') || 'none'}), slowest settled in ${slowest} ms, first success after ${recovered}`,
  );
  expect(outcomes.length).toBeGreaterThan(0);
  for (const o of outcomes) expect(o.ms).toBeLessThanOrEqual(TIMEOUT_MS + SLACK_MS);
  for (const o of failed) expect(CODES).toContain(o.err.code);
  expect(failed.filter((o) => /prepared statement/i.test(o.err.message))).toEqual([]);
}

test('PgBouncer restarted (SIGINT, then started on the same port)', async () => {
  const before = bouncer.child.pid;
  const outcomes = await underLoad(() => bouncer.restart('SIGINT'));
  expect(bouncer.child.pid).not.toBe(before); // a new PgBouncer process on the same port
  check('restart', outcomes, await recoveryMs());
});

test('RECONNECT from the admin console', async () => {
  const outcomes = await underLoad(() => bouncer.command('RECONNECT'));
  check('RECONNECT', outcomes, await recoveryMs());
  expect(outcomes.filter((o) => !o.ok).length).toBe(0); // RECONNECT closes server connections only once released
});

test('PAUSE past timeoutMs: ERR_TIMEOUT, then RESUME and retries converge', async () => {
  let paused;
  const outcomes = await underLoad(async () => {
    const console = await bouncer.admin();
    paused = console.query('PAUSE').catch((e) => e);
    await sleep(TIMEOUT_MS + 700);
    await bouncer.command('RESUME');
    await paused;
    await console.end().catch(() => {});
  });
  check('PAUSE', outcomes, await recoveryMs());
  expect(outcomes.some((o) => !o.ok && o.err.code === 'ERR_TIMEOUT')).toBe(true);
});

test('Postgres restarted behind PgBouncer', async () => {
  const outcomes = await underLoad(async () => {
    await pg.stop('fast');
    await sleep(300);
    await pg.start();
  });
  check('Postgres restart', outcomes, await recoveryMs());
  expect(outcomes.some((o) => !o.ok)).toBe(true); // the fault was felt
});

test('retries with the same eventIds converge: one entry and one row per event', async () => {
  const rejected = [...all].filter(([, o]) => !o.ok).map(([id]) => id);
  for (const id of rejected) {
    const until = Date.now() + 10_000;
    while (!(await publishOne(id)).ok) {
      if (Date.now() > until) throw new Error(`retry of ${id} did not resolve`);
      await sleep(50);
    }
  }
  const entries = await readStreamPaged(redis, stream);
  const db = new Client({ connectionString: pg.url });
  await db.connect();
  const { rows } = await db.query('SELECT event_id, stream_id FROM event_metadata WHERE tenant_id = $1', [tenant]);
  await db.end();
  const rowOf = new Map(rows.map((r) => [r.event_id, r.stream_id]));
  for (const e of entries) e.event = JSON.parse(e.raw);
  const entryIds = entries.map((e) => e.event.id);
  timings.push(`  chaos invariants: ${all.size} events (${rejected.length} rejected once, then retried), ${entries.length} entries, ${rows.length} rows`);
  expect(new Set(entryIds).size).toBe(entryIds.length); // no duplicate entries
  expect(rows.length).toBe(all.size); // a row per event, none extra
  expect(entries.length).toBe(all.size); // an entry per event
  for (const e of entries) expect(rowOf.get(e.event.id)).toBe(e.id);
  expect(logs.filter((l) => /prepared statement/i.test(JSON.stringify(l)))).toEqual([]);
});
