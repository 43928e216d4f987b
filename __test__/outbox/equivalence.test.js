'use strict';
// Issue 22: the fuzz corpus through stage() + commit + dispatch() gives what publish() gives: the
// same outcome, error code and message for every case (thrown synchronously by stage, rejected by
// publish), and for the good ones byte-identical envelopes (after the placeholders for what each
// call generates itself), the same row values, each row holding its entry's ID. The staged side
// uses a database of its own (a repeated caller eventId then behaves alike on both sides).

const Redis = require('ioredis');
const { Client } = require('pg');
const { EventPublisher } = require('../..');
const { DATABASE_URL, REDIS_URL, uid, ensureDatabase } = require('../support/stores');
const { gen } = require('../support/fuzz-corpus');

jest.setTimeout(180_000);

const SEED = Number(process.env.EQUIV_SEED || 20261201);
const CASES = Number(process.env.EQUIV_CASES || 300);
const STAGED_URL = (() => {
  const u = new URL(DATABASE_URL);
  u.pathname = `${u.pathname}_staged`;
  return u.toString();
})();
const OPTIONS = { source: 'equiv-default', logLevel: 'off', relay: false };
let direct;
let staged;
let redis;
let dbA;
let dbB;
const streams = { a: uid('equiv:publish'), b: uid('equiv:staged') };

beforeAll(async () => {
  await ensureDatabase();
  await ensureDatabase(STAGED_URL);
  direct = await EventPublisher.connect({ ...OPTIONS, stream: streams.a, redisUrl: REDIS_URL, databaseUrl: DATABASE_URL });
  staged = await EventPublisher.connect({ ...OPTIONS, stream: streams.b, redisUrl: REDIS_URL, databaseUrl: STAGED_URL });
  redis = new Redis(REDIS_URL);
  dbA = new Client({ connectionString: DATABASE_URL });
  dbB = new Client({ connectionString: STAGED_URL });
  await dbA.connect();
  await dbB.connect();
});

afterAll(async () => {
  await Promise.all([direct && direct.close(), staged && staged.close()]);
  if (redis) {
    await redis.del(streams.a, streams.b);
    redis.disconnect();
  }
  await Promise.all([dbA && dbA.end(), dbB && dbB.end()]);
});

function viaPublish(tc) {
  const p = tc.batch ? direct.publishBatch(tc.events) : direct.publish(tc.events[0].type, tc.events[0].data, tc.events[0].context).then((id) => [id]);
  return p.then((ids) => ({ ids }), (err) => ({ err }));
}

async function viaStage(tc) {
  let s;
  try {
    s = tc.batch ? staged.stageBatch(tc.events) : staged.stage(tc.events[0].type, tc.events[0].data, tc.events[0].context);
  } catch (err) {
    return { err };
  }
  await dbB.query(s.statement.text, s.statement.values); // autocommit: the commit
  await staged.dispatch(s);
  return { ids: [...s.eventIds] };
}

function normalized(json, ev) {
  const e = JSON.parse(json);
  let out = json.replace(`"timestamp":"${e.timestamp}"`, '"timestamp":"T"');
  const c = ev.context;
  if (!(typeof c.eventId === 'string')) out = out.replace(`{"id":${JSON.stringify(e.id)}`, '{"id":"ID"');
  if (!c.correlationId) out = out.replace(`"correlationId":${JSON.stringify(e.correlationId)}`, '"correlationId":"C"');
  return out;
}

const rowFields = (r, ev) => ({
  type: r.type,
  source: r.source,
  tenant_id: r.tenant_id,
  correlation_id: ev.context.correlationId ? r.correlation_id : 'C',
  status: r.status,
  attempts: r.attempts,
});

test(`${CASES} fuzz cases (seed ${SEED}): stage + commit + dispatch gives publish's outcome, code, message, envelope bytes and rows`, async () => {
  const { testCase } = gen(SEED);
  const failures = [];
  const last = { a: '0-0', b: '0-0' };
  let good = 0;
  for (let i = 0; i < CASES; i++) {
    const tc = testCase(i);
    const problems = [];
    const a = await viaPublish(tc);
    const b = await viaStage(tc);
    if (Boolean(a.err) !== Boolean(b.err)) {
      problems.push(`publish ${a.err ? `rejected ${a.err.code}: ${a.err.message}` : 'published'}, stage ${b.err ? `threw ${b.err.code}: ${b.err.message}` : 'staged'}`);
    } else if (a.err) {
      if (a.err.code !== b.err.code || a.err.message !== b.err.message) problems.push(`publish ${a.err.code}: ${a.err.message} / stage ${b.err.code}: ${b.err.message}`);
      if (b.err.name !== 'EventPublisherError') problems.push(`stage threw a ${b.err.name}`);
    } else {
      good++;
      const read = async (k) => {
        const entries = await redis.xrange(streams[k], `(${last[k]}`, '+');
        if (entries.length) last[k] = entries[entries.length - 1][0];
        return entries;
      };
      const [ea, eb] = [await read('a'), await read('b')];
      if (ea.length !== eb.length) problems.push(`entries: publish ${ea.length}, staged ${eb.length}`);
      for (let k = 0; k < Math.min(ea.length, eb.length); k++) {
        const ev = tc.events[k];
        if (normalized(ea[k][1][1], ev) !== normalized(eb[k][1][1], ev)) problems.push(`event ${k}: envelopes differ`);
        const id = JSON.parse(eb[k][1][1]).id;
        if (id !== b.ids[k]) problems.push(`staged entry ${k} is not event ${b.ids[k]}`);
        const [ra, rb] = await Promise.all([
          dbA.query('SELECT *, status::text AS status FROM event_metadata WHERE event_id = $1', [a.ids[k]]),
          dbB.query('SELECT *, status::text AS status FROM event_metadata WHERE event_id = $1', [id]),
        ]);
        if (JSON.stringify(rowFields(ra.rows[0], ev)) !== JSON.stringify(rowFields(rb.rows[0], ev))) problems.push(`rows differ: ${JSON.stringify(rowFields(rb.rows[0], ev))}`);
        if (rb.rows[0].stream_id !== eb[k][0]) problems.push('staged row stream_id is not its entry id');
        if (new Date(rb.rows[0].created_at).toISOString() !== JSON.parse(eb[k][1][1]).timestamp) problems.push('created_at is not the envelope timestamp');
      }
    }
    if (problems.length) failures.push({ case: i, batch: tc.batch, problems: problems.slice(0, 3) });
  }
  expect(good).toBeGreaterThan(CASES / 4);
  expect(failures).toEqual([]);
});
