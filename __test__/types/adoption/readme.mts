// The NestJS health and testing samples of docs/nestjs.md and docs/testing.md, verbatim (checked by
// __test__/core/readme.test.js), compiled under strict with the declarations they assume.
import { Controller, Get, Injectable, Module } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { Test } from '@nestjs/testing';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { EventPublisherHealthIndicator, EventPublisherModule, type EventPublisherOptionsFactory } from '@hyvve/event-publisher/nest';
import { TestPublisher } from '@hyvve/event-publisher/testing';

declare class ApprovalsService {
  approve(workspaceId: string, id: string, userId: string): Promise<unknown>;
}

@Injectable()
class PublisherOptions implements EventPublisherOptionsFactory {
  constructor(private readonly config: ConfigService) {}
  createEventPublisherOptions() {
    return { redisUrl: this.config.get<string>('REDIS_URL'), databaseUrl: this.config.get<string>('DATABASE_URL') };
  }
}

@Controller('health')
class HealthController {
  constructor(private readonly health: HealthCheckService, private readonly events: EventPublisherHealthIndicator) {}
  @Get() @HealthCheck()
  check() {
    return this.health.check([() => this.events.isHealthy('eventPublisher')]);
  }
}

@Module({
  imports: [TerminusModule, ConfigModule, EventPublisherModule.forRootAsync({ imports: [ConfigModule], useClass: PublisherOptions, isGlobal: true })],
  controllers: [HealthController],
})
class AppModule {}

const moduleRef = await Test.createTestingModule({
  imports: [EventPublisherModule.forTest()],
  providers: [ApprovalsService],
}).compile();
await moduleRef.get(ApprovalsService).approve('ws-1', 'appr-1', 'user-2');
const [entry] = moduleRef.get(TestPublisher).published();
// entry.event: { id, type: 'approval.item.approved', source: 'approvals', ..., data: { approvalId: 'appr-1', ... } }

const data: Record<string, unknown> | undefined = entry?.event.data;
export { AppModule, data };
