// A call site, unchanged by the migration (abridged from the platform's approval router).
import { Injectable } from '@nestjs/common';
import { EventPublisherService } from '../../events';
import { EventTypes, type ApprovalRequestedPayload, type EventType } from '@hyvve/shared';

@Injectable()
export class ApprovalRouterService {
  constructor(private readonly eventPublisher: EventPublisherService) {}

  async announce(workspaceId: string, requestedBy: string, item: { id: string; type: string; title: string; confidenceScore: number; dueAt: Date }): Promise<string> {
    const requestedPayload: ApprovalRequestedPayload = {
      approvalId: item.id,
      type: item.type,
      title: item.title,
      confidenceScore: item.confidenceScore,
      recommendation: 'review',
      assignedToId: undefined,
      dueAt: item.dueAt.toISOString(),
    };
    return this.eventPublisher.publish(EventTypes.APPROVAL_REQUESTED, requestedPayload, {
      tenantId: workspaceId,
      userId: requestedBy,
      source: 'approval-router',
    });
  }

  /** Fire-and-forget callers chain .catch() on the returned Promise. */
  relay(type: EventType, data: Record<string, unknown>, tenantId: string): void {
    this.eventPublisher
      .publish(type, data, { tenantId, userId: 'system' })
      .catch(() => undefined);
  }
}
