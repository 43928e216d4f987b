'use strict';
// Issue 23, part 3, under a real fault: the primary of a Sentinel pair, then the master of a
// Cluster shard, SIGKILLed under load (64 workers, caller eventIds, replicaAcks 1, the default
// circuit breaker). Each caller follows the documented rule: a rejection with outcomeUnknown true
// is retried with the same eventId 200 ms later, until the publish resolves or is rejected with
// outcomeUnknown false (a definite answer). Afterwards, against the stores: every definite
// rejection left no entry and no row for its eventId; every resolved event is complete (one
// entry, its row holding the entry's ID).

const { EventPublisher } = require('../..');
const { DATABASE_URL, ensureDatabase, pgClient, uid } = require('../support/stores');
const {
  startReplicated, startSentinel, startCluster, onNode, replicationInfo, sleep, until,
} = require('../support/redis-topologies');

let db;
beforeAll(async () => {
  await ensureDatabase();
  db = await pgClient();
});
afterAll(async () => {
  if (db) await db.end();
});

/**
 * 64 workers: each publishes a fresh eventId, retrying on outcomeUnknown every 200 ms (for at
 * most 60 s), then pauses 20 ms. Records per eventId the codes of its rejections and its end:
 * 'resolved' or 'definite <code>'.
 */
function retryingLoad(p, tenant) {
  const events = new Map();
  let stopped = false;
  const one = async (id) => {
    const rec = { codes: [], end: null };
    events.set(id, rec);
    const until = Date.now() + 60_000;
    for (;;) {
      try {
        await p.publish('overload.retry', { id }, { tenantId: tenant, userId: 'u', eventId: id });
        rec.end = 'resolved';
        return;
      } catch (e) {
        rec.codes.push(`${e.code}${e.outcomeUnknown ? '?' : ''}`);
        if (!e.outcomeUnknown) {
          rec.end = `definite ${e.code}`;
          return;
        }
        if (Date.now() > until) {
          rec.end = `gave up ${e.code}`;
          return;
        }
        await sleep(200);
      }
    }
  };
  const worker = async () => {
    while (!stopped) {
      await one(uid('ev'));
      await sleep(20);
    }
  };
  const all = Promise.all(Array.from({ length: 64 }, worker));
  return {
    events,
    async stop() {
      stopped = true;
      await all;
    },
  };
}

/** Checks the rule against the stores (the stream on `port`); returns the counts for the report. */
async function check(load, tenant, port, stream) {
  const entries = await onNode(port, (c) => c.xrange(stream, '-', '+'));
  const entryOf = new Map();
  const dupes = [];
  for (const [id, f] of entries) {
    const ev = JSON.parse(f[1]).id;
    if (entryOf.has(ev)) dupes.push(ev);
    entryOf.set(ev, id);
  }
  const { rows } = await db.query('SELECT event_id, stream_id FROM event_metadata WHERE tenant_id = $1', [tenant]);
  const rowOf = new Map(rows.map((r) => [r.event_id, r.stream_id]));
  const counts = { events: load.events.size, resolved: 0, definite: {}, gaveUp: 0, unknownThenSettled: 0, liesAfterUnknown: 0 };
  const lies = [];
  const incomplete = [];
  for (const [id, rec] of load.events) {
    const hadUnknown = rec.codes.some((c) => c.endsWith('?'));
    if (rec.end === 'resolved') {
      counts.resolved++;
      if (hadUnknown) counts.unknownThenSettled++;
      if (!entryOf.has(id) || rowOf.get(id) !== entryOf.get(id)) incomplete.push(id);
    } else if (rec.end.startsWith('definite')) {
      const code = rec.end.split(' ')[1];
      counts.definite[code] = (counts.definite[code] || 0) + 1;
      if (entryOf.has(id) || rowOf.has(id)) {
        lies.push({ id, codes: rec.codes, entry: entryOf.has(id), row: rowOf.has(id) });
        if (hadUnknown) counts.liesAfterUnknown++;
      }
    } else {
      counts.gaveUp++;
    }
  }
  const byCode = {};
  for (const rec of load.events.values()) for (const c of rec.codes) byCode[c] = (byCode[c] || 0) + 1;
  counts.rejectionsByCode = byCode;
  if (lies.length) console.log('definite rejections with something written:', JSON.stringify(lies.slice(0, 5)));
  const gaveUp = [...load.events.values()].filter((rec) => rec.end && rec.end.startsWith('gave up'));
  if (gaveUp.length) console.log('gave up after 60 s of outcome-unknown rejections:', gaveUp.length, JSON.stringify(gaveUp.slice(0, 3)));
  console.log(`counts: ${JSON.stringify(counts)}`);
  expect(dupes).toEqual([]);
  expect(lies).toEqual([]);
  expect(incomplete).toEqual([]);
  expect(counts.gaveUp).toBe(0);
  return counts;
}

const OPTIONS = { replicaAcks: 1, timeoutMs: 2000, logLevel: 'off' };

test('Sentinel: primary SIGKILLed under load; every definite rejection left nothing, every resolved event is complete', async () => {
  const pair = await startReplicated({ replicas: 1, args: ['--repl-diskless-sync-delay', '0'] });
  const sentinels = await Promise.all([0, 1, 2].map(() => startSentinel(pair.primary.port, 'hyvve', { quorum: 2, downAfterMs: 1000 })));
  let p;
  try {
    const knowsAll = (s) => onNode(s.port, async (c) => {
      const [m] = (await c.call('SENTINEL', 'MASTERS')).map((f) => Object.fromEntries(f.reduce((a, v, i) => (i % 2 ? a : [...a, [v, f[i + 1]]]), [])));
      return Number(m['num-slaves']) >= 1 && Number(m['num-other-sentinels']) >= 2;
    });
    await until(async () => (await Promise.all(sentinels.map(knowsAll))).every(Boolean), 'the sentinels to discover each other');
    const stream = uid('retry-sentinel');
    const tenant = uid('ws');
    p = await EventPublisher.connect({
      databaseUrl: DATABASE_URL, redisUrl: `redis+sentinel://${sentinels.map((s) => `127.0.0.1:${s.port}`).join(',')}/hyvve`, stream, ...OPTIONS,
    });
    const load = retryingLoad(p, tenant);
    await sleep(1000);
    await pair.primary.stop(); // SIGKILL
    await until(async () => (await replicationInfo(pair.replicas[0].port)).role === 'master', 'the promotion', 30_000);
    // The killed node comes back; the sentinels make it a replica of the new primary, so WAIT 1
    // can be acknowledged again.
    await pair.primary.start();
    const rejoined = async () => Number((await replicationInfo(pair.replicas[0].port)).connected_slaves) >= 1;
    // The sentinels usually convert it within seconds; once in CI they had not after 60 s. The
    // test is about the publisher's answers, not Sentinel's reconfiguration: do it by hand then.
    await until(rejoined, 'the sentinels to make the old primary a replica', 15_000).catch(() =>
      onNode(pair.primary.port, (c) => c.call('REPLICAOF', '127.0.0.1', String(pair.replicas[0].port))));
    await until(rejoined, 'the old primary to rejoin as a replica', 60_000);
    await sleep(3000);
    await load.stop();
    const counts = await check(load, tenant, pair.replicas[0].port, stream);
    console.log(`Sentinel primary SIGKILL, retry sequence: ${JSON.stringify(counts)}`);
    expect(counts.resolved).toBeGreaterThan(0);
  } finally {
    if (p) await p.close().catch(() => {});
    for (const s of sentinels) await s.stop();
    await pair.stop();
  }
}, 180_000);

test('Cluster: the stream shard\'s master SIGKILLed under load; every definite rejection left nothing, every resolved event is complete', async () => {
  const cluster = await startCluster({ masters: 3, replicas: 1, nodeTimeoutMs: 1000 });
  let p;
  try {
    const stream = `retry:{${uid('c')}}`;
    const tenant = uid('ws');
    const slot = await onNode(cluster.ports[0], (c) => c.call('CLUSTER', 'KEYSLOT', stream));
    const master = await cluster.masterOf(slot);
    const [replica] = await cluster.replicasOf(master);
    p = await EventPublisher.connect({ databaseUrl: DATABASE_URL, redisUrl: cluster.urls[0], stream, ...OPTIONS });
    const load = retryingLoad(p, tenant);
    await sleep(1000);
    await cluster.node(master).stop(); // SIGKILL
    await until(async () => (await cluster.masterOf(slot)) === replica, 'the promotion', 30_000);
    await cluster.node(master).start();
    await cluster.waitOk();
    await sleep(3000);
    await load.stop();
    const counts = await check(load, tenant, await cluster.masterOf(slot), stream);
    console.log(`Cluster shard master SIGKILL, retry sequence: ${JSON.stringify(counts)}`);
    expect(counts.resolved).toBeGreaterThan(0);
  } finally {
    if (p) await p.close().catch(() => {});
    await cluster.stop();
  }
}, 180_000);
