'use strict';
// OpenTelemetry (issue 9): a publish inside an active span yields a child `send <stream>` PRODUCER
// span with the messaging conventions' attributes; `traceContext: true` writes its traceparent as
// the entry's second field pair, off by default (one field pair).

const { trace, context, SpanKind, SpanStatusCode } = require('@opentelemetry/api');
const { BasicTracerProvider, SimpleSpanProcessor, InMemorySpanExporter } = require('@opentelemetry/sdk-trace-base');
const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks');
const Redis = require('ioredis');
const { REDIS_URL, uid, ensureDatabase, publisherFactory } = require('../support/stores');

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const contextManager = new AsyncLocalStorageContextManager().enable();
const publishers = [];
const connect = publisherFactory(publishers, 'test:otel');
let redis;

beforeAll(async () => {
  trace.setGlobalTracerProvider(provider);
  context.setGlobalContextManager(contextManager);
  await ensureDatabase();
  redis = new Redis(REDIS_URL);
});

afterAll(async () => {
  await Promise.all(publishers.map((p) => p.close()));
  await redis.quit();
  trace.disable();
  context.disable();
});

const ctx = () => ({ tenantId: uid('ws'), userId: 'u' });
const tracer = () => trace.getTracer('test');
/** Runs `fn` inside an active span; resolves to [fn's value, the parent span]. */
const inSpan = (fn) => tracer().startActiveSpan('parent', async (parent) => {
  try {
    return [await fn(), parent];
  } finally {
    parent.end();
  }
});
const sendSpans = (stream) => exporter.getFinishedSpans().filter((s) => s.name === `send ${stream}`);

test('a publish inside an active span yields a child send <stream> PRODUCER span; with traceContext off the entry has one field pair', async () => {
  const { p, stream } = await connect({ logLevel: 'off' });
  const [id, parent] = await inSpan(() => p.publish('otel.test.one', {}, ctx()));
  const [span] = sendSpans(stream);
  expect(span.kind).toBe(SpanKind.PRODUCER);
  expect(span.parentSpanContext.spanId).toBe(parent.spanContext().spanId);
  expect(span.spanContext().traceId).toBe(parent.spanContext().traceId);
  expect(span.attributes).toEqual({
    'messaging.system': 'redis',
    'messaging.destination.name': stream,
    'messaging.operation.name': 'send',
    'messaging.operation.type': 'send',
    'messaging.message.id': id,
  });
  const entries = await redis.xrange(stream, '-', '+');
  expect(entries).toHaveLength(1);
  expect(entries[0][1]).toHaveLength(2);
  expect(entries[0][1][0]).toBe('event');

  // Without an active span: no span at all.
  await p.publish('otel.test.none', {}, ctx());
  expect(sendSpans(stream)).toHaveLength(1);
});

test('a batch span counts its messages; a failure sets error.type and the error status', async () => {
  const { p, stream } = await connect({ logLevel: 'off' });
  await inSpan(() => p.publishBatch([1, 2, 3].map((i) => ({ type: 'otel.test.batch', data: { i }, context: ctx() }))));
  const c = ctx();
  const eventId = uid('ev');
  await p.publish('otel.test.a', {}, { ...c, eventId });
  await inSpan(() => p.publish('otel.test.b', {}, { ...c, eventId }).catch((e) => e));
  const [batch, failed] = sendSpans(stream);
  expect(batch.attributes['messaging.batch.message_count']).toBe(3);
  expect(batch.attributes['messaging.message.id']).toBeUndefined();
  expect(failed.attributes['error.type']).toBe('ERR_EVENT_ID_CONFLICT');
  expect(failed.status.code).toBe(SpanStatusCode.ERROR);
});

test('traceContext: true writes traceparent (and tracestate) after event, with the active trace id', async () => {
  const { p, stream } = await connect({ logLevel: 'off', traceContext: true });
  const [[id, batchIds], parent] = await inSpan(async () => [
    await p.publish('otel.test.ctx', { n: 1 }, ctx()),
    await p.publishBatch([{ type: 'otel.test.ctx', data: {}, context: ctx() }, { type: 'otel.test.ctx', data: {}, context: ctx() }]),
  ]);
  const entries = await redis.xrange(stream, '-', '+');
  expect(entries).toHaveLength(3);
  const [one, batch] = sendSpans(stream);
  for (const [i, [, fields]] of entries.entries()) {
    expect(fields).toHaveLength(4);
    expect(fields[0]).toBe('event');
    expect(JSON.parse(fields[1]).id).toBe([id, ...batchIds][i]);
    expect(fields[2]).toBe('traceparent');
    const [version, traceId, spanId, flags] = fields[3].split('-');
    expect(version).toBe('00');
    expect(traceId).toBe(parent.spanContext().traceId);
    expect(spanId).toBe((i === 0 ? one : batch).spanContext().spanId);
    expect(flags).toBe('01');
  }

  // A tracestate on the caller's context comes along as a third pair.
  const { createTraceState } = require('@opentelemetry/api');
  const remote = { traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), traceFlags: 1, traceState: createTraceState('vendor=v1') };
  await context.with(trace.setSpanContext(context.active(), remote), () => p.publish('otel.test.state', {}, ctx()));
  const [, fields] = (await redis.xrevrange(stream, '+', '-', 'COUNT', 1))[0];
  expect(fields.filter((_, i) => i % 2 === 0)).toEqual(['event', 'traceparent', 'tracestate']);
  expect(fields[3]).toMatch(new RegExp(`^00-${'a'.repeat(32)}-[0-9a-f]{16}-01$`));
  expect(fields[5]).toBe('vendor=v1');

  // Without an active span nothing is added.
  await p.publish('otel.test.ctx', {}, ctx());
  const last = (await redis.xrevrange(stream, '+', '-', 'COUNT', 1))[0];
  expect(last[1]).toHaveLength(2);
});
