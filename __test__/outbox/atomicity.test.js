'use strict';
// Issue 22, the atomicity matrix: for each way a caller runs a transaction (Prisma 7 with
// adapter-pg, pg, TypeORM, Kysely, Drizzle), straight to Postgres and through PgBouncer 1.18 in
// transaction mode (pool 2, the publisher through it too): staged events commit with the business
// row, and vanish with it on every kind of rollback: a thrown callback, the ORM's explicit
// rollback, a savepoint rolled back, Prisma's interactive-transaction timeout. "Nothing" is
// checked in the stream, event_metadata and event_outbox after dispatch() was called anyway and
// after the relay has had its turns.

const Redis = require('ioredis');
const { Client } = require('pg');
const { EventPublisher } = require('../..');
const { DATABASE_URL, REDIS_URL, uid, ensureDatabase, readStream, waitFor } = require('../support/stores');
const { startPgBouncer, pgbouncerMissing } = require('../support/pgbouncer');
const { DRIVERS, LEDGER_SQL } = require('../support/orms');

jest.setTimeout(60_000);

const DB = new URL(DATABASE_URL).pathname.slice(1);
const RELAY = { relayIntervalMs: 100, relayGraceMs: 200 };
let bouncer;
let redis;
let db;

beforeAll(async () => {
  const missing = pgbouncerMissing();
  if (missing) throw new Error(missing);
  await ensureDatabase();
  db = new Client({ connectionString: DATABASE_URL });
  await db.connect();
  await db.query(LEDGER_SQL);
  bouncer = await startPgBouncer({ serverPort: Number(new URL(DATABASE_URL).port || 5432), mode: 'transaction', poolSize: 2 });
  redis = new Redis(REDIS_URL);
});

afterAll(async () => {
  if (bouncer) await bouncer.destroy();
  if (redis) redis.disconnect();
  if (db) await db.end();
});

const ctx = (extra) => ({ tenantId: 'ws-outbox', userId: 'u-1', source: 'approvals', ...extra });
const approved = (id) => ({ approvalId: id, type: 'content', title: 'Launch post', decision: 'approved', decidedById: 'u-1' });

async function stateOf(stream, eventIds, ledgerId) {
  const [rows, outbox, ledger, entries] = await Promise.all([
    db.query('SELECT event_id, stream_id, status FROM event_metadata WHERE event_id = ANY($1)', [eventIds]),
    db.query('SELECT event_id FROM event_outbox WHERE event_id = ANY($1)', [eventIds]),
    db.query('SELECT id FROM outbox_ledger WHERE id = $1', [ledgerId]),
    readStream(redis, stream),
  ]);
  const byId = new Map(rows.rows.map((r) => [r.event_id, r]));
  return {
    rows: byId,
    outbox: outbox.rowCount,
    ledger: ledger.rowCount,
    entries: entries.filter((e) => eventIds.includes(e.event.id)),
    all: entries,
  };
}

/** Waits out the relay's grace and a few of its passes, so a wrongly kept row would be delivered. */
const relayTurns = () => new Promise((r) => setTimeout(r, RELAY.relayGraceMs + 4 * RELAY.relayIntervalMs));

async function expectNothing(stream, ids, ledgerId) {
  await relayTurns();
  const s = await stateOf(stream, ids, ledgerId);
  expect({ ledger: s.ledger, rows: s.rows.size, outbox: s.outbox, entries: s.entries.length }).toEqual({ ledger: 0, rows: 0, outbox: 0, entries: 0 });
}

describe.each([
  ['direct', () => DATABASE_URL],
  ['through PgBouncer 1.18 (transaction mode, pool 2)', () => bouncer.url(DB)],
])('%s', (_how, url) => {
  describe.each(Object.keys(DRIVERS))('%s', (name) => {
    let driver;
    let publisher;
    let stream;

    beforeAll(async () => {
      driver = await DRIVERS[name](url());
      stream = uid(`outbox:${name}`);
      publisher = await EventPublisher.connect({ redisUrl: REDIS_URL, databaseUrl: url(), stream, ...RELAY });
    });

    afterAll(async () => {
      if (publisher) await publisher.close();
      if (driver) await driver.close();
    });

    test('commit: exactly one entry per event, in order and contiguous, each row holding its entry ID, outbox empty', async () => {
      const ledgerId = uid('ledger');
      const staged = await driver.run(async (exec, insert) => {
        await insert(ledgerId);
        const s = publisher.stageBatch([
          { type: 'approval.item.approved', data: approved('a1'), context: ctx() },
          { type: 'approval.item.approved', data: approved('a2'), context: ctx() },
        ]);
        await exec.execute(s.statement);
        return s;
      });
      expect(staged.eventIds).toHaveLength(2);
      const result = await publisher.dispatch(staged);
      expect(result).toEqual({ appended: 2, deferred: 0 });
      const s = await stateOf(stream, staged.eventIds, ledgerId);
      expect(s.ledger).toBe(1);
      expect(s.entries.map((e) => e.event.id)).toEqual(staged.eventIds);
      expect(s.all.slice(-2).map((e) => e.event.id)).toEqual(staged.eventIds);
      for (const e of s.entries) expect(s.rows.get(e.event.id)).toEqual({ event_id: e.event.id, stream_id: e.id, status: 'PENDING' });
      expect(s.outbox).toBe(0);
      // A second dispatch of the same staged events appends nothing.
      expect(await publisher.dispatch(staged)).toEqual({ appended: 0, deferred: 0 });
      await relayTurns();
      expect((await stateOf(stream, staged.eventIds, ledgerId)).entries).toHaveLength(2);
    });

    test('commit without dispatch(): the relay appends it', async () => {
      const ledgerId = uid('ledger');
      const staged = await driver.run(async (exec, insert) => {
        await insert(ledgerId);
        const s = publisher.stage('approval.item.approved', approved('r1'), ctx());
        await exec.execute(s.statement);
        return s;
      });
      await waitFor(async () => (await stateOf(stream, staged.eventIds, ledgerId)).entries.length === 1, 'the relay', 10_000);
      const s = await stateOf(stream, staged.eventIds, ledgerId);
      expect(s.rows.get(staged.eventIds[0]).stream_id).toBe(s.entries[0].id);
      expect(s.outbox).toBe(0);
    });

    test('the callback throws: no row, no entry, ever', async () => {
      const ledgerId = uid('ledger');
      let staged;
      await expect(
        driver.run(async (exec, insert) => {
          await insert(ledgerId);
          staged = publisher.stage('approval.item.approved', approved('t1'), ctx());
          await exec.execute(staged.statement);
          throw new Error('business rule failed');
        }),
      ).rejects.toThrow('business rule failed');
      expect(await publisher.dispatch(staged)).toEqual({ appended: 0, deferred: 0 });
      await expectNothing(stream, staged.eventIds, ledgerId);
    });

    test('explicit rollback: no row, no entry, ever', async () => {
      const ledgerId = uid('ledger');
      let staged;
      await driver.rollback(async (exec, insert) => {
        await insert(ledgerId);
        staged = publisher.stage('approval.item.approved', approved('x1'), ctx());
        await exec.execute(staged.statement);
      });
      expect(await publisher.dispatch(staged)).toEqual({ appended: 0, deferred: 0 });
      await expectNothing(stream, staged.eventIds, ledgerId);
    });

    test('savepoint rolled back: its events vanish, the outer transaction\'s are appended', async () => {
      const ledgerId = uid('ledger');
      let inner;
      const outer = await driver.run(async (exec, insert, tx) => {
        await insert(ledgerId);
        const s = publisher.stage('approval.item.approved', approved('outer'), ctx());
        await exec.execute(s.statement);
        await driver.savepoint(tx, async (spExec, spInsert) => {
          await spInsert(uid('ledger-sp'));
          inner = publisher.stage('approval.item.approved', approved('inner'), ctx());
          await spExec.execute(inner.statement);
        });
        return s;
      });
      expect(await publisher.dispatch([outer, inner])).toEqual({ appended: 1, deferred: 0 });
      const s = await stateOf(stream, [...outer.eventIds, ...inner.eventIds], ledgerId);
      expect(s.entries.map((e) => e.event.id)).toEqual(outer.eventIds);
      expect([...s.rows.keys()]).toEqual(outer.eventIds);
      await expectNothing(stream, inner.eventIds, 'none');
    });

    if (name === 'prisma7') {
      test('Prisma interactive-transaction timeout: no row, no entry, ever', async () => {
        const ledgerId = uid('ledger');
        let staged;
        await expect(
          driver.run(
            async (exec, insert) => {
              await insert(ledgerId);
              staged = publisher.stage('approval.item.approved', approved('slow'), ctx());
              await exec.execute(staged.statement);
              await new Promise((r) => setTimeout(r, 1200));
            },
            { timeout: 500 },
          ),
        ).rejects.toThrow();
        expect(await publisher.dispatch(staged)).toEqual({ appended: 0, deferred: 0 });
        await expectNothing(stream, staged.eventIds, ledgerId);
      });
    }
  });
});
