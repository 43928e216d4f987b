'use strict';
// The machine's limits, measured with the stores' own tools in the same run: what a publisher
// could reach at best if it cost nothing itself.

const { execFile } = require('node:child_process');
const { randomUUID } = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { promisify } = require('node:util');
const { Client } = require('pg');
const { postgresCpuSeconds, redisCpuSeconds, commandLine, PG_BIN, HOST } = require('./stores');

const run = promisify(execFile);
// A 592-byte event as the publishers write it.
const EVENT = JSON.stringify({
  id: 'jgnvckrfh6sfa4vkb3gympsw', type: 'approval.item.approved', source: 'approvals',
  timestamp: '2026-11-27T08:50:09.388Z', correlationId: 'lhodulsk3o7pqudij74hz7e3',
  tenantId: 'ws_01_7d1f0c9b3e', userId: 'user_001_4f9c2a7e', version: '1.0',
  data: {
    approvalId: 'clx0001k2m9v0000qwerty8z1', type: 'content_publish',
    title: 'Publish blog post #12: Q4 product launch for EMEA', decision: 'approved',
    decidedById: 'user_001_4f9c2a7e',
    decisionNotes: 'Reviewed copy, legal disclaimer and imagery; scheduled for Tuesday 09:00 CET.',
    confidenceScore: 0.87, decidedAt: '2026-11-27T08:50:09.372Z',
  },
});
const COLUMNS = 'id, event_id, stream_id, type, source, tenant_id, correlation_id, status, attempts, created_at';
const PGBENCH_SCRIPT = `INSERT INTO event_metadata (${COLUMNS}) VALUES (gen_random_uuid()::text, `
  + "gen_random_uuid()::text, '0-0', 'approval.item.approved', 'approvals', 'ws_01_7d1f0c9b3e', "
  + "gen_random_uuid()::text, 'PENDING', 0, now() AT TIME ZONE 'UTC');\n";
const UNNEST_SQL = `INSERT INTO event_metadata (${COLUMNS})
  SELECT id, event_id, stream_id, type, source, tenant_id, correlation_id, 'PENDING', 0, now() AT TIME ZONE 'UTC'
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
      AS t(id, event_id, stream_id, type, source, tenant_id, correlation_id)`;


async function redisBenchmark(stores, admin, { clients, pipeline, requests }) {
  const key = 'bench:limits:xadd';
  const args = ['-h', HOST, '-p', String(stores.redis.port), '-c', String(clients), '-n', String(requests),
    '-P', String(pipeline), '--csv', 'XADD', key, 'MAXLEN', '~', '2592000', '*', 'event', EVENT];
  const cpu0 = await redisCpuSeconds(admin.redis);
  const { stdout } = await run('redis-benchmark', args, { maxBuffer: 1 << 20 });
  const cpu = (await redisCpuSeconds(admin.redis)) - cpu0;
  await admin.redis.del(key);
  // The test name holds the unescaped JSON, so read the 7 numbers from the end of the line.
  const f = stdout.trim().split('\n').pop().split('","').slice(-7).map((s) => parseFloat(s.replace(/"/g, '')));
  return {
    name: `redis-benchmark XADD, ${clients} conn, pipeline ${pipeline}`,
    command: commandLine('redis-benchmark', args.map((a) => (a === EVENT ? '<592-byte event JSON>' : a))),
    perSec: f[0],
    p50ms: f[3],
    p99ms: f[5],
    redisCpuUs: (cpu * 1e6) / requests,
  };
}

async function pgbench(stores, admin, dir, { clients, seconds }) {
  const file = path.join(dir, 'insert-one.sql');
  fs.writeFileSync(file, PGBENCH_SCRIPT);
  const args = ['-n', '-h', HOST, '-p', String(stores.pg.port), '-U', stores.pg.user, '-c', String(clients),
    '-j', String(Math.min(clients, os.cpus().length)), '-T', String(seconds), '-f', file, stores.pg.database];
  await admin.pg.query('TRUNCATE event_metadata');
  const cpu0 = postgresCpuSeconds(stores.pg.pid);
  const { stdout } = await run(path.join(PG_BIN, 'pgbench'), args);
  const cpu = postgresCpuSeconds(stores.pg.pid) - cpu0;
  const rows = Number((await admin.pg.query('SELECT count(*) AS n FROM event_metadata')).rows[0].n);
  await admin.pg.query('TRUNCATE event_metadata');
  return {
    name: `pgbench single-row INSERT commits, ${clients} conn`,
    command: commandLine('pgbench', args.map((a) => (a === file ? 'insert-one.sql' : a))),
    perSec: parseFloat(/tps = ([\d.]+)/.exec(stdout)[1]),
    p50ms: null,
    avgms: parseFloat(/latency average = ([\d.]+) ms/.exec(stdout)[1]),
    pgCpuUs: (cpu * 1e6) / rows,
  };
}

/** 1,000-row `INSERT … SELECT FROM unnest(…)` from node-pg, each its own commit. */
async function unnestInsert(stores, admin, { connections, batches }) {
  const rowsPerBatch = 1000;
  const batch = () => {
    const cols = Array.from({ length: 7 }, () => []);
    for (let i = 0; i < rowsPerBatch; i++) {
      const v = [randomUUID(), randomUUID(), `1764232209388-${i}`, 'approval.item.approved', 'approvals',
        'ws_01_7d1f0c9b3e', randomUUID()];
      v.forEach((x, k) => cols[k].push(x));
    }
    return cols;
  };
  const clients = await Promise.all(Array.from({ length: connections }, async () => {
    const c = new Client({ connectionString: stores.pg.url });
    await c.connect();
    return c;
  }));
  const work = Array.from({ length: batches }, batch); // built before the clock starts
  await admin.pg.query('TRUNCATE event_metadata');
  const cpu0 = postgresCpuSeconds(stores.pg.pid);
  const t0 = process.hrtime.bigint();
  let next = 0;
  await Promise.all(clients.map(async (c) => {
    while (next < work.length) await c.query(UNNEST_SQL, work[next++]);
  }));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = postgresCpuSeconds(stores.pg.pid) - cpu0;
  await Promise.all(clients.map((c) => c.end()));
  await admin.pg.query('TRUNCATE event_metadata');
  const rows = batches * rowsPerBatch;
  return {
    name: `1,000-row unnest INSERT (node-pg), ${connections} conn`,
    command: '# node-pg: the unnest INSERT below, 1,000 rows per statement, from 1 and then 2 connections',
    perSec: rows / seconds,
    avgms: (seconds * 1000 * connections) / batches,
    pgCpuUs: (cpu * 1e6) / rows,
  };
}

/** All limits once; `scale` shrinks them for a quick run. */
async function measureLimits(stores, admin, scale) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyvve-bench-limits-'));
  const n = (x) => Math.max(1000, Math.round(x * scale));
  try {
    return [
      await redisBenchmark(stores, admin, { clients: 1, pipeline: 1, requests: n(50000) }),
      await redisBenchmark(stores, admin, { clients: 50, pipeline: 1, requests: n(200000) }),
      await redisBenchmark(stores, admin, { clients: 1, pipeline: 64, requests: n(1000000) }),
      await pgbench(stores, admin, dir, { clients: 1, seconds: scale < 1 ? 3 : 10 }),
      await pgbench(stores, admin, dir, { clients: 16, seconds: scale < 1 ? 3 : 10 }),
      await unnestInsert(stores, admin, { connections: 1, batches: Math.max(5, Math.round(30 * scale)) }),
      await unnestInsert(stores, admin, { connections: 2, batches: Math.max(6, Math.round(60 * scale)) }),
    ];
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

module.exports = { measureLimits, EVENT, PGBENCH_SCRIPT, UNNEST_SQL };
