'use strict';
// Issue 10: a Sentinel-managed primary (1 primary, 1 replica, 3 sentinels, own processes).
// SENTINEL FAILOVER during a 64-in-flight load with caller eventIds and replicaAcks 1; rejected
// publishes are retried with the same eventIds. At the end every publish resolved, the new
// primary's stream has exactly one entry per event, every row's stream_id is its entry's ID.

const { EventPublisher } = require('../..');
const { DATABASE_URL, ensureDatabase, pgClient, uid } = require('../support/stores');
const { startReplicated, startSentinel, onNode, replicationInfo, sleep } = require('../support/redis-topologies');

let db;
let pair;
let sentinels = [];
const publishers = [];

beforeAll(async () => {
  await ensureDatabase();
  db = await pgClient();
  // No 5 s delay before the full resync of the old primary when it rejoins as a replica.
  pair = await startReplicated({ replicas: 1, args: ['--repl-diskless-sync-delay', '0'] });
  sentinels = await Promise.all([0, 1, 2].map(() => startSentinel(pair.primary.port, 'hyvve', { quorum: 2, downAfterMs: 1000 })));
  // The sentinels must know the replica and each other before a failover can run.
  const until = Date.now() + 20_000;
  for (;;) {
    const ok = await Promise.all(
      sentinels.map((s) =>
        onNode(s.port, async (c) => {
          const [master] = (await c.call('SENTINEL', 'MASTERS')).map((f) => Object.fromEntries(f.reduce((a, v, i) => (i % 2 ? a : [...a, [v, f[i + 1]]]), [])));
          return Number(master['num-slaves']) >= 1 && Number(master['num-other-sentinels']) >= 2;
        }).catch(() => false),
      ),
    );
    if (ok.every(Boolean)) break;
    if (Date.now() > until) throw new Error('sentinels did not discover each other');
    await sleep(100);
  }
});

afterAll(async () => {
  await Promise.all(publishers.map((p) => p.close().catch(() => {})));
  for (const s of sentinels) await s.stop();
  if (pair) await pair.stop();
  if (db) await db.end();
});

test('SENTINEL FAILOVER under load (64 in flight, replicaAcks 1, retries with the same eventIds): publishing resumes on the new primary; no event lost, none duplicated, no orphan row', async () => {
  const stream = uid('sentinel');
  const tenant = uid('ws');
  const url = `redis+sentinel://${sentinels.map((s) => `127.0.0.1:${s.port}`).join(',')}/hyvve`;
  const p = await EventPublisher.connect({ databaseUrl: DATABASE_URL, redisUrl: url, stream, replicaAcks: 1, timeoutMs: 2000, logLevel: 'off', circuitThreshold: 0 });
  publishers.push(p);
  // The option form reaches the same primary.
  const q = await EventPublisher.connect({
    databaseUrl: DATABASE_URL,
    redisSentinel: { sentinels: sentinels.map((s) => `127.0.0.1:${s.port}`), name: 'hyvve' },
    stream,
    logLevel: 'off',
  });
  publishers.push(q);
  expect(await q.health()).toMatchObject({ redis: true });
  await q.close();

  // Paced load (64 workers, at most ~3,000 publishes/s) until 700 ms after publishing resumed on
  // the new primary.
  const ids = [];
  const resolved = [];
  const rejections = {};
  let lastFailureAt = null;
  let failoverAt = null;
  let stop = false;
  const publishOne = async (id) => {
    for (let attempt = 0; ; attempt++) {
      try {
        await p.publish('sentinel.load', { id }, { tenantId: tenant, userId: 'u', eventId: id });
        resolved.push(id);
        return;
      } catch (e) {
        rejections[e.code] = (rejections[e.code] || 0) + 1;
        lastFailureAt = Date.now();
        if (attempt > 400) throw e;
        await sleep(25);
      }
    }
  };
  const worker = async () => {
    while (!stop) {
      const id = uid('ev');
      ids.push(id);
      await publishOne(id);
      await sleep(20);
    }
  };
  const load = Promise.all(Array.from({ length: 64 }, worker));
  await sleep(300);
  failoverAt = Date.now();
  const atFailover = resolved.length;
  await onNode(sentinels[0].port, (c) => c.call('SENTINEL', 'FAILOVER', 'hyvve'));
  const end = Date.now() + 40_000;
  while ((await replicationInfo(pair.replicas[0].port).catch(() => ({}))).role !== 'master') {
    if (Date.now() > end) throw new Error('no promotion');
    await sleep(100);
  }
  // Resumed: a publish resolved after the last rejection, and after the promotion.
  const promotedAt = Date.now();
  for (let n = resolved.length; ; await sleep(50)) {
    if (resolved.length > n && (lastFailureAt === null || Date.now() - lastFailureAt > 500)) break;
    if (Date.now() > end) throw new Error('publishing did not resume');
  }
  await sleep(700);
  stop = true;
  await load;
  const total = ids.length;

  // The replica is the primary now.
  const newPrimary = (await replicationInfo(pair.replicas[0].port)).role === 'master' ? pair.replicas[0].port : pair.primary.port;
  expect(newPrimary).toBe(pair.replicas[0].port);
  const entries = (await onNode(newPrimary, (c) => c.xrange(stream, '-', '+'))).map(([id, f]) => ({ id, eventId: JSON.parse(f[1]).id }));
  const seen = entries.map((e) => e.eventId);
  expect(new Set(seen).size).toBe(seen.length); // no duplicate
  expect(resolved).toHaveLength(total);
  const seenSet = new Set(seen);
  const missing = ids.filter((id) => !seenSet.has(id));
  if (missing.length) {
    const other = new Set((await onNode(pair.primary.port, (c) => c.xrange(stream, '-', '+'))).map(([, f]) => JSON.parse(f[1]).id));
    console.log('lost events (diagnostic):', missing.length, 'indices', missing.map((id) => ids.indexOf(id)).slice(0, 10), 'of', total, 'on old primary', missing.filter((id) => other.has(id)).length, 'resolvedOrder', missing.map((id) => resolved.indexOf(id)).slice(0, 10), 'roles', JSON.stringify([await replicationInfo(pair.primary.port).then((r) => r.role), await replicationInfo(pair.replicas[0].port).then((r) => r.role)]));
  }
  expect([...seen].sort()).toEqual([...ids].sort()); // none lost, none extra
  const { rows } = await db.query('SELECT event_id, stream_id FROM event_metadata WHERE tenant_id = $1', [tenant]);
  const sid = Object.fromEntries(entries.map((e) => [e.eventId, e.id]));
  expect(rows).toHaveLength(total);
  expect(rows.filter((r) => sid[r.event_id] !== r.stream_id)).toEqual([]);
  const resumedMs = lastFailureAt && failoverAt ? Math.max(0, lastFailureAt - failoverAt) : 0;
  console.log(
    `sentinel failover: ${total} publishes (${atFailover} resolved before the failover), rejections by code ${JSON.stringify(rejections)}, ` +
      `replica promoted ${promotedAt - failoverAt} ms and last rejection ${resumedMs} ms after SENTINEL FAILOVER; lost 0, duplicates 0, orphans 0`,
  );
});
