// docs/observability.md's sample, verbatim between the markers (checked by
// __test__/core/readme.test.js), compiled under strict.
// Sample begin
import { EventPublisher } from '@hyvve/event-publisher';
import { Registry } from 'prom-client';
import { registerPublisherMetrics } from '@hyvve/event-publisher/prom-client';
import { observePublisherMetrics } from '@hyvve/event-publisher/otel-metrics';

const observed = await EventPublisher.connect({ logLevel: 'info,sqlx=warn', traceContext: true });
const registry = new Registry(); // yours: the global default registry is never used unasked
await registerPublisherMetrics(observed, registry); // registry.metrics() now includes them
observePublisherMetrics(observed); // or pass a MeterProvider
const text: string = await observed.metrics(); // Prometheus text, same values
const failed = observed.stats().failedMessages; // [{ code: 'ERR_REDIS', count: 2 }, …]
// Sample end
export { text, failed };
