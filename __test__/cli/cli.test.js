'use strict';
// The operator's CLI (bin/hyvve-event-publisher.js) run as a child process against the real stores:
// publish, tail (filters, --from, --follow), stats (a consumer group's pending and lag, rows by
// status), reconcile (an orphan PENDING row becomes FAILED), migrate; --help, --json, exit codes.
// It uses a database of its own (reconcile settles every PENDING row of its table).
const path = require('node:path');
const { spawn } = require('node:child_process');
const Redis = require('ioredis');
const { EventPublisher } = require('../..');
const { DATABASE_URL, ADMIN_URL, REDIS_URL, uid, ensureDatabase, pgClient, freePort } = require('../support/stores');

jest.setTimeout(60_000);

const BIN = path.join(__dirname, '..', '..', 'bin', 'hyvve-event-publisher.js');
const CLI_DB = (() => {
  const u = new URL(DATABASE_URL);
  u.pathname = `${u.pathname.slice(1)}_cli`;
  return u.toString();
})();
const STREAM = uid('cli:stream');
const TENANT = uid('ws-cli');
const CUID2 = /^[a-z][a-z0-9]{23}$/;

let redis;
let db;

/** Runs the CLI; resolves to { code, stdout, stderr }. The environment carries no store URLs. */
function cli(args, { env = {}, onStdout, timeoutMs = 20_000 } = {}) {
  return new Promise((resolve) => {
    const base = { ...process.env };
    for (const k of ['REDIS_URL', 'REDIS_HOST', 'REDIS_PORT', 'REDIS_PASSWORD', 'DATABASE_URL']) delete base[k];
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
      if (onStdout) onStdout(stdout, child);
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

const STORES = () => ['--redis-url', REDIS_URL, '--database-url', CLI_DB, '--stream', STREAM];
const jsonLines = (text) => text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));

beforeAll(async () => {
  await ensureDatabase(CLI_DB, ADMIN_URL);
  redis = new Redis(REDIS_URL);
  db = await pgClient(CLI_DB);
  await db.query('DELETE FROM event_metadata');
});

afterAll(async () => {
  if (redis) {
    await redis.del(STREAM);
    redis.disconnect();
  }
  if (db) await db.end();
});

describe('usage', () => {
  test('--help of the CLI and of each command exits 0 and shows the usage', async () => {
    const top = await cli(['--help']);
    expect(top.code).toBe(0);
    for (const c of ['publish', 'tail', 'stats', 'reconcile', 'migrate']) expect(top.stdout).toContain(`  ${c}`);
    for (const c of ['publish', 'tail', 'stats', 'reconcile', 'migrate']) {
      const r = await cli([c, '--help']);
      expect({ code: r.code, usage: r.stdout.split('\n')[0].startsWith(`Usage: hyvve-event-publisher ${c}`), global: r.stdout.includes('--redis-url') }).toEqual({ code: 0, usage: true, global: true });
    }
  });

  test.each([
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['tail', '--bogus'], /Unknown option '--bogus'/],
    [['publish', 'a.b', 'not json', '--tenant', 't', '--user', 'u'], /<data-json> is not JSON/],
    [['publish', 'a.b', '{}', '--user', 'u'], /needs --tenant and --user/],
    [['reconcile', '--older-than', 'soon'], /--older-than takes a duration/],
    [['tail', '--since', '1m', '--from', '1-0'], /--since or --from, not both/],
    [['stats', 'extra'], /takes no arguments/],
  ])('%j exits 2 with the reason', async (args, reason) => {
    const r = await cli([...args, ...STORES()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(reason);
    expect(r.stdout).toBe('');
  });

  test('with --json a usage error is one JSON object on stderr', async () => {
    const r = await cli(['tail', '--count', '0', '--json', ...STORES()]);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stderr)).toEqual({ error: { code: 'ERR_USAGE', message: expect.stringContaining('--count') } });
  });
});

describe('against the stores', () => {
  const ids = [];

  test('publish prints the event id; the entry and its row are there', async () => {
    const r = await cli(['publish', 'approval.item.approved', '{"approvalId":"a1","title":"T"}', '--tenant', TENANT, '--user', 'u1', '--source', 'ops', ...STORES()]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const id = r.stdout.trim();
    expect(id).toMatch(CUID2);
    ids.push(id);
    const [[entryId, fields]] = await redis.xrange(STREAM, '-', '+');
    expect(JSON.parse(fields[1])).toMatchObject({ id, type: 'approval.item.approved', source: 'ops', tenantId: TENANT, userId: 'u1', data: { approvalId: 'a1', title: 'T' } });
    const { rows } = await db.query('SELECT stream_id, status::text AS status FROM event_metadata WHERE event_id = $1', [id]);
    expect(rows).toEqual([{ stream_id: entryId, status: 'PENDING' }]);
  });

  test('publish --json --event-id, from the environment (DATABASE_URL, REDIS_HOST/REDIS_PORT) instead of flags', async () => {
    const eventId = uid('evt');
    const { port } = new URL(REDIS_URL);
    const r = await cli(['publish', 'pm.task.phase_changed', '{"taskId":"t1"}', '--tenant', `${TENANT}-b`, '--user', 'u2', '--event-id', eventId, '--stream', STREAM, '--json'], {
      env: { DATABASE_URL: CLI_DB, REDIS_HOST: '127.0.0.1', REDIS_PORT: port || '6379' },
    });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ eventId, stream: STREAM });
    ids.push(eventId);
  });

  test('a publish the library refuses exits 1 with its code and writes nothing', async () => {
    const before = await redis.xlen(STREAM);
    const r = await cli(['publish', 'Not A Type', '{}', '--tenant', TENANT, '--user', 'u', ...STORES(), '--json']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stderr).error.code).toBe('ERR_INVALID_EVENT');
    expect(await redis.xlen(STREAM)).toBe(before);
  });

  test('tail prints each entry joined with its row; --json, --tenant, --type and --from filter', async () => {
    const human = await cli(['tail', ...STORES()]);
    expect(human.code).toBe(0);
    const lines = human.stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(new RegExp(`^\\d+-\\d+  \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z  approval.item.approved  tenant=${TENANT}  id=${ids[0]}  PENDING/0  \\{"approvalId":"a1","title":"T"\\}$`));

    const all = jsonLines((await cli(['tail', '--json', ...STORES()])).stdout);
    expect(all.map((e) => e.eventId)).toEqual(ids);
    expect(all[1]).toEqual({ entryId: expect.stringMatching(/^\d+-\d+$/), time: expect.any(String), type: 'pm.task.phase_changed', tenantId: `${TENANT}-b`, eventId: ids[1], data: { taskId: 't1' }, status: 'PENDING', attempts: 0 });
    expect(all[1].time).toBe(new Date(Number(all[1].entryId.split('-')[0])).toISOString());

    expect(jsonLines((await cli(['tail', '--json', '--tenant', TENANT, ...STORES()])).stdout).map((e) => e.eventId)).toEqual([ids[0]]);
    expect(jsonLines((await cli(['tail', '--json', '--type', 'pm.', ...STORES()])).stdout).map((e) => e.eventId)).toEqual([ids[1]]);
    expect(jsonLines((await cli(['tail', '--json', '--from', all[1].entryId, ...STORES()])).stdout).map((e) => e.eventId)).toEqual([ids[1]]);
    expect(jsonLines((await cli(['tail', '--json', '--count', '1', ...STORES()])).stdout).map((e) => e.eventId)).toEqual([ids[1]]);
    expect((await cli(['tail', '--json', '--since', '1ms', ...STORES()])).stdout).toBe('');
  });

  test('tail --follow prints entries published while it runs; SIGINT ends it with 0', async () => {
    const publisher = await EventPublisher.connect({ redisUrl: REDIS_URL, databaseUrl: CLI_DB, stream: STREAM, logLevel: 'off' });
    let published = null;
    const run = cli(['tail', '--follow', '--json', '--since', '1ms', ...STORES()], {
      onStdout: (out, child) => {
        if (published && out.includes(published)) child.kill('SIGINT');
      },
    });
    // Give it time to start blocking, then publish.
    await new Promise((r) => setTimeout(r, 1500));
    published = await publisher.publish('approval.item.requested', { approvalId: 'f1' }, { tenantId: TENANT, userId: 'u3' });
    ids.push(published);
    const r = await run;
    await publisher.close();
    expect(r.signal).toBe(null);
    expect(r.code).toBe(0);
    expect(jsonLines(r.stdout)).toEqual([expect.objectContaining({ eventId: published, type: 'approval.item.requested', status: 'PENDING', attempts: 0 })]);
  });

  test('stats: length, first and last entry, a consumer group with pending and lag, rows by status', async () => {
    await redis.xgroup('CREATE', STREAM, 'workers', '0');
    await redis.xreadgroup('GROUP', 'workers', 'w1', 'COUNT', 1, 'STREAMS', STREAM, '>');
    await db.query(`UPDATE event_metadata SET status = 'COMPLETED' WHERE event_id = $1`, [ids[0]]);
    const r = await cli(['stats', '--json', ...STORES()]);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.stream).toMatchObject({ key: STREAM, exists: true, length: 3, firstEntry: { eventId: ids[0] }, lastEntry: { eventId: ids[2] } });
    expect(s.stream.groups).toEqual([{ name: 'workers', consumers: 1, pending: 1, lastDeliveredId: s.stream.firstEntry.entryId, lag: 2 }]);
    expect(s.rows.lastHour).toEqual({ PENDING: 2, PROCESSING: 0, COMPLETED: 1, FAILED: 0, DLQ: 0 });
    expect(s.rows.lastDay).toEqual(s.rows.lastHour);
    expect(s.outbox).toEqual({ pending: 0, oldestAgeMs: 0 }); // issue 22: the outbox backlog of this stream

    const human = await cli(['stats', ...STORES()]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`stream ${STREAM}: 3 entries`);
    expect(human.stdout).toMatch(/workers {2}consumers=1 {2}pending=1 {2}lag=2/);
    expect(human.stdout).toMatch(/COMPLETED +1 +1/);
    expect(human.stdout).toContain('outbox: 0 events committed, not yet appended');
  });

  test('stats of a stream that does not exist exits 0 and says so', async () => {
    const r = await cli(['stats', '--json', ...STORES().slice(0, 4), '--stream', uid('cli:none')]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).stream).toMatchObject({ exists: false, length: 0, groups: [] });
  });

  test('reconcile marks an orphan PENDING row FAILED and prints the report', async () => {
    const orphan = uid('orphan');
    await db.query(
      `INSERT INTO event_metadata (id, event_id, stream_id, type, source, tenant_id, created_at)
       VALUES ($1, $1, $2, 'approval.item.approved', 'ops', $3, (now() AT TIME ZONE 'UTC') - interval '5 minutes')`,
      [orphan, `${Date.now() - 300_000}-7`, TENANT],
    );
    const r = await cli(['reconcile', '--older-than', '2m', '--within', '1h', '--json', ...STORES()]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ stream: STREAM, olderThanMs: 120_000, withinMs: 3_600_000, examined: 1, repaired: 0, failed: 1 });
    const { rows } = await db.query('SELECT status::text AS status, last_error FROM event_metadata WHERE event_id = $1', [orphan]);
    expect(rows).toEqual([{ status: 'FAILED', last_error: 'never published' }]);
    const again = await cli(['reconcile', '--older-than', '2m', '--within', '1h', ...STORES()]);
    expect(again).toMatchObject({ code: 0, stdout: 'examined 0 PENDING rows, repaired 0, marked 0 FAILED\n' });
  });

  test('migrate --json on a database that has the table', async () => {
    const r = await cli(['migrate', '--json', '--database-url', CLI_DB]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ created: false });
  });

  test('a store that is down: exit 1 with ERR_REDIS / ERR_DATABASE, and the password never printed', async () => {
    const port = await freePort();
    const redisDown = await cli(['stats', '--redis-url', `redis://:s3cret-pw@127.0.0.1:${port}`, '--database-url', CLI_DB, '--stream', STREAM]);
    expect(redisDown.code).toBe(1);
    expect(redisDown.stderr).toMatch(new RegExp(`^ERR_REDIS: cannot connect to Redis at 127.0.0.1:${port}`));
    const dbUrl = new URL(CLI_DB);
    dbUrl.port = String(port);
    dbUrl.password = 's3cret-pw';
    const pgDown = await cli(['tail', '--json', '--redis-url', REDIS_URL, '--database-url', dbUrl.toString(), '--stream', STREAM]);
    expect(pgDown.code).toBe(1);
    expect(JSON.parse(pgDown.stderr).error.code).toBe('ERR_DATABASE');
    const pubDown = await cli(['publish', 'a.b', '{}', '--tenant', 't', '--user', 'u', '--redis-url', `redis://:s3cret-pw@127.0.0.1:${port}`, '--database-url', CLI_DB]);
    expect(pubDown.code).toBe(1);
    expect(pubDown.stderr).toMatch(/^ERR_REDIS/);
    for (const r of [redisDown, pgDown, pubDown]) expect(r.stdout + r.stderr).not.toContain('s3cret-pw');
  });
});
