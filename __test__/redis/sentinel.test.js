'use strict';
// Issue 10: a Sentinel-managed primary (1 primary, 1 replica, 3 sentinels, own processes).
// SENTINEL FAILOVER during a 64-in-flight load with caller eventIds and replicaAcks 1; rejected
// publishes are retried with the same eventIds. At the end every publish resolved, the new
// primary's stream has exactly one entry per event, every row's stream_id is its entry's ID.
// The publishers listen to the sentinels' +switch-master (moving to another sentinel when theirs
// dies, ending the subscription on close()), so a second publisher with replicaAcks 0 writes to
// the new primary as soon as the sentinels switch, not to the demoted node.

const Redis = require('ioredis');
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

const observers = [];

afterAll(async () => {
  for (const o of observers) o.disconnect();
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

  const live = () => sentinels.filter((s) => s.child.exitCode === null && s.child.signalCode === null);
  // The publishers' own +switch-master subscriptions on the live sentinels (the test's observers
  // are named 'observer').
  const subscriptions = async () => {
    let n = 0;
    for (const s of live()) {
      const list = await onNode(s.port, (c) => c.call('CLIENT', 'LIST', 'TYPE', 'pubsub'));
      n += list.split('\n').filter((l) => l.includes('sub=1') && !l.includes('name=observer')).length;
    }
    return n;
  };
  const waitFor = async (what, ok, ms = 5000) => {
    const t0 = Date.now();
    while (!(await ok())) {
      if (Date.now() - t0 > ms) throw new Error(`${what} not within ${ms} ms (subscriptions: ${await subscriptions()})`);
      await sleep(50);
    }
    return Date.now() - t0;
  };
  // replicaAcks 0 on a stream of its own: where its entries land shows which node it writes to.
  const stream0 = uid('sentinel0');
  const p0 = await EventPublisher.connect({ databaseUrl: DATABASE_URL, redisUrl: url, stream: stream0, timeoutMs: 2000, logLevel: 'off', circuitThreshold: 0 });
  publishers.push(p0);
  // p, p0 (q is closed: its subscription ended).
  await waitFor('two subscriptions', async () => (await subscriptions()) === 2);
  // The sentinel they listen to dies: they move to another one.
  const holder = [];
  for (const s of live()) {
    const list = await onNode(s.port, (c) => c.call('CLIENT', 'LIST', 'TYPE', 'pubsub'));
    if (list.includes('sub=1')) holder.push(s);
  }
  for (const s of holder) await s.stop();
  expect(live().length).toBeGreaterThanOrEqual(2);
  const movedMs = await waitFor('resubscribed on another sentinel', async () => (await subscriptions()) === 2);
  // When each live sentinel switches (they learn it from each other, not all at once).
  const switchedAt = {};
  for (const s of live()) {
    const o = new Redis({ port: s.port, host: '127.0.0.1', connectionName: 'observer', lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
    o.on('error', () => {});
    observers.push(o);
    await o.connect();
    o.on('message', (channel, msg) => {
      if (msg.startsWith('hyvve ') && switchedAt[s.port] === undefined) switchedAt[s.port] = Date.now();
    });
    await o.subscribe('+switch-master');
  }

  // The paced load (64 workers, caller eventIds, retries) until 700 ms after publishing resumed.
  const load = pacedLoad(p, { type: 'sentinel.load', tenant });
  let stop = false;
  // 8 workers on p0 (replicaAcks 0), no retries: when each resolved publish started.
  const tenant0 = uid('ws');
  const started0 = new Map();
  const resolved0 = [];
  const worker0 = async () => {
    while (!stop) {
      const id = uid('ev0');
      const t = Date.now();
      try {
        const got = await p0.publish('sentinel.load0', { id }, { tenantId: tenant0, userId: 'u' });
        started0.set(got, t);
        resolved0.push(got);
      } catch {
        await sleep(25);
      }
      await sleep(10);
    }
  };
  const load0 = Promise.all(Array.from({ length: 8 }, worker0));
  await sleep(300);
  const failoverAt = Date.now();
  const atFailover = load.resolved.length;
  await onNode(live()[0].port, (c) => c.call('SENTINEL', 'FAILOVER', 'hyvve'));
  const end = Date.now() + 40_000;
  while ((await replicationInfo(pair.replicas[0].port).catch(() => ({}))).role !== 'master') {
    if (Date.now() > end) throw new Error('no promotion');
    await sleep(100);
  }
  // Resumed: a publish resolved after the last rejection, and after the promotion.
  const promotedAt = Date.now();
  for (let n = load.resolved.length; ; await sleep(50)) {
    if (load.resolved.length > n && (load.lastRejectionAt === null || Date.now() - load.lastRejectionAt > 500)) break;
    if (Date.now() > end) throw new Error('publishing did not resume');
  }
  await waitFor('every live sentinel switched', async () => live().every((s) => switchedAt[s.port] !== undefined), 20_000);
  await sleep(700);
  stop = true;
  await load.stop();
  await load0;

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
  // replicaAcks 0: every publish that started once the sentinels had switched resolved on the new
  // primary (before the watcher, they went on to the demoted node until it was converted, ~10 s).
  const switches = Object.values(switchedAt);
  const firstSwitch = Math.min(...switches);
  const lastSwitch = Math.max(...switches);
  const onNew0 = new Set((await onNode(newPrimary, (c) => c.xrange(stream0, '-', '+'))).map(([, f]) => JSON.parse(f[1]).id));
  const after0 = resolved0.filter((id) => started0.get(id) > lastSwitch + 100);
  expect(after0.length).toBeGreaterThan(10);
  expect(after0.filter((id) => !onNew0.has(id))).toEqual([]);
  const firstOnNew0 = resolved0.find((id) => started0.get(id) >= firstSwitch && onNew0.has(id));
  const resumed0Ms = firstOnNew0 ? started0.get(firstOnNew0) - firstSwitch : null;
  const lost0 = resolved0.filter((id) => !onNew0.has(id)).length;
  console.log(
    `sentinel failover, replicaAcks 0 publisher beside it: ` +
      `Sentinels switched ${firstSwitch - failoverAt}..${lastSwitch - failoverAt} ms after SENTINEL FAILOVER; subscription moved to another sentinel in ${movedMs} ms. ` +
      `replicaAcks 0: ${resolved0.length} resolved, first publish started after the first switch that landed on the new primary started ${resumed0Ms} ms after it, ` +
      `${after0.length} started >100 ms after the last switch all on the new primary, ${lost0} resolved ones missing on the new primary (written to the old one before the switch)`,
  );
  // close() ends the subscriptions.
  await p.close();
  await p0.close();
  await waitFor('subscriptions ended by close()', async () => (await subscriptions()) === 0);
});
