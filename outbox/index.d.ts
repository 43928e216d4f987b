// Typings of @hyvve/event-publisher/outbox: adapters that run a staged statement on the caller's
// own transaction. Structural types only: the package does not depend on any ORM's typings.

/** The statement `publisher.stage(...)` returns: one SQL text, one text parameter (a JSON document). */
export interface StagedStatement {
  readonly text: string;
  readonly values: readonly [string];
}

/** Runs a staged statement on the transaction it was made from. */
export interface SqlExecutor {
  execute(statement: StagedStatement): Promise<void>;
}

/** Prisma 5/6 (engine) and 7 (driver adapters): the interactive transaction client of `$transaction(async (tx) => …)`. */
export declare function fromPrisma(tx: { $executeRawUnsafe(query: string, ...values: any[]): PromiseLike<unknown> }): SqlExecutor;
/** node-postgres: a `PoolClient` between `BEGIN` and `COMMIT` (or anything with `query(text, values)`). */
export declare function fromPg(client: { query(text: string, values?: any[]): PromiseLike<unknown> }): SqlExecutor;
/** TypeORM: the `EntityManager` of `dataSource.transaction(…)`, or a `QueryRunner` in a transaction. */
export declare function fromTypeORM(manager: { query(query: string, parameters?: any[]): PromiseLike<unknown> }): SqlExecutor;
/** Kysely: the `trx` of `db.transaction().execute(async (trx) => …)` or of `db.startTransaction()`. */
export declare function fromKysely(trx: { executeQuery(query: any): PromiseLike<unknown> }): SqlExecutor;
/** Drizzle: the `tx` of `db.transaction(async (tx) => …)` and drizzle-orm's `sql` tag. */
export declare function fromDrizzle(
  tx: { execute(query: any): PromiseLike<unknown> },
  sql: (strings: TemplateStringsArray, ...values: any[]) => any,
): SqlExecutor;
/** The adapter for a transaction of any of the five, recognised by its shape (Drizzle needs its `sql` tag). */
export declare function fromTransaction(tx: object, sql?: (strings: TemplateStringsArray, ...values: any[]) => any): SqlExecutor;
