'use strict';
// Builds the NestJS classes of @hyvve/event-publisher/nest from a given `@nestjs/common`.
// index.js passes the CommonJS `@nestjs/common` (Nest 10/11, or 12 where require(esm) works);
// index.mjs passes the ES module one only when Nest is ESM-only and cannot be required (Nest 12 on
// Node 20). Plain JS, no decorator syntax: the decorators are applied as functions below.

/** DI token of the options object (a registered symbol, so every copy of this file agrees on it). */
const EVENT_PUBLISHER_OPTIONS = Symbol.for('@hyvve/event-publisher/nest:options');

/** Options of this module that are not options of `EventPublisher.connect`. */
const NEST_ONLY_KEYS = ['isGlobal', 'startDegraded', 'reconnectIntervalMs', 'maxReconnectIntervalMs'];

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
      providers: [...(definition.providers || []), EventPublisherService, EventPublisherHealthIndicator],
      exports: [EventPublisherService, EventPublisherHealthIndicator],
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
        ],
        exports: [EventPublisherService, TestPublisher, EventPublisherHealthIndicator],
      };
    }
  }
  Module({})(EventPublisherModule);

  return { EventPublisherModule, EventPublisherService, EventPublisherHealthIndicator, EVENT_PUBLISHER_OPTIONS };
}

module.exports = { createNestBindings, EVENT_PUBLISHER_OPTIONS };
