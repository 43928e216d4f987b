// docs/outbox.md, sample 4 (NestJS with @nestjs-cls/transactional)
import { Injectable } from '@nestjs/common';
import { Transactional } from '@nestjs-cls/transactional';
import { EventOutbox } from '@hyvve/event-publisher/nest';
import { EventTypes } from '@hyvve/event-publisher';

@Injectable()
class ApprovalDecisions {
  constructor(private readonly outbox: EventOutbox) {}

  @Transactional()
  async approve(workspaceId: string, approvalId: string, userId: string) {
    // … the approval's update through TransactionHost.tx …
    await this.outbox.publish(
      EventTypes.APPROVAL_APPROVED,
      { approvalId, type: 'content', title: 'Launch post', decision: 'approved', decidedById: userId, confidenceScore: 92 },
      { tenantId: workspaceId, userId, source: 'approvals' },
    );
  }

  // Dispatched right after the commit:
  approveNow(workspaceId: string, approvalId: string, userId: string) {
    return this.outbox.withTransaction(() => this.approve(workspaceId, approvalId, userId));
  }
}

export {};
