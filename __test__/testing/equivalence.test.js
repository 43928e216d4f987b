'use strict';
// @hyvve/event-publisher/testing against the real publisher: for the same inputs (the fuzz corpus,
// good and bad), the in-memory publisher and the real one (shared Redis, this run's database)
// resolve or reject alike, with the same code and message, and produce the same envelope bytes and
// row values (generated ids, correlation ids and timestamps aside). Then the fake's own
// features: dedup of caller eventIds, failNext, delay, clear, close.
// EQUIV_SEED / EQUIV_CASES replay or widen the corpus.

const Redis = require('ioredis');
const { EventPublisher, EventPublisherError } = require('../..');
const { createTestPublisher } = require('../../testing');
const { DATABASE_URL, REDIS_URL, uid, ensureDatabase, pgClient, publisherFactory } = require('../support/stores');
const { gen } = require('../support/fuzz-corpus');

const SEED = Number(process.env.EQUIV_SEED || 20261201);
const CASES = Number(process.env.EQUIV_CASES || 300);
const CUID2 = /^[a-z][a-z0-9]{23}$/;
const OPTIONS = { source: 'equiv-default', logLevel: 'off' };

const publishers = [];
const connect = publisherFactory(publishers, 'equiv:stream');
let real;
let stream;
let redis;
let db;

beforeAll(async () => {
  await ensureDatabase();
  await EventPublisher.migrate({ databaseUrl: DATABASE_URL });
  ({ p: real, stream } = await connect(OPTIONS));
  redis = new Redis(REDIS_URL);
  db = await pgClient();
}, 60_000);

afterAll(async () => {
  for (const p of publishers) await p.close();
  if (redis) {
    await redis.del(stream);
    redis.disconnect();
  }
  if (db) await db.end();
});

/** Calls publish or publishBatch; resolves to { ids } or { err }. */
function call(p, tc) {
  const promise = tc.batch ? p.publishBatch(tc.events) : p.publish(tc.events[0].type, tc.events[0].data, tc.events[0].context).then((id) => [id]);
  return promise.then((ids) => ({ ids }), (err) => ({ err }));
}

/** The envelope with the values each publisher generates by itself replaced by placeholders. */
function normalized(json, ev) {
  const e = JSON.parse(json);
  let out = json.replace(`"timestamp":"${e.timestamp}"`, '"timestamp":"T"');
  const c = ev.context;
  if (!(typeof c.eventId === 'string')) out = out.replace(`{"id":${JSON.stringify(e.id)}`, '{"id":"ID"');
  if (!c.correlationId) out = out.replace(`"correlationId":${JSON.stringify(e.correlationId)}`, '"correlationId":"C"');
  return out;
}

const rowFields = (r, e, ev) => ({
  type: r.type,
  source: r.source,
  tenant_id: r.tenant_id,
  correlation_id: ev.context.correlationId ? r.correlation_id : 'C',
  status: r.status,
  attempts: r.attempts,
  created_at: new Date(r.created_at).toISOString() === e.timestamp,
});

test(`${CASES} fuzz cases (seed ${SEED}): the same outcome, code, message, envelope bytes and row values`, async () => {
  const fake = createTestPublisher(OPTIONS);
  const { testCase } = gen(SEED);
  const failures = [];
  let published = 0;
  const rejected = {};
  let lastId = '0-0';
  for (let i = 0; i < CASES; i++) {
    const tc = testCase(i);
    const problems = [];
    const seen = fake.published().length;
    const f = await call(fake, tc);
    const r = await call(real, tc);
    if (Boolean(f.err) !== Boolean(r.err)) {
      problems.push(`fake ${f.err ? `rejected ${f.err.code}: ${f.err.message}` : 'published'}, real ${r.err ? `rejected ${r.err.code}: ${r.err.message}` : 'published'}`);
    } else if (f.err) {
      rejected[r.err.code] = (rejected[r.err.code] || 0) + 1;
      if (!(f.err instanceof EventPublisherError)) problems.push('fake rejected with a non-EventPublisherError');
      if (f.err.code !== r.err.code || f.err.message !== r.err.message) problems.push(`fake ${f.err.code}: ${f.err.message} / real ${r.err.code}: ${r.err.message}`);
      if (fake.published().length !== seen) problems.push('the fake wrote a rejected case');
    } else {
      published++;
      const entries = await redis.xrangeBuffer(stream, `(${lastId}`, '+');
      if (entries.length) lastId = entries[entries.length - 1][0].toString();
      const mine = fake.published().slice(seen);
      if (entries.length !== tc.events.length || mine.length !== tc.events.length) problems.push(`entries: real ${entries.length}, fake ${mine.length}, events ${tc.events.length}`);
      for (let k = 0; k < Math.min(entries.length, mine.length); k++) {
        const ev = tc.events[k];
        const realJson = entries[k][1][1];
        const fakeJson = mine[k].envelope;
        if (!CUID2.test(f.ids[k]) && f.ids[k] !== ev.context.eventId) problems.push(`fake id ${f.ids[k]}`);
        if (typeof ev.context.eventId === 'string' && f.ids[k] !== r.ids[k]) problems.push(`ids ${f.ids[k]} / ${r.ids[k]}`);
        if (mine[k].event.id !== f.ids[k]) problems.push('the fake envelope id is not the resolved id');
        // Byte-identical after placeholders (the real entry's raw bytes against the fake's UTF-8).
        if (!Buffer.from(normalized(fakeJson, ev)).equals(Buffer.from(normalized(realJson.toString('utf8'), ev)))) {
          problems.push(`event ${k}: envelopes differ: ${normalized(fakeJson, ev).slice(0, 200)} / ${normalized(realJson.toString('utf8'), ev).slice(0, 200)}`);
        }
        if (!Buffer.from(realJson.toString('utf8')).equals(realJson)) problems.push('the real entry is not valid UTF-8');
        const { rows } = await db.query('SELECT *, status::text AS status FROM event_metadata WHERE event_id = $1', [r.ids[k]]);
        const realEnvelope = JSON.parse(realJson.toString('utf8'));
        if (rows.length !== 1) problems.push(`real rows: ${rows.length}`);
        else {
          const a = rowFields(mine[k].row, mine[k].event, ev);
          const b = rowFields(rows[0], realEnvelope, ev);
          if (JSON.stringify(a) !== JSON.stringify(b)) problems.push(`rows: fake ${JSON.stringify(a)} / real ${JSON.stringify(b)}`);
          if (mine[k].row.stream_id !== mine[k].streamId || rows[0].stream_id !== entries[k][0].toString()) problems.push('stream_id is not the entry id');
        }
      }
    }
    if (problems.length) failures.push({ case: i, batch: tc.batch, problems: problems.slice(0, 3) });
  }
  console.log(`equivalence: seed ${SEED}, ${CASES} cases, ${published} published, rejected ${JSON.stringify(rejected)}, ${failures.length} differing`);
  expect(failures).toEqual([]);
  expect(published).toBeGreaterThan(20);
  expect(rejected.ERR_INVALID_EVENT).toBeGreaterThan(10);
}, 240_000);

describe('what only the fake offers, checked against what the real one does', () => {
  const ctx = (extra = {}) => ({ tenantId: uid('ws'), userId: 'u', ...extra });

  test('a repeated caller eventId resolves with the same id and writes nothing more; another tenant is ERR_EVENT_ID_CONFLICT', async () => {
    const fake = createTestPublisher(OPTIONS);
    const eventId = uid('evt');
    const c = ctx({ eventId });
    for (const p of [fake, real]) {
      expect(await p.publish('equiv.dedup.tested', { n: 1 }, c)).toBe(eventId);
      expect(await p.publish('equiv.dedup.tested', { n: 2 }, c)).toBe(eventId);
      expect(await p.publishBatch([{ type: 'equiv.dedup.tested', data: {}, context: c }])).toEqual([eventId]);
    }
    expect(fake.published().map((e) => e.event.data)).toEqual([{ n: 1 }]);
    const entries = (await redis.xrange(stream, '-', '+')).filter(([, f]) => JSON.parse(f[1]).id === eventId);
    expect(entries.map(([, f]) => JSON.parse(f[1]).data)).toEqual([{ n: 1 }]);
    const other = { ...c, tenantId: uid('ws-other') };
    const codes = [];
    for (const p of [fake, real]) codes.push(await p.publish('equiv.dedup.tested', {}, other).catch((e) => e.code));
    expect(codes).toEqual(['ERR_EVENT_ID_CONFLICT', 'ERR_EVENT_ID_CONFLICT']);
  });

  test('bad options: the same ERR_CONFIG as connect()', async () => {
    for (const opts of [{ stream: 'has space' }, { maxPayloadBytes: -1 }, { source: '' }, { nope: 1 }, { retention: { maxAgeMs: 1, maxLen: 1 } }]) {
      let fakeErr;
      try {
        createTestPublisher(opts);
      } catch (e) {
        fakeErr = e;
      }
      const realErr = await EventPublisher.connect({ databaseUrl: DATABASE_URL, redisUrl: REDIS_URL, ...opts }).then(
        (p) => p.close(),
        (e) => e,
      );
      expect(fakeErr).toBeInstanceOf(EventPublisherError);
      expect({ code: fakeErr.code, message: fakeErr.message }).toEqual({ code: realErr.code, message: realErr.message });
    }
  });

  test('maxPayloadBytes and source options shape validation and envelopes as on the real one', async () => {
    const fake = createTestPublisher({ maxPayloadBytes: 64, source: 'small' });
    const err = await fake.publish('equiv.size.checked', { s: 'x'.repeat(100) }, ctx()).catch((e) => e);
    expect(err.code).toBe('ERR_PAYLOAD_TOO_LARGE');
    await fake.publish('equiv.size.checked', { s: 'x' }, ctx());
    expect(fake.published()[0].event.source).toBe('small');
  });

  test('failNext: a definite failure writes nothing; an outcome-unknown one writes and a retry with the same eventId converges', async () => {
    const fake = createTestPublisher();
    fake.failNext('ERR_REDIS');
    const e1 = await fake.publish('equiv.fail.injected', {}, ctx()).catch((e) => e);
    expect(e1).toBeInstanceOf(EventPublisherError);
    expect({ code: e1.code, outcomeUnknown: e1.outcomeUnknown }).toEqual({ code: 'ERR_REDIS', outcomeUnknown: false });
    expect(fake.published()).toEqual([]);

    const c = ctx({ eventId: uid('evt') });
    fake.failNext('ERR_TIMEOUT', { outcomeUnknown: true });
    const e2 = await fake.publish('equiv.fail.injected', { try: 1 }, c).catch((e) => e);
    expect({ code: e2.code, outcomeUnknown: e2.outcomeUnknown }).toEqual({ code: 'ERR_TIMEOUT', outcomeUnknown: true });
    expect(await fake.publish('equiv.fail.injected', { try: 2 }, c)).toBe(c.eventId);
    expect(fake.published().map((e) => e.event.data)).toEqual([{ try: 1 }]);

    // Bad input is still refused as bad input, and does not use up the injected failure.
    fake.failNext('ERR_DATABASE');
    expect((await fake.publish('Bad Type', {}, ctx()).catch((e) => e)).code).toBe('ERR_INVALID_EVENT');
    expect((await fake.publishBatch([{ type: 'equiv.fail.injected', data: {}, context: ctx() }]).catch((e) => e)).code).toBe('ERR_DATABASE');
    expect(() => fake.failNext('boom')).toThrow(TypeError);
  });

  test('delay: publishes settle after the delay; close() waits for them, then ERR_CLOSED as on the real one', async () => {
    const fake = createTestPublisher().delay(150);
    const t0 = Date.now();
    const pending = fake.publish('equiv.delay.applied', {}, ctx());
    expect(fake.published()).toHaveLength(0);
    await fake.close();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    expect(await pending).toMatch(CUID2);
    expect(fake.published()).toHaveLength(1);
    const { p } = await connect(OPTIONS);
    await p.close();
    const errs = [];
    for (const x of [fake, p]) errs.push(await x.publish('equiv.delay.applied', {}, ctx()).catch((e) => `${e.code}: ${e.message}`));
    expect(errs[0]).toBe(errs[1]);
    expect(errs[0]).toMatch(/^ERR_CLOSED/);
  });

  test('clear() forgets entries and eventIds; health() is healthy until close()', async () => {
    const fake = createTestPublisher({ stream: 'unit:events' });
    const c = ctx({ eventId: uid('evt') });
    await fake.publish('equiv.clear.tested', {}, c);
    expect(fake.published()[0]).toMatchObject({ stream: 'unit:events', fields: ['event', expect.any(String)] });
    fake.clear();
    expect(fake.published()).toEqual([]);
    await fake.publish('equiv.clear.tested', {}, c);
    expect(fake.published()).toHaveLength(1);
    expect(await fake.health()).toEqual({ redis: true, database: true, circuit: 'closed', inFlightBytes: 0, outbox: { pending: 0, oldestAgeMs: 0 } });
    await fake.close();
    expect(await fake.health()).toEqual({ redis: false, database: false, circuit: 'closed', inFlightBytes: 0, outbox: { pending: 0, oldestAgeMs: 0 } });
  });
});
