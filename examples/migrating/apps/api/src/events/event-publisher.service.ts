// apps/api/src/events/event-publisher.service.ts: the whole file after the migration.
export { EventPublisherService } from '@hyvve/event-publisher/nest';
