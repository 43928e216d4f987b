import { Inject, Injectable, Logger } from '@nestjs/common';
import { EventPublisherService } from '@hyvve/event-publisher/nest';
import { EventTypes, type ApprovalDecisionPayload, type ApprovalRequestedPayload } from '@hyvve/event-publisher';
import { randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import { PG_POOL, type ApprovalItemRow } from './database';

const PRIORITY_HOURS = { urgent: 4, high: 24, medium: 48, low: 72 } as const;

export interface RouteOptions {
  priority?: keyof typeof PRIORITY_HOURS;
  assignedToId?: string;
  sourceModule?: string;
  sourceId?: string;
  /** Overrides the due date computed from the priority. */
  dueAt?: Date;
}

/**
 * Routes a new approval by its confidence score, like the platform's router: above 85 it is
 * auto-approved (`approval.item.auto_approved`), otherwise it waits for review
 * (`approval.item.requested`). Source `approval-router`, tenant = workspace, user = requester.
 */
@Injectable()
export class ApprovalRouterService {
  private readonly logger = new Logger(ApprovalRouterService.name);

  constructor(
    @Inject(PG_POOL) private readonly pool: Pool,
    private readonly eventPublisher: EventPublisherService,
  ) {}

  async routeApproval(
    workspaceId: string,
    requestedBy: string,
    type: string,
    title: string,
    confidenceScore: number,
    options?: RouteOptions,
  ): Promise<ApprovalItemRow> {
    const autoApprove = confidenceScore > 85;
    const recommendation = autoApprove ? 'approve' : confidenceScore >= 60 ? 'review' : 'full_review';
    const priority = options?.priority || 'medium';
    const dueAt = options?.dueAt ?? new Date(Date.now() + PRIORITY_HOURS[priority] * 3600_000);

    const { rows } = await this.pool.query<ApprovalItemRow>(
      `INSERT INTO approval_items (id, workspace_id, type, title, status, priority, confidence_score,
         recommendation, assigned_to_id, requested_by, due_at, source_module, source_id)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING *`,
      [
        randomUUID(), workspaceId, type, title, autoApprove ? 'auto_approved' : 'pending', priority,
        Math.round(confidenceScore), recommendation, options?.assignedToId ?? null, requestedBy, dueAt,
        options?.sourceModule ?? null, options?.sourceId ?? null,
      ],
    );
    const item = rows[0]!;
    const context = { tenantId: workspaceId, userId: requestedBy, source: 'approval-router' };

    if (autoApprove) {
      const payload: ApprovalDecisionPayload = {
        approvalId: item.id,
        type: item.type,
        title: item.title,
        decision: 'auto_approved',
        decidedById: 'system',
        confidenceScore: item.confidence_score,
      };
      await this.eventPublisher.publish(EventTypes.APPROVAL_AUTO_APPROVED, payload, context);
    } else {
      const payload: ApprovalRequestedPayload = {
        approvalId: item.id,
        type: item.type,
        title: item.title,
        confidenceScore: item.confidence_score,
        recommendation: item.recommendation,
        assignedToId: item.assigned_to_id || undefined,
        dueAt: item.due_at, // a Date, as the platform passes it: written as its ISO string
        sourceModule: options?.sourceModule,
        sourceId: options?.sourceId,
      };
      await this.eventPublisher.publish(EventTypes.APPROVAL_REQUESTED, payload, context);
    }
    this.logger.log({ message: 'Approval routed', approvalId: item.id, status: item.status });
    return item;
  }
}
