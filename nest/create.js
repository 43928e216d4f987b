'use strict';
// Builds the NestJS classes of @hyvve/event-publisher/nest from a given `@nestjs/common`.
// index.js passes the CommonJS `@nestjs/common` (Nest 10/11, or 12 where require(esm) works);
// index.mjs passes the ES module one only when Nest is ESM-only and cannot be required (Nest 12 on
// Node 20). Plain JS, no decorator syntax: the decorators are applied as functions below.

/** DI token of the options object (a registered symbol, so every copy of this file agrees on it). */
const EVENT_PUBLISHER_OPTIONS = Symbol.for('@hyvve/event-publisher/nest:options');

/** Options of this module that are not options of `EventPublisher.connect`. */
const NEST_ONLY_KEYS = ['isGlobal', 'startDegraded', 'reconnectIntervalMs', 'maxReconnectIntervalMs'];

/** A fresh event id, made by the publisher's own code (the addon's `prepareEvents`). */
function newEventId() {
  const { prepareEvents } = require('../binding.js');
  return prepareEvents(null, [{ type: 'outbox.test.id', data: '{}', tenantId: 't', userId: 'u' }], false)[0].eventId;
}

/** The CLS key under which `EventOutbox.withTransaction` collects what `publish()` staged. */
const STAGED_KEY = Symbol.for('@hyvve/event-publisher/nest:outbox-staged');

/** What a Nest `Logger` method is called for each level of a core `LogEntry`. */
const LOGGER_METHOD = { error: 'error', warn: 'warn', info: 'log', debug: 'debug', trace: 'verbose' };

// The in-memory publisher behind EventPublisherModule.forTest().
const { createTestPublisher, TestPublisher } = require('../testing/index.js');

/** `@nestjs/terminus` if installed (an optional peer), else null. */
function loadTerminus() {
  try {
    return require('@nestjs/terminus');
  } catch {
    return null;
  }
}

function createNestBindings(common, core) {
  const { Injectable, Inject, Optional, Module, Logger, ConfigurableModuleBuilder } = common;
  const { EventPublisher, EventPublisherError } = core;

  class EventPublisherService {
    /** @param {object} [options] module options; absent means "everything from the environment". */
    constructor(options) {
      this.options = options || {};
      this.logger = new Logger('EventPublisherService');
      this._publisher = null;
      this._state = 'idle'; // idle | connecting | ready | degraded | closed
      this._connecting = null;
      this._lastError = null;
      this._timer = null;
      this._delay = 0;
    }

    /** Connects to Redis and Postgres; rejects (failing the bootstrap) when a store is unreachable, unless `startDegraded`. */
    async onModuleInit() {
      if (this._state !== 'idle') return;
      this._state = 'connecting';
      try {
        await this._connect();
      } catch (err) {
        if (this._state === 'closed') return;
        if (!this.options.startDegraded || err.code === 'ERR_CONFIG') {
          this._state = 'idle';
          throw this._error(err.code, `EventPublisherService could not connect: ${err.message}`, err);
        }
        this._state = 'degraded';
        this._log('error', 'EventPublisherService started degraded: publishes reject until a background reconnect succeeds', err);
        this._delay = this.options.reconnectIntervalMs || 1000;
        this._scheduleReconnect();
      }
    }

    /** Waits for in-flight publishes and closes the connections. */
    async onModuleDestroy() {
      if (this._state === 'closed') return;
      const connecting = this._connecting;
      this._state = 'closed';
      clearTimeout(this._timer);
      this._timer = null;
      if (connecting) await connecting.catch(() => {});
      const publisher = this._publisher;
      this._publisher = null;
      if (publisher) await publisher.close();
    }

    /** Publishes one event; resolves to its event id. */
    async publish(type, data, context) {
      return (await this._ready()).publish(type, data, context);
    }

    /** Publishes events atomically; resolves to their event ids in input order. */
    async publishBatch(events) {
      return (await this._ready()).publishBatch(events);
    }

    /** The stores' health, plus the service's state. */
    async health() {
      if (this._state === 'ready') return { ...(await this._publisher.health()), state: 'ready' };
      return { redis: false, database: false, circuit: 'open', inFlightBytes: 0, state: this._state };
    }

    // -- internals ---------------------------------------------------------------------------

    /** One connection attempt; on success the service is ready (unless it was closed meanwhile). */
    _connect() {
      const options = { ...this.options };
      for (const key of NEST_ONLY_KEYS) delete options[key];
      if (!options.logger) options.logger = (entry) => this._forward(entry);
      this._connecting = EventPublisher.connect(options).then(
        (publisher) => {
          this._connecting = null;
          if (this._state === 'closed') return publisher.close();
          this._publisher = publisher;
          this._state = 'ready';
          this._lastError = null;
        },
        (err) => {
          this._connecting = null;
          this._lastError = err;
          throw err;
        },
      );
      return this._connecting;
    }

    async _ready() {
      if (this._state === 'idle') {
        // Used outside the Nest lifecycle (or after a failed bootstrap): connect on first use.
        this._state = 'connecting';
        await this._connect().catch((err) => {
          if (this._state === 'connecting') this._state = 'idle';
          throw err;
        });
      } else if (this._state === 'connecting') {
        await this._connecting;
      }
      if (this._state === 'ready') return this._publisher;
      if (this._state === 'closed') throw this._error('ERR_CLOSED', 'EventPublisherService is closed');
      const cause = this._lastError;
      throw this._error(
        cause.code,
        `EventPublisherService is degraded (not connected; reconnecting in the background): ${cause.message}`,
        cause,
      );
    }

    _scheduleReconnect() {
      this._timer = setTimeout(() => {
        this._timer = null;
        if (this._state !== 'degraded') return;
        this._connect().then(
          () => {
            if (this._state === 'ready') this._log('log', 'EventPublisherService reconnected: publishes resume');
          },
          () => {
            if (this._state !== 'degraded') return;
            this._delay = Math.min(this._delay * 2, this.options.maxReconnectIntervalMs || 30000);
            this._scheduleReconnect();
          },
        );
      }, this._delay);
      // A degraded publisher alone never keeps the process alive.
      if (this._timer.unref) this._timer.unref();
    }

    _error(code, message, cause) {
      return new EventPublisherError(code, message, cause ? { cause } : undefined);
    }

    /** Routes a core log record to Nest's Logger, keeping its structured fields. */
    _forward(entry) {
      const { level, ...fields } = entry;
      const method = LOGGER_METHOD[level] || 'log';
      this.logger[method](fields);
    }

    _log(method, msg, err) {
      const fields = { msg };
      if (err) Object.assign(fields, { code: err.code, error: err.message });
      this.logger[method](fields);
    }
  }
  /** @private A service already backed by `publisher` (forTest): no connection, ready at once. */
  Object.defineProperty(EventPublisherService, '_backedBy', {
    value(publisher, options) {
      const service = new EventPublisherService(options);
      service._publisher = publisher;
      service._state = 'ready';
      return service;
    },
  });
  Injectable()(EventPublisherService);

  /**
   * A `@nestjs/terminus` health indicator (terminus is an optional peer, loaded only when a check
   * runs): `isHealthy(key = 'eventPublisher')` is up when Redis and Postgres answer and the
   * circuit is not open, and reports `redis`, `database`, `circuit` and `state` either way.
   */
  class EventPublisherHealthIndicator {
    constructor(service) {
      this.service = service;
    }

    async isHealthy(key = 'eventPublisher') {
      let details;
      try {
        details = await this.service.health();
      } catch (err) {
        details = { redis: false, database: false, circuit: 'open', state: 'error', error: err && err.message };
      }
      const up = details.redis === true && details.database === true && details.circuit !== 'open' && details.state === 'ready';
      const result = { [key]: { status: up ? 'up' : 'down', ...details } };
      if (up) return result;
      // terminus 11+ counts a returned 'down'; older versions only a thrown HealthCheckError.
      const terminus = loadTerminus();
      if (terminus && !terminus.HealthIndicatorService && terminus.HealthCheckError) {
        throw new terminus.HealthCheckError('EventPublisher is unhealthy', result);
      }
      return result;
    }
  }
  Injectable()(EventPublisherHealthIndicator);

  /**
   * The transactional outbox in Nest (docs/outbox.md): events that commit with the business
   * change they announce. `transaction(db, fn)` opens the transaction itself (Prisma, pg, Kysely,
   * TypeORM); with `@nestjs-cls/transactional`, `publish()` stages on `TransactionHost.tx` of the
   * active `@Transactional()` transaction, and `withTransaction(fn)` dispatches after its commit.
   * Without a dispatch (a plain `@Transactional()` method) the relay appends the events after
   * `relayGraceMs` + up to `relayIntervalMs`.
   */
  class EventOutbox {
    constructor(service) {
      this.service = service;
    }

    /**
     * `EventPublisher.transaction`: runs `fn` in a transaction of `db`; its events commit with it.
     * Under `forTest()` (the in-memory publisher) `fn` runs without a transaction (`events.tx` is
     * `db`) and its events are published as one batch when it resolves, none when it throws.
     */
    async transaction(db, fn, options) {
      const publisher = await this.service._ready();
      if (typeof publisher.transaction === 'function') return publisher.transaction(db, fn, options);
      const queued = [];
      const add = (type, data, context) => {
        // A fresh id of the real publisher's kind (made by its own code).
        const eventId = (context && context.eventId) || newEventId();
        queued.push({ type, data, context: { ...context, eventId } });
        return eventId;
      };
      const out = await fn({
        tx: db,
        publish: add,
        publishBatch: (events) => events.map((e) => add(e.type, e.data, e.context)),
      });
      if (queued.length) await publisher.publishBatch(queued);
      return out;
    }

    /** `EventPublisher.stage` (the service must be connected). */
    stage(type, data, context) {
      return this._connected().stage(type, data, context);
    }

    /** `EventPublisher.stageBatch` (the service must be connected). */
    stageBatch(events) {
      return this._connected().stageBatch(events);
    }

    /** `EventPublisher.dispatch`. */
    async dispatch(staged) {
      return (await this.service._ready()).dispatch(staged);
    }

    /**
     * Stages one event on the active `@nestjs-cls/transactional` transaction (`TransactionHost.tx`
     * of `connectionName`); resolves to its id once the statement ran on that transaction.
     */
    async publish(type, data, context, options) {
      const staged = (await this.service._ready()).stage(type, data, context);
      await this._stageOnHost(staged, options);
      return staged.eventIds[0];
    }

    /** `publish` for several events, appended together. */
    async publishBatch(events, options) {
      const staged = (await this.service._ready()).stageBatch(events);
      await this._stageOnHost(staged, options);
      return staged.eventIds.slice();
    }

    /**
     * `TransactionHost.withTransaction(fn)` of `connectionName`, then, after the commit, dispatches
     * what `publish()` staged inside it (waiting at most `dispatchWaitMs`, default 250 ms).
     */
    async withTransaction(fn, options = {}) {
      const { host, cls } = this._host(options.connectionName);
      const staged = [];
      const result = await cls.run({ ifNested: 'inherit' }, () => {
        cls.set(STAGED_KEY, staged);
        return host.withTransaction(fn);
      });
      if (staged.length) {
        const publisher = await this.service._ready();
        const done = publisher.dispatch(staged).catch(() => {});
        let timer;
        await Promise.race([done, new Promise((r) => { timer = setTimeout(r, options.dispatchWaitMs ?? 250); })]);
        clearTimeout(timer);
      }
      return result;
    }

    async _stageOnHost(staged, options = {}) {
      const { host, cls } = this._host(options.connectionName);
      if (!host.isTransactionActive()) {
        throw this.service._error('ERR_CONFIG', 'EventOutbox.publish() needs an active @Transactional() transaction (TransactionHost.isTransactionActive() is false)');
      }
      const outbox = require('../outbox/index.js');
      await outbox.fromTransaction(host.tx, options.sql).execute(staged.statement);
      const list = cls.isActive() ? cls.get(STAGED_KEY) : undefined;
      if (Array.isArray(list)) list.push(staged);
    }

    _host(connectionName) {
      let tx;
      let clsLib;
      try {
        tx = require('@nestjs-cls/transactional');
        clsLib = require('nestjs-cls');
      } catch (err) {
        throw this.service._error('ERR_CONFIG', `EventOutbox.publish()/withTransaction() need @nestjs-cls/transactional and nestjs-cls installed: ${err.message}`);
      }
      return { host: tx.TransactionHost.getInstance(connectionName), cls: clsLib.ClsServiceManager.getClsService() };
    }

    _connected() {
      const p = this.service._publisher;
      if (!p || this.service._state !== 'ready') {
        throw this.service._error('ERR_CLOSED', 'EventPublisherService is not connected yet (stage() is synchronous: call it after the module initialised)');
      }
      return p;
    }
  }
  Injectable()(EventOutbox);
  Inject(EventPublisherService)(EventOutbox, undefined, 0);
  Inject(EventPublisherService)(EventPublisherHealthIndicator, undefined, 0);
  Optional()(EventPublisherService, undefined, 0);
  Inject(EVENT_PUBLISHER_OPTIONS)(EventPublisherService, undefined, 0);

  // forRoot / forRootAsync ({ useFactory | useClass | useExisting }) and the isGlobal extra, made by
  // Nest's own ConfigurableModuleBuilder; the options stay under EVENT_PUBLISHER_OPTIONS.
  const { ConfigurableModuleClass } = new ConfigurableModuleBuilder({ optionsInjectionToken: EVENT_PUBLISHER_OPTIONS })
    .setClassMethodName('forRoot')
    .setFactoryMethodName('createEventPublisherOptions')
    .setExtras({ isGlobal: false }, (definition, extras) => ({
      ...definition,
      global: Boolean(extras.isGlobal),
      providers: [...(definition.providers || []), EventPublisherService, EventPublisherHealthIndicator, EventOutbox],
      exports: [EventPublisherService, EventPublisherHealthIndicator, EventOutbox],
    }))
    .build();

  class EventPublisherModule extends ConfigurableModuleClass {
    /** Registers `EventPublisherService` with the given options (each defaults from the environment). */
    static forRoot(options = {}) {
      return super.forRoot(options || {});
    }

    /** Registers `EventPublisherService` with options from `useFactory`, `useClass` or `useExisting`. */
    static forRootAsync(asyncOptions) {
      const o = asyncOptions || {};
      if (typeof o.useFactory !== 'function' && !o.useClass && !o.useExisting) {
        throw new TypeError('EventPublisherModule.forRootAsync needs a useFactory function, a useClass or a useExisting');
      }
      return super.forRootAsync(o);
    }

    /**
     * For unit tests: `EventPublisherService` backed by the in-memory publisher of
     * `@hyvve/event-publisher/testing` (no Redis, no Postgres), which is also provided under
     * its class `TestPublisher` so a spec can read `published()`.
     */
    static forTest(options = {}) {
      const { isGlobal, ...publisherOptions } = options || {};
      for (const key of NEST_ONLY_KEYS) delete publisherOptions[key];
      return {
        module: EventPublisherModule,
        global: Boolean(isGlobal),
        providers: [
          { provide: EVENT_PUBLISHER_OPTIONS, useValue: publisherOptions },
          { provide: TestPublisher, useFactory: () => createTestPublisher(publisherOptions) },
          {
            provide: EventPublisherService,
            useFactory: (publisher) => EventPublisherService._backedBy(publisher, publisherOptions),
            inject: [TestPublisher],
          },
          EventPublisherHealthIndicator,
          EventOutbox,
        ],
        exports: [EventPublisherService, TestPublisher, EventPublisherHealthIndicator, EventOutbox],
      };
    }
  }
  Module({})(EventPublisherModule);

  return { EventPublisherModule, EventPublisherService, EventPublisherHealthIndicator, EventOutbox, EVENT_PUBLISHER_OPTIONS };
}

module.exports = { createNestBindings, EVENT_PUBLISHER_OPTIONS };
