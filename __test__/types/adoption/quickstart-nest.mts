// The NestJS quick start of README.md and docs/nestjs.md, verbatim between the markers
// (__test__/core/readme.test.js checks that the pages show exactly this), compiled under strict.
// Sample begin
import { Injectable, Module } from '@nestjs/common';
import { EventTypes } from '@hyvve/event-publisher';
import { EventPublisherModule, EventPublisherService } from '@hyvve/event-publisher/nest';

@Injectable()
export class ApprovalsNotifier {
  constructor(private readonly events: EventPublisherService) {}

  approved(workspaceId: string, userId: string, approvalId: string): Promise<string> {
    return this.events.publish(
      EventTypes.APPROVAL_APPROVED,
      { approvalId, type: 'content', title: 'Launch post', decision: 'approved', decidedById: userId, confidenceScore: 92 },
      { tenantId: workspaceId, userId, source: 'approvals' },
    );
  }
}

@Module({
  imports: [EventPublisherModule.forRoot({ isGlobal: true })], // connect()'s options; REDIS_URL, DATABASE_URL… by default
  providers: [ApprovalsNotifier],
})
export class AppModule {}
// Sample end
