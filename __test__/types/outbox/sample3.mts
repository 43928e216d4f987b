// docs/outbox.md, sample 3 (Kysely, Drizzle, TypeORM)
import { EventPublisher } from '@hyvve/event-publisher';
import { fromDrizzle, fromKysely, fromTypeORM } from '@hyvve/event-publisher/outbox';
import { sql } from 'drizzle-orm';
import type { NodePgDatabase } from 'drizzle-orm/node-postgres';
import type { Kysely } from 'kysely';
import type { DataSource } from 'typeorm';

declare const publisher: EventPublisher;
declare const kysely: Kysely<any>;
declare const drizzleDb: NodePgDatabase;
declare const dataSource: DataSource;
const ctx = { tenantId: 'ws-1', userId: 'user-1' };

const k = await kysely.transaction().execute(async (trx) => {
  const staged = publisher.stage('pm.task.phase_changed', { taskId: 't1' }, ctx);
  await fromKysely(trx).execute(staged.statement);
  return staged;
});
const d = await drizzleDb.transaction(async (tx) => {
  const staged = publisher.stage('pm.task.phase_changed', { taskId: 't2' }, ctx);
  await fromDrizzle(tx, sql).execute(staged.statement);
  return staged;
});
const t = await dataSource.transaction(async (manager) => {
  const staged = publisher.stage('pm.task.phase_changed', { taskId: 't3' }, ctx);
  await fromTypeORM(manager).execute(staged.statement);
  return staged;
});
await publisher.dispatch([k, d, t]);

export {};
