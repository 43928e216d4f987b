'use strict';
// The main job: publishes real events the way the platform's approval services do, then reads
// them back from the Redis stream (as the platform's consumer does: fields[1]) and from the
// event_metadata table. Uses REDIS_URL / DATABASE_URL when set, else the local services.

const Redis = require('ioredis');
const { Client } = require('pg');
const { EventPublisher, EventTypes } = require('..');

const DATABASE_URL = process.env.DATABASE_URL || 'postgres://root@127.0.0.1:5432/hyvve_publisher_demo?sslmode=disable';
const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const STREAM = process.env.DEMO_STREAM || 'hyvve:events:demo';

async function ensureDatabase() {
  const url = new URL(DATABASE_URL);
  const name = url.pathname.slice(1);
  url.pathname = '/postgres';
  const admin = new Client({ connectionString: url.toString() });
  await admin.connect();
  const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
  if (!rowCount) await admin.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
  await admin.end();
  const created = await EventPublisher.migrate({ databaseUrl: DATABASE_URL });
  console.log(created ? 'created the event_metadata table' : 'event_metadata table already exists');
}

async function main() {
  await ensureDatabase();
  const publisher = await EventPublisher.connect({ databaseUrl: DATABASE_URL, redisUrl: REDIS_URL, stream: STREAM, logLevel: 'info' });
  const workspace = `ws_demo_${Date.now()}`;

  const requested = await publisher.publish(
    EventTypes.APPROVAL_REQUESTED,
    { approvalId: 'appr_1', type: 'content', title: 'Publish the launch post', confidenceScore: 72, recommendation: 'review', dueAt: new Date(Date.now() + 86_400_000) },
    { tenantId: workspace, userId: 'user_alice', source: 'approval-router' },
  );
  const approved = await publisher.publish(
    EventTypes.APPROVAL_APPROVED,
    { approvalId: 'appr_1', type: 'content', title: 'Publish the launch post', decision: 'approved', decidedById: 'user_bob', decidedAt: new Date(), notes: undefined },
    { tenantId: workspace, userId: 'user_bob', source: 'approvals', correlationId: requested },
  );
  const batch = await publisher.publishBatch(
    ['appr_2', 'appr_3', 'appr_4'].map((approvalId) => ({
      type: EventTypes.APPROVAL_ESCALATED,
      data: { approvalId, escalatedToId: 'user_carol', reason: 'overdue', originalDueAt: new Date(Date.now() - 3_600_000), newDueAt: new Date(Date.now() + 3_600_000) },
      context: { tenantId: workspace, userId: 'system', source: 'approval-escalation' },
    })),
  );
  const ids = [requested, approved, ...batch];
  console.log(`\npublished ${ids.length} events: ${ids.join(', ')}`);

  const redis = new Redis(REDIS_URL);
  const entries = await redis.xrevrange(STREAM, '+', '-', 'COUNT', 50);
  const mine = entries.reverse().map(([streamId, fields]) => ({ streamId, event: JSON.parse(fields[1]) })).filter((e) => ids.includes(e.event.id));
  console.log(`\nread back from stream ${STREAM} (XRANGE, JSON.parse(fields[1])):`);
  for (const { streamId, event } of mine) console.log(`  ${streamId}  ${JSON.stringify(event)}`);

  const db = new Client({ connectionString: DATABASE_URL });
  await db.connect();
  const { rows } = await db.query(
    `SELECT event_id, stream_id, type, source, tenant_id, correlation_id, status, attempts, created_at FROM event_metadata WHERE event_id = ANY($1) ORDER BY created_at, event_id`,
    [ids],
  );
  console.log('\nread back from event_metadata:');
  console.table(rows.map((r) => ({ ...r, created_at: r.created_at.toISOString() })));

  const matched = rows.filter((r) => mine.some((e) => e.event.id === r.event_id && e.streamId === r.stream_id)).length;
  console.log(`\n${mine.length}/${ids.length} entries in the stream, ${rows.length}/${ids.length} rows, ${matched} rows whose stream_id matches its entry`);
  console.log('health:', await publisher.health());

  await publisher.close();
  await redis.quit();
  await db.end();
  if (mine.length !== ids.length || matched !== ids.length) process.exit(1);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
