'use strict';
// The app shuts down cleanly: after app.close() (or SIGTERM with enableShutdownHooks) the publisher
// is closed and nothing it opened keeps the process alive.
const path = require('node:path');
const { spawn } = require('node:child_process');
const { Pool } = require('pg');
const { EventPublisher } = require('@hyvve/event-publisher');
const h = require('./helpers');

jest.setTimeout(60_000);

const STREAM = h.uid('hyvve:test:nest-shutdown');
const TENANT = h.uid('ws-shutdown');
let pool;

beforeAll(async () => {
  h.loadExample(); // compiled before the child processes use it
  pool = new Pool({ connectionString: h.DATABASE_URL, max: 1 });
  await EventPublisher.migrate({ databaseUrl: h.DATABASE_URL });
  await h.loadExample().ensureApprovalItemsTable(pool);
});

afterAll(async () => {
  await pool.query('DELETE FROM event_metadata WHERE tenant_id = $1', [TENANT]);
  await pool.query('DELETE FROM approval_items WHERE workspace_id = $1', [TENANT]);
  await pool.end();
  const { Redis } = require('ioredis');
  const redis = new Redis(h.REDIS_URL);
  await redis.del(STREAM);
  redis.disconnect();
});

/** Runs the fixture; resolves to its JSON lines, exit code/signal, and ms from `closed` to exit. */
function runFixture(mode, { onLine } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'boot-and-close.js'), mode], {
      cwd: h.ROOT,
      env: { ...process.env, REDIS_URL: h.REDIS_URL, DATABASE_URL: h.DATABASE_URL, TEST_STREAM: STREAM, TEST_TENANT: TENANT },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines = [];
    let closedAt = 0;
    let buffered = '';
    let stderr = '';
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.stdout.on('data', (chunk) => {
      buffered += chunk;
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = JSON.parse(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
        lines.push(line);
        if (line.closed) closedAt = Date.now();
        if (onLine) onLine(line, child);
      }
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(killer);
      resolve({ lines, code, signal, stderr, exitAfterCloseMs: closedAt ? Date.now() - closedAt : null });
    });
  });
}

async function expectPublishedOnce(approvalId) {
  const { rows } = await pool.query(
    `SELECT m.status::text AS status, m.stream_id FROM event_metadata m WHERE m.tenant_id = $1 AND m.type = 'approval.item.requested'`,
    [TENANT],
  );
  expect(rows.some((r) => r.status === 'PENDING' && /^\d+-\d+$/.test(r.stream_id))).toBe(true);
  const item = await pool.query('SELECT status FROM approval_items WHERE id = $1', [approvalId]);
  expect(item.rows).toEqual([{ status: 'pending' }]);
}

test('after app.close() the process exits by itself within a few seconds', async () => {
  const run = await runFixture('close');
  expect(run.stderr).toBe('');
  expect(run.lines[0]).toMatchObject({ booted: true });
  expect(run.lines[1]).toEqual({ closed: true, afterClose: 'ERR_CLOSED' });
  expect(run.code).toBe(0);
  expect(run.exitAfterCloseMs).toBeLessThan(3000);
  await expectPublishedOnce(run.lines[0].approvalId);
});

test('with enableShutdownHooks, SIGTERM closes the publisher and the process ends', async () => {
  const run = await runFixture('signal', {
    onLine: (line, child) => {
      if (line.waiting) child.kill('SIGTERM');
    },
  });
  expect(run.lines.map((l) => Object.keys(l)[0])).toEqual(['booted', 'waiting', 'closed']);
  expect(run.lines[2]).toEqual({ closed: true, afterClose: 'ERR_CLOSED' });
  // Nest re-sends the signal after closing the app.
  expect(run.signal).toBe('SIGTERM');
  expect(run.exitAfterCloseMs).toBeLessThan(3000);
});
