// Stand-in for the platform's `@hyvve/shared` (packages/shared/src/types/events.ts), as it declares
// these: its own constants, union and payload interfaces (dates typed as strings).
export const EventTypes = {
  AUTH_USER_CREATED: 'auth.user.created',
  APPROVAL_REQUESTED: 'approval.item.requested',
  APPROVAL_APPROVED: 'approval.item.approved',
  APPROVAL_AUTO_APPROVED: 'approval.item.auto_approved',
} as const;

export type EventType = (typeof EventTypes)[keyof typeof EventTypes];

export interface ApprovalRequestedPayload {
  approvalId: string;
  type: string;
  title: string;
  confidenceScore: number;
  recommendation: 'approve' | 'review' | 'full_review';
  assignedToId?: string;
  dueAt: string;
  sourceModule?: string;
  sourceId?: string;
}

export interface ApprovalDecisionPayload {
  approvalId: string;
  type: string;
  title: string;
  decision: 'approved' | 'rejected' | 'auto_approved';
  decidedById?: string;
  decisionNotes?: string;
  confidenceScore: number;
}
