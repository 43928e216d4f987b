'use strict';
// Issue 10: a Redis Cluster of 3 masters (own redis-server processes). redisUrl naming each node
// in turn (the cluster is detected with INFO cluster), or redisClusterNodes seeds; streams whose
// slot lives on different masters, with and without hash tags; singles and batches: every entry
// has its row with stream_id = entry ID, and nothing else is written.

const { EventPublisher } = require('../..');
const { DATABASE_URL, ensureDatabase, pgClient, uid } = require('../support/stores');
const { startCluster, onNode } = require('../support/redis-topologies');

let cluster;
let db;
const publishers = [];

beforeAll(async () => {
  await ensureDatabase();
  db = await pgClient();
  cluster = await startCluster({ masters: 3 });
});

afterAll(async () => {
  await Promise.all(publishers.map((p) => p.close().catch(() => {})));
  if (cluster) await cluster.stop();
  if (db) await db.end();
});

async function connect(opts) {
  const p = await EventPublisher.connect({ databaseUrl: DATABASE_URL, timeoutMs: 5000, logLevel: 'warn', ...opts });
  publishers.push(p);
  return p;
}

/** The stream's entries, read from the master that owns its slot. */
async function entriesOf(stream) {
  const [slot] = await onNode(cluster.ports[0], (c) => Promise.all([c.call('CLUSTER', 'KEYSLOT', stream)]));
  const port = await cluster.masterOf(slot);
  const entries = await onNode(port, (c) => c.xrange(stream, '-', '+'));
  return { slot, port, entries: entries.map(([id, f]) => ({ id, event: JSON.parse(f[1]) })) };
}

// Slots 6088, 8943 and 10595 (master 2), 4748 (master 1), 14658 (master 3).
const STREAMS = ['hyvve:events:main', 'orders:{t1}', '{}x', 'orders:{t2}', '{}y'];

test.each(STREAMS.map((s) => [s]))(
  'stream %s: redisUrl naming each of the 3 masters in turn, 150 publishes (64 in flight) + 2 batches of 100 each; entries and rows match',
  async (stream) => {
    const tenant = uid('ws');
    const ids = [];
    for (const url of cluster.urls) {
      const p = await connect({ redisUrl: url, stream });
      expect(await p.health()).toMatchObject({ redis: true, database: true });
      const singles = Array.from({ length: 150 }, (_, i) => i);
      for (let at = 0; at < singles.length; at += 64) {
        const chunk = singles.slice(at, at + 64);
        ids.push(...(await Promise.all(chunk.map((i) => p.publish('cluster.single', { i }, { tenantId: tenant, userId: 'u', eventId: i % 2 ? uid('ev') : undefined })))));
      }
      for (let b = 0; b < 2; b++) {
        const batch = Array.from({ length: 100 }, (_, i) => ({ type: 'cluster.batch', data: { b, i }, context: { tenantId: tenant, userId: 'u' } }));
        ids.push(...(await p.publishBatch(batch)));
      }
      await p.close();
    }
    const { entries } = await entriesOf(stream);
    expect(entries.map((e) => e.event.id).sort()).toEqual([...ids].sort());
    const { rows } = await db.query('SELECT event_id, stream_id FROM event_metadata WHERE tenant_id = $1', [tenant]);
    expect(rows).toHaveLength(ids.length);
    const sid = Object.fromEntries(entries.map((e) => [e.event.id, e.id]));
    expect(rows.filter((r) => sid[r.event_id] !== r.stream_id)).toEqual([]);
  },
);

test('those streams live on all three masters (so the tests above crossed shards)', async () => {
  const owners = new Set();
  for (const s of STREAMS) owners.add((await entriesOf(s)).port);
  expect(owners.size).toBe(3);
});

test('redisClusterNodes seeds (one of them down) publish; a retried eventId is deduplicated on the cluster', async () => {
  const stream = `seeded:{${uid('t')}}`;
  const p = await connect({ redisUrl: undefined, redisClusterNodes: ['127.0.0.1:1', ...cluster.urls.map((u) => u.replace('redis://', ''))], stream });
  const eventId = uid('ev');
  const ctx = { tenantId: uid('ws'), userId: 'u', eventId };
  expect(await p.publish('cluster.seeded', { n: 1 }, ctx)).toBe(eventId);
  expect(await p.publish('cluster.seeded', { n: 1 }, ctx)).toBe(eventId);
  const { entries } = await entriesOf(stream);
  expect(entries.map((e) => e.event.id)).toEqual([eventId]);
});

// reconcile() reads the stream through the cluster connection: the entries live on one shard.
test('reconcile() on the cluster: a PENDING row whose entry sits at another ID gets that ID, one whose entry never came is marked FAILED', async () => {
  // Its own database, so reconcile() sees only these rows.
  const dbUrl = DATABASE_URL.replace(/\/[^/?]+(\?|$)/, '/hyvve_cluster_reconcile$1');
  await ensureDatabase(dbUrl);
  const rdb = await pgClient(dbUrl);
  try {
    await rdb.query('DELETE FROM event_metadata');
    const stream = `reconcile:{${uid('t')}}`;
    const p = await connect({ redisUrl: cluster.urls[0], databaseUrl: dbUrl, stream });
    const tenant = uid('ws');
    const [moved, kept] = await p.publishBatch([1, 2].map((i) => ({ type: 'cluster.reconcile', data: { i }, context: { tenantId: tenant, userId: 'u' } })));
    // As after a crash between an append at another ID and the row's update.
    await rdb.query("UPDATE event_metadata SET stream_id = '1-1' WHERE event_id = $1", [moved]);
    // As after a crash between the row and its append.
    const lost = uid('ev');
    await rdb.query(
      "INSERT INTO event_metadata (id, event_id, stream_id, type, source, tenant_id, created_at) VALUES ($1, $2, $3, 'cluster.reconcile', 'platform', $4, now() AT TIME ZONE 'UTC')",
      [uid('row'), lost, `${Date.now()}-0`, tenant],
    );
    expect(await p.reconcile({ olderThanMs: 0 })).toEqual({ examined: 3, repaired: 1, failed: 1 });
    const { entries } = await entriesOf(stream);
    const sid = Object.fromEntries(entries.map((e) => [e.event.id, e.id]));
    const { rows } = await rdb.query('SELECT event_id, stream_id, status, last_error FROM event_metadata ORDER BY event_id');
    const byId = Object.fromEntries(rows.map((r) => [r.event_id, r]));
    expect(byId[moved]).toMatchObject({ stream_id: sid[moved], status: 'PENDING' });
    expect(byId[kept]).toMatchObject({ stream_id: sid[kept], status: 'PENDING' });
    expect(byId[lost]).toMatchObject({ status: 'FAILED', last_error: 'never published' });
    expect(sid[lost]).toBeUndefined();
  } finally {
    await rdb.end();
  }
});

test('contradictory topology options are refused with ERR_CONFIG naming them', async () => {
  await expect(
    EventPublisher.connect({ databaseUrl: DATABASE_URL, redisClusterNodes: cluster.urls, redisSentinel: { sentinels: ['127.0.0.1:26379'], name: 'm' } }),
  ).rejects.toMatchObject({ code: 'ERR_CONFIG', message: expect.stringMatching(/redisClusterNodes.*redisSentinel/) });
  await expect(
    EventPublisher.connect({ databaseUrl: DATABASE_URL, redisUrl: 'redis+sentinel://127.0.0.1:26379/m', redisClusterNodes: cluster.urls }),
  ).rejects.toMatchObject({ code: 'ERR_CONFIG', message: expect.stringMatching(/redisClusterNodes.*redis\+sentinel/) });
});
