'use strict';
// Redis topologies side by side (issue 10): one node, a 3-master Cluster, and a primary with one
// replica at replicaAcks 0 and 1; 64 publishes in flight and publishBatch of 1,000, interleaved,
// in one run. Every Redis is a private redis-server (no RDB/AOF) on a free loopback port;
// Postgres is TEST_DATABASE_URL (its event_metadata table is truncated before each run).
//
//   TEST_DATABASE_URL=postgres://… node bench/topologies.js [--reps 3] [--scale 1]
// Prints a markdown table (paste it into bench/RESULTS.md).

const { EventPublisher } = require('..');
const { DATABASE_URL, ensureDatabase, pgClient, privateRedis, uid } = require('../__test__/support/stores');
const { startCluster, startReplicated, onNode } = require('../__test__/support/redis-topologies');

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const REPS = arg('--reps', 3);
const SCALE = arg('--scale', 1);
const N_INFLIGHT = Math.round(10_000 * SCALE);
const N_BATCH = Math.round(20_000 * SCALE);

async function inflight(p, n, tenant) {
  let next = 0;
  const lat = [];
  const worker = async () => {
    while (next < n) {
      next++;
      const t = process.hrtime.bigint();
      await p.publish('bench.topology', { n: next }, { tenantId: tenant, userId: 'u' });
      lat.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
  };
  const t0 = Date.now();
  await Promise.all(Array.from({ length: 64 }, worker));
  return { ms: Date.now() - t0, lat };
}

async function batches(p, n, tenant) {
  const lat = [];
  const t0 = Date.now();
  for (let done = 0; done < n; done += 1000) {
    const events = Array.from({ length: 1000 }, (_, i) => ({ type: 'bench.topology', data: { i }, context: { tenantId: tenant, userId: 'u' } }));
    const t = process.hrtime.bigint();
    await p.publishBatch(events);
    lat.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return { ms: Date.now() - t0, lat };
}

const pct = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const median = (xs) => pct(xs, 0.5);

async function main() {
  await ensureDatabase();
  const db = await pgClient();
  const [single, cluster, replicated] = await Promise.all([privateRedis(), startCluster({ masters: 3 }), startReplicated({ replicas: 1 })]);
  const configs = {
    'one node': { redisUrl: single.url, port: () => single.port },
    'Cluster, 3 masters': { redisUrl: cluster.urls[0], cluster: true },
    'primary + 1 replica, replicaAcks 0': { redisUrl: replicated.primary.url, replicaAcks: 0, port: () => replicated.primary.port },
    'primary + 1 replica, replicaAcks 1': { redisUrl: replicated.primary.url, replicaAcks: 1, port: () => replicated.primary.port },
  };
  const scenarios = { '64 in flight': [inflight, N_INFLIGHT], 'publishBatch 1,000': [batches, N_BATCH] };
  const results = [];
  const names = Object.keys(configs);
  const started = Date.now();
  for (let rep = 0; rep < REPS; rep++) {
    for (const [scenario, [run, n]] of Object.entries(scenarios)) {
      for (let k = 0; k < names.length; k++) {
        const name = names[(k + rep) % names.length];
        const c = configs[name];
        await db.query('TRUNCATE event_metadata');
        await db.query('CHECKPOINT');
        const stream = uid('bench:topology');
        const p = await EventPublisher.connect({ databaseUrl: DATABASE_URL, redisUrl: c.redisUrl, replicaAcks: c.replicaAcks, stream, logLevel: 'off' });
        const tenant = uid('ws');
        await inflight(p, 500, tenant); // warm-up
        const r = await run(p, n, tenant);
        await p.close();
        const port = c.cluster ? await cluster.masterOf(await onNode(cluster.ports[0], (x) => x.call('CLUSTER', 'KEYSLOT', stream))) : c.port();
        const xlen = await onNode(port, (x) => x.xlen(stream));
        const { rows } = await db.query('SELECT count(*)::int AS n FROM event_metadata');
        const ok = xlen === n + 500 && rows[0].n === n + 500;
        results.push({ rep, scenario, name, eps: (n / r.ms) * 1000, p50: median(r.lat), p99: pct(r.lat, 0.99), ok });
        process.stderr.write(`rep ${rep + 1} ${scenario} ${name}: ${Math.round((n / r.ms) * 1000)} events/s ${ok ? 'ok' : 'COUNT MISMATCH'}\n`);
      }
    }
  }
  await Promise.all([single.stop(), cluster.stop(), replicated.stop()]);
  await db.end();
  const fmt = (x) => Math.round(x).toLocaleString('en-US');
  const lines = [
    `Generated ${new Date().toISOString()} by \`node bench/topologies.js --reps ${REPS} --scale ${SCALE}\` in ${((Date.now() - started) / 60000).toFixed(1)} min; medians of ${REPS} interleaved repetitions (${fmt(N_INFLIGHT)} events in flight, ${fmt(N_BATCH)} in batches, after a 500-event warm-up).`,
    '',
    '| scenario | Redis | events/s median (min–max) | p50 ms/call | p99 ms/call | correctness |',
    '|---|---|---:|---:|---:|---:|',
  ];
  for (const scenario of Object.keys(scenarios)) {
    for (const name of names) {
      const rs = results.filter((r) => r.scenario === scenario && r.name === name);
      const eps = rs.map((r) => r.eps);
      lines.push(
        `| ${scenario} | ${name} | ${fmt(median(eps))} (${fmt(Math.min(...eps))}–${fmt(Math.max(...eps))}) | ${median(rs.map((r) => r.p50)).toFixed(2)} | ${median(rs.map((r) => r.p99)).toFixed(2)} | ${rs.filter((r) => r.ok).length}/${rs.length} ok |`,
      );
    }
  }
  console.log(lines.join('\n'));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
