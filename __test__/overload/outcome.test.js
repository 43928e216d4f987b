'use strict';
// Issue 23, part 3: `outcomeUnknown` describes the event, not the attempt. Once an attempt with a
// caller eventId may have written (its rejection said outcomeUnknown), every later rejection of
// that eventId says outcomeUnknown too until the event is settled (a later attempt resolves, or
// the stores show nothing of it), whichever step refuses it: the circuit breaker, the
// in-flight bound, close(), or a store's definite refusal. Checked against the stores: each
// rejection that says outcomeUnknown false leaves no entry and no row for its eventId.

const { EventPublisher } = require('../..');
const { DATABASE_URL, uid, ensureDatabase, pgClient, privateRedis, readStream } = require('../support/stores');

let db;
const servers = [];
const publishers = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const settle = (p) => p.then((value) => ({ ok: true, value }), (err) => ({ ok: false, err }));

beforeAll(async () => {
  await ensureDatabase();
  db = await pgClient();
});

afterAll(async () => {
  await Promise.all(publishers.map((p) => p.close().catch(() => {})));
  for (const s of servers) await s.stop().catch(() => {});
  if (db) await db.end();
});

async function setup(options) {
  const r = await privateRedis();
  servers.push(r);
  const stream = uid('outcome');
  const p = await EventPublisher.connect({ databaseUrl: DATABASE_URL, redisUrl: r.url, stream, logLevel: 'off', ...options });
  publishers.push(p);
  await p.publish('outcome.warmup', {}, { tenantId: uid('warm'), userId: 'u' });
  return { r, p, stream };
}

const rowsFor = async (eventId) => (await db.query('SELECT event_id, stream_id, status FROM event_metadata WHERE event_id = $1', [eventId])).rows;

async function entriesFor(r, stream, eventId) {
  const c = await r.client();
  try {
    return (await readStream(c, stream)).filter((e) => e.event.id === eventId);
  } finally {
    c.disconnect();
  }
}

/** Publishes `eventId` with Redis paused past timeoutMs: the attempt's row is in, its append is not answered. */
/** Retries the publish of `ctx.eventId` (up to `tries`, 100 ms apart) until it resolves, then
 * checks the event is complete: its id, one entry, one row holding that entry's ID. */
async function retryUntilComplete(r, p, stream, ctx, tries) {
  let id;
  for (let i = 0; i < tries && !id; i++) {
    const res = await settle(p.publish('outcome.event', { n: 1 }, ctx));
    if (res.ok) id = res.value;
    else await sleep(100);
  }
  expect(id).toBe(ctx.eventId);
  const entries = await entriesFor(r, stream, ctx.eventId);
  expect(entries).toHaveLength(1);
  const rows = await rowsFor(ctx.eventId);
  expect(rows).toHaveLength(1);
  expect(rows[0].stream_id).toBe(entries[0].id);
}

async function unknownAttempt(r, p, ctx) {
  r.pause();
  let res;
  try {
    res = await settle(p.publish('outcome.event', { n: 1 }, ctx));
  } finally {
    // Resumed by the caller when it wants Redis back.
  }
  expect(res.ok).toBe(false);
  expect(res.err.code).toBe('ERR_TIMEOUT');
  expect(res.err.outcomeUnknown).toBe(true);
  return res.err;
}

test('circuit open after an outcome-unknown attempt: the retry is rejected ERR_CIRCUIT_OPEN with outcomeUnknown true (its row exists); after the cooldown the retry settles it', async () => {
  const { r, p, stream } = await setup({ timeoutMs: 800, circuitThreshold: 1, circuitCooldownMs: 3000 });
  const eventId = uid('evt');
  const ctx = { tenantId: uid('ws'), userId: 'u', eventId };
  await unknownAttempt(r, p, ctx);
  // The attempt's group gives up (timeoutMs after it started) and opens the circuit.
  for (let i = 0; i < 100 && p.stats().circuitState !== 2; i++) await sleep(50);
  expect(p.stats().circuitState).toBe(2);
  r.resume();
  const again = await settle(p.publish('outcome.event', { n: 1 }, ctx));
  expect(again.ok).toBe(false);
  expect(again.err.code).toBe('ERR_CIRCUIT_OPEN');
  // What the first attempt wrote: the PENDING row (and maybe the entry, once Redis answers).
  expect(await rowsFor(eventId)).toHaveLength(1);
  expect(again.err.outcomeUnknown).toBe(true);
  // Another event id, never attempted: the refusal is definite.
  const other = await settle(p.publish('outcome.event', { n: 2 }, { ...ctx, eventId: uid('evt') }));
  expect(other.err.code).toBe('ERR_CIRCUIT_OPEN');
  expect(other.err.outcomeUnknown).toBe(false);
  // The retry after the cooldown settles the event: one entry, one row.
  await sleep(3100);
  await retryUntilComplete(r, p, stream, ctx, 50);
});

test('a store\'s definite refusal of a retry (Redis refusing connections) after an outcome-unknown attempt is outcome-unknown: the earlier row is there', async () => {
  const { r, p, stream } = await setup({ timeoutMs: 800, circuitThreshold: 0 });
  const eventId = uid('evt');
  const ctx = { tenantId: uid('ws'), userId: 'u', eventId };
  await unknownAttempt(r, p, ctx);
  await r.stop(); // SIGKILL while stopped: connections are now refused
  await sleep(900); // the first attempt's own retries are over
  const again = await settle(p.publish('outcome.event', { n: 1 }, ctx));
  expect(again.ok).toBe(false);
  expect(['ERR_REDIS', 'ERR_TIMEOUT']).toContain(again.err.code);
  const rows = await rowsFor(eventId);
  // The rule: outcomeUnknown false would mean no entry and no row for this eventId.
  expect(again.err.outcomeUnknown || rows.length === 0).toBe(true);
  expect(again.err.outcomeUnknown).toBe(true);
  // Redis back (empty, no persistence): the retry completes the event.
  await r.start();
  await retryUntilComplete(r, p, stream, ctx, 80);
});

test('ERR_OVERLOADED and ERR_CLOSED for an eventId whose earlier attempt may have written are outcome-unknown; for a fresh eventId definite', async () => {
  const { r, p } = await setup({ timeoutMs: 800, circuitThreshold: 0, maxInFlight: 1 });
  const eventId = uid('evt');
  const ctx = { tenantId: uid('ws'), userId: 'u', eventId };
  await unknownAttempt(r, p, ctx);
  // Redis still paused: one publish holds the only in-flight place; the retry is refused.
  const holder = settle(p.publish('outcome.hold', {}, { tenantId: uid('ws'), userId: 'u' }));
  const retry = await settle(p.publish('outcome.event', { n: 1 }, ctx));
  const fresh = await settle(p.publish('outcome.event', { n: 1 }, { ...ctx, eventId: uid('evt') }));
  expect(retry.err.code).toBe('ERR_OVERLOADED');
  expect(retry.err.outcomeUnknown).toBe(true);
  expect(fresh.err.code).toBe('ERR_OVERLOADED');
  expect(fresh.err.outcomeUnknown).toBe(false);
  r.resume();
  await holder;
  await p.close();
  const closed = await settle(p.publish('outcome.event', { n: 1 }, ctx));
  expect(closed.err.code).toBe('ERR_CLOSED');
  expect(closed.err.outcomeUnknown).toBe(true);
  expect(await rowsFor(eventId)).toHaveLength(1);
});
