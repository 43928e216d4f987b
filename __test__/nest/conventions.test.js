'use strict';
// Nest's own conventions: forRootAsync with useClass / useExisting (ConfigurableModuleBuilder), and
// EventPublisherHealthIndicator behind a @nestjs/terminus /health route of a real HTTP app, up
// with the real stores and down (503) when Redis is unreachable.
const { Test } = require('@nestjs/testing');
const { Injectable, Module, Controller, Get } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { TerminusModule, HealthCheckService, HealthCheck } = require('@nestjs/terminus');
const { Redis } = require('ioredis');
const { Pool } = require('pg');
const { EventPublisher } = require('@hyvve/event-publisher');
const { EventPublisherModule, EventPublisherService, EventPublisherHealthIndicator, EVENT_PUBLISHER_OPTIONS } = require('@hyvve/event-publisher/nest');
const h = require('./helpers');

jest.setTimeout(30_000);

const STREAM = h.uid('hyvve:test:nest-conventions');
const TENANT = h.uid('ws-conventions');
const DATA = { projectId: 'p-1', name: 'Alpha', slug: 'alpha' };

let redis;
let pool;
const open = [];

beforeAll(async () => {
  redis = new Redis(h.REDIS_URL);
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

const storeOptions = (extra = {}) => ({ redisUrl: h.REDIS_URL, databaseUrl: h.DATABASE_URL, stream: STREAM, logLevel: 'warn', ...extra });

async function boot(metadata) {
  const moduleRef = await Test.createTestingModule(metadata).setLogger(h.captureLogger()).compile();
  await moduleRef.init();
  open.push(moduleRef);
  return moduleRef;
}

async function expectPublishes(service) {
  const before = await h.lastId(redis, STREAM);
  const id = await service.publish('pm.project.created', DATA, { tenantId: TENANT, userId: 'u', source: 'conventions' });
  const entries = await h.entriesAfter(redis, STREAM, before);
  expect(entries).toHaveLength(1);
  const event = h.expectEnvelope(entries[0], { type: 'pm.project.created', source: 'conventions', tenantId: TENANT, userId: 'u', data: DATA });
  expect(event.id).toBe(id);
  await h.expectMetadataRow(pool, event, entries[0][0]);
}

/** A config service, as an app's ConfigModule would provide it. */
class AppConfig {
  get(key) {
    return { REDIS: h.REDIS_URL, DB: h.DATABASE_URL }[key];
  }
}
Injectable()(AppConfig);
class AppConfigModule {}
Module({ providers: [AppConfig], exports: [AppConfig] })(AppConfigModule);

/** An options factory class (useClass / useExisting), itself injected with AppConfig. */
class PublisherOptionsFactory {
  constructor(config) {
    this.config = config;
  }

  createEventPublisherOptions() {
    return storeOptions({ redisUrl: this.config.get('REDIS'), databaseUrl: this.config.get('DB') });
  }
}
Injectable()(PublisherOptionsFactory);
Reflect.defineMetadata('design:paramtypes', [AppConfig], PublisherOptionsFactory);

describe('forRootAsync through ConfigurableModuleBuilder', () => {
  test('useClass: the module instantiates the factory class (with its own dependencies) and publishes', async () => {
    const dynamic = EventPublisherModule.forRootAsync({ imports: [AppConfigModule], useClass: PublisherOptionsFactory, isGlobal: true });
    expect(dynamic.global).toBe(true);
    const moduleRef = await boot({ imports: [dynamic] });
    expect(moduleRef.get(EVENT_PUBLISHER_OPTIONS)).toEqual(storeOptions());
    await expectPublishes(moduleRef.get(EventPublisherService));
  });

  test('useExisting: reuses a factory another module exports', async () => {
    class OptionsModule {}
    Module({ imports: [AppConfigModule], providers: [PublisherOptionsFactory], exports: [PublisherOptionsFactory] })(OptionsModule);
    const moduleRef = await boot({ imports: [EventPublisherModule.forRootAsync({ imports: [OptionsModule], useExisting: PublisherOptionsFactory })] });
    await expectPublishes(moduleRef.get(EventPublisherService));
  });

  test('forRootAsync with none of useFactory/useClass/useExisting is refused', () => {
    expect(() => EventPublisherModule.forRootAsync({ imports: [] })).toThrow(/useFactory.*useClass.*useExisting/);
  });
});

describe('EventPublisherHealthIndicator with @nestjs/terminus', () => {
  class HealthController {
    constructor(health, publisher) {
      this.health = health;
      this.publisher = publisher;
    }

    check() {
      return this.health.check([() => this.publisher.isHealthy('eventPublisher')]);
    }
  }
  Controller('health')(HealthController);
  Reflect.defineMetadata('design:paramtypes', [HealthCheckService, EventPublisherHealthIndicator], HealthController);
  const descriptor = Object.getOwnPropertyDescriptor(HealthController.prototype, 'check');
  HealthCheck()(HealthController.prototype, 'check', descriptor);
  Get()(HealthController.prototype, 'check', descriptor);

  async function getHealth(options) {
    class AppModule {}
    Module({ imports: [TerminusModule, EventPublisherModule.forRoot(options)], controllers: [HealthController] })(AppModule);
    const app = await NestFactory.create(AppModule, { logger: false });
    open.push(app);
    await app.listen(0, '127.0.0.1');
    const res = await fetch(`${await app.getUrl()}/health`.replace('[::1]', '127.0.0.1'));
    return { status: res.status, body: await res.json() };
  }

  test('GET /health is 200 with Redis, Postgres and the circuit up', async () => {
    const { status, body } = await getHealth(storeOptions());
    expect(status).toBe(200);
    expect(body).toMatchObject({
      status: 'ok',
      details: { eventPublisher: { status: 'up', redis: true, database: true, circuit: 'closed', state: 'ready' } },
    });
  });

  test('GET /health is 503 with the publisher down when Redis is unreachable (degraded start)', async () => {
    const port = await h.freePort();
    const { status, body } = await getHealth(storeOptions({ redisUrl: `redis://127.0.0.1:${port}`, startDegraded: true, timeoutMs: 500 }));
    expect(status).toBe(503);
    expect(body).toMatchObject({ status: 'error', error: { eventPublisher: { status: 'down', redis: false, state: 'degraded' } } });
  });

  test('with forTest() the indicator reports the in-memory publisher up', async () => {
    const moduleRef = await boot({ imports: [EventPublisherModule.forTest()] });
    expect(await moduleRef.get(EventPublisherHealthIndicator).isHealthy()).toEqual({
      eventPublisher: { status: 'up', redis: true, database: true, circuit: 'closed', inFlightBytes: 0, state: 'ready', outbox: { pending: 0, oldestAgeMs: 0 } },
    });
  });
});
