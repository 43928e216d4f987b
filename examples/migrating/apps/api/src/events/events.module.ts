// apps/api/src/events/events.module.ts, option A: keep listing EventPublisherService.
// It no longer injects RedisProvider or PrismaService (those stay for the consumer, retry and
// replay services); with no options it reads REDIS_HOST/REDIS_PORT/REDIS_PASSWORD (or REDIS_URL)
// and DATABASE_URL, connects on module init and closes on module destroy.
import { Module } from '@nestjs/common';
import { EventPublisherService } from './event-publisher.service';

@Module({
  providers: [
    // RedisProvider, EventConsumerService, EventRetryService, ... unchanged
    EventPublisherService,
  ],
  exports: [
    // RedisProvider, EventConsumerService, ... unchanged
    EventPublisherService,
  ],
})
export class EventsModule {}
