'use strict';
// Issue 10: a Redis Cluster of 3 masters + 3 replicas (own processes, cluster-node-timeout 1000)
// under load: 64 publishes in flight with caller eventIds and replicaAcks 1, every rejection
// retried with the same eventId. During the load, (a) CLUSTER FAILOVER on the replica of the
// stream's shard, (b) SIGKILL of that shard's master (its replica is promoted after the node
// timeout; the killed node restarts and rejoins as a replica), (c) the stream's slot migrated to
// another master. After each: every publish resolved, one entry per event (no duplicate, none
// lost), no orphan row, every row's stream_id = its entry's ID.

const { EventPublisher } = require('../..');
const { DATABASE_URL, ensureDatabase, pgClient, uid } = require('../support/stores');
const {
  startCluster, onNode, sleep, until, FAILOVER_OPTIONS, pacedLoad, expectExactlyOnce, loadReport,
} = require('../support/redis-topologies');

let cluster;
let db;
const publishers = [];

beforeAll(async () => {
  await ensureDatabase();
  db = await pgClient();
  cluster = await startCluster({ masters: 3, replicas: 1, nodeTimeoutMs: 1000 });
}, 60_000);

afterAll(async () => {
  await Promise.all(publishers.map((p) => p.close().catch(() => {})));
  if (cluster) await cluster.stop();
  if (db) await db.end();
});

const keyslot = (key) => onNode(cluster.ports[0], (c) => c.call('CLUSTER', 'KEYSLOT', key));

/**
 * The paced load (pacedLoad) on a publisher of `stream` through the cluster: `fault` runs 300 ms
 * in, then `settle` (e.g. until the promotion), then the load goes on for 700 ms more. Then the
 * invariants, against the slot's master; logs the report line as `name`.
 */
async function underLoad(name, stream, fault, settle = async () => {}) {
  const tenant = uid('ws');
  const p = await EventPublisher.connect({ databaseUrl: DATABASE_URL, redisUrl: cluster.urls[0], stream, ...FAILOVER_OPTIONS });
  publishers.push(p);
  const load = pacedLoad(p, { type: 'chaos.cluster', tenant });
  await sleep(300);
  const faultAt = Date.now();
  const before = load.resolved.length;
  await fault();
  await settle();
  const settled = load.resolved.length;
  await sleep(700);
  await load.stop();
  await p.close();

  const port = await cluster.masterOf(await keyslot(stream));
  await expectExactlyOnce({ db, port, stream, tenant, load });
  // Publishing went on after the fault had settled.
  expect(load.resolved.length - settled).toBeGreaterThan(0);
  const resumedMs = load.lastRejectionAt && load.lastRejectionAt > faultAt ? load.lastRejectionAt - faultAt : 0;
  console.log(loadReport(name, load, { before, timings: `last rejection ${resumedMs} ms after the fault` }));
}

test('(a) CLUSTER FAILOVER on the replica of the stream shard under load', async () => {
  const stream = `chaos:{${uid('a')}}`;
  const master = await cluster.masterOf(await keyslot(stream));
  const [replica] = await cluster.replicasOf(master);
  const slot = await keyslot(stream);
  await underLoad(
    'CLUSTER FAILOVER',
    stream,
    () => onNode(replica, (c) => c.call('CLUSTER', 'FAILOVER')),
    () => until(async () => (await cluster.masterOf(slot)) === replica, 'the replica to take over'),
  );
  expect(await cluster.masterOf(slot)).toBe(replica);
});

test('(b) SIGKILL of the stream shard master under load: its replica is promoted, the killed node restarts as a replica', async () => {
  const stream = `chaos:{${uid('b')}}`;
  const master = await cluster.masterOf(await keyslot(stream));
  const [replica] = await cluster.replicasOf(master);
  const slot = await keyslot(stream);
  await underLoad(
    'SIGKILL master',
    stream,
    () => cluster.node(master).stop(), // SIGKILL, waited for
    async () => {
      // Promotion after cluster-node-timeout (1000 ms); then the killed node comes back as a
      // replica of the new master, so the shard can acknowledge WAIT 1 again.
      await until(async () => (await cluster.masterOf(slot)) === replica, 'the promotion');
      await cluster.node(master).start();
      await cluster.waitOk();
    },
  );
  expect(await cluster.masterOf(slot)).toBe(replica);
});

test('(c) the stream slot migrated to another master under load (SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE)', async () => {
  const stream = `chaos:{${uid('c')}}`;
  const slot = await keyslot(stream);
  let source;
  let target;
  await underLoad('slot migration', stream, async () => {
    source = await cluster.masterOf(slot);
    const masters = [];
    for (const port of cluster.ports) {
      const role = await onNode(port, (c) => c.call('ROLE')).catch(() => null);
      if (role && role[0] === 'master') masters.push(port);
    }
    target = masters.find((p) => p !== source);
    const id = (port) => onNode(port, (c) => c.call('CLUSTER', 'MYID'));
    const [sourceId, targetId] = [await id(source), await id(target)];
    await onNode(target, (c) => c.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', sourceId));
    await onNode(source, (c) => c.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', targetId));
    for (;;) {
      const keys = await onNode(source, (c) => c.call('CLUSTER', 'GETKEYSINSLOT', slot, 100));
      if (!keys.length) break;
      await onNode(source, (c) => c.call('MIGRATE', '127.0.0.1', target, '', 0, 5000, 'REPLACE', 'KEYS', ...keys));
    }
    for (const port of masters) await onNode(port, (c) => c.call('CLUSTER', 'SETSLOT', slot, 'NODE', targetId));
  });
  expect(await cluster.masterOf(slot)).toBe(target);
});
