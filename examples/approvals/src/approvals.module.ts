import { Module } from '@nestjs/common';
import { ApprovalEscalationService } from './approval-escalation.service';
import { ApprovalRouterService } from './approval-router.service';
import { ApprovalsService } from './approvals.service';

/** The approvals feature module: `EventPublisherService` comes from the global EventPublisherModule. */
@Module({
  providers: [ApprovalRouterService, ApprovalEscalationService, ApprovalsService],
  exports: [ApprovalRouterService, ApprovalEscalationService, ApprovalsService],
})
export class ApprovalsModule {}
