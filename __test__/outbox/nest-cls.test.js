'use strict';
// Issue 22, NestJS: EventOutbox with @nestjs-cls/transactional (TransactionHost, @Transactional(),
// the Prisma adapter on a Prisma 7 client with adapter-pg), against the real stores. A
// @Transactional() method's events commit with its row (appended by the relay: the plugin has no
// after-commit hook) and vanish when it throws; withTransaction() dispatches at the commit;
// publish() outside a transaction is refused.

require('reflect-metadata');
const { Test } = require('@nestjs/testing');
const { Module, Injectable, Inject } = require('@nestjs/common');
const { ClsModule } = require('nestjs-cls');
const { ClsPluginTransactional, Transactional, TransactionHost } = require('@nestjs-cls/transactional');
const { TransactionalAdapterPrisma } = require('@nestjs-cls/transactional-adapter-prisma');
const { PrismaPg } = require('@prisma/adapter-pg');
const Redis = require('ioredis');
const { Client } = require('pg');
const { EventPublisherModule, EventOutbox } = require('@hyvve/event-publisher/nest');
const { DATABASE_URL, REDIS_URL, uid, ensureDatabase, readStream, waitFor } = require('../support/stores');
const { LEDGER_SQL, prismaClientClass } = require('../support/orms');

jest.setTimeout(60_000);

const PRISMA = Symbol('PRISMA');
const stream = uid('outbox:nest-cls');
let app;
let redis;
let db;
let service;

class Decisions {
  constructor(txHost, outbox) {
    this.txHost = txHost;
    this.outbox = outbox;
  }

  async approve(ledgerId, fail) {
    await this.txHost.tx.outboxLedger.create({ data: { id: ledgerId, note: 'nest-cls' } });
    const eventId = await this.outbox.publish('pm.task.phase_changed', { taskId: ledgerId }, { tenantId: 't', userId: 'u', source: 'approvals' });
    if (fail) throw Object.assign(new Error('rolled back'), { eventId });
    return eventId;
  }
}
const desc = Object.getOwnPropertyDescriptor(Decisions.prototype, 'approve');
Object.defineProperty(Decisions.prototype, 'approve', Transactional()(Decisions.prototype, 'approve', desc) || desc);
Injectable()(Decisions);
Inject(TransactionHost)(Decisions, undefined, 0);
Inject(EventOutbox)(Decisions, undefined, 1);

beforeAll(async () => {
  await ensureDatabase();
  db = new Client({ connectionString: DATABASE_URL });
  await db.connect();
  await db.query(LEDGER_SQL);
  redis = new Redis(REDIS_URL);
  const PrismaClient = prismaClientClass();
  class PrismaModule {}
  Module({
    providers: [{ provide: PRISMA, useFactory: () => new PrismaClient({ adapter: new PrismaPg({ connectionString: DATABASE_URL }) }) }],
    exports: [PRISMA],
  })(PrismaModule);
  const moduleRef = await Test.createTestingModule({
    imports: [
      PrismaModule,
      EventPublisherModule.forRoot({ redisUrl: REDIS_URL, databaseUrl: DATABASE_URL, stream, relayIntervalMs: 100, relayGraceMs: 200, logLevel: 'off' }),
      ClsModule.forRoot({
        global: true,
        plugins: [new ClsPluginTransactional({ imports: [PrismaModule], adapter: new TransactionalAdapterPrisma({ prismaInjectionToken: PRISMA }) })],
      }),
    ],
    providers: [Decisions],
  }).compile();
  app = moduleRef.createNestApplication();
  await app.init();
  service = app.get(Decisions);
});

afterAll(async () => {
  if (app) {
    await app.get(PRISMA).$disconnect();
    await app.close();
  }
  if (redis) redis.disconnect();
  if (db) await db.end();
});

const entryOf = async (eventId) => (await readStream(redis, stream)).filter((e) => e.event.id === eventId);
const rowOf = async (eventId) => (await db.query('SELECT stream_id FROM event_metadata WHERE event_id = $1', [eventId])).rows;
const ledger = async (id) => (await db.query('SELECT 1 FROM outbox_ledger WHERE id = $1', [id])).rowCount;

test('a @Transactional() method: the event commits with the row and is appended (by the relay)', async () => {
  const ledgerId = uid('ledger');
  const eventId = await service.approve(ledgerId, false);
  expect(await ledger(ledgerId)).toBe(1);
  await waitFor(async () => (await entryOf(eventId)).length === 1, 'the entry', 10_000);
  const [entry] = await entryOf(eventId);
  expect(await rowOf(eventId)).toEqual([{ stream_id: entry.id }]);
  expect(entry.event.source).toBe('approvals');
});

test('a @Transactional() method that throws: no ledger row, no event row, no entry', async () => {
  const ledgerId = uid('ledger');
  const err = await service.approve(ledgerId, true).catch((e) => e);
  expect(err.message).toBe('rolled back');
  await new Promise((r) => setTimeout(r, 800)); // grace + several relay passes
  expect(await ledger(ledgerId)).toBe(0);
  expect(await rowOf(err.eventId)).toEqual([]);
  expect(await entryOf(err.eventId)).toEqual([]);
});

test('withTransaction(): dispatched at the commit, before it resolves', async () => {
  const outbox = app.get(EventOutbox);
  const ledgerId = uid('ledger');
  const eventId = await outbox.withTransaction(() => service.approve(ledgerId, false));
  const [entry] = await entryOf(eventId);
  expect(entry).toBeDefined();
  expect(await rowOf(eventId)).toEqual([{ stream_id: entry.id }]);
  expect(app.get(EventOutbox)).toBe(outbox);
});

test('publish() outside a transaction is refused with ERR_CONFIG and writes nothing', async () => {
  const outbox = app.get(EventOutbox);
  await expect(outbox.publish('pm.task.phase_changed', { taskId: 'x' }, { tenantId: 't', userId: 'u' })).rejects.toMatchObject({ code: 'ERR_CONFIG' });
});
