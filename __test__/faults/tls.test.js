'use strict';
// Redis over TLS (`rediss://` + `redisCaFile`) against a private TLS-only redis-server with a
// self-signed CA made by openssl. Skipped, saying why, when redis-server here has no TLS.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { EventPublisher, EventPublisherError } = require('../..');
const { DATABASE_URL, uid, ensureDatabase, pgClient, readStream, privateRedis, makeTlsFiles, redisHasTls } = require('../support/stores');

const why = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
  } catch {
    return 'openssl is not installed';
  }
  if (!redisHasTls()) return 'redis-server was built without TLS (--tls-port is not supported)';
  return null;
})();
if (why) console.log(`Redis TLS tests skipped: ${why}`);
const tlsTest = why ? test.skip : test;

let dir;
let files;
let server;
let db;

beforeAll(async () => {
  if (why) return;
  await ensureDatabase();
  db = await pgClient();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyvve-tls-'));
  files = makeTlsFiles(dir);
  server = await privateRedis([], { tls: files });
}, 60_000);

afterAll(async () => {
  if (server) await server.stop();
  if (db) await db.end();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

tlsTest('rediss:// with redisCaFile publishes over TLS; the entry reads back over TLS and the row has its stream id', async () => {
  const stream = uid('fault:tls');
  const tenant = uid('ws');
  const p = await EventPublisher.connect({ redisUrl: `rediss://127.0.0.1:${server.port}`, redisCaFile: files.ca, databaseUrl: DATABASE_URL, stream, logLevel: 'off' });
  try {
    const id = await p.publish('fault.tls.event', { secure: true, at: new Date(0) }, { tenantId: tenant, userId: 'u' });
    const ids = await p.publishBatch([1, 2].map((i) => ({ type: 'fault.tls.event', data: { i }, context: { tenantId: tenant, userId: 'u' } })));
    expect(await p.health()).toEqual({ redis: true, database: true, circuit: 'closed', inFlightBytes: 0, outbox: { pending: 0, oldestAgeMs: 0 } });
    const client = await server.client(); // ioredis with tls: { ca }
    try {
      const entries = await readStream(client, stream);
      expect(entries.map((e) => e.event.id)).toEqual([id, ...ids]);
      expect(entries[0].event.data).toEqual({ secure: true, at: '1970-01-01T00:00:00.000Z' });
      const { rows } = await db.query('SELECT event_id, stream_id FROM event_metadata WHERE tenant_id = $1', [tenant]);
      const sid = Object.fromEntries(entries.map((e) => [e.event.id, e.id]));
      expect(rows).toHaveLength(3);
      rows.forEach((r) => expect(r.stream_id).toBe(sid[r.event_id]));
    } finally {
      client.disconnect();
    }
  } finally {
    await p.close();
  }
});

tlsTest('without the CA the self-signed server is refused; plain redis:// to the TLS port fails; a missing CA file is ERR_CONFIG', async () => {
  const untrusted = await EventPublisher.connect({ redisUrl: `rediss://127.0.0.1:${server.port}`, databaseUrl: DATABASE_URL, timeoutMs: 3000, logLevel: 'off' }).catch((e) => e);
  expect(untrusted).toBeInstanceOf(EventPublisherError);
  expect(['ERR_REDIS', 'ERR_TIMEOUT']).toContain(untrusted.code);
  expect(untrusted.message).toMatch(/certificate|tls|unknown ?issuer|invalid peer/i);

  const started = Date.now();
  const plain = await EventPublisher.connect({ redisUrl: `redis://127.0.0.1:${server.port}`, databaseUrl: DATABASE_URL, timeoutMs: 3000, logLevel: 'off' }).catch((e) => e);
  expect(plain).toBeInstanceOf(EventPublisherError);
  expect(['ERR_REDIS', 'ERR_TIMEOUT']).toContain(plain.code);
  expect(Date.now() - started).toBeLessThan(5000);

  const missing = await EventPublisher.connect({ redisUrl: `rediss://127.0.0.1:${server.port}`, redisCaFile: path.join(dir, 'nope.pem'), databaseUrl: DATABASE_URL, logLevel: 'off' }).catch((e) => e);
  expect(missing).toBeInstanceOf(EventPublisherError);
  expect(missing.code).toBe('ERR_CONFIG');
  expect(missing.message).toContain('nope.pem');
});
