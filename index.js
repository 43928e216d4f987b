'use strict';
// The package's JavaScript face: argument checks, JSON.stringify of payloads (so `data` is
// byte-identical to what the platform's TypeScript publisher wrote), and one conversion of native
// errors into EventPublisherError. The publishing itself happens in the native addon.

const { NativePublisher } = require('./binding.js');
const { EventTypes } = require('./lib/event-types.js');

// @opentelemetry/api is an optional peer: without it (or without an active span) publishing
// costs one check more.
let otel = null;
try {
  otel = require('@opentelemetry/api');
} catch {
  // not installed
}
const VERSION = require('./package.json').version;

/** Every rejection of this package: `code` is stable, `message` names the cause. */
class EventPublisherError extends Error {
  constructor(code, message, options) {
    super(message, options);
    this.name = 'EventPublisherError';
    this.code = code;
    /** True when the event may have been written (by this attempt or an earlier one with its eventId): retry with the same eventId. */
    this.outcomeUnknown = false;
    /** publishBatch written in parts: the ids of the leading events that were written completely. */
    this.publishedIds = [];
  }
}

// Native errors carry their code as a message prefix: "ERR_X: text", or "?ERR_X: text" when the
// outcome is unknown, and "ERR_X@id,id: text" when a batch's first parts were published. See
// src/binding/error.rs (to_napi).
const NATIVE_ERROR = /^(\??)(ERR_[A-Z_]+)(?:@([A-Za-z0-9._~,-]*))?: ([\s\S]*)$/;

function fromNative(err) {
  if (err instanceof EventPublisherError) return err;
  const m = err && typeof err.message === 'string' ? NATIVE_ERROR.exec(err.message) : null;
  if (!m) return new EventPublisherError('ERR_INTERNAL', String(err && err.message ? err.message : err), { cause: err });
  const e = new EventPublisherError(m[2], m[4]);
  e.outcomeUnknown = m[1] === '?';
  if (m[3]) e.publishedIds = m[3].split(',');
  return e;
}

function rethrow(err) {
  throw fromNative(err);
}

function invalid(message, cause) {
  return new EventPublisherError('ERR_INVALID_EVENT', message, cause ? { cause } : undefined);
}

function describe(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v;
}

/** `JSON.stringify(data)` for a plain object payload, or ERR_INVALID_EVENT naming the field. */
function serializeData(data, field) {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw invalid(`${field} must be an object, got ${describe(data)}`);
  }
  let json;
  try {
    json = JSON.stringify(data);
  } catch (e) {
    // BigInt, cycles, a throwing toJSON or getter.
    throw invalid(`${field} cannot be serialized with JSON.stringify: ${e && e.message}`, e);
  }
  if (typeof json !== 'string' || json.charCodeAt(0) !== 123 /* { */) {
    throw invalid(`${field} must serialize to a JSON object (its toJSON returned ${json === undefined ? 'undefined' : 'a non-object'})`);
  }
  return json;
}

// A lone surrogate cannot cross into Rust intact (it would become U+FFFD, and two different
// tenant ids could become one), so ill-formed strings are refused.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const wellFormed = typeof String.prototype.isWellFormed === 'function'
  ? (v) => v.isWellFormed()
  : (v) => !LONE_SURROGATE.test(v);

function checkWellFormed(v, name) {
  if (!wellFormed(v)) throw invalid(`${name} must be a well-formed string (it holds a lone UTF-16 surrogate)`);
  return v;
}

function optionalString(ctx, key, field) {
  const v = ctx[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw invalid(`${field}.${key} must be a string, got ${describe(v)}`);
  return checkWellFormed(v, `${field}.${key}`);
}

function requiredString(ctx, key, field) {
  const v = ctx[key];
  if (typeof v !== 'string' || v.length === 0) {
    throw invalid(`${field}.${key} must be a non-empty string, got ${typeof v === 'string' ? 'an empty string' : describe(v)}`);
  }
  return checkWellFormed(v, `${field}.${key}`);
}

/** Runs `read`, turning anything it throws (a throwing getter, a Proxy trap) into ERR_INVALID_EVENT. */
function guarded(what, read) {
  try {
    return read();
  } catch (e) {
    if (e instanceof EventPublisherError) throw e;
    throw invalid(`${what} could not be read: ${e && e.message}`, e);
  }
}

/** Converts publishBatch's argument, event by event (errors name `events[i]`). */
function nativeBatch(events) {
  if (!Array.isArray(events)) throw invalid(`events must be an array, got ${describe(events)}`);
  const n = guarded('events.length', () => events.length);
  const batch = new Array(n);
  for (let i = 0; i < n; i++) {
    const ev = guarded(`events[${i}]`, () => events[i]);
    if (ev === null || typeof ev !== 'object') throw invalid(`events[${i}] must be an object, got ${describe(ev)}`);
    const [type, data, context] = guarded(`events[${i}]`, () => [ev.type, ev.data, ev.context]);
    batch[i] = nativeEvent(type, data, context, `events[${i}].`);
  }
  return batch;
}

/**
 * nativeBatch's events as submitBatch takes them: two strings cross napi far faster than an array
 * of objects (~0.5 against ~2.9 us per event). `fields`: the JSON of each event's fields but data;
 * `data`: each `JSON.stringify(data)` joined by a newline, which JSON.stringify never writes.
 * `trace`: the traceContext field every event gets, or undefined.
 */
function packBatch(batch, trace) {
  const fields = new Array(batch.length);
  const data = new Array(batch.length);
  for (let i = 0; i < batch.length; i++) {
    const e = batch[i];
    data[i] = e.data;
    fields[i] = [e.type, e.tenantId, e.userId, e.correlationId ?? null, e.source ?? null, e.eventId ?? null, trace ?? null];
  }
  return { fields: JSON.stringify(fields), data: data.join('\n') };
}

/** Checks one event and returns the native call's arguments. */
function nativeEvent(type, data, context, prefix) {
  if (typeof type !== 'string') throw invalid(`${prefix}type must be a string, got ${describe(type)}`);
  checkWellFormed(type, `${prefix}type`);
  const json = serializeData(data, `${prefix}data`);
  const field = `${prefix}context`;
  if (context === null || typeof context !== 'object') {
    throw invalid(`${field} must be an object with tenantId and userId, got ${describe(context)}`);
  }
  return guarded(field, () => ({
    type,
    data: json,
    tenantId: requiredString(context, 'tenantId', field),
    userId: requiredString(context, 'userId', field),
    correlationId: optionalString(context, 'correlationId', field),
    source: optionalString(context, 'source', field),
    eventId: optionalString(context, 'eventId', field),
  }));
}

const OPTION_KEYS = new Set([
  'redisUrl', 'redisCaFile', 'databaseUrl', 'directUrl', 'stream', 'retention', 'source', 'metadataTable',
  'maxPayloadBytes', 'timeoutMs', 'dedupWindowMs', 'maxInFlight', 'maxInFlightBytes', 'circuitThreshold',
  'circuitCooldownMs', 'logger', 'logLevel', 'entryIds', 'traceContext', 'redisClusterNodes',
  'redisSentinel', 'replicaAcks', 'relay', 'relayIntervalMs', 'relayGraceMs',
]);

function configError(message) {
  return new EventPublisherError('ERR_CONFIG', message);
}

// Read in JS: test runners (jest) give each file its own process.env, invisible to native code.
const ENV_VARS = [
  'REDIS_URL', 'REDIS_HOST', 'REDIS_PORT', 'REDIS_PASSWORD', 'REDIS_CLUSTER_NODES', 'DATABASE_URL',
  'DIRECT_URL', 'EVENT_PUBLISHER_LOG', 'EVENT_PUBLISHER_REPLICA_ACKS',
];

function envSnapshot() {
  const env = {};
  for (const k of ENV_VARS) if (typeof process.env[k] === 'string') env[k] = process.env[k];
  return env;
}

/** PublisherOptions → the native options object (flat), checking types so that mistakes say which option. */
function nativeOptions(options) {
  if (options === undefined || options === null) return { env: envSnapshot() };
  if (typeof options !== 'object') throw configError(`options must be an object, got ${describe(options)}`);
  const unknown = Object.keys(options).filter((k) => !OPTION_KEYS.has(k));
  if (unknown.length) throw configError(`unknown option${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`);
  const out = { env: envSnapshot() };
  const str = (k) => {
    const v = options[k];
    if (v === undefined || v === null) return;
    if (typeof v !== 'string') throw configError(`${k} must be a string, got ${describe(v)}`);
    out[k] = v;
  };
  const num = (k, from = options, name = k, to = k) => {
    const v = from[k];
    if (v === undefined || v === null) return;
    if (typeof v !== 'number') throw configError(`${name} must be a number, got ${describe(v)}`);
    out[to] = v;
  };
  ['redisUrl', 'redisCaFile', 'databaseUrl', 'directUrl', 'stream', 'source', 'metadataTable', 'logLevel', 'entryIds'].forEach(str);
  ['maxPayloadBytes', 'timeoutMs', 'dedupWindowMs', 'maxInFlight', 'maxInFlightBytes', 'circuitThreshold', 'circuitCooldownMs', 'replicaAcks', 'relayIntervalMs', 'relayGraceMs'].forEach((k) => num(k));
  if (options.relay !== undefined && options.relay !== null) {
    if (typeof options.relay !== 'boolean') throw configError(`relay must be a boolean, got ${describe(options.relay)}`);
    out.relay = options.relay;
  }
  const strings = (v, name) => {
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw configError(`${name} must be an array of strings, got ${describe(v)}`);
    return v.slice();
  };
  if (options.redisClusterNodes !== undefined && options.redisClusterNodes !== null) {
    out.redisClusterNodes = strings(options.redisClusterNodes, 'redisClusterNodes');
  }
  const s = options.redisSentinel;
  if (s !== undefined && s !== null) {
    if (typeof s !== 'object') throw configError(`redisSentinel must be an object, got ${describe(s)}`);
    if (typeof s.name !== 'string') throw configError(`redisSentinel.name must be a string, got ${describe(s.name)}`);
    for (const k of ['password', 'sentinelPassword']) {
      if (s[k] !== undefined && s[k] !== null && typeof s[k] !== 'string') throw configError(`redisSentinel.${k} must be a string`);
    }
    out.redisSentinel = { sentinels: strings(s.sentinels, 'redisSentinel.sentinels'), name: s.name };
    if (s.password != null) out.redisSentinel.password = s.password;
    if (s.sentinelPassword != null) out.redisSentinel.sentinelPassword = s.sentinelPassword;
  }
  const r = options.retention;
  if (r !== undefined && r !== null) {
    if (typeof r !== 'object') throw configError(`retention must be an object, got ${describe(r)}`);
    num('maxAgeMs', r, 'retention.maxAgeMs', 'retentionMaxAgeMs');
    num('maxLen', r, 'retention.maxLen', 'retentionMaxLen');
  }
  if (options.traceContext !== undefined && options.traceContext !== null && typeof options.traceContext !== 'boolean') {
    throw configError(`traceContext must be a boolean, got ${describe(options.traceContext)}`);
  }
  if (options.logger !== undefined && options.logger !== null && typeof options.logger !== 'function') {
    throw configError(`logger must be a function, got ${describe(options.logger)}`);
  }
  return out;
}

/** A logger that can never throw into the addon; records arrive as JSON lines. */
function safeLogger(logger) {
  if (typeof logger !== 'function') return undefined;
  return (line) => {
    try {
      logger(JSON.parse(line));
    } catch {
      // A broken logger must not break publishing.
    }
  };
}

const noop = () => {};

/** `traceparent` [newline `tracestate`] of `span`, for the entry's second field pair. */
function traceField(span) {
  const c = span.spanContext();
  if (!otel.isSpanContextValid(c)) return undefined;
  const parent = `00-${c.traceId}-${c.spanId}-${(c.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
  const state = c.traceState && c.traceState.serialize();
  return state ? `${parent}\n${state}` : parent;
}

/** Ends `span` when `done` settles: `messaging.message.id` on success, `error.type` on failure. */
function endSpan(span, done, batch) {
  return done.then(
    (value) => {
      if (!batch) span.setAttribute('messaging.message.id', value);
      span.end();
      return value;
    },
    (err) => {
      span.setAttribute('error.type', (err && err.code) || 'ERR_INTERNAL');
      span.setStatus({ code: otel.SpanStatusCode.ERROR, message: err && err.message });
      span.end();
      throw err;
    },
  );
}

/**
 * `transaction()`'s way into a transaction of `db`: (work, options) => result, where work gets
 * (executor, tx). Recognised structurally (no dependency on the libraries).
 */
function transactionRunner(db) {
  const outbox = require('./outbox/index.js');
  if (db && typeof db.$transaction === 'function') {
    return (work, opts) => db.$transaction((tx) => work(outbox.fromPrisma(tx), tx), opts);
  }
  if (db && typeof db.transaction === 'function' && typeof db.selectFrom === 'function') {
    return (work) => db.transaction().execute((trx) => work(outbox.fromKysely(trx), trx));
  }
  if (db && typeof db.transaction === 'function' && typeof db.createQueryRunner === 'function') {
    return (work) => db.transaction((manager) => work(outbox.fromTypeORM(manager), manager));
  }
  if (db && typeof db.connect === 'function' && typeof db.query === 'function') {
    return async (work) => {
      const client = await db.connect();
      try {
        await client.query('BEGIN');
        const out = await work(outbox.fromPg(client), client);
        await client.query('COMMIT');
        return out;
      } catch (e) {
        await client.query('ROLLBACK').catch(() => {});
        throw e;
      } finally {
        client.release();
      }
    };
  }
  throw configError('transaction(db, fn): db must be a PrismaClient, a pg Pool, a Kysely instance or a TypeORM DataSource');
}

/** Publishes events to the Redis stream and the event_metadata table. */
class EventPublisher {
  #native;
  // Single publishes: each gets a ticket; the addon reports finished tickets in batches (one
  // wake-up of this thread per group, not per event), and `#settle` settles their promises.
  #pending = new Map();
  #nextTicket = 1;
  // A ref'd timer keeps the process alive while publishes are pending, and only then.
  #keepAlive = null;
  #stream;
  #traceContext;

  /** @private Use EventPublisher.connect(). */
  constructor(native, traceContext = false) {
    if (!(native instanceof NativePublisher)) {
      throw new TypeError('use EventPublisher.connect(options) to create a publisher');
    }
    this.#native = native;
    this.#stream = native.stats().stream;
    this.#traceContext = traceContext === true;
    native.listen(() => this.#settle());
  }

  #settle() {
    const { tickets, ok, values } = this.#native.drain();
    for (let i = 0; i < tickets.length; i++) {
      const waiter = this.#pending.get(tickets[i]);
      if (!waiter) continue;
      this.#pending.delete(tickets[i]);
      if (!ok[i]) waiter.reject(fromNative({ message: values[i] }));
      else if (waiter.batch) waiter.resolve(values[i] === '' ? [] : values[i].split(','));
      else waiter.resolve(values[i]);
    }
    if (this.#pending.size === 0 && this.#keepAlive) this.#keepAlive.unref();
  }

  /** Connects to both stores and verifies them. */
  static async connect(options) {
    const opts = nativeOptions(options);
    const native = await NativePublisher.connect(opts, safeLogger(options && options.logger)).catch(rethrow);
    return new EventPublisher(native, Boolean(options && options.traceContext));
  }

  /** Creates the event_metadata table if it does not exist; resolves to whether it did. */
  static async migrate(options) {
    const { logger, logLevel, ...rest } = options || {};
    return NativePublisher.migrate(nativeOptions(rest)).catch(rethrow);
  }

  /** Publishes one event; resolves to its event id. */
  publish(type, data, context) {
    let e;
    try {
      e = nativeEvent(type, data, context, '');
    } catch (err) {
      return Promise.reject(err);
    }
    const span = this.#span(false, 1);
    const trace = span && this.#traceContext ? traceField(span) : undefined;
    const done = this.#start(false, (ticket) =>
      this.#native.submit(ticket, e.type, e.data, e.tenantId, e.userId, e.correlationId, e.source, e.eventId, trace),
    );
    return span ? endSpan(span, done, false) : done;
  }

  /**
   * A `send <stream>` PRODUCER span, child of the active span (none without an active span or
   * without @opentelemetry/api). Attributes per the OpenTelemetry messaging conventions.
   */
  #span(batch, count) {
    if (!otel || !otel.trace.getActiveSpan()) return null;
    const attributes = {
      'messaging.system': 'redis',
      'messaging.destination.name': this.#stream,
      'messaging.operation.name': 'send',
      'messaging.operation.type': 'send',
    };
    if (batch) attributes['messaging.batch.message_count'] = count;
    return otel.trace
      .getTracer('@hyvve/event-publisher', VERSION)
      .startSpan(`send ${this.#stream}`, { kind: otel.SpanKind.PRODUCER, attributes });
  }

  /** Hands a publish to the addon under a new ticket; its promise settles in `#settle`. */
  #start(batch, submit) {
    // After close() the addon refuses too (ERR_CLOSED), saying whether an earlier attempt with
    // the same eventId may have written the event.
    const ticket = this.#nextTicket;
    this.#nextTicket = ticket >= 0xfffffff0 ? 1 : ticket + 1;
    try {
      // Synchronous admission: a publish made before close() is waited for by close().
      submit(ticket);
    } catch (err) {
      return Promise.reject(fromNative(err));
    }
    if (this.#pending.size === 0) {
      if (!this.#keepAlive) this.#keepAlive = setInterval(noop, 0x7fffffff);
      else this.#keepAlive.ref();
    }
    return new Promise((resolve, reject) => {
      this.#pending.set(ticket, { resolve, reject, batch });
    });
  }

  /** Publishes events atomically; resolves to their ids in input order. */
  publishBatch(events) {
    let batch;
    try {
      batch = nativeBatch(events);
    } catch (err) {
      return Promise.reject(err);
    }
    const span = batch.length > 0 ? this.#span(true, batch.length) : null;
    const { fields, data } = packBatch(batch, span && this.#traceContext ? traceField(span) : undefined);
    const done = this.#start(true, (ticket) => this.#native.submitBatch(ticket, batch.length, fields, data));
    return span ? endSpan(span, done, true) : done;
  }

  /**
   * Prepares one event exactly as `publish` would (same checks, ids, errors and envelope bytes),
   * with no I/O, for the caller's own transaction: run `statement` on it (an adapter of
   * `@hyvve/event-publisher/outbox`), commit, then `dispatch()` (or let the relay deliver it).
   */
  stage(type, data, context) {
    const e = nativeEvent(type, data, context, '');
    return this.#stage([e], false);
  }

  /** `stage` for several events, as `publishBatch` prepares them; appended together, in order. */
  stageBatch(events) {
    return this.#stage(nativeBatch(events), true);
  }

  #stage(batch, isBatch) {
    const span = this.#traceContext && otel ? otel.trace.getActiveSpan() : null;
    const { fields, data } = packBatch(batch, span ? traceField(span) : undefined);
    let r;
    try {
      r = this.#native.stage(batch.length, fields, data, isBatch);
    } catch (err) {
      throw fromNative(err);
    }
    return Object.freeze({
      eventIds: Object.freeze(r.eventIds),
      statement: Object.freeze({ text: r.text, values: Object.freeze([r.value]) }),
    });
  }

  /**
   * After the caller's commit: appends the committed, not yet delivered ones of these staged
   * events now. Resolves to `{ appended, deferred }`; never rejects for a store failure (what it
   * could not append waits in the outbox for the relay). Before commit or after a rollback it
   * appends nothing.
   */
  dispatch(staged) {
    const list = Array.isArray(staged) ? staged : [staged];
    const ids = [];
    for (const s of list) {
      if (!s || !Array.isArray(s.eventIds)) {
        return Promise.reject(invalid('dispatch() takes what stage()/stageBatch() returned (or an array of them)'));
      }
      for (const id of s.eventIds) ids.push(id);
    }
    if (ids.length === 0) return Promise.resolve({ appended: 0, deferred: 0 });
    return this.#native.dispatch(ids).catch(rethrow);
  }

  /**
   * Runs `fn` in a transaction of `db` (a PrismaClient, a pg Pool, a Kysely instance or a TypeORM
   * DataSource), staging what `fn` publishes through `events.publish()` / `events.publishBatch()`
   * in that transaction; after the commit, dispatches them. Resolves to `fn`'s result once
   * committed (waiting for the append at most `dispatchWaitMs`, default 250 ms: a slow Redis
   * never holds up the business result; the relay delivers what is left).
   */
  async transaction(db, fn, options) {
    if (typeof fn !== 'function') throw configError('transaction(db, fn): fn must be a function');
    const { dispatchWaitMs = 250, ...txOptions } = options || {};
    const runner = transactionRunner(db);
    const staged = [];
    const result = await runner(async (executor, tx) => {
      const pendingStatements = [];
      const events = {
        tx,
        publish: (type, data, context) => {
          const s = this.stage(type, data, context);
          staged.push(s);
          pendingStatements.push(s.statement);
          return s.eventIds[0];
        },
        publishBatch: (list) => {
          const s = this.stageBatch(list);
          staged.push(s);
          pendingStatements.push(s.statement);
          return s.eventIds.slice();
        },
      };
      const out = await fn(events);
      // One round trip per statement, after the callback: staged events cost the transaction
      // nothing until it is about to commit.
      for (const st of pendingStatements) await executor.execute(st);
      return out;
    }, txOptions);
    if (staged.length) {
      const dispatched = this.dispatch(staged).catch(() => {});
      let timer;
      await Promise.race([dispatched, new Promise((r) => { timer = setTimeout(r, dispatchWaitMs); })]);
      clearTimeout(timer);
    }
    return result;
  }

  /** Whether each store answers now, and the circuit breaker's state. */
  health() {
    return this.#native.health().catch(rethrow);
  }

  /** Settles rows a crashed process may have left without an entry (docs/guarantees.md, guarantee 9). */
  reconcile(options) {
    const pick = (name, dflt) => (options && options[name] !== undefined ? options[name] : dflt);
    const olderThanMs = pick('olderThanMs', 60_000);
    const withinMs = pick('withinMs', 24 * 60 * 60 * 1000);
    for (const [name, value] of [['olderThanMs', olderThanMs], ['withinMs', withinMs]]) {
      if (typeof value !== 'number' || !(value >= 0)) {
        return Promise.reject(configError(`${name} must be a non-negative number`));
      }
    }
    return this.#native.reconcile(olderThanMs, withinMs).catch(rethrow);
  }

  /** The publisher's metrics in the Prometheus text format. */
  metrics() {
    return this.#native.metrics().catch(rethrow);
  }

  /** The publisher's metrics now, as an object. */
  stats() {
    return this.#native.stats();
  }

  /** Waits for in-flight publishes, then closes connections. */
  close() {
    return this.#native.close().catch(rethrow);
  }
}

module.exports = { EventPublisher, EventPublisherError, EventTypes };
// For `@hyvve/event-publisher/testing` (same argument checks and error conversion as the real
// publisher); not enumerable, not part of the public API.
Object.defineProperty(module.exports, '_internals', {
  value: Object.freeze({ nativeEvent, nativeBatch, nativeOptions, fromNative, invalid, guarded, describe }),
});
