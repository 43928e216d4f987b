'use strict';
// Private Redis topologies for the tests in __test__/redis: a Redis Cluster of its own
// redis-server processes on free loopback ports, a primary with replicas, Sentinels, SIGTERM with
// a wait, key-slot helpers, and the load and invariants of the failover tests.
// Every server is a privateRedis() (stopped by PID; see stores.js).

const { execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const Redis = require('ioredis');
const { privateRedis, freePort, uid } = require('./stores');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function redisCli(args, timeoutMs = 30_000) {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(err, { stdout, stderr }));
      else resolve(stdout);
    });
  });
}

/** SIGTERM (Redis's own orderly shutdown) and wait until the process has exited. */
async function terminate(srv) {
  const child = srv.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

/** A short-lived ioredis client to one node (no retries, no cluster redirection). */
async function nodeClient(port) {
  const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  c.on('error', () => {});
  await c.connect();
  return c;
}

async function onNode(port, fn) {
  const c = await nodeClient(port);
  try {
    return await fn(c);
  } finally {
    c.disconnect();
  }
}

/**
 * A Redis Cluster of `masters` masters and `replicas` replicas per master, each node a private
 * redis-server (started in parallel) with `cluster-node-timeout` `nodeTimeoutMs` (and, with
 * `persist`, every write fsynced before its reply). With `tls: { cert, key, ca }` (makeTlsFiles)
 * each node also serves TLS on `tlsPorts[i]` (`tlsUrls`) and the bus is TLS (`tls-cluster yes`):
 * a TLS client is told the nodes' TLS ports, the helpers here keep using the plain ones. Resolves
 * once every node reports cluster_state:ok. `stop()` kills every node and removes the config files.
 */
async function startCluster({ masters = 3, replicas = 0, nodeTimeoutMs = 1000, persist = false, tls } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyvve-cluster-'));
  const count = masters * (1 + replicas);
  const ports = [];
  const tlsPorts = [];
  for (let i = 0; i < count; i++) ports.push(await freePort());
  if (tls) for (let i = 0; i < count; i++) tlsPorts.push(await freePort());
  const nodes = await Promise.all(
    ports.map((port, i) =>
      privateRedis(
        [
          ...(tls
            ? ['--tls-port', String(tlsPorts[i]), '--tls-cert-file', tls.cert, '--tls-key-file', tls.key, '--tls-ca-cert-file', tls.ca, '--tls-auth-clients', 'no', '--tls-cluster', 'yes']
            : []),
          '--cluster-enabled', 'yes',
          '--cluster-config-file', path.join(dir, `nodes-${port}.conf`),
          '--cluster-node-timeout', String(nodeTimeoutMs),
          '--dir', dir,
          // Every write on disk before its reply, each node in its own folder (restarts keep it).
          ...(persist ? ['--appendonly', 'yes', '--appendfsync', 'always', '--appenddirname', `aof-${port}`] : []),
        ],
        { port },
      ),
    ),
  );
  const cluster = {
    dir,
    nodes,
    ports,
    urls: ports.map((p) => `redis://127.0.0.1:${p}`),
    tlsPorts,
    tlsUrls: tlsPorts.map((p) => `rediss://127.0.0.1:${p}`),
    async stop() {
      for (const n of nodes) await n.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
    /** The port of the master that owns `slot` now (asked of any live node). */
    async masterOf(slot) {
      for (const n of nodes) {
        if (!n.child || n.child.exitCode !== null || n.child.signalCode !== null) continue;
        try {
          const shards = await onNode(n.port, (c) => c.call('CLUSTER', 'SLOTS'));
          for (const [from, to, master] of shards) if (slot >= from && slot <= to) return master[1];
        } catch {
          // try the next node
        }
      }
      throw new Error(`no live node knows slot ${slot}`);
    },
    /** The ports of the replicas of the master on `port`. */
    async replicasOf(port) {
      const id = await onNode(port, (c) => c.call('CLUSTER', 'MYID'));
      const lines = (await onNode(port, (c) => c.call('CLUSTER', 'NODES'))).split('\n');
      return lines
        .map((l) => l.split(' '))
        .filter((f) => f[3] === id && f[2].includes('slave'))
        .map((f) => Number(f[1].split(':')[1].split('@')[0]));
    },
    node(port) {
      return nodes[ports.indexOf(port)];
    },
    async waitOk(ms = 20_000) {
      const until = Date.now() + ms;
      for (;;) {
        let ok = true;
        for (const n of nodes) {
          if (!n.child || n.child.exitCode !== null || n.child.signalCode !== null) continue;
          try {
            const info = await onNode(n.port, (c) => c.call('CLUSTER', 'INFO'));
            if (!/cluster_state:ok/.test(info)) ok = false;
          } catch {
            ok = false;
          }
        }
        if (ok) return;
        if (Date.now() > until) throw new Error('cluster not ok in time');
        await sleep(100);
      }
    },
  };
  try {
    await redisCli([
      '--cluster', 'create',
      ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas', String(replicas),
      '--cluster-yes',
    ]);
    await cluster.waitOk();
    // Replicas in sync (their first full resync done), so WAIT can be acknowledged at once.
    const until = Date.now() + 20_000;
    for (const port of ports) {
      for (;;) {
        const info = await onNode(port, (c) => c.info('replication')).catch(() => '');
        if (/role:master/.test(info) || /master_link_status:up/.test(info)) break;
        if (Date.now() > until) throw new Error(`replica on ${port} not in sync in time`);
        await sleep(50);
      }
    }
  } catch (e) {
    await cluster.stop();
    throw e;
  }
  return cluster;
}

/** `CLUSTER KEYSLOT` of each key, asked of a cluster-enabled node on `port`. */
async function keySlots(port, keys) {
  return onNode(port, (c) => Promise.all(keys.map((k) => c.call('CLUSTER', 'KEYSLOT', k))));
}

module.exports = { startCluster, terminate, nodeClient, onNode, keySlots, redisCli, sleep };

const { spawn } = require('node:child_process');

/** INFO replication of the node on `port`, as an object. */
async function replicationInfo(port) {
  const text = await onNode(port, (c) => c.info('replication'));
  return Object.fromEntries(text.split('\r\n').filter((l) => l.includes(':')).map((l) => l.split(/:(.*)/s).slice(0, 2)));
}

/** A primary and `replicas` replicas (private servers), resolved once every replica's link is up. */
async function startReplicated({ replicas = 1, args = [] } = {}) {
  // A replica writes the primary's RDB to its dir during a full sync: keep it out of the cwd.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyvve-replicated-'));
  const own = (name) => {
    fs.mkdirSync(path.join(dir, name));
    return ['--dir', path.join(dir, name)];
  };
  const primary = await privateRedis([...args, ...own('primary')]);
  const reps = await Promise.all(
    Array.from({ length: replicas }, (_, i) => privateRedis([...args, ...own(`replica-${i}`), '--replicaof', '127.0.0.1', String(primary.port)])),
  );
  const until = Date.now() + 15_000;
  for (const r of reps) {
    while ((await replicationInfo(r.port).catch(() => ({}))).master_link_status !== 'up') {
      if (Date.now() > until) throw new Error('replica link not up in time');
      await sleep(50);
    }
  }
  return {
    primary,
    replicas: reps,
    async stop() {
      for (const s of [primary, ...reps]) await s.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A redis-server in Sentinel mode watching `name` at 127.0.0.1:`masterPort` (own config file). */
async function startSentinel(masterPort, name, { quorum = 2, downAfterMs = 1000, failoverTimeoutMs = 5000 } = {}) {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyvve-sentinel-'));
  const conf = path.join(dir, 'sentinel.conf');
  fs.writeFileSync(
    conf,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor ${name} 127.0.0.1 ${masterPort} ${quorum}`,
      `sentinel down-after-milliseconds ${name} ${downAfterMs}`,
      `sentinel failover-timeout ${name} ${failoverTimeoutMs}`,
      `sentinel parallel-syncs ${name} 1`,
      '',
    ].join('\n'),
  );
  const child = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
  const exited = new Promise((r) => child.once('exit', r));
  process.once('exit', () => {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // gone
    }
  });
  const until = Date.now() + 15_000;
  for (;;) {
    try {
      if ((await onNode(port, (c) => c.ping())) === 'PONG') break;
    } catch {
      // not yet
    }
    if (Date.now() > until) throw new Error('sentinel did not start');
    await sleep(50);
  }
  return {
    port,
    child,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

module.exports.replicationInfo = replicationInfo;
module.exports.startReplicated = startReplicated;
module.exports.startSentinel = startSentinel;

// The failover tests under load (cluster-chaos.test.js, sentinel.test.js) share the load they run
// and the invariants they check after the fault.

/** Polls `check` every 100 ms until it is true (at most `ms`); a check that throws counts as false. */
async function until(check, what, ms = 20_000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** The publisher options of the failover tests: each publish waits for 1 replica, 2 s per try, no circuit breaker. */
const FAILOVER_OPTIONS = { replicaAcks: 1, timeoutMs: 2000, logLevel: 'off', circuitThreshold: 0 };

/**
 * A paced load on `publisher` until `stop()`: 64 workers each publishing one `type` event (of
 * `tenant`, with its own caller eventId) then pausing 20 ms (at most ~3,000 publishes/s); every
 * rejection is counted by code and retried with the same eventId every 25 ms (400 times at most).
 * `ids` are the events started, `resolved` the ids publish resolved with; `stop()` resolves once
 * every started publish has.
 */
function pacedLoad(publisher, { type, tenant, workers = 64 }) {
  const load = { ids: [], resolved: [], rejections: {}, lastRejectionAt: null };
  let stopped = false;
  const publishOne = async (id) => {
    for (let attempt = 0; ; attempt++) {
      try {
        load.resolved.push(await publisher.publish(type, { id }, { tenantId: tenant, userId: 'u', eventId: id }));
        return;
      } catch (e) {
        load.rejections[e.code] = (load.rejections[e.code] || 0) + 1;
        load.lastRejectionAt = Date.now();
        if (attempt > 400) throw e;
        await sleep(25);
      }
    }
  };
  const worker = async () => {
    while (!stopped) {
      const id = uid('ev');
      load.ids.push(id);
      await publishOne(id);
      await sleep(20);
    }
  };
  const all = Promise.all(Array.from({ length: workers }, worker));
  load.stop = async () => {
    stopped = true;
    await all;
  };
  return load;
}

/**
 * The invariants after a fault, with jest's `expect`, on `stream` as the node on `port` holds it:
 * every publish of `load` resolved (with its eventId), one entry per event (none lost, none duplicated), and one row
 * per event (of `tenant` in `db`) whose stream_id is its entry's ID (no orphan). `onMissing(ids)`
 * runs first if events are missing (to log a diagnostic).
 */
async function expectExactlyOnce({ db, port, stream, tenant, load, onMissing }) {
  const entries = (await onNode(port, (c) => c.xrange(stream, '-', '+'))).map(([id, f]) => ({ id, eventId: JSON.parse(f[1]).id }));
  const seen = entries.map((e) => e.eventId);
  expect(load.resolved).toHaveLength(load.ids.length);
  expect([...load.resolved].sort()).toEqual([...load.ids].sort()); // each publish resolved with its eventId
  expect(new Set(seen).size).toBe(seen.length); // no duplicate
  const seenSet = new Set(seen);
  const missing = load.ids.filter((id) => !seenSet.has(id));
  if (missing.length && onMissing) await onMissing(missing);
  expect([...seen].sort()).toEqual([...load.ids].sort()); // none lost, none extra
  const { rows } = await db.query('SELECT event_id, stream_id FROM event_metadata WHERE tenant_id = $1', [tenant]);
  expect(rows).toHaveLength(load.ids.length);
  const sid = Object.fromEntries(entries.map((e) => [e.eventId, e.id]));
  expect(rows.filter((r) => sid[r.event_id] !== r.stream_id)).toEqual([]); // no orphan, no stale stream_id
}

/** The line a failover test logs: what ran, what was rejected, and that the invariants held. */
const loadReport = (name, load, { before, timings }) =>
  `${name}: ${load.ids.length} publishes (${before} resolved before the fault), rejections by code ${JSON.stringify(load.rejections)}, `
  + `${timings}; lost 0, duplicates 0, orphans 0`;

module.exports.until = until;
module.exports.FAILOVER_OPTIONS = FAILOVER_OPTIONS;
module.exports.pacedLoad = pacedLoad;
module.exports.expectExactlyOnce = expectExactlyOnce;
module.exports.loadReport = loadReport;
