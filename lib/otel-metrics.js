'use strict';
// OpenTelemetry metrics adapter: observable instruments on the caller's MeterProvider that read
// one `publisher.stats()` snapshot per collection, so nothing is counted twice. OpenTelemetry has
// no observable histogram: the duration histograms are served by `metrics()` / prom-client, and
// here as their count and sum. @opentelemetry/api is an optional peer, required only when called.

/**
 * Registers the publisher's metrics on `meterProvider` (default: the global one from
 * `@opentelemetry/api`); returns a function that removes the callback.
 */
function observePublisherMetrics(publisher, meterProvider) {
  const api = require('@opentelemetry/api');
  const meter = (meterProvider || api.metrics).getMeter('@hyvve/event-publisher', require('../package.json').version);
  const sent = meter.createObservableCounter('messaging.client.sent.messages', {
    description: 'Messages the publisher wrote (error.type set when it failed).',
    unit: '{message}',
  });
  const opCount = meter.createObservableCounter('messaging.client.operation.count', {
    description: 'publish/publishBatch calls (the count of messaging.client.operation.duration).',
    unit: '{operation}',
  });
  const opSum = meter.createObservableCounter('messaging.client.operation.duration.sum', {
    description: 'Total duration of publish/publishBatch calls (the sum of messaging.client.operation.duration).',
    unit: 's',
  });
  const retries = meter.createObservableCounter('event_publisher.retries', { description: 'Retries of a stage of a group write.', unit: '{retry}' });
  const undone = meter.createObservableCounter('event_publisher.undone_events', { description: 'Events whose rows were deleted after a failed write.', unit: '{event}' });
  const notReserved = meter.createObservableCounter('event_publisher.not_reserved_entries', { description: 'Entries that did not take their reserved ID.', unit: '{entry}' });
  const dropped = meter.createObservableCounter('event_publisher.dropped_log_records', { description: 'Log records dropped because the logger queue was full.', unit: '{record}' });
  const inFlight = meter.createObservableGauge('event_publisher.in_flight_events', { description: 'Events admitted and not yet settled.', unit: '{event}' });
  const inFlightBytes = meter.createObservableGauge('event_publisher.in_flight_bytes', { description: 'Bytes held for admitted, unsettled events (counted against maxInFlightBytes).', unit: 'By' });
  const circuit = meter.createObservableGauge('event_publisher.circuit_state', { description: 'Circuit breaker: 0 closed, 1 half-open, 2 open.' });
  const instruments = [sent, opCount, opSum, retries, undone, notReserved, dropped, inFlight, inFlightBytes, circuit];
  const callback = (result) => {
    const s = publisher.stats();
    const dest = { 'messaging.system': 'redis', 'messaging.destination.name': s.stream };
    result.observe(sent, s.sentMessages, dest);
    for (const f of s.failedMessages) result.observe(sent, f.count, { ...dest, 'error.type': f.code });
    for (const [name, h] of [['publish', s.publishDuration], ['publishBatch', s.publishBatchDuration]]) {
      const attrs = { ...dest, 'messaging.operation.name': name };
      result.observe(opCount, h.count, attrs);
      result.observe(opSum, h.sum, attrs);
    }
    for (const st of s.stages) result.observe(retries, st.retries, { ...dest, stage: st.stage });
    result.observe(undone, s.undoneEvents, dest);
    result.observe(notReserved, s.notReservedEntries, dest);
    result.observe(dropped, s.droppedLogRecords, dest);
    result.observe(inFlight, s.inFlightEvents, dest);
    result.observe(inFlightBytes, s.inFlightBytes, dest);
    result.observe(circuit, s.circuitState, dest);
  };
  meter.addBatchObservableCallback(callback, instruments);
  return () => meter.removeBatchObservableCallback(callback, instruments);
}

module.exports = { observePublisherMetrics };
