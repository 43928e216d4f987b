// apps/api/src/events/index.ts: unchanged.
export { EventsModule } from './events.module';
export { EventPublisherService } from './event-publisher.service';
