import type { EventPublisher } from '../index';

/** The part of a prom-client `Registry` the adapter uses. */
export interface PromRegistryLike {
  registerMetric(metric: unknown): void;
  removeSingleMetric(name: string): void;
}

/**
 * Registers the publisher's metrics (see docs/observability.md) into a prom-client `Registry`
 * you pass, never into the global default unasked; resolves to a function that unregisters them.
 * Each scrape reads the publisher's current values.
 */
export declare function registerPublisherMetrics(publisher: EventPublisher, registry: PromRegistryLike): Promise<() => void>;
