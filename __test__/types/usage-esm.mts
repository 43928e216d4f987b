// The same typings seen from an ES module consumer (the package's "import" condition).
import { EventTypes, EventPublisher, EventPublisherError, type EventType, type PayloadOf } from '@hyvve/event-publisher';

declare const p: EventPublisher;
const t: EventType = EventTypes.APPROVAL_CANCELLED;
const data: PayloadOf<typeof EventTypes.APPROVAL_CANCELLED> = { approvalId: 'a', type: 't', title: 't', cancelledById: 'u' };
export const id: Promise<string> = p.publish(t, data, { tenantId: 'ws', userId: 'u' });
export const isError = (e: unknown): boolean => e instanceof EventPublisherError && e.code === 'ERR_TIMEOUT';
// @ts-expect-error missing required field (cancelledById)
p.publish(EventTypes.APPROVAL_CANCELLED, { approvalId: 'a', type: 't', title: 't' }, { tenantId: 'ws', userId: 'u' });
