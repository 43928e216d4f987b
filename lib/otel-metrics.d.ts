import type { EventPublisher } from '../index';

/** The part of an OpenTelemetry `MeterProvider` the adapter uses. */
export interface MeterProviderLike {
  getMeter(name: string, version?: string): unknown;
}

/**
 * Registers observable instruments for the publisher's metrics on `meterProvider` (default: the
 * global one of `@opentelemetry/api`, an optional peer); they read one `stats()` snapshot per
 * collection. Returns a function that removes them.
 */
export declare function observePublisherMetrics(publisher: EventPublisher, meterProvider?: MeterProviderLike): () => void;
