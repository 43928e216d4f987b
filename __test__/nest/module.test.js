'use strict';
// EventPublisherModule / EventPublisherService as a NestJS user meets them: registration styles,
// environment defaults, a failing bootstrap, degraded start and reconnect, close, and the entries.
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { Test } = require('@nestjs/testing');
const { Injectable, Module } = require('@nestjs/common');
const { Redis } = require('ioredis');
const { Pool } = require('pg');
const { EventPublisher, EventPublisherError } = require('@hyvve/event-publisher');
const { EventPublisherModule, EventPublisherService, EventPublisherHealthIndicator, EventOutbox, EVENT_PUBLISHER_OPTIONS } = require('@hyvve/event-publisher/nest');
const h = require('./helpers');

jest.setTimeout(30_000);

const STREAM = h.uid('hyvve:test:nest-module');
const TENANT = h.uid('ws-module');
const CONTEXT = { tenantId: TENANT, userId: 'user-1', source: 'module-test' };
const DATA = { projectId: 'p-1', name: 'Alpha', slug: 'alpha' };

let redis;
let pool;
const open = [];

/** Compiles and initialises a testing module; it is closed after the test. */
async function boot(metadata, logger = h.captureLogger()) {
  const moduleRef = await Test.createTestingModule(metadata).setLogger(logger).compile();
  // A module whose init failed cannot be closed (Nest's close() awaits the failed init).
  await moduleRef.init();
  open.push(moduleRef);
  return moduleRef;
}

/** Publishes one event through `service` and checks its entry (in `streams`, default the shared Redis) and row. */
async function expectPublishes(service, streams = redis) {
  const before = await h.lastId(streams, STREAM);
  const id = await service.publish('pm.project.created', DATA, CONTEXT);
  const entries = await h.entriesAfter(streams, STREAM, before);
  expect(entries).toHaveLength(1);
  const event = h.expectEnvelope(entries[0], { type: 'pm.project.created', source: 'module-test', tenantId: TENANT, userId: 'user-1', data: DATA });
  expect(event.id).toBe(id);
  await h.expectMetadataRow(pool, event, entries[0][0]);
}

beforeAll(async () => {
  redis = new Redis(h.REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  pool = new Pool({ connectionString: h.DATABASE_URL, max: 2 });
  await EventPublisher.migrate({ databaseUrl: h.DATABASE_URL });
});

afterEach(async () => {
  while (open.length) await open.pop().close();
});

afterAll(async () => {
  await pool.query('DELETE FROM event_metadata WHERE tenant_id = $1', [TENANT]);
  await pool.end();
  await redis.del(STREAM);
  redis.disconnect();
});

const storeOptions = () => ({ redisUrl: h.REDIS_URL, databaseUrl: h.DATABASE_URL, stream: STREAM });

describe('registration', () => {
  test('forRoot({ isGlobal }) lets a feature module inject EventPublisherService without importing it', async () => {
    class Feature {
      constructor(events) {
        this.events = events;
      }
    }
    Injectable()(Feature);
    Reflect.defineMetadata('design:paramtypes', [EventPublisherService], Feature);
    class FeatureModule {}
    Module({ providers: [Feature], exports: [Feature] })(FeatureModule);

    const moduleRef = await boot({ imports: [EventPublisherModule.forRoot({ ...storeOptions(), isGlobal: true }), FeatureModule] });
    const feature = moduleRef.get(Feature);
    expect(feature.events).toBeInstanceOf(EventPublisherService);
    expect(feature.events).toBe(moduleRef.get(EventPublisherService));
    await expectPublishes(feature.events);
  });

  test('forRootAsync({ imports, inject, useFactory, isGlobal }) takes its options from an injected provider', async () => {
    class ConfigService {
      get(key) {
        return { REDIS: h.REDIS_URL, DB: h.DATABASE_URL, STREAM }[key];
      }
    }
    Injectable()(ConfigService);
    class ConfigModule {}
    Module({ providers: [ConfigService], exports: [ConfigService] })(ConfigModule);
    const useFactory = jest.fn(async (config) => ({ redisUrl: config.get('REDIS'), databaseUrl: config.get('DB'), stream: config.get('STREAM') }));

    const dynamic = EventPublisherModule.forRootAsync({ imports: [ConfigModule], inject: [ConfigService], useFactory, isGlobal: true });
    expect(dynamic.global).toBe(true);
    const moduleRef = await boot({ imports: [dynamic] });
    expect(useFactory).toHaveBeenCalledTimes(1);
    expect(useFactory.mock.calls[0][0]).toBeInstanceOf(ConfigService);
    expect(moduleRef.get(EVENT_PUBLISHER_OPTIONS)).toEqual({ redisUrl: h.REDIS_URL, databaseUrl: h.DATABASE_URL, stream: STREAM });
    await expectPublishes(moduleRef.get(EventPublisherService));
  });

  test('an EventsModule that imports forRootAsync and re-exports EventPublisherModule gives its importers the service (MIGRATING.md option B)', async () => {
    class EventsModule {}
    Module({
      imports: [EventPublisherModule.forRootAsync({ useFactory: () => storeOptions() })],
      exports: [EventPublisherModule],
    })(EventsModule);
    class Approvals {
      constructor(events) {
        this.events = events;
      }
    }
    Injectable()(Approvals);
    Reflect.defineMetadata('design:paramtypes', [EventPublisherService], Approvals);
    class ApprovalsModule {}
    Module({ imports: [EventsModule], providers: [Approvals] })(ApprovalsModule);

    const moduleRef = await boot({ imports: [ApprovalsModule] });
    await expectPublishes(moduleRef.get(Approvals).events);
  });

  test('forRoot without isGlobal is not global; forRootAsync needs a useFactory', () => {
    expect(EventPublisherModule.forRoot().global).toBe(false);
    expect(EventPublisherModule.forRoot().exports).toEqual([EventPublisherService, EventPublisherHealthIndicator, EventOutbox]);
    expect(() => EventPublisherModule.forRootAsync({})).toThrow('useFactory');
  });

  // In a child process: the publisher reads the process environment, which jest sandboxes.
  describe('with no options it reads the platform env (REDIS_HOST/REDIS_PORT, DATABASE_URL with Prisma parameters)', () => {
    function bootWithEnv(mode, redisPort) {
      const env = { ...process.env, REDIS_HOST: '127.0.0.1', REDIS_PORT: String(redisPort), DATABASE_URL: `${h.DATABASE_URL}?schema=public&connection_limit=2` };
      delete env.REDIS_URL;
      delete env.REDIS_PASSWORD;
      const stdout = execFileSync(process.execPath, [path.join(__dirname, 'fixtures', 'env-boot.js'), mode], {
        cwd: h.ROOT,
        env,
        encoding: 'utf8',
        timeout: 20_000,
      });
      return JSON.parse(stdout);
    }

    // Health only: with no options the stream is the platform's real one.
    test('listed directly in providers, as the platform does today', () => {
      expect(bootWithEnv('providers', 6379)).toEqual({ health: { redis: true, database: true, circuit: 'closed', inFlightBytes: 0, state: 'ready', outbox: { pending: 0, oldestAgeMs: 0 } } });
    });

    test('forRoot(): a wrong REDIS_PORT fails the bootstrap with ERR_REDIS', async () => {
      const port = await h.freePort();
      const { error } = bootWithEnv('forRoot', port);
      expect(error).toMatchObject({ name: 'EventPublisherError', code: 'ERR_REDIS' });
      expect(error.message).toContain(`127.0.0.1:${port}`);
    });
  });
});

describe('bootstrap', () => {
  test('an unreachable Redis fails the bootstrap with a clear EventPublisherError', async () => {
    const port = await h.freePort();
    const err = await boot({ imports: [EventPublisherModule.forRoot({ ...storeOptions(), redisUrl: `redis://127.0.0.1:${port}` })] }).catch((e) => e);
    expect(err).toBeInstanceOf(EventPublisherError);
    expect(err.code).toBe('ERR_REDIS');
    expect(err.message).toMatch(/^EventPublisherService could not connect: /);
    expect(err.message).toContain(String(port));
  });

  test('an unreachable Postgres fails the bootstrap with ERR_DATABASE', async () => {
    const port = await h.freePort();
    const err = await boot({
      imports: [EventPublisherModule.forRoot({ ...storeOptions(), databaseUrl: `postgresql://root@127.0.0.1:${port}/test`, timeoutMs: 1500 })],
    }).catch((e) => e);
    expect(err).toBeInstanceOf(EventPublisherError);
    expect(err.code).toBe('ERR_DATABASE');
    expect(err.message).toMatch(/^EventPublisherService could not connect: /);
  });

  test('startDegraded: boots, rejects publishes with a clear error, then recovers once Redis comes up', async () => {
    const port = await h.freePort();
    const logger = h.captureLogger();
    const moduleRef = await boot(
      {
        imports: [
          EventPublisherModule.forRoot({ ...storeOptions(), redisUrl: `redis://127.0.0.1:${port}`, startDegraded: true, reconnectIntervalMs: 100 }),
        ],
      },
      logger,
    );
    const service = moduleRef.get(EventPublisherService);
    expect(await service.health()).toMatchObject({ redis: false, database: false, state: 'degraded' });

    const err = await service.publish('pm.project.created', DATA, CONTEXT).catch((e) => e);
    expect(err).toBeInstanceOf(EventPublisherError);
    expect(err.code).toBe('ERR_REDIS');
    expect(err.message).toMatch(/^EventPublisherService is degraded \(not connected; reconnecting in the background\): /);
    const [failure] = logger.records('EventPublisherService').filter(([method]) => method === 'error');
    expect(failure[1]).toMatchObject({ msg: expect.stringContaining('started degraded'), code: 'ERR_REDIS' });

    const lateRedis = await h.startRedis([], port);
    const lateClient = new Redis(lateRedis.url);
    try {
      await h.waitFor(async () => (await service.health()).state === 'ready', 'the background reconnect');
      await expectPublishes(service, lateClient);
      expect(logger.records('EventPublisherService').some(([method, message]) => method === 'log' && /reconnected/.test(message.msg))).toBe(true);
    } finally {
      await moduleRef.close();
      lateClient.disconnect();
      await lateRedis.stop();
    }
  });

  test('startDegraded does not hide a configuration error', async () => {
    const err = await boot({ imports: [EventPublisherModule.forRoot({ ...storeOptions(), redisUrl: 'http://nope', startDegraded: true })] }).catch((e) => e);
    expect(err).toBeInstanceOf(EventPublisherError);
    expect(err.code).toBe('ERR_CONFIG');
  });
});

describe('failures', () => {
  test("a failed publish rejects with the error's code and is logged as an error through Nest's Logger", async () => {
    const wrongType = h.uid('hyvve:test:nest-wrongtype');
    await redis.set(wrongType, 'not a stream');
    const logger = h.captureLogger();
    try {
      const moduleRef = await boot({ imports: [EventPublisherModule.forRoot({ ...storeOptions(), stream: wrongType })] }, logger);
      const err = await moduleRef.get(EventPublisherService).publish('pm.project.created', DATA, CONTEXT).catch((e) => e);
      expect(err).toBeInstanceOf(EventPublisherError);
      expect(err.code).toBe('ERR_REDIS');
      const errors = logger.records('EventPublisherService').filter(([method]) => method === 'error');
      expect(errors).toHaveLength(1);
      expect(errors[0][1]).toMatchObject({ type: 'pm.project.created', tenantId: TENANT, code: 'ERR_REDIS', error: expect.stringContaining('WRONGTYPE') });
      expect(errors[0][1].eventId).toMatch(h.CUID2);
      // Nothing half-written: no row for the event.
      const { rows } = await pool.query('SELECT 1 FROM event_metadata WHERE event_id = $1', [errors[0][1].eventId]);
      expect(rows).toEqual([]);
    } finally {
      await redis.del(wrongType);
    }
  });
});

describe('shutdown', () => {
  test('closing the app closes the publisher: later publishes reject with ERR_CLOSED', async () => {
    const moduleRef = await boot({ imports: [EventPublisherModule.forRoot(storeOptions())] });
    const service = moduleRef.get(EventPublisherService);
    await expectPublishes(service);
    await moduleRef.close();
    const err = await service.publish('pm.project.created', DATA, CONTEXT).catch((e) => e);
    expect(err).toBeInstanceOf(EventPublisherError);
    expect(err.code).toBe('ERR_CLOSED');
    expect(await service.health()).toMatchObject({ state: 'closed' });
  });
});

describe('entry points', () => {
  const run = (file) =>
    JSON.parse(execFileSync(process.execPath, [path.join(__dirname, 'fixtures', file)], { cwd: h.ROOT, encoding: 'utf8', timeout: 20_000 }));

  test('requiring the main entry does not need @nestjs/*; /nest says what is missing', () => {
    const out = run('no-nest.js');
    expect(out.main).toEqual(['EventPublisher', 'EventPublisherError', 'EventTypes']);
    expect(out.nest.code).toBe('MODULE_NOT_FOUND');
    expect(out.nest.message).toMatch(/@hyvve\/event-publisher\/nest needs @nestjs\/common/);
  });

  test('import (ESM) and require (CJS) of /nest give the same classes in one process', () => {
    expect(run('esm-identity.mjs')).toEqual({
      esmExports: ['EVENT_PUBLISHER_OPTIONS', 'EventOutbox', 'EventPublisherHealthIndicator', 'EventPublisherModule', 'EventPublisherService'],
      sameService: true,
      sameModule: true,
      sameToken: true,
      sameError: true,
      forRootModule: true,
    });
  });
});
