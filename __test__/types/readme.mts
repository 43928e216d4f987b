// README.md's quick start, verbatim between the markers; __test__/core/readme.test.js checks
// that README.md shows exactly this, and `npm run test:types` compiles it (strict).
declare const workspaceId: string;
declare const userId: string;
// README sample begin
import { EventPublisher, EventTypes } from '@hyvve/event-publisher';

const publisher = await EventPublisher.connect(); // REDIS_URL / REDIS_HOST…, DATABASE_URL
const id: string = await publisher.publish(
  EventTypes.APPROVAL_APPROVED,
  { approvalId: 'appr_1', type: 'content', title: 'Launch post', decision: 'approved', decidedById: userId, confidenceScore: 92 },
  { tenantId: workspaceId, userId, source: 'approvals' }, // correlationId?, eventId? optional
);
const ids: string[] = await publisher.publishBatch([
  { type: EventTypes.APPROVAL_CANCELLED, data: { approvalId: 'appr_2', type: 'content', title: 'Old post', cancelledById: userId }, context: { tenantId: workspaceId, userId } },
  { type: 'pm.task.phase_changed', data: { taskId: 't1', phase: 'review' }, context: { tenantId: workspaceId, userId } },
]); // atomic: all or none, ids in input order
await publisher.close();
// README sample end
export { id, ids };
