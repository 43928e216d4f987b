'use strict';
// The five ways a caller runs a transaction, as the outbox tests drive them: Prisma 7 (with
// @prisma/adapter-pg), node-postgres, TypeORM, Kysely and Drizzle, each connected to `url`
// (straight to Postgres or through PgBouncer). Each driver offers the same moves on its own API:
// run(fn) commits what fn did unless fn throws; rollback(fn) ends the transaction with the ORM's
// explicit rollback; savepoint(tx, fn) runs fn in a savepoint that is rolled back. fn gets
// (executor, tx): the package's adapter for that transaction and a function insert(id) that writes
// a business (ledger) row through the ORM's own API.

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const outbox = require('../../outbox');

const ROOT = path.join(__dirname, '..', '..');
const PRISMA_OUT = path.join(ROOT, 'node_modules', '.prisma-outbox-test');

/** The Prisma 7 client of __test__/outbox/prisma/schema.prisma, generated once (offline). */
function prismaClientClass() {
  if (!fs.existsSync(path.join(PRISMA_OUT, 'index.js'))) {
    execFileSync('npx', ['prisma', 'generate', '--schema', path.join(ROOT, '__test__/outbox/prisma/schema.prisma')], {
      cwd: ROOT,
      env: { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: '/bin/false' },
      stdio: 'pipe',
    });
  }
  return require(PRISMA_OUT).PrismaClient;
}

class Rollback extends Error {}

async function prismaDriver(url) {
  const PrismaClient = prismaClientClass();
  const { PrismaPg } = require('@prisma/adapter-pg');
  const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: url }) });
  const insert = (tx) => (id) => tx.outboxLedger.create({ data: { id, note: 'prisma' } });
  return {
    name: 'prisma7',
    client: prisma,
    run: (fn, opts) => prisma.$transaction((tx) => fn(outbox.fromPrisma(tx), insert(tx), tx), opts),
    // Prisma has no explicit ROLLBACK for interactive transactions: its documented way is to throw.
    rollback: (fn) =>
      prisma
        .$transaction(async (tx) => {
          await fn(outbox.fromPrisma(tx), insert(tx), tx);
          throw new Rollback();
        })
        .catch((e) => {
          if (!(e instanceof Rollback)) throw e;
        }),
    savepoint: async (tx, fn) => {
      await tx.$executeRawUnsafe('SAVEPOINT hyvve_sp');
      await fn(outbox.fromPrisma(tx), insert(tx));
      await tx.$executeRawUnsafe('ROLLBACK TO SAVEPOINT hyvve_sp');
    },
    close: () => prisma.$disconnect(),
  };
}

async function pgDriver(url) {
  const { Pool } = require('pg');
  const pool = new Pool({ connectionString: url, max: 4 });
  const insert = (c) => (id) => c.query('INSERT INTO outbox_ledger (id, note) VALUES ($1, $2)', [id, 'pg']);
  const begin = async (fn, end) => {
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      const out = await fn(outbox.fromPg(c), insert(c), c);
      await c.query(end);
      return out;
    } catch (e) {
      await c.query('ROLLBACK').catch(() => {});
      throw e;
    } finally {
      c.release();
    }
  };
  return {
    name: 'pg',
    client: pool,
    run: (fn) => begin(fn, 'COMMIT'),
    rollback: (fn) => begin(fn, 'ROLLBACK'),
    savepoint: async (c, fn) => {
      await c.query('SAVEPOINT hyvve_sp');
      await fn(outbox.fromPg(c), insert(c));
      await c.query('ROLLBACK TO SAVEPOINT hyvve_sp');
    },
    close: () => pool.end(),
  };
}

async function typeormDriver(url) {
  const { DataSource, EntitySchema } = require('typeorm');
  const Ledger = new EntitySchema({
    name: 'OutboxLedger',
    tableName: 'outbox_ledger',
    columns: { id: { type: 'text', primary: true }, note: { type: 'text' } },
  });
  const ds = new DataSource({ type: 'postgres', url, entities: [Ledger], synchronize: false, logging: false, poolSize: 4 });
  await ds.initialize();
  const insert = (m) => (id) => m.insert(Ledger, { id, note: 'typeorm' });
  return {
    name: 'typeorm',
    client: ds,
    run: (fn) => ds.transaction((m) => fn(outbox.fromTypeORM(m), insert(m), m)),
    rollback: async (fn) => {
      const qr = ds.createQueryRunner();
      await qr.connect();
      try {
        await qr.startTransaction();
        await fn(outbox.fromTypeORM(qr.manager), insert(qr.manager), qr.manager);
        await qr.rollbackTransaction();
      } finally {
        await qr.release();
      }
    },
    // TypeORM's nested transaction is a savepoint; throwing rolls back to it.
    savepoint: async (m, fn) => {
      await m
        .transaction(async (inner) => {
          await fn(outbox.fromTypeORM(inner), insert(inner));
          throw new Rollback();
        })
        .catch((e) => {
          if (!(e instanceof Rollback)) throw e;
        });
    },
    close: () => ds.destroy(),
  };
}

async function kyselyDriver(url) {
  const { Kysely, PostgresDialect } = require('kysely');
  const { Pool } = require('pg');
  const db = new Kysely({ dialect: new PostgresDialect({ pool: new Pool({ connectionString: url, max: 4 }) }) });
  const insert = (trx) => (id) => trx.insertInto('outbox_ledger').values({ id, note: 'kysely' }).execute();
  return {
    name: 'kysely',
    client: db,
    run: (fn) => db.transaction().execute((trx) => fn(outbox.fromKysely(trx), insert(trx), trx)),
    rollback: async (fn) => {
      const trx = await db.startTransaction().execute();
      await fn(outbox.fromKysely(trx), insert(trx), trx);
      await trx.rollback().execute();
    },
    savepoint: async (trx, fn) => {
      // Kysely's savepoints need a controlled transaction; on the callback form use SQL.
      await trx.executeQuery({ sql: 'SAVEPOINT hyvve_sp', parameters: [], query: { kind: 'RawNode', sqlFragments: ['SAVEPOINT hyvve_sp'], parameters: [] }, queryId: { queryId: 'sp' } });
      await fn(outbox.fromKysely(trx), insert(trx));
      const back = 'ROLLBACK TO SAVEPOINT hyvve_sp';
      await trx.executeQuery({ sql: back, parameters: [], query: { kind: 'RawNode', sqlFragments: [back], parameters: [] }, queryId: { queryId: 'sp2' } });
    },
    close: () => db.destroy(),
  };
}

async function drizzleDriver(url) {
  const { drizzle } = require('drizzle-orm/node-postgres');
  const { sql, TransactionRollbackError } = require('drizzle-orm');
  const { pgTable, text } = require('drizzle-orm/pg-core');
  const { Pool } = require('pg');
  const pool = new Pool({ connectionString: url, max: 4 });
  const db = drizzle(pool);
  const ledger = pgTable('outbox_ledger', { id: text('id').primaryKey(), note: text('note').notNull() });
  const insert = (tx) => (id) => tx.insert(ledger).values({ id, note: 'drizzle' });
  return {
    name: 'drizzle',
    client: db,
    run: (fn) => db.transaction((tx) => fn(outbox.fromDrizzle(tx, sql), insert(tx), tx)),
    // Drizzle's explicit rollback: tx.rollback() (it throws TransactionRollbackError out of transaction()).
    rollback: (fn) =>
      db
        .transaction(async (tx) => {
          await fn(outbox.fromDrizzle(tx, sql), insert(tx), tx);
          tx.rollback();
        })
        .catch((e) => {
          if (!(e instanceof TransactionRollbackError)) throw e;
        }),
    // A nested transaction is a savepoint.
    savepoint: async (tx, fn) => {
      await tx
        .transaction(async (sp) => {
          await fn(outbox.fromDrizzle(sp, sql), insert(sp));
          sp.rollback();
        })
        .catch((e) => {
          if (!(e instanceof TransactionRollbackError)) throw e;
        });
    },
    close: () => pool.end(),
  };
}

const DRIVERS = { prisma7: prismaDriver, pg: pgDriver, typeorm: typeormDriver, kysely: kyselyDriver, drizzle: drizzleDriver };

const LEDGER_SQL = 'CREATE TABLE IF NOT EXISTS outbox_ledger (id text PRIMARY KEY, note text NOT NULL)';

module.exports = { DRIVERS, LEDGER_SQL, Rollback, prismaClientClass };
