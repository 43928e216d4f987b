'use strict';
// The approvals example booted with Test.createTestingModule against the real Redis and Postgres:
// each service call must leave exactly the entry and the metadata row the platform's readers expect,
// and a consumer written like the platform's must process every event.
const { Test } = require('@nestjs/testing');
const { Redis } = require('ioredis');
const { Pool } = require('pg');
const { EventPublisher, EventPublisherError } = require('@hyvve/event-publisher');
const { EventPublisherService } = require('@hyvve/event-publisher/nest');
const h = require('./helpers');

const {
  AppModule,
  ApprovalRouterService,
  ApprovalEscalationService,
  ApprovalsService,
  ensureApprovalItemsTable,
} = h.loadExample();

jest.setTimeout(30_000);

const STREAM = h.uid('hyvve:test:nest-e2e');
const WORKSPACE = h.uid('ws-e2e');
const REQUESTER = 'user-requester-1';
const REVIEWER = 'user-reviewer-2';

let redis;
let pool;
let moduleRef;
let logger;
let router;
let escalation;
let approvals;
let cursor = '0-0';
/** Every entry this file's stream received, in order: { id (event id), streamId }. */
const published = [];

/** The entries written since the previous call: the effect of one service call. */
async function newEntries() {
  const entries = await h.entriesAfter(redis, STREAM, cursor);
  if (entries.length) cursor = entries[entries.length - 1][0];
  for (const [streamId, fields] of entries) published.push({ id: JSON.parse(fields[1]).id, streamId });
  return entries;
}

/** Checks that one service call wrote exactly one entry and its row; returns the event. */
async function expectOneEvent(expected) {
  const entries = await newEntries();
  expect(entries).toHaveLength(1);
  const event = h.expectEnvelope(entries[0], expected);
  await h.expectMetadataRow(pool, event, entries[0][0]);
  return event;
}

beforeAll(async () => {
  redis = new Redis(h.REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  pool = new Pool({ connectionString: h.DATABASE_URL, max: 2 });
  await EventPublisher.migrate({ databaseUrl: h.DATABASE_URL });
  await ensureApprovalItemsTable(pool);
  // As the platform's EventsModule does at startup: the consumer group reads only future entries.
  await redis.xgroup('CREATE', STREAM, 'hyvve-platform', '$', 'MKSTREAM');

  logger = h.captureLogger();
  moduleRef = await Test.createTestingModule({
    imports: [AppModule.forRoot({ redisUrl: h.REDIS_URL, databaseUrl: h.DATABASE_URL, stream: STREAM, logLevel: 'info' })],
  })
    .setLogger(logger)
    .compile();
  await moduleRef.init();
  router = moduleRef.get(ApprovalRouterService);
  escalation = moduleRef.get(ApprovalEscalationService);
  approvals = moduleRef.get(ApprovalsService);
});

afterAll(async () => {
  if (moduleRef) await moduleRef.close();
  if (pool) {
    await pool.query('DELETE FROM event_metadata WHERE tenant_id = $1', [WORKSPACE]);
    await pool.query('DELETE FROM approval_items WHERE workspace_id = $1', [WORKSPACE]);
    await pool.end();
  }
  if (redis) {
    await redis.del(STREAM);
    redis.disconnect();
  }
});

describe('ApprovalRouterService', () => {
  test('a reviewable approval publishes approval.item.requested with its payload, Dates as ISO strings', async () => {
    const dueAt = new Date(Date.now() + 48 * 3600_000);
    const item = await router.routeApproval(WORKSPACE, REQUESTER, 'content', 'Blog post draft', 72, {
      sourceModule: 'branding',
      sourceId: 'post-17',
      dueAt,
    });
    expect(item.status).toBe('pending');
    const event = await expectOneEvent({
      type: 'approval.item.requested',
      source: 'approval-router',
      tenantId: WORKSPACE,
      userId: REQUESTER,
      data: {
        approvalId: item.id,
        type: 'content',
        title: 'Blog post draft',
        confidenceScore: 72,
        recommendation: 'review',
        assignedToId: undefined,
        dueAt: item.due_at,
        sourceModule: 'branding',
        sourceId: 'post-17',
      },
    });
    expect(event.data.dueAt).toBe(dueAt.toISOString());
    expect('assignedToId' in event.data).toBe(false);
  });

  test('a confident approval publishes approval.item.auto_approved', async () => {
    const item = await router.routeApproval(WORKSPACE, REQUESTER, 'email', 'Weekly newsletter', 93);
    expect(item.status).toBe('auto_approved');
    await expectOneEvent({
      type: 'approval.item.auto_approved',
      source: 'approval-router',
      tenantId: WORKSPACE,
      userId: REQUESTER,
      data: {
        approvalId: item.id,
        type: 'email',
        title: 'Weekly newsletter',
        decision: 'auto_approved',
        decidedById: 'system',
        confidenceScore: 93,
      },
    });
  });
});

describe('ApprovalEscalationService', () => {
  test('an overdue approval publishes approval.item.escalated as user system', async () => {
    const overdue = new Date(Date.now() - 3600_000);
    const item = await router.routeApproval(WORKSPACE, REQUESTER, 'deal', 'Discount for ACME', 41, {
      assignedToId: REVIEWER,
      dueAt: overdue,
    });
    await newEntries(); // the approval.item.requested of the routing
    const [escalated, ...others] = await escalation.escalateOverdue(WORKSPACE, 'user-owner-9');
    expect(others).toHaveLength(0);
    expect(escalated.id).toBe(item.id);
    const event = await expectOneEvent({
      type: 'approval.item.escalated',
      source: 'approval-escalation',
      tenantId: WORKSPACE,
      userId: 'system',
      data: {
        approvalId: item.id,
        type: 'deal',
        title: 'Discount for ACME',
        escalatedFromId: REVIEWER,
        escalatedToId: 'user-owner-9',
        reason: 'Approval overdue',
        originalDueAt: overdue,
        newDueAt: escalated.due_at,
      },
    });
    expect(event.data.originalDueAt).toBe(overdue.toISOString());
    expect(Date.parse(event.data.newDueAt)).toBeGreaterThan(Date.now());
  });
});

describe('ApprovalsService', () => {
  async function pendingItem(title) {
    const item = await router.routeApproval(WORKSPACE, REQUESTER, 'content', title, 65);
    await newEntries(); // its approval.item.requested
    return item;
  }

  test('approve publishes approval.item.approved from the acting user; undefined notes are left out', async () => {
    const item = await pendingItem('Landing page copy');
    await approvals.approve(WORKSPACE, item.id, REVIEWER, {});
    const event = await expectOneEvent({
      type: 'approval.item.approved',
      source: 'approvals',
      tenantId: WORKSPACE,
      userId: REVIEWER,
      data: {
        approvalId: item.id,
        type: 'content',
        title: 'Landing page copy',
        decision: 'approved',
        decidedById: REVIEWER,
        confidenceScore: 65,
      },
    });
    expect(Object.keys(event.data)).not.toContain('decisionNotes');
  });

  test('reject publishes approval.item.rejected with the reason and notes', async () => {
    const item = await pendingItem('Press release');
    await approvals.reject(WORKSPACE, item.id, REVIEWER, { reason: 'Off brand', notes: 'Tone it down' });
    await expectOneEvent({
      type: 'approval.item.rejected',
      source: 'approvals',
      tenantId: WORKSPACE,
      userId: REVIEWER,
      data: {
        approvalId: item.id,
        type: 'content',
        title: 'Press release',
        decision: 'rejected',
        decidedById: REVIEWER,
        decisionNotes: 'Off brand\n\nTone it down',
        confidenceScore: 65,
      },
    });
  });

  test('cancel publishes approval.item.cancelled', async () => {
    const item = await pendingItem('Old campaign');
    await approvals.cancel(WORKSPACE, item.id, REQUESTER, { reason: 'Superseded' });
    await expectOneEvent({
      type: 'approval.item.cancelled',
      source: 'approvals',
      tenantId: WORKSPACE,
      userId: REQUESTER,
      data: { approvalId: item.id, type: 'content', title: 'Old campaign', cancelledById: REQUESTER, reason: 'Superseded' },
    });
  });

  test('a decision on an already decided item publishes nothing', async () => {
    const item = await pendingItem('Decided twice');
    await approvals.approve(WORKSPACE, item.id, REVIEWER, {});
    await expectOneEvent({
      type: 'approval.item.approved',
      source: 'approvals',
      tenantId: WORKSPACE,
      userId: REVIEWER,
      data: { approvalId: item.id, type: 'content', title: 'Decided twice', decision: 'approved', decidedById: REVIEWER, confidenceScore: 65 },
    });
    await expect(approvals.reject(WORKSPACE, item.id, REVIEWER, { reason: 'late' })).rejects.toThrow('Cannot reject item with status: approved');
    expect(await newEntries()).toHaveLength(0);
  });

  test('bulk approve publishes one approval.item.approved per item, in input order, with a shared correlation id', async () => {
    const items = [await pendingItem('Bulk A'), await pendingItem('Bulk B'), await pendingItem('Bulk C')];
    const ids = [items[2].id, items[0].id, 'no-such-item', items[1].id];
    const result = await approvals.bulkApprove(WORKSPACE, REVIEWER, ids, 'LGTM');
    expect(result.successes).toEqual([items[2].id, items[0].id, items[1].id]);
    expect(result.failures).toEqual([{ id: 'no-such-item', error: 'not found or not pending' }]);

    const entries = await newEntries();
    expect(entries).toHaveLength(3);
    const { correlationId } = JSON.parse(entries[0][1][1]);
    expect(correlationId).toMatch(/^bulk-/);
    const byId = new Map(items.map((item) => [item.id, item]));
    const events = [];
    for (const [i, entry] of entries.entries()) {
      const item = byId.get(result.successes[i]);
      const event = h.expectEnvelope(entry, {
        type: 'approval.item.approved',
        source: 'approvals',
        tenantId: WORKSPACE,
        userId: REVIEWER,
        correlationId,
        data: {
          approvalId: item.id,
          type: 'content',
          title: item.title,
          decision: 'approved',
          decidedById: REVIEWER,
          decisionNotes: 'LGTM',
          confidenceScore: 65,
        },
      });
      await h.expectMetadataRow(pool, event, entry[0]);
      events.push(event);
    }
    expect(result.eventIds).toEqual(events.map((event) => event.id));
  });
});

describe('EventPublisherService in the app', () => {
  let single; // { id, streamId } of the direct publish
  let batchIds;
  test('publish resolves a real Promise to the event id, and publishBatch to ids in input order', async () => {
    const service = moduleRef.get(EventPublisherService);
    const promise = service.publish('pm.task.phase_changed', { taskId: 't-1', to: 'done' }, { tenantId: WORKSPACE, userId: REVIEWER });
    expect(promise).toBeInstanceOf(Promise);
    const id = await promise;
    const event = await expectOneEvent({
      type: 'pm.task.phase_changed',
      source: 'platform',
      tenantId: WORKSPACE,
      userId: REVIEWER,
      data: { taskId: 't-1', to: 'done' },
    });
    expect(id).toBe(event.id);
    single = published[published.length - 1];

    const ids = await service.publishBatch([
      { type: 'pm.project.created', data: { projectId: 'p-1', name: 'One', slug: 'one' }, context: { tenantId: WORKSPACE, userId: REVIEWER, source: 'pm' } },
      { type: 'pm.project.updated', data: { projectId: 'p-1', name: 'Uno', slug: 'one' }, context: { tenantId: WORKSPACE, userId: REVIEWER, source: '' } },
    ]);
    batchIds = ids;
    const entries = await newEntries();
    expect(entries.map(([, fields]) => JSON.parse(fields[1]).id)).toEqual(ids);
    const [first, second] = entries.map(([, fields]) => JSON.parse(fields[1]));
    expect([first.source, second.source]).toEqual(['pm', 'platform']);
    expect(first.correlationId).not.toBe(second.correlationId);
    for (const entry of entries) {
      const event = JSON.parse(entry[1][1]);
      await h.expectMetadataRow(pool, event, entry[0]);
    }
  });

  test('an invalid event rejects with EventPublisherError ERR_INVALID_EVENT and writes nothing', async () => {
    const service = moduleRef.get(EventPublisherService);
    const err = await service.publish('approval.item.approved', { approvalId: 'x' }, { tenantId: '', userId: REVIEWER }).catch((e) => e);
    expect(err).toBeInstanceOf(EventPublisherError);
    expect(err.code).toBe('ERR_INVALID_EVENT');
    expect(await newEntries()).toHaveLength(0);
  });

  test("publishes are logged through Nest's Logger, context EventPublisherService, with the structured fields", async () => {
    const records = logger.records('EventPublisherService');
    const record = records.find(([method, message]) => method === 'log' && message && message.eventId === single.id);
    expect(record).toBeDefined();
    const [, message] = record;
    expect(message).toMatchObject({
      msg: 'event published',
      eventId: single.id,
      type: 'pm.task.phase_changed',
      tenantId: WORKSPACE,
      streamId: single.streamId,
    });
    expect(message.correlationId).toMatch(h.CUID2);
    const batch = records.find(([method, message]) => method === 'log' && message && message.eventIds && message.eventIds[0] === batchIds[0]);
    expect(batch).toBeDefined();
    expect(batch[1]).toMatchObject({ msg: 'event batch published', count: 2, eventIds: batchIds });
  });

  test('health() reports both stores up', async () => {
    const health = await moduleRef.get(EventPublisherService).health();
    expect(health).toMatchObject({ redis: true, database: true, circuit: 'closed', state: 'ready' });
  });
});

describe('a consumer written like the platform', () => {
  test('reads every event from group hyvve-platform and finds every metadata row (zero missing)', async () => {
    // A last burst of traffic on top of what the tests above published.
    const burst = [];
    for (let i = 0; i < 5; i++) burst.push(await router.routeApproval(WORKSPACE, REQUESTER, 'content', `Burst ${i}`, i % 2 ? 90 : 70));
    const pending = burst.filter((item) => item.status === 'pending');
    expect(pending).toHaveLength(3);
    await approvals.bulkApprove(WORKSPACE, REVIEWER, pending.map((item) => item.id));
    const entries = await newEntries();
    expect(entries).toHaveLength(burst.length + pending.length);

    const processed = new Map();
    let missing = 0;
    const deadline = Date.now() + 15_000;
    while (processed.size < published.length && Date.now() < deadline) {
      const reply = await redis.xreadgroup('GROUP', 'hyvve-platform', 'consumer-e2e', 'COUNT', 10, 'BLOCK', 500, 'STREAMS', STREAM, '>');
      if (!reply) continue;
      for (const [streamId, fields] of reply[0][1]) {
        const event = JSON.parse(fields[1]);
        const started = await pool.query(
          `UPDATE event_metadata SET status = 'PROCESSING'::"EventStatus", attempts = attempts + 1 WHERE event_id = $1`,
          [event.id],
        );
        if (started.rowCount !== 1) {
          missing++;
          continue;
        }
        await pool.query(
          `UPDATE event_metadata SET status = 'COMPLETED'::"EventStatus", processed_at = (now() AT TIME ZONE 'UTC') WHERE event_id = $1`,
          [event.id],
        );
        await redis.xack(STREAM, 'hyvve-platform', streamId);
        processed.set(event.id, streamId);
      }
    }
    expect(missing).toBe(0);
    expect(processed).toEqual(new Map(published.map((p) => [p.id, p.streamId])));
    const { rows } = await pool.query(
      `SELECT status::text AS status, attempts, count(*)::int AS n FROM event_metadata WHERE tenant_id = $1 GROUP BY 1, 2`,
      [WORKSPACE],
    );
    expect(rows).toEqual([{ status: 'COMPLETED', attempts: 1, n: published.length }]);
  });
});
