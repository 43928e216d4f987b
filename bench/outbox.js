'use strict';
// Issue 22's outbox rows, one run, implementations interleaved per repetition:
// - `publish`: today's publisher, 64 publishes in flight (events/s);
// - `outbox`: business transactions (BEGIN; INSERT a ledger row; stage + the staged statement;
//   COMMIT; dispatch) at 64 in flight with 1, 10, 100 events each;
// - `naive`: the same transaction with a plain event_metadata INSERT, then after the commit
//   ioredis XADD and an UPDATE of stream_id (the "pg insert + XADD after commit" reference).
// Measured: business tx/s and events/s; the time staging adds inside the transaction (stage()
// + running its statement, p50/p99, 1 and 64 concurrent); commit-to-entry latency (p50/p99/p999)
// as seen by a reader blocked on the stream (XREAD BLOCK), from the moment COMMIT returned.
//
// Usage: node bench/outbox.js [--reps 3] [--txs 2000]   (DATABASE_URL, REDIS_URL; run it under
// `flock /work/coord/bench.lock` on a shared machine). Uses the release build in the repo.

const { performance } = require('node:perf_hooks');
const crypto = require('node:crypto');
const Redis = require('ioredis');
const { Pool } = require('pg');
const { EventPublisher } = require('..');
const { fromPg } = require('../outbox');

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const REPS = arg('reps', 3);
const TXS = arg('txs', 2000);
const DATABASE_URL = process.env.DATABASE_URL || 'postgres://root@127.0.0.1:5432/hyvve_publisher_test_w22?sslmode=disable';
const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';

const pct = (xs, p) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const median = (xs) => pct(xs, 50);
const id = () => crypto.randomBytes(8).toString('hex');

async function inFlight(n, total, work) {
  let next = 0;
  const runners = Array.from({ length: n }, async () => {
    while (next < total) {
      const i = next++;
      await work(i);
    }
  });
  await Promise.all(runners);
}

/** Reads the stream from now on (XREAD BLOCK) and records when each event id arrives. */
function reader(stream) {
  const r = new Redis(REDIS_URL);
  const seen = new Map();
  let stop = false;
  let last = '$';
  const done = (async () => {
    while (!stop) {
      const res = await r.xread('COUNT', 10000, 'BLOCK', 200, 'STREAMS', stream, last);
      const now = performance.now();
      if (!res) continue;
      for (const [, entries] of res) {
        for (const [eid, fields] of entries) {
          last = eid;
          const m = /"id":"([^"]+)"/.exec(fields[1]);
          if (m) seen.set(m[1], now);
        }
      }
    }
    r.disconnect();
  })();
  return { seen, stop: async () => { stop = true; await done; } };
}

const data = (i) => ({ taskId: `t${i}`, phase: 'review', note: 'x'.repeat(200) });
const ctx = { tenantId: 'ws-bench', userId: 'u-bench', source: 'bench' };

async function runOutbox(publisher, pool, stream, perTx, concurrency, txs) {
  const added = [];
  const committedAt = new Map();
  const rd = reader(stream);
  await new Promise((r) => setTimeout(r, 50));
  const t0 = performance.now();
  await inFlight(concurrency, txs, async (i) => {
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      await c.query('INSERT INTO outbox_ledger (id, note) VALUES ($1, $2)', [id(), 'bench']);
      const a = performance.now();
      const staged = perTx === 1
        ? publisher.stage('pm.task.phase_changed', data(i), ctx)
        : publisher.stageBatch(Array.from({ length: perTx }, (_, k) => ({ type: 'pm.task.phase_changed', data: data(k), context: ctx })));
      await fromPg(c).execute(staged.statement);
      added.push(performance.now() - a);
      await c.query('COMMIT');
      const at = performance.now();
      for (const e of staged.eventIds) committedAt.set(e, at);
      c.release();
      await publisher.dispatch(staged);
    } catch (e) {
      c.release();
      throw e;
    }
  });
  const secs = (performance.now() - t0) / 1000;
  const until = Date.now() + 10_000;
  while (rd.seen.size < committedAt.size && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  await rd.stop();
  const lat = [];
  for (const [e, at] of committedAt) if (rd.seen.has(e)) lat.push(rd.seen.get(e) - at);
  return { txPerSec: txs / secs, eventsPerSec: (txs * perTx) / secs, added, lat, missing: committedAt.size - lat.length };
}

async function runNaive(redis, pool, stream, perTx, concurrency, txs) {
  const t0 = performance.now();
  await inFlight(concurrency, txs, async (i) => {
    const c = await pool.connect();
    const evs = Array.from({ length: perTx }, (_, k) => {
      const eventId = id();
      return { eventId, json: JSON.stringify({ id: eventId, type: 'pm.task.phase_changed', source: 'bench', timestamp: new Date().toISOString(), correlationId: id(), tenantId: 'ws-bench', userId: 'u-bench', version: '1.0', data: data(k) }) };
    });
    try {
      await c.query('BEGIN');
      await c.query('INSERT INTO outbox_ledger (id, note) VALUES ($1, $2)', [id(), 'bench']);
      await c.query(
        `INSERT INTO event_metadata (id, event_id, stream_id, type, source, tenant_id, correlation_id)
         SELECT r, e, '0-0', 'pm.task.phase_changed', 'bench', 'ws-bench', r FROM unnest($1::text[], $2::text[]) AS u(r, e)`,
        [evs.map(() => id()), evs.map((e) => e.eventId)],
      );
      await c.query('COMMIT');
    } finally {
      c.release();
    }
    const pipe = redis.pipeline();
    for (const e of evs) pipe.xadd(stream, '*', 'event', e.json);
    const ids = (await pipe.exec()).map(([, v]) => v);
    await pool.query('UPDATE event_metadata AS m SET stream_id = u.s FROM unnest($1::text[], $2::text[]) AS u(e, s) WHERE m.event_id = u.e', [evs.map((e) => e.eventId), ids]);
    void i;
  });
  const secs = (performance.now() - t0) / 1000;
  return { txPerSec: txs / secs, eventsPerSec: (txs * perTx) / secs };
}

async function runPublish(publisher, concurrency, total) {
  const t0 = performance.now();
  await inFlight(concurrency, total, (i) => publisher.publish('pm.task.phase_changed', data(i), ctx));
  return { eventsPerSec: total / ((performance.now() - t0) / 1000) };
}

async function main() {
  await EventPublisher.migrate({ databaseUrl: DATABASE_URL });
  const pool = new Pool({ connectionString: DATABASE_URL, max: 64 });
  await pool.query('CREATE TABLE IF NOT EXISTS outbox_ledger (id text PRIMARY KEY, note text NOT NULL)');
  const stream = `bench:outbox:${id()}`;
  const publisher = await EventPublisher.connect({ databaseUrl: DATABASE_URL, redisUrl: REDIS_URL, stream, logLevel: 'warn' });
  const redis = new Redis(REDIS_URL);
  const rows = {};
  const add = (k, v) => (rows[k] = rows[k] || []).push(v);
  // Warm-up.
  await runOutbox(publisher, pool, stream, 1, 8, 200);
  await runPublish(publisher, 8, 200);
  for (let rep = 0; rep < REPS; rep++) {
    add('publish 64', (await runPublish(publisher, 64, TXS)).eventsPerSec);
    for (const perTx of [1, 10, 100]) {
      const txs = Math.max(50, Math.round(TXS / Math.sqrt(perTx)));
      const o = await runOutbox(publisher, pool, stream, perTx, 64, txs);
      add(`outbox 64x${perTx} tx/s`, o.txPerSec);
      add(`outbox 64x${perTx} events/s`, o.eventsPerSec);
      if (perTx === 1) {
        add('added p50 (64)', median(o.added));
        add('added p99 (64)', pct(o.added, 99));
        add('commit-to-entry p50 (64)', median(o.lat));
        add('commit-to-entry p99 (64)', pct(o.lat, 99));
        add('commit-to-entry p999 (64)', pct(o.lat, 99.9));
        add('missing', o.missing);
      }
      const n = await runNaive(redis, pool, stream, perTx, 64, txs);
      add(`naive 64x${perTx} tx/s`, n.txPerSec);
      add(`naive 64x${perTx} events/s`, n.eventsPerSec);
    }
    const seq = await runOutbox(publisher, pool, stream, 1, 1, Math.round(TXS / 4));
    add('added p50 (1)', median(seq.added));
    add('added p99 (1)', pct(seq.added, 99));
    add('commit-to-entry p50 (1)', median(seq.lat));
    add('commit-to-entry p99 (1)', pct(seq.lat, 99));
    add('commit-to-entry p999 (1)', pct(seq.lat, 99.9));
  }
  console.log(`outbox bench: ${REPS} repetitions, medians (ms for latencies)`);
  for (const [k, v] of Object.entries(rows)) console.log(`${k.padEnd(32)} ${median(v).toFixed(k.includes('/s') || k.startsWith('publish') ? 0 : 3).padStart(10)}   [${v.map((x) => x.toFixed(2)).join(', ')}]`);
  console.log(`outbox stats: ${JSON.stringify({ ...publisher.stats().outbox, stageToEntrySeconds: undefined })}`);
  await publisher.close();
  redis.disconnect();
  await pool.end();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
