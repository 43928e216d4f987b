// Type test of the observability surface (issue 9): compiled, never run.
import { EventPublisher, type PublisherStats, type PublisherOptions } from '@hyvve/event-publisher';
import { registerPublisherMetrics } from '@hyvve/event-publisher/prom-client';
import { observePublisherMetrics } from '@hyvve/event-publisher/otel-metrics';

declare const p: EventPublisher;
declare const registry: { registerMetric(m: unknown): void; removeSingleMetric(name: string): void };

async function use(): Promise<void> {
  const text: string = await p.metrics();
  const s: PublisherStats = p.stats();
  const sent: number = s.sentMessages;
  const code: string = s.failedMessages[0].code;
  const buckets: number[] = s.publishDuration.counts;
  const stage: 'insert_rows' | 'wait_append_order' | 'append' | 'update_stream_id' | 'undo' = s.stages[0].stage;
  // @ts-expect-error stats() is synchronous
  await p.stats().then(() => {});
  const unregister: () => void = await registerPublisherMetrics(p, registry);
  unregister();
  const stop: () => void = observePublisherMetrics(p);
  stop();
  void [text, sent, code, buckets, stage];
}

const directives: PublisherOptions = { logLevel: 'info,sqlx=debug', traceContext: true };
const level: PublisherOptions = { logLevel: 'warn' };
// @ts-expect-error traceContext is a boolean
const badTrace: PublisherOptions = { traceContext: 'yes' };
void [use, directives, level, badTrace];
