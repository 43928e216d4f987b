import { Module, type DynamicModule } from '@nestjs/common';
import { EventPublisherModule, type EventPublisherModuleOptions } from '@hyvve/event-publisher/nest';
import { ApprovalsModule } from './approvals.module';
import { DatabaseModule } from './database';

@Module({})
export class AppModule {
  /**
   * The app: the approvals module, its Postgres pool, and the event publisher registered globally.
   * Without options everything comes from the environment (REDIS_URL or REDIS_HOST/PORT/PASSWORD, DATABASE_URL).
   */
  static forRoot(publisher: EventPublisherModuleOptions = {}): DynamicModule {
    return {
      module: AppModule,
      imports: [
        DatabaseModule.forRoot(publisher.databaseUrl),
        EventPublisherModule.forRoot({ ...publisher, isGlobal: true }),
        ApprovalsModule,
      ],
    };
  }
}
