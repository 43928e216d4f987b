import { BadRequestException, Inject, Injectable, NotFoundException } from '@nestjs/common';
import { EventOutbox, EventPublisherService } from '@hyvve/event-publisher/nest';
import { EventTypes, type ApprovalDecisionPayload, type BatchEvent } from '@hyvve/event-publisher';
import { randomUUID } from 'node:crypto';
import type { Pool, PoolClient } from 'pg';
import { PG_POOL, type ApprovalItemRow } from './database';

export interface BulkApproveResult {
  /** Approved item ids, in input order. */
  successes: string[];
  failures: Array<{ id: string; error: string }>;
  /** Event ids of the approvals, in the order of `successes`. */
  eventIds: string[];
}

/**
 * Decisions on approval items (approve, reject, cancel, bulk approve): source `approvals`, user =
 * the acting user, tenant = the workspace. `approve` uses the transactional outbox: the item's
 * update and its event commit together (docs/outbox.md); the others publish after the update.
 */
@Injectable()
export class ApprovalsService {
  constructor(
    @Inject(PG_POOL) private readonly pool: Pool,
    private readonly eventPublisher: EventPublisherService,
    private readonly outbox: EventOutbox,
  ) {}

  /**
   * One transaction: the item is approved and its event staged; after the commit the event is
   * appended. A rollback (the item was not pending, a later statement failed) leaves no event.
   */
  async approve(workspaceId: string, id: string, userId: string, dto: { notes?: string }): Promise<ApprovalItemRow> {
    return this.outbox.transaction(this.pool, async (events) => {
      const item = await this.decide(workspaceId, id, userId, 'approved', dto.notes, events.tx);
      const payload: ApprovalDecisionPayload = {
        approvalId: item.id,
        type: item.type,
        title: item.title,
        decision: 'approved',
        decidedById: userId,
        decisionNotes: dto.notes, // often undefined: then absent from the JSON
        confidenceScore: item.confidence_score,
      };
      events.publish(EventTypes.APPROVAL_APPROVED, payload, this.context(workspaceId, userId));
      return item;
    });
  }

  async reject(
    workspaceId: string,
    id: string,
    userId: string,
    dto: { reason: string; notes?: string },
  ): Promise<ApprovalItemRow> {
    const decisionNotes = dto.notes ? `${dto.reason}\n\n${dto.notes}` : dto.reason;
    const item = await this.decide(workspaceId, id, userId, 'rejected', decisionNotes);
    await this.eventPublisher.publish(
      EventTypes.APPROVAL_REJECTED,
      {
        approvalId: item.id,
        type: item.type,
        title: item.title,
        decision: 'rejected',
        decidedById: userId,
        decisionNotes,
        confidenceScore: item.confidence_score,
      },
      this.context(workspaceId, userId),
    );
    return item;
  }

  async cancel(workspaceId: string, id: string, userId: string, dto: { reason?: string }): Promise<ApprovalItemRow> {
    const item = await this.decide(workspaceId, id, userId, 'cancelled', dto.reason);
    await this.eventPublisher.publish(
      EventTypes.APPROVAL_CANCELLED,
      { approvalId: item.id, type: item.type, title: item.title, cancelledById: userId, reason: dto.reason },
      this.context(workspaceId, userId),
    );
    return item;
  }

  /**
   * Approves several items with one update and one atomic batch publish; the events share a
   * correlation id (the bulk action's). Items that are missing or not pending are reported as failures.
   */
  async bulkApprove(workspaceId: string, userId: string, ids: string[], notes?: string): Promise<BulkApproveResult> {
    const { rows } = await this.pool.query<ApprovalItemRow>(
      `UPDATE approval_items
          SET status = 'approved', resolved_by_id = $3, resolved_at = now(), resolution_notes = $4
        WHERE workspace_id = $1 AND id = ANY($2::text[]) AND status = 'pending'
        RETURNING *`,
      [workspaceId, ids, userId, notes ?? null],
    );
    const byId = new Map(rows.map((row) => [row.id, row]));
    const approved = ids.map((id) => byId.get(id)).filter((row): row is ApprovalItemRow => row !== undefined);
    const failures = ids.filter((id) => !byId.has(id)).map((id) => ({ id, error: 'not found or not pending' }));
    if (approved.length === 0) return { successes: [], failures, eventIds: [] };

    const correlationId = `bulk-${randomUUID()}`;
    const events: Array<BatchEvent<typeof EventTypes.APPROVAL_APPROVED>> = approved.map((item) => ({
      type: EventTypes.APPROVAL_APPROVED,
      data: {
        approvalId: item.id,
        type: item.type,
        title: item.title,
        decision: 'approved',
        decidedById: userId,
        decisionNotes: notes,
        confidenceScore: item.confidence_score,
      },
      context: { ...this.context(workspaceId, userId), correlationId },
    }));
    const eventIds = await this.eventPublisher.publishBatch(events);
    return { successes: approved.map((item) => item.id), failures, eventIds };
  }

  /** Moves a pending item of the workspace to `status`; 404 when absent, 400 when already decided. */
  private async decide(
    workspaceId: string,
    id: string,
    userId: string,
    status: 'approved' | 'rejected' | 'cancelled',
    notes: string | undefined,
    db: Pool | PoolClient = this.pool,
  ): Promise<ApprovalItemRow> {
    const { rows } = await db.query<ApprovalItemRow>(
      `UPDATE approval_items
          SET status = $3, resolved_by_id = $4, resolved_at = now(), resolution_notes = $5
        WHERE workspace_id = $1 AND id = $2 AND status = 'pending'
        RETURNING *`,
      [workspaceId, id, status, userId, notes ?? null],
    );
    if (rows[0]) return rows[0];
    const existing = await db.query<{ status: string }>(
      'SELECT status FROM approval_items WHERE workspace_id = $1 AND id = $2',
      [workspaceId, id],
    );
    if (!existing.rows[0]) throw new NotFoundException('Approval item not found in this workspace');
    const verb = { approved: 'approve', rejected: 'reject', cancelled: 'cancel' }[status];
    throw new BadRequestException(`Cannot ${verb} item with status: ${existing.rows[0].status}`);
  }

  private context(tenantId: string, userId: string) {
    return { tenantId, userId, source: 'approvals' };
  }
}
