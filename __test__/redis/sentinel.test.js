'use strict';
// Issue 10: a Sentinel-managed primary (1 primary, 1 replica, 3 sentinels, own processes).
// SENTINEL FAILOVER during a 64-in-flight load with caller eventIds and replicaAcks 1; rejected
// publishes are retried with the same eventIds. At the end every publish resolved, the new
// primary's stream has exactly one entry per event, every row's stream_id is its entry's ID.

const { EventPublisher } = require('../..');
const { DATABASE_URL, ensureDatabase, pgClient, uid } = require('../support/stores');
const {
  startReplicated, startSentinel, onNode, replicationInfo, sleep, until, FAILOVER_OPTIONS, pacedLoad, expectExactlyOnce, loadReport,
} = require('../support/redis-topologies');

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
  const knowsAll = (s) => onNode(s.port, async (c) => {
    const [master] = (await c.call('SENTINEL', 'MASTERS')).map((f) => Object.fromEntries(f.reduce((a, v, i) => (i % 2 ? a : [...a, [v, f[i + 1]]]), [])));
    return Number(master['num-slaves']) >= 1 && Number(master['num-other-sentinels']) >= 2;
  });
  await until(async () => (await Promise.all(sentinels.map(knowsAll))).every(Boolean), 'the sentinels to discover each other and the replica');
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
  const p = await EventPublisher.connect({ databaseUrl: DATABASE_URL, redisUrl: url, stream, ...FAILOVER_OPTIONS });
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

  // The paced load until 700 ms after publishing resumed on the new primary.
  const load = pacedLoad(p, { type: 'sentinel.load', tenant });
  await sleep(300);
  const failoverAt = Date.now();
  const atFailover = load.resolved.length;
  await onNode(sentinels[0].port, (c) => c.call('SENTINEL', 'FAILOVER', 'hyvve'));
  await until(async () => (await replicationInfo(pair.replicas[0].port)).role === 'master', 'the promotion', 40_000);
  // Resumed: a publish resolved after the promotion, and none rejected for 500 ms.
  const promotedAt = Date.now();
  const n = load.resolved.length;
  await until(async () => load.resolved.length > n && (load.lastRejectionAt === null || Date.now() - load.lastRejectionAt > 500),
    'publishing to resume', 40_000 - (promotedAt - failoverAt));
  await sleep(700);
  await load.stop();

  // The replica is the primary now.
  const newPrimary = (await replicationInfo(pair.replicas[0].port)).role === 'master' ? pair.replicas[0].port : pair.primary.port;
  expect(newPrimary).toBe(pair.replicas[0].port);
  await expectExactlyOnce({
    db, port: newPrimary, stream, tenant, load,
    onMissing: async (missing) => {
      const other = new Set((await onNode(pair.primary.port, (c) => c.xrange(stream, '-', '+'))).map(([, f]) => JSON.parse(f[1]).id));
      console.log('lost events (diagnostic):', missing.length, 'indices', missing.map((id) => load.ids.indexOf(id)).slice(0, 10), 'of', load.ids.length, 'on old primary', missing.filter((id) => other.has(id)).length, 'resolvedOrder', missing.map((id) => load.resolved.indexOf(id)).slice(0, 10), 'roles', JSON.stringify([await replicationInfo(pair.primary.port).then((r) => r.role), await replicationInfo(pair.replicas[0].port).then((r) => r.role)]));
    },
  });
  const resumedMs = load.lastRejectionAt ? Math.max(0, load.lastRejectionAt - failoverAt) : 0;
  console.log(loadReport('sentinel failover', load, {
    before: atFailover,
    timings: `replica promoted ${promotedAt - failoverAt} ms and last rejection ${resumedMs} ms after SENTINEL FAILOVER`,
  }));
});
