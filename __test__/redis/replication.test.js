'use strict';
// Issue 10: replicaAcks. With replicaAcks 1 a publish resolves only once a replica holds its
// entry: a paused replica makes publishes reject ERR_NOT_REPLICATED (outcome unknown) within
// timeoutMs and retries converge after it resumes; a primary killed under load and replaced by its
// replica loses no resolved event. The same kill with replicaAcks 0 is measured, not asserted.

const { EventPublisher } = require('../..');
const { DATABASE_URL, ensureDatabase, pgClient, uid } = require('../support/stores');
const { startReplicated, onNode, sleep } = require('../support/redis-topologies');

let db;
const publishers = [];
const pairs = [];

beforeAll(async () => {
  await ensureDatabase();
  db = await pgClient();
});

afterAll(async () => {
  await Promise.all(publishers.map((p) => p.close().catch(() => {})));
  for (const pair of pairs) await pair.stop();
  if (db) await db.end();
});

async function connect(opts) {
  const p = await EventPublisher.connect({ databaseUrl: DATABASE_URL, logLevel: 'error', circuitThreshold: 0, ...opts });
  publishers.push(p);
  return p;
}

async function pair() {
  const r = await startReplicated({ replicas: 1 });
  pairs.push(r);
  return r;
}

const streamIds = async (port, stream) => (await onNode(port, (c) => c.xrange(stream, '-', '+'))).map(([id, f]) => ({ id, eventId: JSON.parse(f[1]).id }));

test('replicaAcks 1, replica paused (SIGSTOP): publishes reject ERR_NOT_REPLICATED with outcomeUnknown within timeoutMs; after SIGCONT they resolve and retries with the same eventIds converge to one entry and one row each', async () => {
  const { primary, replicas } = await pair();
  const stream = uid('repl');
  const timeoutMs = 1500;
  const p = await connect({ redisUrl: primary.url, stream, replicaAcks: 1, timeoutMs });
  const tenant = uid('ws');
  const ctx = (eventId) => ({ tenantId: tenant, userId: 'u', eventId });
  const first = uid('ev');
  expect(await p.publish('repl.ok', { n: 0 }, ctx(first))).toBe(first);

  replicas[0].pause();
  const rejected = [];
  try {
    for (let i = 0; i < 3; i++) {
      const id = uid('ev');
      const t = Date.now();
      const err = await p.publish('repl.paused', { i }, ctx(id)).then(() => null, (e) => e);
      rejected.push({ id, code: err && err.code, outcomeUnknown: err && err.outcomeUnknown, ms: Date.now() - t });
    }
  } finally {
    replicas[0].resume();
  }
  expect(rejected.map(({ code, outcomeUnknown }) => ({ code, outcomeUnknown }))).toEqual(rejected.map(() => ({ code: 'ERR_NOT_REPLICATED', outcomeUnknown: true })));
  for (const r of rejected) expect(r.ms).toBeLessThanOrEqual(timeoutMs + 100);

  const after = uid('ev');
  expect(await p.publish('repl.ok', { n: 1 }, ctx(after))).toBe(after);
  for (const r of rejected) expect(await p.publish('repl.paused', { retry: true }, ctx(r.id))).toBe(r.id);
  const entries = await streamIds(replicas[0].port, stream);
  const all = [first, ...rejected.map((r) => r.id), after];
  expect(entries.map((e) => e.eventId).sort()).toEqual([...all].sort());
  const { rows } = await db.query('SELECT event_id, stream_id FROM event_metadata WHERE tenant_id = $1', [tenant]);
  const sid = Object.fromEntries(entries.map((e) => [e.eventId, e.id]));
  expect(rows).toHaveLength(all.length);
  expect(rows.filter((r) => sid[r.event_id] !== r.stream_id)).toEqual([]);
});

test('replicaAcks 1, replica paused (SIGSTOP), 64 publishes in flight: every one rejects ERR_NOT_REPLICATED with outcomeUnknown within timeoutMs (a group waiting for its replica holds up no other group)', async () => {
  const { primary, replicas } = await pair();
  const stream = uid('repl64');
  const timeoutMs = 1500;
  const p = await connect({ redisUrl: primary.url, stream, replicaAcks: 1, timeoutMs });
  const tenant = uid('ws');
  expect(await p.publish('repl.ok', { n: 0 }, { tenantId: tenant, userId: 'u' })).toBeTruthy();

  replicas[0].pause();
  const results = [];
  try {
    const until = Date.now() + 3 * timeoutMs;
    const worker = async () => {
      while (Date.now() < until) {
        const t = Date.now();
        const err = await p.publish('repl.paused', { t }, { tenantId: tenant, userId: 'u' }).then(() => null, (e) => e);
        results.push({ code: err ? err.code : 'resolved', outcomeUnknown: err ? err.outcomeUnknown : null, ms: Date.now() - t });
      }
    };
    await Promise.all(Array.from({ length: 64 }, worker));
  } finally {
    replicas[0].resume();
  }
  const byCode = {};
  for (const r of results) byCode[r.code] = (byCode[r.code] || 0) + 1;
  const slowest = Math.max(...results.map((r) => r.ms));
  const spread = (code) => { const ms = results.filter((r) => r.code === code).map((r) => r.ms).sort((a, b) => a - b); return ms.length ? `${ms[0]}..${ms[ms.length - 1]} ms (median ${ms[ms.length >> 1]})` : '-'; };
  console.log(`durations: NOT_REPLICATED ${spread('ERR_NOT_REPLICATED')}, TIMEOUT ${spread('ERR_TIMEOUT')}`);
  console.log(`replicaAcks 1, replica paused, 64 in flight: ${results.length} publishes, by code ${JSON.stringify(byCode)}, slowest rejection ${slowest} ms (timeoutMs ${timeoutMs})`);
  expect(results.length).toBeGreaterThanOrEqual(64 * 2);
  expect(byCode).toEqual({ ERR_NOT_REPLICATED: results.length });
  expect(results.filter((r) => r.outcomeUnknown !== true)).toEqual([]);
  expect(slowest).toBeLessThanOrEqual(timeoutMs + 100);
  // Resumed: publishing resolves again.
  expect(await p.publish('repl.ok', { n: 1 }, { tenantId: tenant, userId: 'u' })).toBeTruthy();
});

/**
 * 64 publishes in flight on a primary with one replica; the primary is SIGKILLed 300 ms into the
 * load and the replica promoted (REPLICAOF NO ONE). Returns the ids that resolved and how many of
 * them the promoted replica does not have.
 */
async function killUnderLoad(replicaAcks) {
  const { primary, replicas } = await pair();
  const stream = uid('kill');
  const p = await connect({ redisUrl: primary.url, stream, replicaAcks, timeoutMs: 1000 });
  const tenant = uid('ws');
  const resolved = [];
  let stop = false;
  const worker = async () => {
    while (!stop) {
      const id = uid('ev');
      try {
        await p.publish('repl.load', { id }, { tenantId: tenant, userId: 'u', eventId: id });
        resolved.push(id);
      } catch {
        // rejected: not counted as acknowledged
        await sleep(5);
      }
    }
  };
  const workers = Array.from({ length: 64 }, worker);
  await sleep(300);
  await primary.stop(); // SIGKILL, waited for
  const resolvedAtKill = resolved.length;
  await onNode(replicas[0].port, (c) => c.call('REPLICAOF', 'NO', 'ONE'));
  stop = true;
  await Promise.all(workers);
  const have = new Set((await streamIds(replicas[0].port, stream)).map((e) => e.eventId));
  const missing = resolved.filter((id) => !have.has(id));
  return { resolved: resolved.length, resolvedAtKill, missing: missing.length };
}

test('replicaAcks 1: primary SIGKILLed under load (64 in flight) and its replica promoted: every publish that resolved has its entry on the new primary', async () => {
  const r = await killUnderLoad(1);
  console.log(`replicaAcks 1: ${r.resolved} resolved (${r.resolvedAtKill} when the primary was killed), ${r.missing} missing on the promoted replica`);
  expect(r.resolved).toBeGreaterThan(50);
  expect(r.missing).toBe(0);
});

test('replicaAcks 0: the same kill, measured (resolved events missing on the promoted replica are reported, not asserted)', async () => {
  const r = await killUnderLoad(0);
  console.log(`replicaAcks 0: ${r.resolved} resolved (${r.resolvedAtKill} when the primary was killed), ${r.missing} missing on the promoted replica`);
  expect(r.resolved).toBeGreaterThan(50);
});
