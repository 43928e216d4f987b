import { Inject, Injectable, NotFoundException } from '@nestjs/common';
import { EventPublisherService } from '@hyvve/event-publisher/nest';
import { EventTypes } from '@hyvve/event-publisher';
import type { Pool } from 'pg';
import { PG_POOL, type ApprovalItemRow } from './database';

/**
 * Escalates overdue approvals (`approval.item.escalated`), like the platform's escalation job:
 * source `approval-escalation`, user `'system'`, tenant = the item's workspace.
 */
@Injectable()
export class ApprovalEscalationService {
  constructor(
    @Inject(PG_POOL) private readonly pool: Pool,
    private readonly eventPublisher: EventPublisherService,
  ) {}

  /** Escalates one pending, not yet escalated item to `escalateToId`, extending its due date by `extendHours`. */
  async escalateApproval(approvalId: string, escalateToId: string, extendHours = 24): Promise<ApprovalItemRow> {
    const { rows } = await this.pool.query<ApprovalItemRow & { original_due_at: Date }>(
      `UPDATE approval_items a
          SET escalated_at = now(), escalated_to_id = $2, due_at = now() + make_interval(hours => $3)
         FROM approval_items old
        WHERE a.id = $1 AND old.id = a.id AND a.status = 'pending' AND a.escalated_at IS NULL
        RETURNING a.*, old.due_at AS original_due_at`,
      [approvalId, escalateToId, extendHours],
    );
    const item = rows[0];
    if (!item) throw new NotFoundException(`No pending, unescalated approval ${approvalId}`);

    await this.eventPublisher.publish(
      EventTypes.APPROVAL_ESCALATED,
      {
        approvalId: item.id,
        type: item.type,
        title: item.title,
        escalatedFromId: item.assigned_to_id || undefined,
        escalatedToId: escalateToId,
        reason: 'Approval overdue',
        originalDueAt: item.original_due_at,
        newDueAt: item.due_at,
      },
      { tenantId: item.workspace_id, userId: 'system', source: 'approval-escalation' },
    );
    return item;
  }

  /** Escalates every overdue item of a workspace; resolves to the escalated items. */
  async escalateOverdue(workspaceId: string, escalateToId: string): Promise<ApprovalItemRow[]> {
    const { rows } = await this.pool.query<{ id: string }>(
      `SELECT id FROM approval_items
        WHERE workspace_id = $1 AND status = 'pending' AND escalated_at IS NULL AND due_at < now()
        ORDER BY due_at, id`,
      [workspaceId],
    );
    const escalated: ApprovalItemRow[] = [];
    for (const { id } of rows) escalated.push(await this.escalateApproval(id, escalateToId));
    return escalated;
  }
}
