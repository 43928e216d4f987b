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
const { startCluster, onNode, sleep } = require('../support/redis-topologies');

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

/** Polls `check` every 100 ms until it is true (at most `ms`). */
async function until(check, what, ms = 20_000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/**
 * Publishes with 64 workers (caller eventIds, each rejection retried with the same id) until
 * stopped: `fault` runs 300 ms in, then `settle` (e.g. until the promotion), then the load goes on
 * for 700 ms more. Then checks the invariants against the slot's master.
 */
async function underLoad(stream, fault, settle = async () => {}) {
  const tenant = uid('ws');
  const p = await EventPublisher.connect({
    databaseUrl: DATABASE_URL,
    redisUrl: cluster.urls[0],
    stream,
    replicaAcks: 1,
    timeoutMs: 2000,
    logLevel: 'off',
    circuitThreshold: 0,
  });
  publishers.push(p);
  const ids = [];
  const rejections = {};
  const resolved = [];
  let faultAt = null;
  let lastRejection = null;
  let stop = false;
  const one = async (id) => {
    for (let attempt = 0; ; attempt++) {
      try {
        resolved.push(await p.publish('chaos.cluster', { id }, { tenantId: tenant, userId: 'u', eventId: id }));
        return;
      } catch (e) {
        rejections[e.code] = (rejections[e.code] || 0) + 1;
        lastRejection = Date.now();
        if (attempt > 400) throw e;
        await sleep(25);
      }
    }
  };
  const worker = async () => {
    while (!stop) {
      const id = uid('ev');
      ids.push(id);
      await one(id);
      await sleep(20); // paced: at most ~3,000 publishes/s
    }
  };
  const load = Promise.all(Array.from({ length: 64 }, worker));
  await sleep(300);
  faultAt = Date.now();
  const before = resolved.length;
  await fault();
  await settle();
  const settled = resolved.length;
  await sleep(700);
  stop = true;
  await load;
  await p.close();
  const total = ids.length;

  const slot = await keyslot(stream);
  const port = await cluster.masterOf(slot);
  const entries = (await onNode(port, (c) => c.xrange(stream, '-', '+'))).map(([id, f]) => ({ id, eventId: JSON.parse(f[1]).id }));
  const seen = entries.map((e) => e.eventId);
  expect(resolved).toHaveLength(total);
  expect(new Set(seen).size).toBe(seen.length);
  expect([...seen].sort()).toEqual([...ids].sort());
  const { rows } = await db.query('SELECT event_id, stream_id FROM event_metadata WHERE tenant_id = $1', [tenant]);
  expect(rows).toHaveLength(total);
  const sid = Object.fromEntries(entries.map((e) => [e.eventId, e.id]));
  expect(rows.filter((r) => sid[r.event_id] !== r.stream_id)).toEqual([]);
  // Publishing went on after the fault had settled.
  expect(resolved.length - settled).toBeGreaterThan(0);
  return { total, before, rejections, resumedMs: lastRejection && lastRejection > faultAt ? lastRejection - faultAt : 0 };
}

function report(name, r) {
  console.log(`${name}: ${r.total} publishes (${r.before} resolved before the fault), rejections by code ${JSON.stringify(r.rejections)}, last rejection ${r.resumedMs} ms after the fault; lost 0, duplicates 0, orphans 0`);
}

test('(a) CLUSTER FAILOVER on the replica of the stream shard under load', async () => {
  const stream = `chaos:{${uid('a')}}`;
  const master = await cluster.masterOf(await keyslot(stream));
  const [replica] = await cluster.replicasOf(master);
  const slot = await keyslot(stream);
  const r = await underLoad(
    stream,
    () => onNode(replica, (c) => c.call('CLUSTER', 'FAILOVER')),
    () => until(async () => (await cluster.masterOf(slot)) === replica, 'the replica to take over'),
  );
  expect(await cluster.masterOf(slot)).toBe(replica);
  report('CLUSTER FAILOVER', r);
});

test('(b) SIGKILL of the stream shard master under load: its replica is promoted, the killed node restarts as a replica', async () => {
  const stream = `chaos:{${uid('b')}}`;
  const master = await cluster.masterOf(await keyslot(stream));
  const [replica] = await cluster.replicasOf(master);
  const slot = await keyslot(stream);
  const r = await underLoad(
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
  report('SIGKILL master', r);
});

test('(c) the stream slot migrated to another master under load (SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE)', async () => {
  const stream = `chaos:{${uid('c')}}`;
  const slot = await keyslot(stream);
  let source;
  let target;
  const r = await underLoad(stream, async () => {
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
  report('slot migration', r);
});
