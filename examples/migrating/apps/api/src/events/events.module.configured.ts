// apps/api/src/events/events.module.ts, option B: register the module with options from ConfigService.
import { Module } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { EventPublisherModule } from '@hyvve/event-publisher/nest';

@Module({
  imports: [
    EventPublisherModule.forRootAsync({
      imports: [ConfigModule],
      inject: [ConfigService],
      useFactory: (config: ConfigService) => ({
        redisUrl: config.get<string>('REDIS_URL'), // undefined: REDIS_HOST/REDIS_PORT/REDIS_PASSWORD
        databaseUrl: config.getOrThrow<string>('DATABASE_URL'),
        source: 'platform',
        startDegraded: config.get('NODE_ENV') !== 'production', // dev: boot even if Redis is down
      }),
    }),
    // BullModule.registerQueue(...), DiscoveryModule: unchanged
  ],
  providers: [
    // RedisProvider, EventConsumerService, ... unchanged; EventPublisherService removed from here
  ],
  exports: [
    EventPublisherModule, // re-exports EventPublisherService to the modules importing EventsModule
    // RedisProvider, EventConsumerService, ... unchanged
  ],
})
export class EventsModule {}
