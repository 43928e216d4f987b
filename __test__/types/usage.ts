// Type test of @hyvve/event-publisher's typings: compiled, never run.
// `npx tsc -p __test__/types/tsconfig.json` must pass; every `@ts-expect-error` line must be an error.
import {
  EventPublisher,
  EventTypes,
  EventPublisherError,
  type PublishContext,
  type EventType,
  type PayloadOf,
  type EventPayloadMap,
  type ApprovalDecisionPayload,
  type ApprovalRequestedPayload,
  type KBPageVerifiedPayload,
} from '@hyvve/event-publisher';

type Equal<A, B> = (<X>() => X extends A ? 1 : 2) extends (<X>() => X extends B ? 1 : 2) ? true : false;
function assertType<T extends true>(): T | void {}

declare const p: EventPublisher;
const ctx: PublishContext = { tenantId: 'ws_1', userId: 'user_1', source: 'approvals' };

// ---- the constants ----
assertType<Equal<typeof EventTypes.APPROVAL_APPROVED, 'approval.item.approved'>>();
assertType<Equal<PayloadOf<typeof EventTypes.APPROVAL_APPROVED>, ApprovalDecisionPayload>>();
assertType<Equal<EventPayloadMap['approval.item.requested'], ApprovalRequestedPayload>>();
const approvedLiteral: 'approval.item.approved' = EventTypes.APPROVAL_APPROVED;
// @ts-expect-error the constants are readonly
EventTypes.APPROVAL_APPROVED = 'approval.item.approved';

// ---- typed payloads ----
const decision: ApprovalDecisionPayload = {
  approvalId: 'apr_1',
  type: 'content',
  title: 'Publish blog post',
  decision: 'approved',
  decidedById: 'user_1',
  confidenceScore: 92,
};
async function typed(): Promise<string[]> {
  const a: string = await p.publish(EventTypes.APPROVAL_APPROVED, decision, ctx);
  const b: string = await p.publish('approval.item.approved', { ...decision, decisionNotes: undefined }, ctx);
  // Date fields take a Date (written as its ISO string) or a string.
  await p.publish(EventTypes.APPROVAL_REQUESTED, {
    approvalId: 'apr_2', type: 'email', title: 't', confidenceScore: 40, recommendation: 'full_review',
    dueAt: new Date(),
  }, ctx);
  await p.publish(EventTypes.APPROVAL_REQUESTED, {
    approvalId: 'apr_2', type: 'email', title: 't', confidenceScore: 40, recommendation: 'review',
    dueAt: '2026-11-27T06:32:41.123Z',
  }, ctx);
  const verified: KBPageVerifiedPayload = {
    pageId: 'pg', workspaceId: 'ws', tenantId: 'ws', verifiedById: 'u', verifiedAt: new Date(), verifyExpires: null,
  };
  await p.publish(EventTypes.KB_PAGE_VERIFIED, verified, ctx);
  // A value whose type is a union of event types gets the union of their payloads.
  const t = Math.random() > 0.5 ? EventTypes.APPROVAL_APPROVED : EventTypes.APPROVAL_REJECTED;
  await p.publish(t, decision, ctx);
  // The promise is real: callers chain .catch().
  p.publish(EventTypes.APPROVAL_APPROVED, decision, ctx).catch(() => undefined);
  return [a, b];
}

// ---- wrong payloads ----
async function wrong(): Promise<void> {
  // @ts-expect-error missing required field (confidenceScore)
  await p.publish(EventTypes.APPROVAL_APPROVED, { approvalId: 'a', type: 't', title: 't', decision: 'approved' }, ctx);
  // @ts-expect-error wrong field type (confidenceScore: string)
  await p.publish('approval.item.approved', { ...decision, confidenceScore: '92' }, ctx);
  // @ts-expect-error value outside the literal union (decision)
  await p.publish(EventTypes.APPROVAL_REJECTED, { ...decision, decision: 'maybe' }, ctx);
  // @ts-expect-error value outside the literal union (recommendation)
  await p.publish(EventTypes.APPROVAL_REQUESTED, { approvalId: 'a', type: 't', title: 't', confidenceScore: 1, recommendation: 'skip', dueAt: new Date() }, ctx);
  // @ts-expect-error a number is not a date
  await p.publish(EventTypes.APPROVAL_EXPIRED, { approvalId: 'a', type: 't', title: 't', dueAt: Date.now() }, ctx);
  // @ts-expect-error unknown property on a typed payload (excess property check)
  await p.publish(EventTypes.PM_PROJECT_CREATED, { projectId: 'p', name: 'n', slug: 's', extra: 1 }, ctx);
  // @ts-expect-error the context needs tenantId and userId
  await p.publish(EventTypes.PM_PROJECT_CREATED, { projectId: 'p', name: 'n', slug: 's' }, { tenantId: 'ws' });
}

// ---- types without a declared payload, and unknown but well-formed types ----
interface TaskPhaseChanged { taskId: string; fromPhaseId: string | null; toPhaseId: string }
declare const phaseChange: TaskPhaseChanged;
class TaskDto { constructor(readonly taskId: string) {} }
async function untyped(): Promise<void> {
  await p.publish('pm.task.phase_changed', { taskId: 't1', anything: { nested: [1, 2, 3] }, at: new Date() }, ctx);
  await p.publish('pm.task.phase_changed', phaseChange, ctx); // interface-typed value: no index signature needed
  await p.publish('pm.workflow.execution.started', new TaskDto('t1'), ctx);
  await p.publish(EventTypes.PM_TASK_CREATED, { taskId: 't1' }, ctx);
  const record: Record<string, unknown> = { a: 1 };
  await p.publish(EventTypes.AUTH_USER_CREATED, record, ctx);
  const anyType: string = 'custom.thing.happened';
  await p.publish(anyType, { ok: true }, ctx);
  // @ts-expect-error an array is not an event payload
  await p.publish('pm.task.phase_changed', [1, 2, 3], ctx);
  // @ts-expect-error a primitive is not an event payload
  await p.publish('pm.task.phase_changed', 'text', ctx);
  // @ts-expect-error null is not an event payload
  await p.publish(EventTypes.PM_TASK_CREATED, null, ctx);
  // @ts-expect-error a Date serialises to a string, not an object
  await p.publish(EventTypes.PM_TASK_CREATED, new Date(), ctx);
}

// ---- batches and errors ----
async function batch(): Promise<void> {
  const ids: string[] = await p.publishBatch([
    { type: EventTypes.APPROVAL_APPROVED, data: decision, context: ctx },
    { type: 'pm.task.phase_changed', data: phaseChange, context: { ...ctx, correlationId: 'corr_1' } },
    { type: EventTypes.PM_TASK_UPDATED, data: { taskId: 't1' }, context: ctx },
  ]);
  void ids;
  try {
    await p.publish(EventTypes.APPROVAL_APPROVED, decision, ctx);
  } catch (err) {
    if (err instanceof EventPublisherError && err.code === 'ERR_INVALID_EVENT') {
      const msg: string = err.message;
      void msg;
    }
    if (err instanceof EventPublisherError) {
      // @ts-expect-error not one of the error codes
      if (err.code === 'ERR_NOPE') return;
    }
  }
}

// ---- all 71 event types ----
const ALL_EVENT_TYPES = [
  'auth.user.created', 'auth.user.updated', 'auth.session.created',
  'auth.session.expired', 'workspace.workspace.created', 'workspace.workspace.updated',
  'workspace.member.added', 'workspace.member.removed', 'workspace.member.role_changed',
  'approval.item.requested', 'approval.item.created', 'approval.item.approved',
  'approval.item.rejected', 'approval.item.escalated', 'approval.item.expired',
  'approval.item.auto_approved', 'approval.item.cancelled', 'agent.run.started',
  'agent.run.completed', 'agent.run.failed', 'agent.confirmation.requested',
  'agent.confirmation.granted', 'agent.confirmation.denied', 'permission.role.changed',
  'permission.module_override.changed', 'crm.contact.created', 'crm.contact.updated',
  'crm.contact.deleted', 'content.article.created', 'content.article.published',
  'content.article.scheduled', 'content.article.unpublished', 'ai.token.limit_warning',
  'ai.token.limit_exceeded', 'pm.project.created', 'pm.project.updated',
  'pm.project.deleted', 'pm.phase.created', 'pm.phase.updated',
  'pm.phase.transitioned', 'pm.team.member_added', 'pm.team.member_updated',
  'pm.team.member_removed', 'pm.task.created', 'pm.task.updated',
  'pm.task.status_changed', 'pm.task.assigned', 'pm.task.completed',
  'pm.task.deleted', 'pm.checkpoint.created', 'pm.checkpoint.completed',
  'pm.checkpoint.reminder_sent', 'pm.workflow.created', 'pm.workflow.updated',
  'pm.workflow.deleted', 'pm.workflow.activated', 'pm.workflow.paused',
  'pm.workflow.execution.retried', 'kb.page.created', 'kb.page.updated',
  'kb.page.deleted', 'kb.page.restored', 'kb.page.moved',
  'kb.page.linked_to_project', 'kb.page.unlinked_from_project', 'kb.page.favorited',
  'kb.page.unfavorited', 'kb.page.verified', 'kb.page.unverified',
  'kb.page.verification_expired', 'kb.mention.created',
] as const;
// Each of the 71 strings is an EventType, and EventType holds nothing else.
const allTyped: readonly EventType[] = ALL_EVENT_TYPES;
let one: EventType = ALL_EVENT_TYPES[0];
for (const s of ALL_EVENT_TYPES) one = s;
assertType<Equal<(typeof ALL_EVENT_TYPES)['length'], 71>>();
assertType<Equal<EventType, (typeof ALL_EVENT_TYPES)[number]>>();
assertType<Equal<EventType, (typeof EventTypes)[keyof typeof EventTypes]>>();
// @ts-expect-error not an event type
one = 'pm.task.phase_changed';

export { typed, wrong, untyped, batch, allTyped, one, approvedLiteral };

// publishBatch checks each event's payload against its own type.
async function batchPayloadsAreChecked(pub: EventPublisher): Promise<void> {
  await pub.publishBatch([
    // @ts-expect-error a typed event with a payload missing its required fields
    { type: EventTypes.APPROVAL_APPROVED, data: { approvalId: 'a' }, context: { tenantId: 't', userId: 'u' } },
  ]);
  const dynamic: Array<{ type: string; data: Record<string, unknown>; context: { tenantId: string; userId: string } }> = [];
  await pub.publishBatch(dynamic);
}
void batchPayloadsAreChecked;

// Redis topologies (issue 10): Cluster seeds, Sentinel, replicaAcks, ERR_NOT_REPLICATED.
async function topologies(): Promise<void> {
  const cluster = await EventPublisher.connect({ redisClusterNodes: ['10.0.0.1:7000', 'redis://10.0.0.2:7001'], replicaAcks: 1 });
  const sentinel = await EventPublisher.connect({
    redisSentinel: { sentinels: ['10.0.0.1:26379'], name: 'mymaster', password: 'p', sentinelPassword: 's' },
  });
  // @ts-expect-error a sentinel configuration needs the primary's name
  await EventPublisher.connect({ redisSentinel: { sentinels: ['h:1'] } });
  try {
    await cluster.publish('x.y', {}, { tenantId: 't', userId: 'u' });
  } catch (err) {
    if (err instanceof EventPublisherError && err.code === 'ERR_NOT_REPLICATED') return;
  }
  await sentinel.close();
}
void topologies;
