// The README's code sample, verbatim between the markers; __test__/core/readme.test.js checks
// that README.md shows exactly this, and `npm run test:types` compiles it (strict).
declare const workspaceId: string;
declare const userId: string;
// README sample begin
import { EventPublisher, EventTypes } from '@hyvve/event-publisher';

const publisher = await EventPublisher.connect(); // REDIS_URL / REDIS_HOST…, DATABASE_URL
const id: string = await publisher.publish(
  EventTypes.APPROVAL_APPROVED,
  { approvalId: 'appr_1', type: 'content', title: 'Launch post', decision: 'approved', decidedById: userId, confidenceScore: 92 },
  { tenantId: workspaceId, userId, source: 'approvals' }, // correlationId?, eventId? optional
);
const ids: string[] = await publisher.publishBatch([
  { type: EventTypes.APPROVAL_CANCELLED, data: { approvalId: 'appr_2', type: 'content', title: 'Old post', cancelledById: userId }, context: { tenantId: workspaceId, userId } },
  { type: 'pm.task.phase_changed', data: { taskId: 't1', phase: 'review' }, context: { tenantId: workspaceId, userId } },
]); // atomic: all or none, ids in input order
await publisher.close();
// README sample end
// README sample begin (observability)
import { Registry } from 'prom-client';
import { registerPublisherMetrics } from '@hyvve/event-publisher/prom-client';
import { observePublisherMetrics } from '@hyvve/event-publisher/otel-metrics';

const observed = await EventPublisher.connect({ logLevel: 'info,sqlx=warn', traceContext: true });
const registry = new Registry(); // yours: the global default registry is never used unasked
await registerPublisherMetrics(observed, registry); // registry.metrics() now includes them
observePublisherMetrics(observed); // or pass a MeterProvider
const text: string = await observed.metrics(); // Prometheus text, same values
const failed = observed.stats().failedMessages; // [{ code: 'ERR_REDIS', count: 2 }, …]
// README sample end
export { id, ids, text, failed };
