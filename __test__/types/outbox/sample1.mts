// docs/outbox.md, sample 1 (plain pg)
declare const approvalId: string;
declare const userId: string;
declare const workspaceId: string;
import { EventPublisher, EventTypes } from '@hyvve/event-publisher';
import { fromPg } from '@hyvve/event-publisher/outbox';
import { Pool } from 'pg';

const publisher = await EventPublisher.connect();
const pool = new Pool();
const client = await pool.connect();
try {
  await client.query('BEGIN');
  await client.query("UPDATE approval_items SET status = 'approved' WHERE id = $1", [approvalId]);
  const staged = publisher.stage(
    EventTypes.APPROVAL_APPROVED,
    { approvalId, type: 'content', title: 'Launch post', decision: 'approved', decidedById: userId, confidenceScore: 92 },
    { tenantId: workspaceId, userId, source: 'approvals' },
  );
  await fromPg(client).execute(staged.statement);
  await client.query('COMMIT');
  await publisher.dispatch(staged); // optional: the relay appends it anyway
} catch (e) {
  await client.query('ROLLBACK');
  throw e;
} finally {
  client.release();
}

export {};
