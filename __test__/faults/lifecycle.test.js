'use strict';
// The addon's lifecycle in a host process: loaded in worker threads that are terminated (with and
// without publishes in flight), worker threads that just end, and jest loading the module twice.

const path = require('node:path');
const Redis = require('ioredis');
const { DATABASE_URL, REDIS_URL, uid, ensureDatabase, pgClient, readStream, runNode } = require('../support/stores');

const ROOT = path.resolve(__dirname, '..', '..');

let redis;
let db;
beforeAll(async () => {
  await ensureDatabase();
  redis = new Redis(REDIS_URL);
  db = await pgClient();
});
afterAll(async () => {
  await redis.quit();
  await db.end();
});

test('worker threads that load the addon, publish and get terminated (5 times, some with publishes in flight) neither crash nor leak, and the process exits 0 by itself', async () => {
  const stream = uid('fault:worker');
  const tenant = uid('ws-worker');
  const code = `
    const { Worker } = require('node:worker_threads');
    const fs = require('node:fs');
    const sockets = () => fs.readdirSync('/proc/self/fd').filter((f) => { try { return fs.readlinkSync('/proc/self/fd/' + f).startsWith('socket:'); } catch { return false; } }).length;
    const workerCode = \`
      const { parentPort, workerData } = require('node:worker_threads');
      const { EventPublisher } = require(workerData.root);
      (async () => {
        const logs = [];
        const p = await EventPublisher.connect({ databaseUrl: workerData.db, redisUrl: workerData.redis, stream: workerData.stream, logger: (e) => logs.push(e) });
        const id = await p.publish('fault.worker.event', { i: workerData.i }, { tenantId: workerData.tenant, userId: 'u' });
        if (workerData.inFlight) {
          // Terminated while these are in flight (their outcome does not matter, the process's health does).
          for (let k = 0; k < 200; k++) p.publish('fault.worker.inflight', { k }, { tenantId: workerData.tenant + '-x', userId: 'u' }).catch(() => {});
          p.publishBatch([{ type: 'fault.worker.inflight', data: {}, context: { tenantId: workerData.tenant + '-x', userId: 'u' } }]).catch(() => {});
        }
        // Alive until terminated (except the one that just ends).
        if (!workerData.natural) setInterval(() => {}, 1000);
        parentPort.postMessage({ id });
        if (workerData.natural) await p.publish('fault.worker.event', { last: true }, { tenantId: workerData.tenant, userId: 'u' }); // then the worker just ends, without close()
      })().catch((e) => parentPort.postMessage({ error: String(e && e.stack) }));
    \`;
    const run = (i, opts) => new Promise((resolve, reject) => {
      const w = new Worker(workerCode, { eval: true, workerData: { i, root: ${JSON.stringify(ROOT)}, db: ${JSON.stringify(DATABASE_URL)}, redis: ${JSON.stringify(REDIS_URL)}, stream: ${JSON.stringify(stream)}, tenant: ${JSON.stringify(tenant)}, ...opts } });
      const started = Date.now();
      w.once('error', reject);
      w.once('message', async (m) => {
        if (m.error) return reject(new Error(m.error));
        if (opts.natural) {
          w.once('exit', (code) => resolve({ id: m.id, exitCode: code, exitMs: Date.now() - started }));
          return;
        }
        const code = await w.terminate();
        resolve({ id: m.id, exitCode: code });
      });
    });
    (async () => {
      const out = [];
      const baseline = sockets(); // stdio socketpairs
      for (let i = 0; i < 5; i++) {
        const r = await run(i, { inFlight: i % 2 === 1 });
        await new Promise((r) => setTimeout(r, 200));
        global.gc();
        out.push({ ...r, sockets: sockets() - baseline, rssMb: Math.round(process.memoryUsage().rss / 1e6) });
      }
      out.push(await run(5, { natural: true }));
      console.log(JSON.stringify(out));
    })().catch((e) => { console.error(e); process.exit(3); });
  `;
  const res = await runNode(code, { timeoutMs: 45_000, nodeArgs: ['--expose-gc'] });
  expect({ timedOut: res.timedOut, signal: res.signal, code: res.code, stderr: res.stderr }).toEqual({ timedOut: false, signal: null, code: 0, stderr: '' });
  const runs = JSON.parse(res.stdout.trim());
  expect(runs).toHaveLength(6);
  // terminate() reports exit code 1 for a worker it had to stop.
  runs.slice(0, 5).forEach((r) => expect(r.exitCode).toBe(1));
  // The worker that just ended exited by itself, promptly.
  expect(runs[5].exitCode).toBe(0);
  expect(runs[5].exitMs).toBeLessThan(5000);
  // No connections are left behind by terminated workers, and memory does not grow per worker.
  runs.slice(0, 5).forEach((r) => expect(r.sockets).toBe(0));
  expect(runs[4].rssMb - runs[0].rssMb).toBeLessThan(40);
  // Every awaited publish was written, with its row.
  const ids = runs.map((r) => r.id);
  const entries = (await readStream(redis, stream)).filter((e) => e.event.type === 'fault.worker.event' && !e.event.data.last);
  expect(entries.map((e) => e.event.id).sort()).toEqual([...ids].sort());
  const { rows } = await db.query('SELECT event_id, stream_id FROM event_metadata WHERE tenant_id = $1', [tenant]);
  const sid = Object.fromEntries(entries.map((e) => [e.event.id, e.id]));
  ids.forEach((id) => expect(rows.find((r) => r.event_id === id).stream_id).toBe(sid[id]));
}, 60_000);

test('jest loading the module twice (jest.isolateModules) is harmless: both copies publish', async () => {
  let a;
  let b;
  jest.isolateModules(() => {
    a = require('../..');
  });
  jest.isolateModules(() => {
    b = require('../..');
  });
  expect(a).not.toBe(b);
  const stream = uid('fault:twice');
  const tenant = uid('ws');
  const pa = await a.EventPublisher.connect({ databaseUrl: DATABASE_URL, redisUrl: REDIS_URL, stream, logLevel: 'off' });
  const pb = await b.EventPublisher.connect({ databaseUrl: DATABASE_URL, redisUrl: REDIS_URL, stream, logLevel: 'off' });
  try {
    const ids = await Promise.all([
      pa.publish('fault.twice.event', { copy: 'a' }, { tenantId: tenant, userId: 'u' }),
      pb.publish('fault.twice.event', { copy: 'b' }, { tenantId: tenant, userId: 'u' }),
      pb.publishBatch([{ type: 'fault.twice.event', data: { copy: 'b2' }, context: { tenantId: tenant, userId: 'u' } }]).then((x) => x[0]),
    ]);
    const entries = await readStream(redis, stream);
    expect(entries.map((e) => e.event.id).sort()).toEqual([...ids].sort());
    const { rows } = await db.query('SELECT event_id FROM event_metadata WHERE tenant_id = $1', [tenant]);
    expect(rows).toHaveLength(3);
    // Each copy's errors are its own EventPublisherError with the stable code.
    const err = await pb.publish('Bad Type', {}, { tenantId: tenant, userId: 'u' }).catch((e) => e);
    expect(err).toBeInstanceOf(b.EventPublisherError);
    expect(err.code).toBe('ERR_INVALID_EVENT');
    expect(a.EventTypes).toEqual(b.EventTypes);
  } finally {
    await pa.close();
    await pb.close();
  }
  // After both closed, a third copy still works.
  let c;
  jest.isolateModules(() => {
    c = require('../..');
  });
  const pc = await c.EventPublisher.connect({ databaseUrl: DATABASE_URL, redisUrl: REDIS_URL, stream, logLevel: 'off' });
  await expect(pc.publish('fault.twice.event', { copy: 'c' }, { tenantId: tenant, userId: 'u' })).resolves.toMatch(/^[a-z][a-z0-9]{23}$/);
  await pc.close();
});
