'use strict';
// Shared by the NestJS tests: store URLs, the compiled approvals example, stream and row readers.
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { REDIS_URL, uid, freePort, waitFor, startRedis } = require('../support/stores');

const ROOT = path.resolve(__dirname, '..', '..');
/** The NestJS tests use the `test` database (the core tests have their own). */
const DATABASE_URL = process.env.TEST_NEST_DATABASE_URL || 'postgresql://root@127.0.0.1:5432/test';
const EXAMPLE = path.join(ROOT, 'examples', 'approvals');

const ENVELOPE_KEYS = ['id', 'type', 'source', 'timestamp', 'correlationId', 'tenantId', 'userId', 'version', 'data'];
const CUID2 = /^[a-z][a-z0-9]{23}$/;
const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const STREAM_ID = /^\d+-\d+$/;

function newestMtime(dir) {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : fs.statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * The compiled approvals example (examples/approvals/dist). `npm run test:nest` compiles it first;
 * when it is missing or older than its sources (a bare `jest` run), it is compiled here, under a
 * lock so that parallel test files do not compile it at the same time.
 */
function loadExample() {
  const dist = path.join(EXAMPLE, 'dist');
  const lock = path.join(EXAMPLE, '.compile-lock');
  const stale = () =>
    !fs.existsSync(path.join(dist, 'index.js')) ||
    newestMtime(path.join(EXAMPLE, 'src')) > newestMtime(dist);
  if (stale()) {
    const deadline = Date.now() + 120_000;
    for (;;) {
      try {
        fs.mkdirSync(lock);
        break;
      } catch {
        if (Date.now() > deadline) throw new Error(`stale lock ${lock}`);
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
      }
    }
    try {
      if (stale()) {
        execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', EXAMPLE], { cwd: ROOT, stdio: 'inherit' });
      }
    } finally {
      fs.rmdirSync(lock);
    }
  }
  return require(dist);
}

/** Stream entries after `afterId` (exclusive), as [id, fields]. */
async function entriesAfter(redis, stream, afterId) {
  return redis.xrange(stream, afterId === '0-0' ? '-' : `(${afterId}`, '+');
}

/** The last entry id of a stream, or '0-0'. */
async function lastId(redis, stream) {
  const [last] = await redis.xrevrange(stream, '+', '-', 'COUNT', 1);
  return last ? last[0] : '0-0';
}

/**
 * Checks one stream entry as the platform's readers see it (COMPAT.md §1-§2) and returns the
 * parsed event. `expected.data` is the payload as the caller passed it (Dates included): the
 * entry's JSON must be byte-identical to JSON.stringify of the envelope built around it.
 */
function expectEnvelope(entry, expected) {
  const [streamId, fields] = entry;
  expect(streamId).toMatch(STREAM_ID);
  expect(fields).toHaveLength(2);
  expect(fields[0]).toBe('event');
  const event = JSON.parse(fields[1]);
  expect(Object.keys(event)).toEqual(ENVELOPE_KEYS);
  expect(event.id).toMatch(CUID2);
  expect(event.timestamp).toMatch(ISO_MS);
  expect(Math.abs(Date.parse(event.timestamp) - Date.now())).toBeLessThan(60_000);
  if (expected.correlationId) expect(event.correlationId).toBe(expected.correlationId);
  else expect(event.correlationId).toMatch(CUID2);
  const envelope = {
    id: event.id,
    type: expected.type,
    source: expected.source,
    timestamp: event.timestamp,
    correlationId: event.correlationId,
    tenantId: expected.tenantId,
    userId: expected.userId,
    version: '1.0',
    data: expected.data,
  };
  expect(fields[1]).toBe(JSON.stringify(envelope));
  return event;
}

/** Checks the event's event_metadata row (COMPAT.md §3): PENDING, the entry's real stream id. */
async function expectMetadataRow(pool, event, streamId) {
  const { rows } = await pool.query('SELECT * FROM event_metadata WHERE event_id = $1', [event.id]);
  expect(rows).toHaveLength(1);
  expect(rows[0]).toMatchObject({
    event_id: event.id,
    stream_id: streamId,
    type: event.type,
    source: event.source,
    tenant_id: event.tenantId,
    correlation_id: event.correlationId,
    status: 'PENDING',
    attempts: 0,
    last_error: null,
    processed_at: null,
  });
  expect(typeof rows[0].id).toBe('string');
  expect(rows[0].id.length).toBeGreaterThan(0);
  return rows[0];
}

/** A LoggerService whose calls are recorded: `records(context)` lists [method, message, ...rest]. */
function captureLogger() {
  const calls = [];
  const logger = {};
  for (const method of ['log', 'error', 'warn', 'debug', 'verbose', 'fatal']) {
    logger[method] = (message, ...rest) => calls.push([method, message, ...rest]);
  }
  logger.calls = calls;
  logger.records = (context) => calls.filter((call) => call[call.length - 1] === context);
  return logger;
}

module.exports = {
  ROOT,
  REDIS_URL,
  DATABASE_URL,
  EXAMPLE,
  ENVELOPE_KEYS,
  CUID2,
  uid,
  freePort,
  waitFor,
  startRedis,
  loadExample,
  entriesAfter,
  lastId,
  expectEnvelope,
  expectMetadataRow,
  captureLogger,
};
