'use strict';
// The smoke test a foreign runtime runs (arm64 Node under qemu, a musl Node): loads the package
// the way a user does (`require('@hyvve/event-publisher')`, the loader choosing the binary), then
// publish, publishBatch, health and close against the local Redis and Postgres, and checks that
// the stream and the table hold the same events. Plain Node, no jest: it must start fast under
// emulation. Prints one JSON line: { binary, runtime, published, ok }; exits 1 on any failure.
// Env: TEST_REDIS_URL, TEST_DATABASE_URL; SMOKE_EXPECT_BINARY (the file name that must load).

const assert = require('node:assert/strict');
const path = require('node:path');
const Redis = require('ioredis');
const { Client } = require('pg');

const ROOT = path.resolve(__dirname, '..', '..');
// The suite's stores (TEST_REDIS_URL, TEST_DATABASE_URL or their defaults).
const { REDIS_URL, DATABASE_URL, ensureDatabase } = require('../support/stores');

async function main() {
  const { EventPublisher } = require(ROOT);
  const loaded = Object.keys(require.cache).filter((f) => f.endsWith('.node'));
  assert.equal(loaded.length, 1, `one .node file loaded: ${loaded}`);
  const binary = path.basename(loaded[0]);
  if (process.env.SMOKE_EXPECT_BINARY) assert.equal(binary, process.env.SMOKE_EXPECT_BINARY);

  const stream = `hyvve:test:smoke:${process.arch}:${process.pid}:${Date.now()}`;
  const tenant = `ws-smoke-${process.pid}-${Date.now()}`;
  await ensureDatabase();
  await EventPublisher.migrate({ databaseUrl: DATABASE_URL });
  const p = await EventPublisher.connect({ redisUrl: REDIS_URL, databaseUrl: DATABASE_URL, stream, source: 'smoke', logLevel: 'off' });
  const redis = new Redis(REDIS_URL);
  const db = new Client({ connectionString: DATABASE_URL });
  await db.connect();
  try {
    const ctx = { tenantId: tenant, userId: 'user-smoke' };
    const one = await p.publish('approval.item.approved', { approvalId: 'a-1', n: 1 }, ctx);
    const batch = await p.publishBatch([1, 2, 3].map((n) => ({ type: 'approval.item.approved', data: { approvalId: `a-${n + 1}`, n: n + 1 }, context: ctx })));
    assert.equal(batch.length, 3);
    const health = await p.health();
    assert.equal(health.redis, true, `health: ${JSON.stringify(health)}`);
    assert.equal(health.database, true, `health: ${JSON.stringify(health)}`);
    await p.close();

    // stream = table: every entry's event has its row, holding the entry's id; nothing else.
    const entries = await redis.xrange(stream, '-', '+');
    const events = entries.map(([id, fields]) => ({ streamId: id, event: JSON.parse(fields[1]) }));
    assert.deepEqual(events.map((e) => e.event.id), [one, ...batch]);
    assert.deepEqual(events.map((e) => e.event.data.n), [1, 2, 3, 4]);
    const { rows } = await db.query('SELECT event_id, stream_id, tenant_id FROM event_metadata WHERE tenant_id = $1 ORDER BY stream_id', [tenant]);
    assert.deepEqual(
      rows.map((r) => [r.event_id, r.stream_id]),
      events.map((e) => [e.event.id, e.streamId]),
    );
    console.log(JSON.stringify({
      binary, runtime: `${process.platform} ${process.arch} ${process.version}`, published: events.length, health, ok: true,
    }));
  } finally {
    await db.query('DELETE FROM event_metadata WHERE tenant_id = $1', [tenant]).catch(() => {});
    await redis.del(stream).catch(() => {});
    redis.disconnect();
    await db.end();
  }
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
