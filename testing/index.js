'use strict';
// @hyvve/event-publisher/testing: an in-memory publisher for unit tests. Same API, argument checks
// and errors as EventPublisher; the envelope bytes and row values come from the same Rust code
// (src/event/envelope.rs, src/event/validate.rs, through `prepareEvents` in src/binding/testing.rs), with no Redis and no
// Postgres. What the stream and the table would hold is kept in memory: `published()`.

const { prepareEvents } = require('../binding.js');
const core = require('../index.js');

const { EventPublisherError } = core;
const { nativeEvent, nativeBatch, nativeOptions, fromNative, describe } = core._internals;

const DEFAULT_STREAM = 'hyvve:events:main';
const ERROR_CODE = /^ERR_[A-Z_]+$/;

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The in-memory publisher `createTestPublisher` returns. */
class TestPublisher {
  #native;
  #stream;
  #entries = [];
  #byEventId = new Map();
  #failures = [];
  #delayMs = 0;
  #inFlight = new Set();
  #closed = false;
  #lastMs = 0;
  #lastSeq = 0;

  /** @private Use createTestPublisher(options). */
  constructor(options) {
    const { logger, ...rest } = options || {};
    this.#native = nativeOptions(rest);
    // The real publisher's option checks (ERR_CONFIG), once, at creation.
    try {
      prepareEvents(this.#native, [], true);
    } catch (err) {
      throw fromNative(err);
    }
    this.#stream = this.#native.stream || DEFAULT_STREAM;
  }

  /** Publishes one event in memory; resolves to its event id. */
  publish(type, data, context) {
    let e;
    try {
      e = nativeEvent(type, data, context, '');
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#run([e], false).then((ids) => ids[0]);
  }

  /** Publishes events atomically in memory; resolves to their ids in input order. */
  publishBatch(events) {
    let batch;
    try {
      batch = nativeBatch(events);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#run(batch, true);
  }

  #run(events, batch) {
    if (this.#closed) return Promise.reject(new EventPublisherError('ERR_CLOSED', 'the publisher is closed'));
    const work = this.#write(events, batch);
    this.#inFlight.add(work);
    const done = () => this.#inFlight.delete(work);
    work.then(done, done);
    return work;
  }

  async #write(events, batch) {
    if (this.#delayMs > 0) await sleep(this.#delayMs);
    if (batch && events.length === 0) return [];
    let prepared;
    try {
      prepared = prepareEvents(this.#native, events, batch);
    } catch (err) {
      throw fromNative(err);
    }
    const failure = this.#failures.shift();
    if (failure && !failure.outcomeUnknown) throw failure.error();
    // A caller eventId seen before: the same id again, nothing written (as the real publisher's
    // dedup key and unique event_id do), unless it belongs to another tenant or type.
    const fresh = [];
    for (const p of prepared) {
      const earlier = p.callerEventId ? this.#byEventId.get(p.eventId) : undefined;
      if (!earlier) {
        fresh.push(p);
      } else if (earlier.row.type !== p.type || earlier.row.tenant_id !== p.tenantId) {
        throw new EventPublisherError(
          'ERR_EVENT_ID_CONFLICT',
          `eventId '${p.eventId}' already belongs to a ${earlier.row.type} event of another tenant or type`,
        );
      }
    }
    for (const p of fresh) this.#append(p);
    // An outcome-unknown failure is the ambiguous case: the write happened, the reply was lost.
    if (failure) throw failure.error();
    return prepared.map((p) => p.eventId);
  }

  #append(p) {
    const ms = Date.now();
    if (ms > this.#lastMs) {
      this.#lastMs = ms;
      this.#lastSeq = 0;
    } else {
      this.#lastSeq += 1;
    }
    const streamId = `${this.#lastMs}-${this.#lastSeq}`;
    const record = {
      stream: this.#stream,
      streamId,
      fields: ['event', p.envelope],
      envelope: p.envelope,
      event: JSON.parse(p.envelope),
      row: {
        id: p.rowId,
        event_id: p.eventId,
        stream_id: streamId,
        type: p.type,
        source: p.source,
        tenant_id: p.tenantId,
        correlation_id: p.correlationId,
        status: 'PENDING',
        attempts: 0,
        last_error: null,
        processed_at: null,
        created_at: new Date(p.timestamp),
      },
    };
    this.#entries.push(record);
    if (p.callerEventId) this.#byEventId.set(p.eventId, record);
  }

  /** What was published, in stream order: each entry as the stream holds it and its row as the table would. */
  published() {
    return this.#entries.map((r) => ({ ...r, fields: [...r.fields], event: JSON.parse(r.envelope), row: { ...r.row, created_at: new Date(r.row.created_at) } }));
  }

  /** Forgets everything published (and the remembered eventIds); pending failures and the delay stay. */
  clear() {
    this.#entries = [];
    this.#byEventId.clear();
  }

  /**
   * The next publish or publishBatch that passes validation rejects with `code`. With
   * `outcomeUnknown: true` it is the ambiguous case: its events are written (as when a reply is
   * lost after the append) and the error has `outcomeUnknown === true`; otherwise nothing is written.
   * Calls queue up: each applies to one later publish.
   */
  failNext(code, options) {
    if (typeof code !== 'string' || !ERROR_CODE.test(code)) throw new TypeError(`failNext(code): code must look like ERR_SOMETHING, got ${describe(code)}`);
    const outcomeUnknown = Boolean(options && options.outcomeUnknown);
    const message = (options && options.message) || `injected by failNext(${code})`;
    this.#failures.push({
      outcomeUnknown,
      error: () => {
        const e = new EventPublisherError(code, message);
        e.outcomeUnknown = outcomeUnknown;
        return e;
      },
    });
    return this;
  }

  /** Every later publish waits `ms` before it is written (0 restores immediate writes). */
  delay(ms) {
    if (typeof ms !== 'number' || !(ms >= 0)) throw new TypeError(`delay(ms): ms must be a non-negative number, got ${describe(ms)}`);
    this.#delayMs = ms;
    return this;
  }

  /** Always healthy: `{ redis: true, database: true, circuit: 'closed', inFlightBytes: 0, outbox }` (after close, both false); no outbox backlog in memory. */
  async health() {
    const outbox = { pending: 0, oldestAgeMs: 0 };
    const up = !this.#closed;
    return { redis: up, database: up, circuit: 'closed', inFlightBytes: 0, outbox };
  }

  /** Nothing to settle in memory: `{ examined: 0, repaired: 0, failed: 0 }`. */
  async reconcile() {
    return { examined: 0, repaired: 0, failed: 0 };
  }

  /** Waits for publishes in flight (see `delay`), then rejects later calls with `ERR_CLOSED`. */
  async close() {
    this.#closed = true;
    await Promise.allSettled([...this.#inFlight]);
  }
}

/** An in-memory publisher with the options of `EventPublisher.connect` (store URLs unused). */
function createTestPublisher(options) {
  return new TestPublisher(options);
}

module.exports = { createTestPublisher, TestPublisher };
