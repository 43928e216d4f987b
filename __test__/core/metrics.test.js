'use strict';
// Metrics (issue 9): exact values after a known sequence (publishes, a batch, bad inputs, a Redis
// outage), and the Prometheus text checked against a strict line grammar.

const { EventPublisher } = require('../..');
const { DATABASE_URL, uid, ensureDatabase, privateRedis } = require('../support/stores');

let redis;
let p;
const stream = uid('test:metrics');
const ctx = () => ({ tenantId: uid('ws'), userId: 'u' });

beforeAll(async () => {
  await ensureDatabase();
  redis = await privateRedis();
  p = await EventPublisher.connect({ databaseUrl: DATABASE_URL, redisUrl: redis.url, stream, logLevel: 'off', maxPayloadBytes: 100, timeoutMs: 1500 });
});

afterAll(async () => {
  if (p) await p.close();
  if (redis) await redis.stop();
});

const sampleRe = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*",?)*)\})? (-?(?:\d+(?:\.\d+)?(?:e[+-]?\d+)?|\+Inf|NaN))$/;

/** Parses Prometheus text strictly; every sample must belong to a family declared by # TYPE. */
function parsePrometheus(text) {
  expect(text.endsWith('\n')).toBe(true);
  const types = new Map();
  const samples = [];
  for (const line of text.slice(0, -1).split('\n')) {
    let m;
    if ((m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*$/.exec(line))) continue;
    if ((m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$/.exec(line))) {
      expect(types.has(m[1])).toBe(false);
      types.set(m[1], m[2]);
      continue;
    }
    m = sampleRe.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${JSON.stringify(line)}`);
    const labels = {};
    for (const [, k, v] of (m[2] || '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v;
    const family = [m[1], m[1].replace(/_(bucket|sum|count)$/, '')].find((f) => types.has(f));
    if (!family) throw new Error(`sample of an undeclared family: ${line}`);
    if (types.get(family) === 'counter') expect(m[1]).toMatch(/_total$/);
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return { types, samples };
}

const value = (samples, name, labels = {}) => {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  expect(found).toHaveLength(1);
  return found[0].value;
};

test('after publishes, a batch, bad inputs and a Redis outage the metrics hold exactly the expected values', async () => {
  for (let i = 0; i < 3; i++) await p.publish('metrics.test.one', { i }, ctx());
  await p.publishBatch([
    { type: 'metrics.test.batch', data: {}, context: ctx() },
    { type: 'metrics.test.batch', data: {}, context: ctx() },
  ]);
  await expect(p.publish('metrics.test.big', { x: 'a'.repeat(200) }, ctx())).rejects.toMatchObject({ code: 'ERR_PAYLOAD_TOO_LARGE' });
  await expect(p.publish('Not A Type!', {}, ctx())).rejects.toMatchObject({ code: 'ERR_INVALID_EVENT' });

  const before = p.stats();
  expect(before.sentMessages).toBe(5);
  expect(before.failedMessages).toEqual([
    { code: 'ERR_INVALID_EVENT', count: 1 },
    { code: 'ERR_PAYLOAD_TOO_LARGE', count: 1 },
  ]);
  expect(before.publishDuration.count).toBe(5);
  expect(before.publishBatchDuration.count).toBe(1);
  expect(before.groupEvents.count).toBe(4);
  expect(before.groupEvents.sum).toBe(5);
  expect(before.groupEvents.counts.slice(0, 2)).toEqual([3, 1]); // ≤1: three groups, ≤2: the batch
  const stage = (s, name) => s.stages.find((x) => x.stage === name);
  for (const name of ['insert_rows', 'append', 'wait_append_order']) expect(stage(before, name).duration.count).toBe(4);
  // One producer on its own Redis: every entry takes its reserved ID, no second statement.
  expect(before.notReservedEntries).toBe(0);
  expect(stage(before, 'update_stream_id').duration.count).toBe(0);
  expect(before.stages.map((s) => s.retries)).toEqual([0, 0, 0, 0, 0]);
  expect(before.undoneEvents).toBe(0);
  expect(before.inFlightEvents).toBe(0);
  expect(before.circuitState).toBe(0);
  expect(before.droppedLogRecords).toBe(0);

  await redis.stop();
  const err = await p.publish('metrics.test.outage', {}, ctx()).catch((e) => e);
  if (!err.code) throw new Error('published during the outage: ' + String(err) + ' ' + JSON.stringify(p.stats().groupEvents));
  expect(['ERR_REDIS', 'ERR_TIMEOUT']).toContain(err.code);
  const after = p.stats();
  expect(after.sentMessages).toBe(5);
  expect(after.failedMessages.find((f) => f.code === err.code)).toEqual({ code: err.code, count: 1 });
  expect(after.publishDuration.count).toBe(6);
  expect(after.groupEvents.count).toBe(5);
  expect(stage(after, 'insert_rows').duration.count).toBe(5);
  // A definite Redis failure undoes the row; an unknown outcome leaves it for a retry.
  expect(after.undoneEvents).toBe(err.outcomeUnknown ? 0 : 1);
  expect(stage(after, 'undo').duration.count).toBe(err.outcomeUnknown ? 0 : 1);
  expect(after.inFlightEvents).toBe(0);
  expect(after.circuitState).toBe(0); // one failure, threshold 5

  const { samples } = parsePrometheus(await p.metrics());
  const dest = { messaging_system: 'redis', messaging_destination_name: stream };
  const sent = samples.filter((s) => s.name === 'messaging_client_sent_messages_total');
  expect(sent.find((s) => !s.labels.error_type)).toMatchObject({ labels: dest, value: 5 });
  expect(value(samples, 'messaging_client_sent_messages_total', { error_type: err.code })).toBe(1);
  expect(value(samples, 'messaging_client_sent_messages_total', { error_type: 'ERR_INVALID_EVENT' })).toBe(1);
  const op = { ...dest, messaging_operation_name: 'publish' };
  expect(value(samples, 'messaging_client_operation_duration_seconds_count', op)).toBe(6);
  expect(value(samples, 'messaging_client_operation_duration_seconds_bucket', { ...op, le: '+Inf' })).toBe(6);
  const buckets = samples.filter((s) => s.name === 'messaging_client_operation_duration_seconds_bucket' && s.labels.messaging_operation_name === 'publish');
  expect(buckets.map((b) => b.labels.le)).toEqual(['0.005', '0.01', '0.025', '0.05', '0.075', '0.1', '0.25', '0.5', '0.75', '1', '2.5', '5', '7.5', '10', '+Inf']);
  for (let i = 1; i < buckets.length; i++) expect(buckets[i].value).toBeGreaterThanOrEqual(buckets[i - 1].value);
  expect(value(samples, 'messaging_client_operation_duration_seconds_count', { messaging_operation_name: 'publishBatch' })).toBe(1);
  expect(value(samples, 'event_publisher_group_events_count')).toBe(5);
  expect(value(samples, 'event_publisher_in_flight_events')).toBe(0);
  expect(value(samples, 'event_publisher_undone_events_total')).toBe(after.undoneEvents);
  expect(value(samples, 'event_publisher_dropped_log_records_total')).toBe(0);

  // Redis back: publishing and counting go on.
  await redis.start();
  let ok = false;
  for (let i = 0; i < 50 && !ok; i++) ok = await p.publish('metrics.test.back', {}, ctx()).then(() => true, () => false);
  expect(ok).toBe(true);
  expect(p.stats().sentMessages).toBe(6);
});

test('docs/observability.md lists every metric family with its kind', async () => {
  const { types } = parsePrometheus(await p.metrics());
  const doc = require('node:fs').readFileSync(require('node:path').join(__dirname, '..', '..', 'docs', 'observability.md'), 'utf8');
  const rows = new Map([...doc.matchAll(/^\| `([a-z_]+)` \| (counter|gauge|histogram) \|/gm)].map((m) => [m[1], m[2]]));
  expect(types.size).toBeGreaterThanOrEqual(9);
  expect(Object.fromEntries(rows)).toEqual(Object.fromEntries(types));
});

test('the prom-client adapter serves the metrics from a registry the user passes, not the global one', async () => {
  const client = require('prom-client');
  const { registerPublisherMetrics } = require('../../lib/prom-client');
  await expect(registerPublisherMetrics(p)).rejects.toThrow(/Registry/);
  const registry = new client.Registry();
  const unregister = await registerPublisherMetrics(p, registry);
  const text = await registry.metrics();
  // prom-client separates families by a blank line.
  const { samples } = parsePrometheus(text.replace(/\n\n/g, '\n'));
  expect(value(samples, 'messaging_client_sent_messages_total', { error_type: 'ERR_INVALID_EVENT' })).toBe(1);
  expect(samples.find((s) => s.name === 'messaging_client_sent_messages_total' && !s.labels.error_type).value).toBe(p.stats().sentMessages);
  expect(value(samples, 'messaging_client_operation_duration_seconds_count', { messaging_operation_name: 'publishBatch' })).toBe(1);
  expect(await client.register.metrics()).not.toContain('messaging_client');
  const json = await registry.getMetricsAsJSON();
  expect(json.find((m) => m.name === 'event_publisher_in_flight_events')).toMatchObject({ type: 'gauge' });
  unregister();
  expect((await registry.metrics()).trim()).toBe('');
});

test('OpenTelemetry observable instruments on the user MeterProvider read the same snapshot', async () => {
  const { MeterProvider, MetricReader } = require('@opentelemetry/sdk-metrics');
  const { observePublisherMetrics } = require('../../lib/otel-metrics');
  class Reader extends MetricReader {
    async onForceFlush() {}
    async onShutdown() {}
  }
  const reader = new Reader();
  const provider = new MeterProvider({ readers: [reader] });
  const stop = observePublisherMetrics(p, provider);
  const { resourceMetrics } = await reader.collect();
  const metrics = Object.fromEntries(resourceMetrics.scopeMetrics[0].metrics.map((m) => [m.descriptor.name, m.dataPoints]));
  const s = p.stats();
  const sent = metrics['messaging.client.sent.messages'];
  expect(sent.find((d) => !d.attributes['error.type'])).toMatchObject({ value: s.sentMessages, attributes: { 'messaging.system': 'redis', 'messaging.destination.name': stream } });
  expect(sent.find((d) => d.attributes['error.type'] === 'ERR_PAYLOAD_TOO_LARGE').value).toBe(1);
  expect(metrics['messaging.client.operation.count'].find((d) => d.attributes['messaging.operation.name'] === 'publishBatch').value).toBe(1);
  expect(metrics['event_publisher.in_flight_events'][0].value).toBe(0);
  stop();
  await provider.shutdown();
});
