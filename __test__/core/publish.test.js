'use strict';
// The core contract against the real Redis and Postgres: the entry, the row, the returned id,
// the log record, batches, consumer compatibility and bad input (COMPAT.md §1–§4).

const Redis = require('ioredis');
const { EventPublisher, EventPublisherError, EventTypes } = require('../..');
const { DATABASE_URL, REDIS_URL, uid, ensureDatabase, pgClient, readStream, publisherFactory } = require('../support/stores');

const CUID2 = /^[a-z][a-z0-9]{23}$/;
const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const ENVELOPE_KEYS = ['id', 'type', 'source', 'timestamp', 'correlationId', 'tenantId', 'userId', 'version', 'data'];

let redis;
let db;
const publishers = [];
const connect = publisherFactory(publishers, 'test:stream');

const rowsOf = async (tenant) =>
  (await db.query('SELECT * FROM event_metadata WHERE tenant_id = $1 ORDER BY created_at, event_id', [tenant])).rows;

beforeAll(async () => {
  await ensureDatabase();
  redis = new Redis(REDIS_URL);
  db = await pgClient();
});

afterAll(async () => {
  await Promise.all(publishers.map((p) => p.close()));
  await redis.quit();
  await db.end();
});

describe('publish', () => {
  test('writes one entry with a single `event` field holding the envelope, and one PENDING row with its stream id', async () => {
    const { p, stream } = await connect();
    const tenant = uid('ws');
    const data = {
      approvalId: 'appr_1',
      type: 'content',
      title: 'Ünïcode "quoted" \n line',
      decision: 'approved',
      decidedById: 'user_1',
      decidedAt: new Date('2026-11-27T06:32:41.123Z'),
      notes: undefined,
      score: 0.5,
      count: 3,
      nan: NaN,
      nested: { b: 2, a: [1, null, { z: true }] },
    };
    const before = Date.now();
    const id = await p.publish(EventTypes.APPROVAL_APPROVED, data, { tenantId: tenant, userId: 'user_1', source: 'approvals' });
    const after = Date.now();

    expect(id).toMatch(CUID2);
    const entries = await readStream(redis, stream);
    expect(entries).toHaveLength(1);
    const [entry] = entries;
    expect(entry.fields).toHaveLength(2);
    expect(entry.fields[0]).toBe('event');
    expect(Object.keys(entry.event)).toEqual(ENVELOPE_KEYS);
    expect(entry.event).toMatchObject({ id, type: 'approval.item.approved', source: 'approvals', tenantId: tenant, userId: 'user_1', version: '1.0' });
    expect(entry.event.timestamp).toMatch(ISO_MS);
    const ts = Date.parse(entry.event.timestamp);
    expect(ts).toBeGreaterThanOrEqual(before);
    expect(ts).toBeLessThanOrEqual(after);
    expect(entry.event.correlationId).toMatch(CUID2);
    expect(entry.event.correlationId).not.toBe(id);
    // data is byte-identical to JSON.stringify(data): Date, undefined, NaN and key order as in JS.
    expect(entry.raw.endsWith(`,"data":${JSON.stringify(data)}}`)).toBe(true);
    expect(entry.raw).toBe(
      JSON.stringify({ id, type: 'approval.item.approved', source: 'approvals', timestamp: entry.event.timestamp, correlationId: entry.event.correlationId, tenantId: tenant, userId: 'user_1', version: '1.0', data }),
    );

    const rows = await rowsOf(tenant);
    expect(rows).toHaveLength(1);
    const [row] = rows;
    expect(row).toMatchObject({
      event_id: id,
      stream_id: entry.id,
      type: 'approval.item.approved',
      source: 'approvals',
      tenant_id: tenant,
      correlation_id: entry.event.correlationId,
      status: 'PENDING',
      attempts: 0,
      last_error: null,
      processed_at: null,
    });
    expect(row.id).toMatch(CUID2);
    expect(row.id).not.toBe(id);
    // created_at is TIMESTAMP without time zone holding UTC: read it back as UTC text.
    const { rows: [{ created }] } = await db.query(
      `SELECT to_char(created_at, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS created FROM event_metadata WHERE event_id = $1`,
      [id],
    );
    expect(created).toBe(entry.event.timestamp);
  });

  test('source and correlationId fall back when missing or empty, as `||` does; given values are kept', async () => {
    const { p, stream } = await connect({ source: 'billing' });
    const tenant = uid('ws');
    const a = await p.publish('crm.contact.created', { n: 1 }, { tenantId: tenant, userId: 'u', source: '', correlationId: '' });
    const b = await p.publish('crm.contact.created', { n: 2 }, { tenantId: tenant, userId: 'u', source: 'crm', correlationId: 'corr-42' });
    const c = await p.publish('crm.contact.created', { n: 3 }, { tenantId: tenant, userId: 'u', source: null, correlationId: undefined });
    const byId = Object.fromEntries((await readStream(redis, stream)).map((e) => [e.event.id, e.event]));
    expect(byId[a].source).toBe('billing');
    expect(byId[a].correlationId).toMatch(CUID2);
    expect(byId[b]).toMatchObject({ source: 'crm', correlationId: 'corr-42' });
    expect(byId[c].source).toBe('billing');
    const rows = Object.fromEntries((await rowsOf(tenant)).map((r) => [r.event_id, r]));
    expect(rows[a].source).toBe('billing');
    expect(rows[b].correlation_id).toBe('corr-42');
    expect(rows[a].correlation_id).toBe(byId[a].correlationId);
  });

  test('a caller-supplied eventId is used as the id; unknown well-formed types are accepted', async () => {
    const { p, stream } = await connect();
    const tenant = uid('ws');
    const eventId = `order-42_created.${uid('x')}~1`;
    const id = await p.publish('pm.workflow.execution.started', { workflowId: 'w1' }, { tenantId: tenant, userId: 'u', eventId });
    expect(id).toBe(eventId);
    const [entry] = await readStream(redis, stream);
    expect(entry.event.id).toBe(eventId);
    expect(entry.event.type).toBe('pm.workflow.execution.started');
    expect((await rowsOf(tenant))[0].event_id).toBe(eventId);
  });

  test('logs one info record per publish with eventId, type, correlationId, tenantId and streamId', async () => {
    const { p, stream, logs } = await connect({ logLevel: 'info' });
    const tenant = uid('ws');
    const id = await p.publish('approval.item.cancelled', { approvalId: 'a' }, { tenantId: tenant, userId: 'u', correlationId: 'c-1' });
    const [entry] = await readStream(redis, stream);
    // The logger is called asynchronously (never blocking the publish): wait for it.
    for (let i = 0; i < 100 && logs.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    const mine = logs.filter((l) => l.eventId === id);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ level: 'info', eventId: id, type: 'approval.item.cancelled', correlationId: 'c-1', tenantId: tenant, streamId: entry.id });
  });

  test('concurrent publishes, one of them refused, each log the streamId of their own entry', async () => {
    const { p, stream, logs } = await connect({ logLevel: 'info' });
    const tenant = uid('ws');
    const taken = uid('ev');
    await p.publish('approval.item.requested', {}, { tenantId: tenant, userId: 'u', eventId: taken });
    const calls = Array.from({ length: 60 }, (_, i) =>
      i === 20
        ? p.publish('approval.item.approved', {}, { tenantId: tenant, userId: 'u', eventId: taken }).catch((e) => e.code)
        : p.publish('approval.item.requested', { i }, { tenantId: tenant, userId: 'u' }),
    );
    const ids = await Promise.all(calls);
    expect(ids[20]).toBe('ERR_EVENT_ID_CONFLICT');
    const published = ids.filter((_, i) => i !== 20);
    for (let i = 0; i < 100 && logs.filter((l) => l.msg === 'event published').length < 60; i++) await new Promise((r) => setTimeout(r, 10));
    const sid = Object.fromEntries((await readStream(redis, stream)).map((e) => [e.event.id, e.id]));
    const logged = Object.fromEntries(logs.filter((l) => l.msg === 'event published').map((l) => [l.eventId, l.streamId]));
    expect(published.map((id) => logged[id])).toEqual(published.map((id) => sid[id]));
  });

  test('a throwing logger does not break publishing; logLevel off sends nothing', async () => {
    const { p, stream } = await connect({ logger: () => { throw new Error('logger broke'); } });
    await expect(p.publish('a.b', {}, { tenantId: uid(), userId: 'u' })).resolves.toMatch(CUID2);
    const quiet = await connect({ logLevel: 'off' });
    await quiet.p.publish('a.b', {}, { tenantId: uid(), userId: 'u' });
    await new Promise((r) => setTimeout(r, 50));
    expect(quiet.logs).toHaveLength(0);
    expect(await redis.xlen(stream)).toBe(1);
  });
});

describe('publishBatch', () => {
  test('writes all events, returns ids in input order, logs one record; [] for an empty array', async () => {
    const { p, stream, logs } = await connect();
    const tenant = uid('ws');
    const events = Array.from({ length: 25 }, (_, i) => ({
      type: i % 2 ? 'approval.item.approved' : 'approval.item.rejected',
      data: { i, at: new Date(1_700_000_000_000 + i) },
      context: { tenantId: tenant, userId: `u${i}`, source: 'approvals' },
    }));
    const ids = await p.publishBatch(events);
    expect(ids).toHaveLength(25);
    const entries = await readStream(redis, stream);
    expect(entries.map((e) => e.event.id)).toEqual(ids);
    entries.forEach((e, i) => {
      expect(e.event.data).toEqual(JSON.parse(JSON.stringify(events[i].data)));
      expect(e.event.userId).toBe(`u${i}`);
    });
    // Each event gets its own correlation id.
    expect(new Set(entries.map((e) => e.event.correlationId)).size).toBe(25);
    const rows = await rowsOf(tenant);
    expect(rows).toHaveLength(25);
    const streamIdOf = Object.fromEntries(entries.map((e) => [e.event.id, e.id]));
    rows.forEach((r) => expect(r.stream_id).toBe(streamIdOf[r.event_id]));
    await expect(p.publishBatch([])).resolves.toEqual([]);
    for (let i = 0; i < 100 && !logs.some((l) => l.count === 25); i++) await new Promise((r) => setTimeout(r, 10));
    const batchLogs = logs.filter((l) => l.count === 25);
    expect(batchLogs).toHaveLength(1);
    expect(batchLogs[0].eventIds).toEqual(ids);
  });

  test('is atomic: when Redis fails after the rows were written, neither rows nor entries remain', async () => {
    const { p, stream } = await connect();
    const tenant = uid('ws');
    // A key of the wrong type makes every XADD fail: the failure comes after the row insert.
    await redis.set(stream, 'not a stream');
    const events = Array.from({ length: 10 }, (_, i) => ({ type: 'a.b', data: { i }, context: { tenantId: tenant, userId: 'u' } }));
    const err = await p.publishBatch(events).catch((e) => e);
    expect(err).toBeInstanceOf(EventPublisherError);
    expect(err.code).toBe('ERR_REDIS');
    expect(err.message).toMatch(/WRONGTYPE/);
    expect(await rowsOf(tenant)).toHaveLength(0);
    expect(await redis.type(stream)).toBe('string');
    await redis.del(stream);
  });

  test('is atomic: an event whose eventId belongs to another event fails the whole batch, leaving nothing', async () => {
    const { p, stream } = await connect();
    const tenant = uid('ws');
    const taken = uid('evt');
    await p.publish('a.b', {}, { tenantId: uid('other'), userId: 'u', eventId: taken });
    const events = [
      { type: 'a.b', data: { i: 0 }, context: { tenantId: tenant, userId: 'u' } },
      { type: 'a.b', data: { i: 1 }, context: { tenantId: tenant, userId: 'u', eventId: taken } },
      { type: 'a.b', data: { i: 2 }, context: { tenantId: tenant, userId: 'u' } },
    ];
    const err = await p.publishBatch(events).catch((e) => e);
    expect(err.code).toBe('ERR_EVENT_ID_CONFLICT');
    expect(await rowsOf(tenant)).toHaveLength(0);
    expect(await redis.xlen(stream)).toBe(1); // only the earlier, unrelated event
  });

  test('one bad event rejects the batch before anything is written, naming its index', async () => {
    const { p, stream } = await connect();
    const tenant = uid('ws');
    const err = await p
      .publishBatch([
        { type: 'a.b', data: {}, context: { tenantId: tenant, userId: 'u' } },
        { type: 'a.b', data: {}, context: { tenantId: '', userId: 'u' } },
      ])
      .catch((e) => e);
    expect(err.code).toBe('ERR_INVALID_EVENT');
    expect(err.message).toMatch(/events\[1\]\.context\.tenantId/);
    expect(await redis.exists(stream)).toBe(0);
    expect(await rowsOf(tenant)).toHaveLength(0);
  });
});

describe('platform consumer compatibility', () => {
  test('a consumer group reader parsing fields[1] receives every event and finds every row by event_id', async () => {
    const { p, stream } = await connect();
    const tenant = uid('ws');
    await redis.xgroup('CREATE', stream, 'hyvve-platform', '$', 'MKSTREAM');
    const ids = [await p.publish('approval.item.requested', { approvalId: 'x' }, { tenantId: tenant, userId: 'u' })];
    ids.push(...(await p.publishBatch([1, 2, 3].map((i) => ({ type: 'approval.item.approved', data: { i }, context: { tenantId: tenant, userId: 'u' } })))));
    const reply = await redis.xreadgroup('GROUP', 'hyvve-platform', 'consumer-1', 'COUNT', 100, 'STREAMS', stream, '>');
    const got = reply[0][1].map(([streamId, fields]) => ({ streamId, event: JSON.parse(fields[1]) }));
    expect(got.map((g) => g.event.id)).toEqual(ids);
    for (const g of got) {
      const { rowCount } = await db.query(
        `UPDATE event_metadata SET status = 'PROCESSING', attempts = attempts + 1 WHERE event_id = $1 AND stream_id = $2`,
        [g.event.id, g.streamId],
      );
      expect(rowCount).toBe(1);
      await redis.xack(stream, 'hyvve-platform', g.streamId);
    }
  });
});

describe('entry IDs', () => {
  const redisMs = async () => {
    const [sec, usec] = await redis.time();
    return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
  };
  const msOf = (id) => Number(id.split('-')[0]);
  // Every row of the tenant holds the ID of its event's one entry.
  const expectRowsHoldTheirEntries = async (stream, tenant, count) => {
    const entries = (await readStream(redis, stream)).filter((e) => e.event.tenantId === tenant);
    const rows = await rowsOf(tenant);
    expect(entries).toHaveLength(count);
    expect(rows).toHaveLength(count);
    const sid = Object.fromEntries(entries.map((e) => [e.event.id, e.id]));
    expect(rows.filter((r) => r.stream_id !== sid[r.event_id])).toEqual([]);
    return entries;
  };

  test('reserved (default): entry IDs tell the Redis time of the append, as XADD * would, and every row holds its entry ID', async () => {
    const { p, stream } = await connect();
    const tenant = uid('ws');
    const before = await redisMs();
    await p.publish('approval.item.requested', { n: 0 }, { tenantId: tenant, userId: 'u' });
    await Promise.all([
      ...Array.from({ length: 200 }, (_, i) => p.publish('approval.item.requested', { i }, { tenantId: tenant, userId: 'u' })),
      p.publishBatch(Array.from({ length: 300 }, (_, i) => ({ type: 'approval.item.approved', data: { i }, context: { tenantId: tenant, userId: 'u' } }))),
    ]);
    const after = await redisMs();
    const entries = await expectRowsHoldTheirEntries(stream, tenant, 501);
    // Within the Redis clock's span of the publishes (the script allows 20 ms ahead at most).
    for (const e of entries) {
      expect(msOf(e.id)).toBeGreaterThanOrEqual(before - 100);
      expect(msOf(e.id)).toBeLessThanOrEqual(after + 20);
    }
  });

  test('a stream another producer has moved ahead: the publish takes a Redis-assigned ID and its row is set to it', async () => {
    const { p, stream } = await connect();
    const tenant = uid('ws');
    // An entry dated a minute ahead (explicit ID): every ID reserved now is too low for Redis.
    const ahead = `${(await redisMs()) + 60_000}-5`;
    await redis.xadd(stream, ahead, 'event', JSON.stringify({ id: 'other-producer', tenantId: 'other' }));
    const ids = [await p.publish('approval.item.requested', { n: 1 }, { tenantId: tenant, userId: 'u' })];
    ids.push(...(await p.publishBatch([2, 3].map((n) => ({ type: 'approval.item.approved', data: { n }, context: { tenantId: tenant, userId: 'u' } })))));
    const entries = await expectRowsHoldTheirEntries(stream, tenant, 3);
    expect(entries.map((e) => e.event.id)).toEqual(ids);
    // Redis assigned them after the other producer's entry, as `*` does.
    expect(entries.map((e) => e.id)).toEqual([`${msOf(ahead)}-6`, `${msOf(ahead)}-7`, `${msOf(ahead)}-8`]);
  });

  test('two publishers on one stream, publishing at once: every event has one entry and its row holds it', async () => {
    const stream = uid('test:stream');
    const a = (await connect({ stream })).p;
    const b = (await connect({ stream })).p;
    const tenant = uid('ws');
    const burst = (p, tag) =>
      Array.from({ length: 150 }, (_, i) =>
        i % 10 === 0
          ? p.publishBatch([0, 1, 2].map((k) => ({ type: 'approval.item.approved', data: { tag, i, k }, context: { tenantId: tenant, userId: 'u' } })))
          : p.publish('approval.item.requested', { tag, i }, { tenantId: tenant, userId: 'u' }),
      );
    await Promise.all([...burst(a, 'a'), ...burst(b, 'b')]);
    const entries = await expectRowsHoldTheirEntries(stream, tenant, 2 * (135 + 15 * 3));
    expect(new Set(entries.map((e) => e.event.id)).size).toBe(entries.length);
  });

  test('a repeat of a completed publish after the dedup window: same id, still one entry (the entry at the row\'s stream_id is found)', async () => {
    const { p, stream } = await connect({ dedupWindowMs: 1 });
    const tenant = uid('ws');
    const ctx = { tenantId: tenant, userId: 'u', eventId: uid('ev') };
    const other = { tenantId: tenant, userId: 'u', eventId: uid('ev2') };
    await p.publish('approval.item.requested', { n: 1 }, ctx);
    await p.publish('approval.item.requested', { n: 2 }, other); // moves the stream on
    await new Promise((r) => setTimeout(r, 20)); // the dedup keys are gone
    expect(await redis.exists(`{${stream}}:dedup:${ctx.eventId}`)).toBe(0);
    await expect(p.publish('approval.item.requested', { n: 1 }, ctx)).resolves.toBe(ctx.eventId);
    await expect(p.publishBatch([{ type: 'approval.item.requested', data: { n: 1 }, context: ctx }])).resolves.toEqual([ctx.eventId]);
    const entries = await expectRowsHoldTheirEntries(stream, tenant, 2);
    expect(entries.map((e) => e.event.id)).toEqual([ctx.eventId, other.eventId]);
  });

  test("entryIds 'server' (XADD *, then a second statement sets stream_id): every row holds its entry ID; an unknown value is ERR_CONFIG", async () => {
    const { p, stream } = await connect({ entryIds: 'server' });
    const tenant = uid('ws');
    await Promise.all([
      ...Array.from({ length: 50 }, (_, i) => p.publish('approval.item.requested', { i }, { tenantId: tenant, userId: 'u' })),
      p.publishBatch(Array.from({ length: 20 }, (_, i) => ({ type: 'approval.item.approved', data: { i }, context: { tenantId: tenant, userId: 'u' } }))),
    ]);
    await expectRowsHoldTheirEntries(stream, tenant, 70);
    await expect(connect({ entryIds: 'client' })).rejects.toMatchObject({ code: 'ERR_CONFIG', message: expect.stringContaining('entryIds') });
  });
});

describe('bad input rejects with a code and writes nothing', () => {
  const cyclic = {};
  cyclic.self = cyclic;
  const T = uid('bad');
  const ok = { tenantId: T, userId: 'u' };
  const cases = [
    ['missing tenantId', 'a.b', {}, { userId: 'u' }, 'ERR_INVALID_EVENT', /context\.tenantId/],
    ['empty tenantId', 'a.b', {}, { tenantId: '', userId: 'u' }, 'ERR_INVALID_EVENT', /context\.tenantId/],
    ['non-string tenantId', 'a.b', {}, { tenantId: 42, userId: 'u' }, 'ERR_INVALID_EVENT', /context\.tenantId/],
    ['missing userId', 'a.b', {}, { tenantId: T }, 'ERR_INVALID_EVENT', /context\.userId/],
    ['empty userId', 'a.b', {}, { tenantId: T, userId: '' }, 'ERR_INVALID_EVENT', /context\.userId/],
    ['uppercase type', 'Approval.Item', {}, ok, 'ERR_INVALID_EVENT', /type/],
    ['type without a dot', 'approval', {}, ok, 'ERR_INVALID_EVENT', /type/],
    ['type with spaces', 'a b.c', {}, ok, 'ERR_INVALID_EVENT', /type/],
    ['non-string type', 42, {}, ok, 'ERR_INVALID_EVENT', /type/],
    ['array data', 'a.b', [1, 2], ok, 'ERR_INVALID_EVENT', /data/],
    ['string data', 'a.b', 'hello', ok, 'ERR_INVALID_EVENT', /data/],
    ['null data', 'a.b', null, ok, 'ERR_INVALID_EVENT', /data/],
    ['Date as data', 'a.b', new Date(), ok, 'ERR_INVALID_EVENT', /data/],
    ['BigInt in data', 'a.b', { n: 10n }, ok, 'ERR_INVALID_EVENT', /BigInt/],
    ['cyclic data', 'a.b', cyclic, ok, 'ERR_INVALID_EVENT', /circular/i],
    ['throwing toJSON', 'a.b', { toJSON() { throw new Error('nope'); } }, ok, 'ERR_INVALID_EVENT', /nope/],
    ['payload over maxPayloadBytes', 'a.b', { s: 'x'.repeat(2000) }, ok, 'ERR_PAYLOAD_TOO_LARGE', /maxPayloadBytes/],
    ['oversized tenantId', 'a.b', {}, { tenantId: 't'.repeat(257), userId: 'u' }, 'ERR_INVALID_EVENT', /context\.tenantId/],
    ['oversized userId', 'a.b', {}, { tenantId: T, userId: 'u'.repeat(257) }, 'ERR_INVALID_EVENT', /context\.userId/],
    ['oversized correlationId', 'a.b', {}, { ...ok, correlationId: 'c'.repeat(257) }, 'ERR_INVALID_EVENT', /correlationId/],
    ['oversized type', `a.${'b'.repeat(300)}`, {}, ok, 'ERR_INVALID_EVENT', /type/],
    ['non-string source', 'a.b', {}, { ...ok, source: 7 }, 'ERR_INVALID_EVENT', /context\.source/],
    ['non-string correlationId', 'a.b', {}, { ...ok, correlationId: {} }, 'ERR_INVALID_EVENT', /context\.correlationId/],
    ['eventId with a slash', 'a.b', {}, { ...ok, eventId: 'a/b' }, 'ERR_INVALID_EVENT', /context\.eventId/],
    ['empty eventId', 'a.b', {}, { ...ok, eventId: '' }, 'ERR_INVALID_EVENT', /context\.eventId/],
    ['oversized eventId', 'a.b', {}, { ...ok, eventId: 'e'.repeat(129) }, 'ERR_INVALID_EVENT', /context\.eventId/],
    ['NUL in tenantId', 'a.b', {}, { tenantId: 'a\u0000b', userId: 'u' }, 'ERR_INVALID_EVENT', /context\.tenantId/],
    ['missing context', 'a.b', {}, undefined, 'ERR_INVALID_EVENT', /context/],
  ];

  let pub;
  beforeAll(async () => {
    pub = await connect({ maxPayloadBytes: 1000 });
  });

  test.each(cases)('%s', async (_name, type, data, context, code, pattern) => {
    const tenant = context && typeof context.tenantId === 'string' && context.tenantId.length < 100 && !context.tenantId.includes('\u0000') ? context.tenantId : null;
    let result;
    // Never a synchronous throw: callers chain .catch().
    expect(() => {
      result = pub.p.publish(type, data, context);
    }).not.toThrow();
    // A real Promise (the addon's promises come from Node's realm, not jest's sandbox).
    expect(Object.prototype.toString.call(result)).toBe('[object Promise]');
    const err = await result.then(() => null, (e) => e);
    expect(err).toBeInstanceOf(EventPublisherError);
    expect(err.code).toBe(code);
    expect(err.message).toMatch(pattern);
    expect(await redis.exists(pub.stream)).toBe(0);
    if (tenant) expect(await rowsOf(tenant)).toHaveLength(0);
  });

  test('publishBatch with a non-array rejects without throwing', async () => {
    const err = await pub.p.publishBatch('nope').catch((e) => e);
    expect(err.code).toBe('ERR_INVALID_EVENT');
  });

  test('repeated eventIds within a batch are rejected', async () => {
    const ctx = { tenantId: uid(), userId: 'u', eventId: 'same-id' };
    const err = await pub.p.publishBatch([{ type: 'a.b', data: {}, context: ctx }, { type: 'a.b', data: {}, context: ctx }]).catch((e) => e);
    expect(err.code).toBe('ERR_INVALID_EVENT');
    expect(await rowsOf(ctx.tenantId)).toHaveLength(0);
  });
});

describe('configuration from the environment', () => {
  test("variables set in jest's process.env (not the real environment) are used", async () => {
    const saved = { DATABASE_URL: process.env.DATABASE_URL, REDIS_URL: process.env.REDIS_URL };
    process.env.DATABASE_URL = DATABASE_URL;
    process.env.REDIS_URL = REDIS_URL;
    try {
      const stream = uid('test:stream');
      const p = await EventPublisher.connect({ stream, logLevel: 'off' });
      publishers.push(p);
      const id = await p.publish('a.b', { env: true }, { tenantId: uid('ws'), userId: 'u' });
      expect((await readStream(redis, stream))[0].event.id).toBe(id);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  test('a missing database URL is ERR_CONFIG naming DATABASE_URL', async () => {
    const saved = process.env.DATABASE_URL;
    delete process.env.DATABASE_URL;
    try {
      const err = await EventPublisher.connect({ logLevel: 'off' }).catch((e) => e);
      expect(err).toBeInstanceOf(EventPublisherError);
      expect(err.code).toBe('ERR_CONFIG');
      expect(err.message).toMatch(/DATABASE_URL/);
    } finally {
      if (saved !== undefined) process.env.DATABASE_URL = saved;
    }
  });

  test('an unknown option is ERR_CONFIG naming it', async () => {
    const err = await EventPublisher.connect({ databaseUrl: DATABASE_URL, timeoutMS: 5 }).catch((e) => e);
    expect(err.code).toBe('ERR_CONFIG');
    expect(err.message).toMatch(/timeoutMS/);
  });
});
