export { AppModule } from './app.module';
export { ApprovalsModule } from './approvals.module';
export { ApprovalRouterService, type RouteOptions } from './approval-router.service';
export { ApprovalEscalationService } from './approval-escalation.service';
export { ApprovalsService, type BulkApproveResult } from './approvals.service';
export { DatabaseModule, PG_POOL, APPROVAL_ITEMS_DDL, ensureApprovalItemsTable, type ApprovalItemRow } from './database';
