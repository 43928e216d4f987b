'use strict';
// Issue 11: publishing through PgBouncer (Debian's 1.18, its default settings: no
// ignore_startup_parameters) in transaction pooling (default_pool_size = 2, fewer server
// connections than the publisher's pool of 10, so server connections really are shared) and in
// session pooling, with and without `pgbouncer=true`. Through each: concurrent publishes,
// batches, retries of caller eventIds racing each other, values that need quoting, bad input;
// then the whole stream and table are compared, no error mentions prepared statements, and
// another client of the same PgBouncer sees default session settings. Also `directUrl`:
// migrate() and reconcile() go there.

const Redis = require('ioredis');
const { Client } = require('pg');
const { EventPublisher } = require('../..');
const { DATABASE_URL, ADMIN_URL, REDIS_URL, uid, ensureDatabase, readStream } = require('../support/stores');
const { startPgBouncer, pgbouncerMissing } = require('../support/pgbouncer');

const DB = new URL(DATABASE_URL).pathname.slice(1);
const bouncers = {};
const publishers = [];
let redis;
let db;

beforeAll(async () => {
  const missing = pgbouncerMissing();
  if (missing) throw new Error(missing);
  await ensureDatabase();
  const serverPort = Number(new URL(DATABASE_URL).port || 5432);
  [bouncers.transaction, bouncers.session] = await Promise.all([
    startPgBouncer({ serverPort, mode: 'transaction', poolSize: 2 }),
    startPgBouncer({ serverPort, mode: 'session', poolSize: 20 }),
  ]);
  redis = new Redis(REDIS_URL);
  db = new Client({ connectionString: DATABASE_URL });
  await db.connect();
});

afterAll(async () => {
  await Promise.all(publishers.map((p) => p.close().catch(() => {})));
  await Promise.all(Object.values(bouncers).map((b) => b.destroy()));
  if (redis) redis.disconnect();
  if (db) await db.end();
});

async function connect(options) {
  const logs = [];
  const stream = uid('pgb:stream');
  const p = await EventPublisher.connect({ redisUrl: REDIS_URL, stream, logger: (e) => logs.push(e), logLevel: 'debug', ...options });
  publishers.push(p);
  return { p, stream, logs };
}

const settle = (p) => p.then((value) => ({ ok: true, value }), (err) => ({ ok: false, err }));
const mentionsPrepared = (s) => /prepared statement/i.test(String(s));

describe.each([
  ['transaction', ''],
  ['transaction', '&pgbouncer=true'],
  ['session', ''],
  ['session', '&pgbouncer=true'],
])('through PgBouncer in %s pooling (url%s)', (mode, flag) => {
  test('publishes, batches, retries and rejects bad input; stream and table agree', async () => {
    const bouncer = bouncers[mode];
    const { p, stream, logs } = await connect({ databaseUrl: bouncer.url(DB, `sslmode=disable${flag}`), timeoutMs: 5000 });
    // Values that must be quoted: the statements carry them inline.
    const tenant = uid(`t'\\"; --`);
    const ctx = { tenantId: tenant, userId: "u'1\\" };
    const outcomes = [];
    // 16 callers x 20 publishes, a batch of 100, and 30 caller eventIds each published twice at once.
    const callers = Array.from({ length: 16 }, async (_, c) => {
      for (let i = 0; i < 20; i++) outcomes.push(await settle(p.publish('pgbouncer.probe', { c, i, quote: "it's" }, ctx)));
    });
    const batch = settle(p.publishBatch(Array.from({ length: 100 }, (_, i) => ({ type: 'pgbouncer.batch', data: { i }, context: ctx }))));
    const ids = Array.from({ length: 30 }, () => uid('ev'));
    const retries = ids.flatMap((eventId) => [0, 1].map(() => settle(p.publish('pgbouncer.retry', { eventId }, { ...ctx, eventId }))));
    await Promise.all(callers);
    const batchResult = await batch;
    const retryResults = await Promise.all(retries);
    const bad = await settle(p.publish('Not A Type!', {}, ctx));

    const failures = [...outcomes, batchResult, ...retryResults].filter((o) => !o.ok);
    expect(failures.map((f) => `${f.err.code} ${f.err.message}`)).toEqual([]);
    expect(bad.ok).toBe(false);
    expect(bad.err.code).toBe('ERR_INVALID_EVENT');
    for (const [i, r] of retryResults.entries()) expect(r.value).toBe(ids[i >> 1]);

    const entries = await readStream(redis, stream);
    const { rows } = await db.query('SELECT event_id, stream_id, tenant_id FROM event_metadata WHERE tenant_id = $1', [tenant]);
    const expected = 16 * 20 + 100 + 30;
    expect(entries).toHaveLength(expected);
    expect(rows).toHaveLength(expected);
    const rowOf = new Map(rows.map((r) => [r.event_id, r]));
    for (const e of entries) {
      expect(rowOf.get(e.event.id)?.stream_id).toBe(e.id);
      expect(e.event).toMatchObject({ tenantId: tenant, userId: ctx.userId });
    }
    for (const id of ids) expect(rowOf.has(id)).toBe(true);
    expect(logs.filter((l) => mentionsPrepared(JSON.stringify(l)))).toEqual([]);
    // What connect decided, said once.
    expect(logs.some((l) => l.level === 'debug' && /simple queries/.test(l.msg))).toBe(true);
    expect(logs.some((l) => /prepared once/.test(l.msg))).toBe(false);
    expect(await p.health()).toMatchObject({ database: true });
    await p.close();

    // Another client of the same PgBouncer (several times, to meet every server connection)
    // sees the default session settings: the publisher left nothing behind.
    const other = new Client({ connectionString: bouncer.url(DB) });
    await other.connect();
    try {
      for (let i = 0; i < 4; i++) {
        expect((await other.query('SHOW plan_cache_mode')).rows[0].plan_cache_mode).toBe('auto');
        expect((await other.query('SHOW search_path')).rows[0].search_path).toBe('"$user", public');
      }
    } finally {
      await other.end();
    }
  });
});

test('a publisher holds no server connection between statements in transaction pooling', async () => {
  // Two publishers with pools of 10 each share two server connections: both keep publishing.
  const b = bouncers.transaction;
  const a = await connect({ databaseUrl: b.url(DB), timeoutMs: 5000 });
  const c = await connect({ databaseUrl: b.url(DB, 'sslmode=disable&pgbouncer=true&connection_limit=4'), timeoutMs: 5000 });
  const ctx = { tenantId: uid('t'), userId: 'u' };
  const all = await Promise.all(
    Array.from({ length: 64 }, (_, i) => settle((i % 2 ? a.p : c.p).publish('pgbouncer.shared', { i }, ctx))),
  );
  expect(all.filter((o) => !o.ok).map((o) => o.err.message)).toEqual([]);
  // More client connections than the two server connections: they really were shared.
  const clients = (await b.command('SHOW CLIENTS')).filter((r) => r.database === DB);
  expect(clients.length).toBeGreaterThan(2);
  const { rows } = await db.query('SELECT count(*)::int AS n FROM event_metadata WHERE tenant_id = $1', [ctx.tenantId]);
  expect(rows[0].n).toBe(64);
});

test('directUrl: migrate() and reconcile() go there, publishing goes through PgBouncer', async () => {
  const directDb = `${DB}_direct`;
  const admin = new Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS "${directDb}" WITH (FORCE)`);
  await admin.query(`CREATE DATABASE "${directDb}"`);
  await admin.end();
  const directUrl = DATABASE_URL.replace(`/${DB}`, `/${directDb}`);
  const databaseUrl = bouncers.transaction.url(DB, 'sslmode=disable&pgbouncer=true');
  // The table exists behind databaseUrl but not behind directUrl: migrate() creates it there.
  expect(await EventPublisher.migrate({ databaseUrl, directUrl })).toBe(true);
  const check = new Client({ connectionString: directUrl });
  await check.connect();
  try {
    expect((await check.query("SELECT to_regclass('event_metadata')::text AS t")).rows[0].t).toBe('event_metadata');
    // reconcile() reads through directUrl: a stale PENDING row there without an entry is marked FAILED.
    const { p, logs } = await connect({ databaseUrl, directUrl });
    expect(logs.some((l) => /directUrl/.test(l.msg))).toBe(true);
    const eventId = uid('orphan');
    await check.query(
      "INSERT INTO event_metadata (id, event_id, stream_id, type, source, tenant_id, created_at) VALUES ($1, $2, '9-0', 'x.y', 'platform', 't', (now() AT TIME ZONE 'UTC') - interval '10 minutes')",
      [uid('row'), eventId],
    );
    await p.publish('pgbouncer.direct', {}, { tenantId: 't', userId: 'u' });
    const report = await p.reconcile({ olderThanMs: 60_000 });
    expect(report.failed).toBe(1);
    expect((await check.query('SELECT status FROM event_metadata WHERE event_id = $1', [eventId])).rows[0].status).toBe('FAILED');
    // ... while the row of the publish went through PgBouncer to the other database.
    expect((await check.query("SELECT count(*)::int AS n FROM event_metadata WHERE type = 'pgbouncer.direct'")).rows[0].n).toBe(0);
  } finally {
    await check.end();
  }
});

test.each([
  ['directly', () => DATABASE_URL],
  ['through PgBouncer', () => bouncers.transaction.url(DB)],
])('values with quotes, backslashes, array delimiters and non-ASCII are stored exactly (%s)', async (how, url) => {
  // The statements carry the values inline as escaped literals: the row must hold them byte for byte.
  const nasty = [`'`, `''`, `\\`, `\\'`, `"`, `\\"`, `{`, `}`, `,`, `{"a",b}`, 'NULL', ' padded ', "E'x'", '$1', '$$', '\n\t', 'é ☃ 𝄞', `'); DROP TABLE event_metadata; --`];
  const { p, logs } = await connect({ databaseUrl: url() });
  // What connect decided: prepared statements only on a direct connection.
  const decided = logs.find((l) => /publishing statements/.test(l.msg)).msg;
  expect(decided).toMatch(how === 'directly' ? /prepared once per connection.*direct connection/ : /simple queries.*refused startup options/);
  const tenant = uid('t');
  const ctxs = nasty.map((s, i) => ({ tenantId: `${tenant}${s}`, userId: 'u', source: `src${s}`, correlationId: `c${i}${s}` }));
  const single = await Promise.all(ctxs.map((c, i) => p.publish('pgbouncer.values', { i }, c)));
  const batch = await p.publishBatch(ctxs.map((c, i) => ({ type: 'pgbouncer.values', data: { i }, context: c })));
  const { rows } = await db.query('SELECT event_id, tenant_id, source, correlation_id FROM event_metadata WHERE tenant_id LIKE $1', [`${tenant}%`]);
  const byId = new Map(rows.map((r) => [r.event_id, r]));
  expect(rows).toHaveLength(2 * nasty.length);
  for (const ids of [single, batch]) {
    ids.forEach((id, i) => {
      expect(byId.get(id)).toEqual({ event_id: id, tenant_id: ctxs[i].tenantId, source: ctxs[i].source, correlation_id: ctxs[i].correlationId });
    });
  }
});
