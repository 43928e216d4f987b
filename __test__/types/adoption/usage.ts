// Type test of @hyvve/event-publisher/testing and the Nest additions (forRootAsync useClass /
// useExisting, forTest, the health indicator), as a strict CommonJS consumer compiles them.
import { EventPublisher, EventTypes, type Health } from '@hyvve/event-publisher';
import { createTestPublisher, TestPublisher, type PublishedEvent } from '@hyvve/event-publisher/testing';
import {
  EventPublisherModule,
  EventPublisherHealthIndicator,
  type EventPublisherOptionsFactory,
  type EventPublisherModuleOptions,
} from '@hyvve/event-publisher/nest';

async function testing(): Promise<void> {
  const fake: TestPublisher = createTestPublisher({ source: 'unit', stream: 'unit:events' });
  const id: string = await fake.publish(
    EventTypes.APPROVAL_APPROVED,
    { approvalId: 'a', type: 'content', title: 't', decision: 'approved', decidedById: 'u', confidenceScore: 1 },
    { tenantId: 't', userId: 'u' },
  );
  const ids: string[] = await fake.publishBatch([{ type: 'pm.task.phase_changed', data: { taskId: 't' }, context: { tenantId: 't', userId: 'u' } }]);
  const health: Health = await fake.health();
  const all: PublishedEvent[] = fake.published();
  const first = all[0];
  if (first) {
    const created: Date = first.row.created_at;
    const envelope: string = first.envelope;
    const tenant: string = first.event.tenantId;
    void [created, envelope, tenant];
  }
  fake.failNext('ERR_TIMEOUT', { outcomeUnknown: true }).delay(10).clear();
  // @ts-expect-error: publish checks data against the event type, as EventPublisher does
  await fake.publish(EventTypes.APPROVAL_APPROVED, { approvalId: 1 }, { tenantId: 't', userId: 'u' });
  // Where code takes the publisher's methods, the fake fits.
  const asReal: Pick<EventPublisher, 'publish' | 'publishBatch' | 'health' | 'close'> = fake;
  await asReal.close();
  void [id, ids, health];
}

class Options implements EventPublisherOptionsFactory {
  createEventPublisherOptions(): Omit<EventPublisherModuleOptions, 'isGlobal'> {
    return { stream: 'x' };
  }
}

async function nest(indicator: EventPublisherHealthIndicator): Promise<void> {
  EventPublisherModule.forRootAsync({ useClass: Options, isGlobal: true });
  EventPublisherModule.forRootAsync({ imports: [], useExisting: Options });
  EventPublisherModule.forTest({ source: 'unit' });
  const r = await indicator.isHealthy('events');
  const status: 'up' | 'down' = r.events.status;
  const redis: boolean = r.events.redis;
  void [status, redis];
}

void testing;
void nest;
