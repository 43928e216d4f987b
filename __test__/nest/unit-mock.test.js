'use strict';
// The platform's unit-test style, unchanged: the service under test gets
// `{ provide: EventPublisherService, useValue: { publish: jest.fn() } }` and a fake database; no store is touched.
const { Test } = require('@nestjs/testing');
const { EventPublisherService, EventOutbox } = require('@hyvve/event-publisher/nest');
const h = require('./helpers');

const { ApprovalRouterService, ApprovalsService, PG_POOL } = h.loadExample();

function fakePool(row) {
  return { query: jest.fn(async () => ({ rows: [row], rowCount: 1 })) };
}

const row = {
  id: 'appr-1',
  workspace_id: 'ws-1',
  type: 'content',
  title: 'Blog post',
  status: 'pending',
  priority: 'medium',
  confidence_score: 70,
  recommendation: 'review',
  assigned_to_id: null,
  requested_by: 'user-1',
  due_at: new Date('2026-12-01T10:00:00.000Z'),
  source_module: null,
  source_id: null,
};

test('ApprovalRouterService publishes through a mocked EventPublisherService', async () => {
  const publish = jest.fn().mockResolvedValue('evt-1');
  const moduleRef = await Test.createTestingModule({
    providers: [ApprovalRouterService, { provide: EventPublisherService, useValue: { publish } }, { provide: PG_POOL, useValue: fakePool(row) }],
  }).compile();

  const item = await moduleRef.get(ApprovalRouterService).routeApproval('ws-1', 'user-1', 'content', 'Blog post', 70, { dueAt: row.due_at });

  expect(item).toBe(row);
  expect(publish).toHaveBeenCalledTimes(1);
  expect(publish).toHaveBeenCalledWith(
    'approval.item.requested',
    {
      approvalId: 'appr-1',
      type: 'content',
      title: 'Blog post',
      confidenceScore: 70,
      recommendation: 'review',
      assignedToId: undefined,
      dueAt: row.due_at,
      sourceModule: undefined,
      sourceId: undefined,
    },
    { tenantId: 'ws-1', userId: 'user-1', source: 'approval-router' },
  );
  await moduleRef.close();
});

test('ApprovalsService.approve publishes approval.item.approved through the mock', async () => {
  const publish = jest.fn().mockReturnValue('evt-2');
  // approve() goes through the outbox (one transaction): its mock runs the callback on the pool.
  const outbox = { transaction: jest.fn((db, fn) => fn({ tx: db, publish })) };
  const moduleRef = await Test.createTestingModule({
    providers: [
      ApprovalsService,
      { provide: EventPublisherService, useValue: { publish: jest.fn() } },
      { provide: EventOutbox, useValue: outbox },
      { provide: PG_POOL, useValue: fakePool({ ...row, status: 'approved' }) },
    ],
  }).compile();

  await moduleRef.get(ApprovalsService).approve('ws-1', 'appr-1', 'user-2', { notes: 'ok' });

  expect(publish).toHaveBeenCalledWith(
    'approval.item.approved',
    { approvalId: 'appr-1', type: 'content', title: 'Blog post', decision: 'approved', decidedById: 'user-2', decisionNotes: 'ok', confidenceScore: 70 },
    { tenantId: 'ws-1', userId: 'user-2', source: 'approvals' },
  );
  await moduleRef.close();
});

// The same spec with EventPublisherModule.forTest(): the in-memory publisher behind the real
// EventPublisherService, so the spec sees the envelope the stream would hold (and a payload the
// real publisher would refuse is refused here too).
describe('with EventPublisherModule.forTest()', () => {
  const { EventPublisherModule } = require('@hyvve/event-publisher/nest');
  const { TestPublisher } = require('@hyvve/event-publisher/testing');

  async function compile(pool) {
    return Test.createTestingModule({
      imports: [EventPublisherModule.forTest({ source: 'platform' })],
      providers: [ApprovalsService, { provide: PG_POOL, useValue: pool }],
    }).compile();
  }

  test('ApprovalsService.approve: the envelope and row as the stream and table would hold them', async () => {
    const moduleRef = await compile(fakePool({ ...row, status: 'approved' }));
    const events = moduleRef.get(TestPublisher);
    expect(moduleRef.get(EventPublisherService)).toBeInstanceOf(EventPublisherService);

    await moduleRef.get(ApprovalsService).approve('ws-1', 'appr-1', 'user-2', { notes: 'ok' });

    const [entry, ...more] = events.published();
    expect(more).toEqual([]);
    expect(entry.stream).toBe('hyvve:events:main');
    expect(entry.fields[0]).toBe('event');
    expect(Object.keys(entry.event)).toEqual(h.ENVELOPE_KEYS);
    expect(entry.event).toEqual({
      id: expect.stringMatching(h.CUID2),
      type: 'approval.item.approved',
      source: 'approvals',
      timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      correlationId: expect.stringMatching(h.CUID2),
      tenantId: 'ws-1',
      userId: 'user-2',
      version: '1.0',
      data: { approvalId: 'appr-1', type: 'content', title: 'Blog post', decision: 'approved', decidedById: 'user-2', decisionNotes: 'ok', confidenceScore: 70 },
    });
    // The bytes: the envelope built around JSON.stringify of the payload, keys in the platform's order.
    expect(entry.envelope).toBe(JSON.stringify(entry.event));
    expect(entry.row).toMatchObject({ event_id: entry.event.id, stream_id: entry.streamId, type: 'approval.item.approved', source: 'approvals', tenant_id: 'ws-1', status: 'PENDING', attempts: 0 });
    await moduleRef.close();
  });

  test('a store failure injected with failNext reaches the caller as the real EventPublisherError', async () => {
    const moduleRef = await compile(fakePool({ ...row, status: 'approved' }));
    moduleRef.get(TestPublisher).failNext('ERR_DATABASE');
    await expect(moduleRef.get(ApprovalsService).approve('ws-1', 'appr-1', 'user-2', { notes: 'ok' })).rejects.toMatchObject({
      name: 'EventPublisherError',
      code: 'ERR_DATABASE',
    });
    expect(moduleRef.get(TestPublisher).published()).toEqual([]);
    await moduleRef.close();
  });
});
