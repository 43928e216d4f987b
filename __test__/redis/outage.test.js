'use strict';
// Issue 10: outages classified exactly. A command that never reached a live connection is a
// definite failure (ERR_REDIS, outcomeUnknown false, rows deleted), however soon after the
// server went away it is sent: on one node, and on a Cluster whose master of the stream's slot
// goes away (redis-rs retries there by itself; every attempt is watched), over plain TCP and over
// TLS. Redis here persists every write (appendfsync always), so an entry that had been appended
// would still be there after the restart.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { ensureDatabase, pgClient, privateRedis, publisherFactory, uid, makeTlsFiles, redisHasTls } = require('../support/stores');
const { terminate, sleep, startCluster, keySlots, onNode } = require('../support/redis-topologies');

const publishers = [];
const connect = publisherFactory(publishers, 'outage');
let db;
let srv;
let cluster;
let dir;

beforeAll(async () => {
  await ensureDatabase();
  db = await pgClient();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyvve-outage-'));
  [srv, cluster] = await Promise.all([
    privateRedis(['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir]),
    startCluster({ masters: 3, persist: true }),
  ]);
}, 60_000);

afterAll(async () => {
  await Promise.all(publishers.map((p) => p.close().catch(() => {})));
  if (srv) await srv.stop();
  if (cluster) await cluster.stop();
  if (db) await db.end();
  fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * `rounds` times per delay: a publish that resolves, then `node` SIGTERMed and waited for, then
 * after the delay a publish (single or batch of 2, alternately) that must reject ERR_REDIS with
 * outcomeUnknown false; then `node` restarted. Returns the rejections that were not that, and
 * checks that no failed event has a row or an entry, and that every resolved one has its entry.
 */
async function outages(p, node, { stream, entries, rounds }) {
  const tenant = uid('ws');
  const ctx = (eventId) => ({ tenantId: tenant, userId: 'u', eventId });
  const failed = [];
  const wrong = [];
  let published = 0;
  for (const delay of [0, 1, 5, 50]) {
    for (let i = 0; i < rounds; i++) {
      // Publishing works (the publisher reconnects by itself after each restart).
      for (let t = 0; ; t++) {
        try {
          await p.publish('outage.ok', { delay, i }, ctx(uid('ok')));
          published++;
          break;
        } catch (e) {
          if (t > 200) throw e;
          await sleep(20);
        }
      }
      await terminate(node);
      if (delay) await sleep(delay);
      const ids = i % 2 ? [uid('ev'), uid('ev')] : [uid('ev')];
      const call =
        ids.length === 1
          ? p.publish('outage.down', { delay, i }, ctx(ids[0]))
          : p.publishBatch(ids.map((id, n) => ({ type: 'outage.down', data: { delay, i, n }, context: ctx(id) })));
      const err = await call.then(() => null, (e) => e);
      if (!err || err.code !== 'ERR_REDIS' || err.outcomeUnknown !== false) {
        wrong.push({ delay, i, code: err && err.code, outcomeUnknown: err && err.outcomeUnknown, message: err && err.message });
      }
      failed.push(...ids);
      await node.start();
    }
  }
  const { rows } = await db.query('SELECT event_id FROM event_metadata WHERE event_id = ANY($1)', [failed]);
  expect(rows).toEqual([]);
  const ids = (await entries(stream)).map(([, f]) => JSON.parse(f[1]).id);
  expect(ids.filter((id) => failed.includes(id))).toEqual([]);
  // The persistence works: every publish that resolved is still there.
  expect(ids).toHaveLength(published);
  return wrong;
}

test('Redis SIGTERMed and gone, then a publish after 0, 1, 5 and 50 ms (20 each, singles and batches): every one rejects ERR_REDIS with outcomeUnknown false, and leaves no row and no entry', async () => {
  const { p, stream } = await connect({ redisUrl: srv.url, timeoutMs: 3000, circuitThreshold: 0 });
  const client = await srv.client();
  try {
    const wrong = await outages(p, srv, { stream, rounds: 20, entries: (s) => client.xrange(s, '-', '+') });
    expect(wrong).toEqual([]);
  } finally {
    client.disconnect();
  }
});

test('Cluster of 3 masters: the master of the stream\'s slot SIGTERMed and gone, then a publish after 0, 1, 5 and 50 ms (5 each, singles and batches): every one rejects ERR_REDIS with outcomeUnknown false, and leaves no row and no entry', async () => {
  const stream = uid('outage:cluster');
  const [slot] = await keySlots(cluster.ports[0], [stream]);
  const port = await cluster.masterOf(slot);
  // Seeded with another node, so the publisher's seed is not the one that goes away.
  const seed = cluster.urls[cluster.ports.indexOf(port) === 0 ? 1 : 0];
  const { p } = await connect({ redisUrl: seed, stream, timeoutMs: 3000, circuitThreshold: 0 });
  const wrong = await outages(p, cluster.node(port), {
    stream,
    rounds: 5,
    entries: async (s) => {
      await cluster.waitOk();
      return onNode(port, (c) => c.xrange(s, '-', '+'));
    },
  });
  expect(wrong).toEqual([]);
}, 120_000);

/**
 * A publish whose command reached the node (held there by CLIENT PAUSE WRITE), then the node
 * SIGTERMed: the reply is lost, and every later attempt is refused. The rejection must be
 * outcome-unknown (the command was sent), and a retry with the same eventId after the restart
 * converges on one entry and one row.
 */
async function lostReply(p, node, port, entries, stream, pause = (cmd) => onNode(port, (c) => c.call(...cmd))) {
  const tenant = uid('ws');
  const eventId = uid('ev');
  const ctx = { tenantId: tenant, userId: 'u', eventId };
  await p.publish('outage.warm', {}, { tenantId: tenant, userId: 'u' });
  await pause(['CLIENT', 'PAUSE', '10000', 'WRITE']);
  const call = p.publish('outage.lost', { n: 1 }, ctx).then(() => null, (e) => e);
  await sleep(200);
  await terminate(node);
  const err = await call;
  await node.start();
  let id;
  for (let t = 0; ; t++) {
    try {
      id = await p.publish('outage.lost', { n: 1 }, ctx);
      break;
    } catch (e) {
      if (t > 200) throw e;
      await sleep(20);
    }
  }
  const found = (await entries(stream)).filter(([, f]) => JSON.parse(f[1]).id === eventId);
  const { rows } = await db.query('SELECT stream_id FROM event_metadata WHERE event_id = $1', [eventId]);
  return { code: err && err.code, outcomeUnknown: err && err.outcomeUnknown, id, entries: found.length, rows: rows.length, rowHasEntry: rows[0] && found[0] && rows[0].stream_id === found[0][0] };
}

const converged = { code: 'ERR_REDIS', outcomeUnknown: true, entries: 1, rows: 1, rowHasEntry: true };

test('one node: a command held by CLIENT PAUSE, then the node SIGTERMed: the rejection is outcome-unknown (it was sent), and the retry after the restart converges on one entry and one row', async () => {
  const { p, stream } = await connect({ redisUrl: srv.url, timeoutMs: 3000, circuitThreshold: 0 });
  const client = await srv.client();
  try {
    const r = await lostReply(p, srv, srv.port, (s) => client.xrange(s, '-', '+'), stream);
    expect(r).toMatchObject(converged);
  } finally {
    client.disconnect();
  }
});

test('Cluster: a command held by CLIENT PAUSE on the stream\'s master, then that master SIGTERMed and redis-rs\'s own retries refused: the rejection is still outcome-unknown, and the retry converges', async () => {
  const stream = uid('outage:lost');
  const [slot] = await keySlots(cluster.ports[0], [stream]);
  const port = await cluster.masterOf(slot);
  const seed = cluster.urls[cluster.ports.indexOf(port) === 0 ? 1 : 0];
  // The budget must outlast redis-rs's own retries (12, 20-250 ms apart: ~1.2 s here, over 2.8 s
  // once on a loaded CI machine, over 10 s once with four builds sharing the 2 CPUs), or the
  // timeout answers first: ERR_TIMEOUT, also outcome-unknown, but not the path this test is about.
  const { p } = await connect({ redisUrl: seed, stream, timeoutMs: 30_000, circuitThreshold: 0 });
  const r = await lostReply(p, cluster.node(port), port, async (s) => {
    await cluster.waitOk();
    return onNode(port, (c) => c.xrange(s, '-', '+'));
  }, stream);
  expect(r).toMatchObject(converged);
}, 120_000);

/** A private TLS-only redis-server persisting every write, for `body(tls, files)`; stopped after. */
async function withTlsRedis(body) {
  const tlsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyvve-outage-tls-'));
  const files = makeTlsFiles(tlsDir);
  const tls = await privateRedis(['--appendonly', 'yes', '--appendfsync', 'always', '--dir', tlsDir], { tls: files });
  try {
    await body(tls, files);
  } finally {
    await tls.stop();
    fs.rmSync(tlsDir, { recursive: true, force: true });
  }
}

// Over TLS the connection sits on the same probed socket, under the TLS stream: as exact as plain TCP.
(redisHasTls() ? test : test.skip)('TLS, one node: Redis SIGTERMed and gone, then a publish after 0, 1, 5 and 50 ms (10 each, singles and batches): every one rejects ERR_REDIS with outcomeUnknown false, and leaves no row and no entry', async () => {
  await withTlsRedis(async (tls, files) => {
    const { p, stream } = await connect({ redisUrl: tls.url, redisCaFile: files.ca, timeoutMs: 3000, circuitThreshold: 0 });
    const client = await tls.client();
    try {
      const wrong = await outages(p, tls, { stream, rounds: 10, entries: (s) => client.xrange(s, '-', '+') });
      expect(wrong).toEqual([]);
    } finally {
      client.disconnect();
    }
  });
}, 60_000);

// A Cluster over TLS (every node TLS, bus too): its node connections sit on the same probed socket.
(redisHasTls() ? describe : describe.skip)('TLS, Cluster of 3 masters', () => {
  let tlsDir;
  let files;
  let tlsCluster;
  beforeAll(async () => {
    tlsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyvve-outage-tls-cluster-'));
    files = makeTlsFiles(tlsDir);
    tlsCluster = await startCluster({ masters: 3, persist: true, tls: files });
  }, 60_000);
  afterAll(async () => {
    if (tlsCluster) await tlsCluster.stop();
    fs.rmSync(tlsDir, { recursive: true, force: true });
  });

  /** A publisher seeded (over TLS) with a node other than the master of `stream`'s slot, and that master's port. */
  async function seeded(stream) {
    const [slot] = await keySlots(tlsCluster.ports[0], [stream]);
    const port = await tlsCluster.masterOf(slot);
    const other = tlsCluster.ports.indexOf(port) === 0 ? 1 : 0;
    const { p } = await connect({ redisUrl: tlsCluster.tlsUrls[other], redisCaFile: files.ca, stream, timeoutMs: 3000, circuitThreshold: 0 });
    const entries = async (s) => {
      await tlsCluster.waitOk();
      return onNode(port, (c) => c.xrange(s, '-', '+'));
    };
    return { p, port, entries };
  }

  test('the master of the stream\'s slot SIGTERMed and gone, then a publish after 0, 1, 5 and 50 ms (5 each, singles and batches): every one rejects ERR_REDIS with outcomeUnknown false, and leaves no row and no entry', async () => {
    const stream = uid('outage:tls-cluster');
    const { p, port, entries } = await seeded(stream);
    const wrong = await outages(p, tlsCluster.node(port), { stream, rounds: 5, entries });
    expect(wrong).toEqual([]);
  }, 120_000);

  test('a command held by CLIENT PAUSE on the stream\'s master, then that master SIGTERMed: the rejection is outcome-unknown, and the retry converges', async () => {
    const stream = uid('outage:tls-lost');
    const { p, port, entries } = await seeded(stream);
    const r = await lostReply(p, tlsCluster.node(port), port, entries, stream);
    // Outcome-unknown either way: ERR_REDIS when redis-rs's own retries (12, 20-250 ms apart) run
    // out first, ERR_TIMEOUT when the 3 s budget does (seen after the restarts of the test above).
    expect(['ERR_REDIS', 'ERR_TIMEOUT']).toContain(r.code);
    expect(r).toMatchObject({ ...converged, code: r.code });
  }, 60_000);
});

// A lost reply stays outcome-unknown over TLS too: never called definite.
(redisHasTls() ? test : test.skip)('TLS, one node: a command held by CLIENT PAUSE, then the node SIGTERMed: the rejection is outcome-unknown, and the retry after the restart converges', async () => {
  await withTlsRedis(async (tls, files) => {
    const { p, stream } = await connect({ redisUrl: tls.url, redisCaFile: files.ca, timeoutMs: 3000, circuitThreshold: 0 });
    const client = await tls.client();
    try {
      const r = await lostReply(p, tls, tls.port, (s) => client.xrange(s, '-', '+'), stream, (cmd) => client.call(...cmd));
      expect(r).toMatchObject(converged);
    } finally {
      client.disconnect();
    }
  });
}, 60_000);
