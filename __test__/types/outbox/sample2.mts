// docs/outbox.md, sample 2 (Prisma), with the platform's ApprovalItem model as Prisma would type it.
import { EventPublisher, EventTypes } from '@hyvve/event-publisher';
type ApprovalItem = { id: string; type: string; title: string; confidenceScore: number };
declare const prisma: {
  $transaction<R>(fn: (tx: { approvalItem: { update(a: { where: { id: string }; data: object }): Promise<ApprovalItem> } }) => Promise<R>, options?: { timeout?: number }): Promise<R>;
};
declare const publisher: EventPublisher;
declare const id: string;
declare const userId: string;
declare const workspaceId: string;
// prisma: your PrismaClient; publisher: a connected EventPublisher
const item = await publisher.transaction(prisma, async (events) => {
  const item = await events.tx.approvalItem.update({ where: { id }, data: { status: 'approved', decidedById: userId } });
  events.publish(
    EventTypes.APPROVAL_APPROVED,
    { approvalId: id, type: item.type, title: item.title, decision: 'approved', decidedById: userId, confidenceScore: item.confidenceScore },
    { tenantId: workspaceId, userId, source: 'approvals' },
  );
  return item;
}, { timeout: 5000 });

export {};
