'use strict';
// Reference (b): the same logic as the platform's publisher with node-pg instead of Prisma,
// a JS baseline without an ORM: one prepared INSERT per event, one multi-row INSERT per batch.
const Redis = require('ioredis');
const { Pool } = require('pg');
const { randomUUID } = require('node:crypto');
const { buildEvent, xaddArgs, streamIds } = require('./envelope');

const COLUMNS = 'id, event_id, stream_id, type, source, tenant_id, correlation_id, status, attempts, created_at';
const PER_ROW = 7;
// created_at in UTC explicitly (the column has no time zone; COMPAT.md §3).
const rowSql = (n) => `(${Array.from({ length: PER_ROW }, (_, k) => `$${n * PER_ROW + k + 1}`).join(', ')}, `
  + `'PENDING', 0, now() AT TIME ZONE 'UTC')`;
const insertSql = (rows) => `INSERT INTO event_metadata (${COLUMNS}) VALUES `
  + Array.from({ length: rows }, (_, n) => rowSql(n)).join(', ');

const INSERT_ONE = insertSql(1);

// The row id only has to be unique and is never read; Prisma makes a cheap cuid v1 for it,
// so a UUID stands in here rather than a third ~185 µs cuid2 per event.
const rowValues = (event, streamId) => [randomUUID(), event.id, streamId, event.type, event.source,
  event.tenantId, event.correlationId];

class PgPublisher {
  constructor(redis, pool, stream) {
    this.redis = redis;
    this.pool = pool;
    this.stream = stream;
    this.batchSql = new Map(); // rows -> SQL text, so a batch size is built once
  }

  static async connect({ redisUrl, databaseUrl, stream = 'hyvve:events:main' }) {
    const redis = new Redis(redisUrl);
    const pool = new Pool({ connectionString: databaseUrl }); // default size 10
    await Promise.all([redis.ping(), pool.query('SELECT 1')]);
    return new PgPublisher(redis, pool, stream);
  }

  async publish(type, data, context) {
    const event = buildEvent(type, data, context);
    const streamId = await this.redis.xadd(...xaddArgs(this.stream, event));
    await this.pool.query({ name: 'event_metadata_insert', text: INSERT_ONE, values: rowValues(event, streamId) });
    return event.id;
  }

  async publishBatch(events) {
    const built = events.map((e) => buildEvent(e.type, e.data, e.context));
    const pipeline = this.redis.pipeline();
    for (const event of built) pipeline.xadd(...xaddArgs(this.stream, event));
    const ids = streamIds(await pipeline.exec());
    let text = this.batchSql.get(built.length);
    if (!text) this.batchSql.set(built.length, (text = insertSql(built.length)));
    await this.pool.query(text, built.flatMap((e, i) => rowValues(e, ids[i])));
    return built.map((e) => e.id);
  }

  async close() {
    await this.pool.end();
    await this.redis.quit();
  }
}

module.exports = { PgPublisher, EventPublisher: PgPublisher };
