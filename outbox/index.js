'use strict';
// Adapters that run a staged outbox statement (`publisher.stage(...)`'s `statement`) on the
// caller's own transaction, pg-boss style: each wraps one method of the caller's client, so the
// package has no runtime dependency on Prisma, pg, TypeORM, Kysely or Drizzle.
//
// The statement is `{ text, values }` with one `$1::text` parameter (a JSON document): every
// driver binds a JS string as text, so one statement behaves the same under all of them, and
// through PgBouncer in transaction mode (nothing prepared by name, no session state).

function check(statement) {
  if (!statement || typeof statement.text !== 'string' || !Array.isArray(statement.values)) {
    throw new TypeError('execute() takes a staged statement { text, values } (publisher.stage(...).statement)');
  }
  return statement;
}

function need(obj, method, name) {
  if (!obj || typeof obj[method] !== 'function') {
    throw new TypeError(`${name}: expected an object with a ${method}() method`);
  }
}

/** Prisma 5/6 (query engine) and 7 (driver adapters): an interactive transaction client `tx`. */
function fromPrisma(tx) {
  need(tx, '$executeRawUnsafe', 'fromPrisma(tx)');
  return {
    async execute(statement) {
      const { text, values } = check(statement);
      await tx.$executeRawUnsafe(text, ...values);
    },
  };
}

/** node-postgres: a client (`pool.connect()`) between BEGIN and COMMIT, or any `query(text, values)`. */
function fromPg(client) {
  need(client, 'query', 'fromPg(client)');
  return {
    async execute(statement) {
      const { text, values } = check(statement);
      await client.query(text, values);
    },
  };
}

/** TypeORM: the `EntityManager` of `dataSource.transaction(...)`, or a `QueryRunner` in a transaction. */
function fromTypeORM(manager) {
  need(manager, 'query', 'fromTypeORM(manager)');
  return {
    async execute(statement) {
      const { text, values } = check(statement);
      await manager.query(text, values);
    },
  };
}

/** Kysely: the `trx` of `db.transaction().execute(async (trx) => ...)`. */
function fromKysely(trx) {
  need(trx, 'executeQuery', 'fromKysely(trx)');
  return {
    async execute(statement) {
      const { text, values } = check(statement);
      // The shape of Kysely's CompiledQuery.raw(text, values), built here so that kysely is not
      // a dependency.
      await trx.executeQuery(
        Object.freeze({
          sql: text,
          parameters: Object.freeze(values.slice()),
          query: Object.freeze({ kind: 'RawNode', sqlFragments: Object.freeze([text]), parameters: Object.freeze([]) }),
          queryId: Object.freeze({ queryId: 'hyvve-outbox' }),
        }),
      );
    },
  };
}

/**
 * Drizzle: the `tx` of `db.transaction(async (tx) => ...)` and drizzle-orm's `sql` tag. The `$n`
 * placeholders become the tag's interpolations, so Drizzle binds the values itself.
 */
function fromDrizzle(tx, sql) {
  need(tx, 'execute', 'fromDrizzle(tx, sql)');
  if (typeof sql !== 'function') throw new TypeError("fromDrizzle(tx, sql): pass drizzle-orm's sql tag as the second argument");
  return {
    async execute(statement) {
      const { text, values } = check(statement);
      const strings = [];
      const params = [];
      let last = 0;
      for (const m of text.matchAll(/\$(\d+)/g)) {
        strings.push(text.slice(last, m.index));
        params.push(values[Number(m[1]) - 1]);
        last = m.index + m[0].length;
      }
      strings.push(text.slice(last));
      const raw = Object.assign(strings.slice(), { raw: strings.slice() });
      await tx.execute(sql(raw, ...params));
    },
  };
}

/**
 * The adapter for a transaction object of any of the five, recognised by its shape (for
 * integrations that are handed a transaction without knowing its library, such as
 * @nestjs-cls/transactional's `TransactionHost.tx`). Drizzle needs its `sql` tag.
 */
function fromTransaction(tx, sql) {
  if (tx && typeof tx.$executeRawUnsafe === 'function') return fromPrisma(tx);
  if (tx && typeof tx.executeQuery === 'function' && typeof tx.selectFrom === 'function') return fromKysely(tx);
  if (tx && typeof tx.execute === 'function' && typeof tx.select === 'function' && typeof sql === 'function') return fromDrizzle(tx, sql);
  if (tx && typeof tx.query === 'function') return typeof tx.getRepository === 'function' ? fromTypeORM(tx) : fromPg(tx);
  throw new TypeError('fromTransaction(tx): not a Prisma, pg, TypeORM, Kysely or (with its sql tag) Drizzle transaction');
}

module.exports = { fromPrisma, fromPg, fromTypeORM, fromKysely, fromDrizzle, fromTransaction };
