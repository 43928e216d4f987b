'use strict';
// Fault injection (issue 4): a load of FAULT_EVENTS events (default 20,000; 64 operations in
// flight; mixed publish / publishBatch of 1–20 events; every event with a caller eventId) runs
// against a private Redis and a private Postgres while, one after the other (each fault starts when
// the load reaches its share of the events; while a fault lasts the load is held to FAULT_RATE
// events/s so that a fast-failing fault does not use up the whole load):
//   1. Redis is killed (SIGKILL) and restarted on the same port (AOF, appendfsync always, so the
//      stream survives like a real server's would);
//   2. Postgres is stopped (immediate) and started again;
//   3. Redis is paused with SIGSTOP past timeoutMs, then continued;
//   4. Postgres refuses writes: REVOKE INSERT, UPDATE from the publisher's (non-superuser) role;
//   5. the database turns read-only (ALTER DATABASE … default_transaction_read_only, sessions
//      terminated so that the pool reconnects into it), then writable again.
// Every rejected operation is then retried with the same events and eventIds until it resolves
// (bounded), and the whole stream and table are checked: one entry and one row per event, row
// stream_id = entry id, no entry without a row, no row without an entry, no duplicates.
// A second test kills a publishing child process with SIGKILL and checks what reconcile() does.
//
// The sequence runs FAULT_ROUNDS times (default 3) over the load, with seeded random durations.
// Knobs: FAULT_EVENTS (load size, default 20,000 per round), FAULT_RATE (events/s while a fault lasts, default 600),
// FAULT_SEED (replay a run), FAULT_CIRCUIT (circuitThreshold; default 0 so that every operation
// reaches the stores instead of being refused by the breaker).

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Client } = require('pg');
const { EventPublisher } = require('../..');
const { uid, ensureDatabase, startPostgres, privateRedis, readStreamPaged, prng } = require('../support/stores');

const ROOT = path.resolve(__dirname, '..', '..');
const ROUNDS = Number(process.env.FAULT_ROUNDS || 3);
const N = Number(process.env.FAULT_EVENTS || 20_000 * ROUNDS);
const FAULT_RATE = Number(process.env.FAULT_RATE || 600);
const SEED = Number(process.env.FAULT_SEED || Math.floor(Math.random() * 2 ** 31));
const CIRCUIT = Number(process.env.FAULT_CIRCUIT || 0);
const TIMEOUT_MS = 1500;
const CONCURRENCY = 64;
const ROLE = 'chaos_pub';

jest.setTimeout(Math.max(180_000, N * 3)); // ~40 s at the default size here

const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

let pg; // private Postgres
let rs; // private Redis
let aofDir;
const cleanup = [];

async function admin(url = pg.url) {
  const c = new Client({ connectionString: url });
  c.on('error', () => {});
  await c.connect();
  return c;
}

async function adminQuery(sql, params, url) {
  const c = await admin(url);
  try {
    return await c.query(sql, params);
  } finally {
    await c.end().catch(() => {});
  }
}

/** The publisher's role: a plain LOGIN role with row privileges on the table (not its owner). */
const roleUrl = (url) => {
  const u = new URL(url);
  u.username = ROLE;
  return u.toString();
};

/** Tries one INSERT as the publisher's role in a new session (rolled back); returns the error code or 'ok'. */
async function probeInsert() {
  const c = new Client({ connectionString: roleUrl(pg.url) });
  c.on('error', () => {});
  try {
    await c.connect();
    await c.query('BEGIN');
    await c.query(
      `INSERT INTO event_metadata (id, event_id, stream_id, type, source, tenant_id, created_at) VALUES ($1, $1, '0-0', 'probe.x', 'probe', 'probe', now())`,
      [uid('probe')],
    );
    await c.query('ROLLBACK');
    return 'ok';
  } catch (e) {
    return e.code || e.message;
  } finally {
    await c.end().catch(() => {});
  }
}

beforeAll(async () => {
  aofDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyvve-chaos-redis-'));
  [pg, rs] = await Promise.all([
    startPostgres(),
    privateRedis(['--appendonly', 'yes', '--appendfsync', 'always', '--dir', aofDir]),
  ]);
  await adminQuery(`CREATE ROLE ${ROLE} LOGIN`);
  await adminQuery(`GRANT SELECT, INSERT, UPDATE, DELETE ON event_metadata TO ${ROLE}`);
}, 120_000);

afterAll(async () => {
  for (const f of cleanup.reverse()) await f().catch(() => {});
  if (rs) {
    try {
      rs.resume();
    } catch {
      // not running
    }
    await rs.stop();
  }
  if (pg) await pg.destroy();
  if (aofDir) fs.rmSync(aofDir, { recursive: true, force: true });
});

test(`chaos: ${N} events under Redis/Postgres restarts, a Redis stall and refused writes converge to exactly one entry and one row each`, async () => {
  const rand = prng(SEED);
  const run = uid('chaos');
  const stream = `chaos:${run}`;
  const tenants = Array.from({ length: 8 }, (_, i) => `${run}-t${i}`);
  const logs = [];
  const p = await EventPublisher.connect({
    redisUrl: rs.url,
    databaseUrl: roleUrl(pg.url),
    stream,
    timeoutMs: TIMEOUT_MS,
    circuitThreshold: CIRCUIT,
    circuitCooldownMs: 500,
    logLevel: 'warn',
    logger: (e) => {
      if (logs.length < 50_000) logs.push(e);
    },
  });
  cleanup.push(() => p.close());

  // ---- the load ------------------------------------------------------------------------------
  const ops = [];
  const byEventId = new Map();
  let issued = 0;
  let settledOps = 0;
  let outstanding = 0;
  const t0 = Date.now();
  const makeEvent = (seq) => {
    const eventId = `${run}-e${seq}`;
    const e = {
      type: rand() < 0.5 ? 'chaos.item.created' : 'chaos.item.updated',
      data: { seq, pad: 'x'.repeat(Math.floor(rand() * 200)), n: rand(), at: new Date(t0 + seq) },
      context: { tenantId: tenants[seq % tenants.length], userId: `u${seq % 13}`, eventId, source: 'chaos' },
    };
    byEventId.set(eventId, e);
    return e;
  };
  const makeOp = () => {
    const batch = rand() < 0.5;
    const k = batch ? 1 + Math.floor(rand() * 20) : 1;
    const first = issued;
    const events = [];
    for (let i = 0; i < k && issued < N; i++) events.push(makeEvent(issued++));
    const op = { batch, first, events, ids: events.map((e) => e.context.eventId), ok: false, code: null, attempts: 0, errors: [] };
    ops.push(op);
    return op;
  };
  const call = (op) =>
    op.batch
      ? p.publishBatch(op.events)
      : p.publish(op.events[0].type, op.events[0].data, op.events[0].context).then((id) => [id]);
  const attempt = async (op) => {
    op.attempts++;
    const started = Date.now();
    try {
      const ids = await call(op);
      expect(ids).toEqual(op.ids);
      op.ok = true;
      op.code = null;
    } catch (err) {
      if (!err || !err.code) throw err;
      op.code = err.code;
      op.errors.push({ code: err.code, unknown: err.outcomeUnknown, at: Date.now(), ms: Date.now() - started, message: err.message });
    }
    return op.ok;
  };

  // ---- the faults, in sequence, while the load runs ----------------------------------------------
  const jitter = (lo, hi) => Math.round(lo + rand() * (hi - lo));
  const kinds = [
    ['restart Redis (SIGKILL, same port)', 0.1, () => rs.restart()],
    [
      'restart Postgres (immediate stop, start)',
      0.28,
      async () => {
        await pg.stop('immediate');
        await sleep(jitter(50, 800));
        await pg.start();
      },
    ],
    [
      'pause Redis (SIGSTOP past timeoutMs)',
      0.46,
      async () => {
        const ms = jitter(TIMEOUT_MS + 300, TIMEOUT_MS + 1500);
        rs.pause();
        try {
          await sleep(ms);
        } finally {
          rs.resume();
        }
        return { pausedMs: ms };
      },
    ],
    [
      'REVOKE INSERT, UPDATE',
      0.64,
      async () => {
        const ms = jitter(800, 2500);
        await adminQuery(`REVOKE INSERT, UPDATE ON event_metadata FROM ${ROLE}`);
        let probe;
        try {
          probe = await probeInsert();
          await sleep(ms);
        } finally {
          await adminQuery(`GRANT INSERT, UPDATE ON event_metadata TO ${ROLE}`);
        }
        return { probe, ms };
      },
    ],
    [
      'database read-only',
      0.82,
      async () => {
        const ms = jitter(800, 2500);
        const db = new URL(pg.url).pathname.slice(1);
        const kick = () =>
          adminQuery(`SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE usename = $1`, [ROLE], pg.adminUrl);
        await adminQuery(`ALTER DATABASE "${db}" SET default_transaction_read_only = on`, [], pg.adminUrl);
        let probe;
        let kicked;
        try {
          // The setting applies to new sessions only: end the pool's sessions so it reconnects.
          kicked = (await kick()).rows[0].n;
          probe = await probeInsert();
          await sleep(ms);
        } finally {
          await adminQuery(`ALTER DATABASE "${db}" RESET default_transaction_read_only`, [], pg.adminUrl);
          // Sessions opened during the window stay read-only: end them too (as a failover would).
          await kick();
        }
        return { probe, kicked, ms };
      },
    ],
  ];
  const schedule = [];
  for (let r = 0; r < ROUNDS; r++) for (const [name, at, fn] of kinds) schedule.push([`${name} #${r + 1}`, (r + at) / ROUNDS, fn, name]);
  const faultLog = [];
  let next = 0; // the next fault to start
  let active = false;
  let slot = 0; // rate limit while a fault is active
  const faults = (async () => {
    for (const [name, at, fn, kind] of schedule) {
      while (issued < at * N) await sleep(2);
      const rec = { name, kind, startMs: Date.now() - t0, issuedAtStart: issued, inFlightAtStart: outstanding, start: Date.now() };
      active = true;
      next++;
      try {
        rec.detail = (await fn()) || undefined;
      } finally {
        active = false;
      }
      rec.end = Date.now();
      rec.ms = rec.end - rec.start;
      rec.inFlightAtEnd = outstanding;
      rec.issuedAtEnd = issued;
      faultLog.push(rec);
    }
  })();

  const worker = async () => {
    while (issued < N) {
      // Do not run past the next fault's starting point before it has started ...
      while (next < schedule.length && issued >= schedule[next][1] * N) await sleep(2);
      if (issued >= N) return;
      const op = makeOp();
      // ... and while a fault lasts, hold the load to FAULT_RATE events/s.
      if (active) {
        const now = Date.now();
        const start = Math.max(slot, now);
        slot = start + (op.events.length * 1000) / FAULT_RATE;
        await sleep(start - now);
      }
      outstanding++;
      await attempt(op);
      outstanding--;
      settledOps++;
    }
  };

  await Promise.all([...Array.from({ length: CONCURRENCY }, worker), faults]);
  const loadMs = Date.now() - t0;

  const inWindow = (f) =>
    ops.flatMap((o) => o.errors).filter((e) => e.at >= f.start && e.at <= f.end + TIMEOUT_MS + 500);
  for (const f of faultLog) {
    const errs = inWindow(f);
    f.rejectedInWindow = {};
    for (const e of errs) f.rejectedInWindow[e.code] = (f.rejectedInWindow[e.code] || 0) + 1;
  }

  // A definite rejection (outcomeUnknown false) means the publish was not written: no entry, and
  // no row pointing at one (docs/guarantees.md's failure table; a PENDING row whose stream_id holds no entry is
  // its documented leftover when the undo's DELETE failed too). Checked before any retry.
  const definite = ops.filter((o) => !o.ok && !o.errors[o.errors.length - 1].unknown);
  const undoFailed = new Set(logs.filter((l) => /could not delete the rows/.test(l.msg)).flatMap((l) => l.eventIds || []));
  const definiteIds = new Set(definite.flatMap((o) => o.ids));
  const rc0 = await rs.client();
  const entriesBeforeRetry = await readStreamPaged(rc0, stream);
  rc0.disconnect();
  const definiteWithEntry = entriesBeforeRetry.map((e) => JSON.parse(e.raw).id).filter((id) => definiteIds.has(id));
  const entryAt = new Map(entriesBeforeRetry.map((e) => [e.id, JSON.parse(e.raw).id]));
  const pointsAtItsEntry = (r) => entryAt.get(r.stream_id) === r.event_id;
  const { rows: definiteRows } = await adminQuery('SELECT event_id, stream_id FROM event_metadata WHERE event_id = ANY($1)', [[...definiteIds]]);
  const definiteLeft = {
    operations: definite.length,
    events: definiteIds.size,
    withEntry: definiteWithEntry.length,
    withRowPointingAtAnEntry: definiteRows.filter(pointsAtItsEntry).length,
    withLeftoverRow: definiteRows.filter((r) => !pointsAtItsEntry(r)).length,
    // ... of which the publisher did not log "could not delete the rows" for (so not the documented case)
    withLeftoverRowUnlogged: definiteRows.filter((r) => !pointsAtItsEntry(r) && !undoFailed.has(r.event_id)).length,
    examples: definiteWithEntry.slice(0, 3).map((id) => ({ id, error: definite.find((o) => o.ids.includes(id)).errors.slice(-1)[0] })),
  };

  // ---- retry every rejected operation with the same eventIds -----------------------------------
  const firstTry = { ops: ops.length, events: N, resolvedOps: 0, resolvedEvents: 0, rejectedOps: 0, rejectedEvents: 0, byCode: {}, outcomeUnknown: 0 };
  for (const op of ops) {
    if (op.ok) {
      firstTry.resolvedOps++;
      firstTry.resolvedEvents += op.events.length;
    } else {
      firstTry.rejectedOps++;
      firstTry.rejectedEvents += op.events.length;
      firstTry.byCode[op.code] = (firstTry.byCode[op.code] || 0) + op.events.length;
      if (op.errors[0].unknown) firstTry.outcomeUnknown += op.events.length;
    }
  }
  const rejected = ops.filter((o) => !o.ok);
  const retryStarted = Date.now();
  const retryDeadline = retryStarted + 60_000;
  const retryCodes = {};
  let retryAttempts = 0;
  const queue = [...rejected];
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let op = queue.shift(); op; op = queue.shift()) {
        for (let i = 0; !op.ok && Date.now() < retryDeadline; i++) {
          retryAttempts++;
          if (!(await attempt(op))) {
            retryCodes[op.code] = (retryCodes[op.code] || 0) + 1;
            await sleep(Math.min(1000, 100 * 2 ** i));
          }
        }
      }
    }),
  );
  const unresolved = ops.filter((o) => !o.ok);
  const retryMs = Date.now() - retryStarted;

  // ---- read everything back ------------------------------------------------------------------
  const rc = await rs.client();
  const entries = await readStreamPaged(rc, stream);
  rc.disconnect();
  const { rows } = await adminQuery(
    `SELECT event_id, stream_id, status, type, source, tenant_id, correlation_id FROM event_metadata WHERE tenant_id LIKE $1`,
    [`${run}-%`],
  );
  const entriesOf = new Map();
  const unknownEntries = [];
  const badEntries = [];
  for (const e of entries) {
    const ev = JSON.parse(e.raw);
    const sent = byEventId.get(ev.id);
    if (!sent) {
      unknownEntries.push(ev.id);
      continue;
    }
    if (!entriesOf.has(ev.id)) entriesOf.set(ev.id, []);
    entriesOf.get(ev.id).push(e.id);
    if (ev.type !== sent.type || ev.tenantId !== sent.context.tenantId || JSON.stringify(ev.data) !== JSON.stringify(JSON.parse(JSON.stringify(sent.data)))) badEntries.push(ev.id);
  }
  const rowOf = new Map();
  const duplicateRows = [];
  for (const r of rows) {
    if (rowOf.has(r.event_id)) duplicateRows.push(r.event_id);
    rowOf.set(r.event_id, r);
  }
  const resolvedIds = ops.filter((o) => o.ok).flatMap((o) => o.ids);
  const missingEntry = resolvedIds.filter((id) => !entriesOf.has(id));
  const missingRow = resolvedIds.filter((id) => !rowOf.has(id));
  const duplicates = [...entriesOf].filter(([, ids]) => ids.length > 1).map(([id, ids]) => ({ id, ids }));
  const wrongStreamId = resolvedIds.filter((id) => rowOf.has(id) && entriesOf.has(id) && !entriesOf.get(id).includes(rowOf.get(id).stream_id));
  const entryIds = new Set(entries.map((e) => e.id));
  const orphanEntries = [...entriesOf].filter(([id, sids]) => !rowOf.has(id) || !sids.includes(rowOf.get(id).stream_id)).map(([id]) => id);
  const orphanRows = rows.filter((r) => !entryIds.has(r.stream_id) || !(entriesOf.get(r.event_id) || []).includes(r.stream_id));
  const pendingZero = rows.filter((r) => r.stream_id === '0-0');
  const heldByOtherEvent = rows.filter((r) => entryIds.has(r.stream_id) && !(entriesOf.get(r.event_id) || []).includes(r.stream_id));

  const report = {
    seed: SEED,
    events: N,
    operations: ops.length,
    loadMs,
    faultRate: FAULT_RATE,
    circuitThreshold: CIRCUIT,
    timeoutMs: TIMEOUT_MS,
    rounds: ROUNDS,
    faults: faultLog.map(({ name, startMs, ms, issuedAtStart, issuedAtEnd, inFlightAtStart, inFlightAtEnd, detail, rejectedInWindow }) => ({ name, startMs, ms, issuedAtStart, issuedAtEnd, inFlightAtStart, inFlightAtEnd, detail, rejectedInWindow })),
    published: firstTry.resolvedEvents,
    rejected: firstTry.rejectedEvents,
    rejectedByCode: firstTry.byCode,
    rejectedOutcomeUnknown: firstTry.outcomeUnknown,
    retried: { operations: rejected.length, events: rejected.reduce((n, o) => n + o.events.length, 0), attempts: retryAttempts, failedAttemptsByCode: retryCodes, ms: retryMs },
    definiteRejectionsLeft: definiteLeft,
    unresolved: unresolved.reduce((n, o) => n + o.events.length, 0),
    streamEntries: entries.length,
    rows: rows.length,
    duplicates: duplicates.length,
    duplicateRows: duplicateRows.length,
    orphanEntries: orphanEntries.length,
    orphanRows: orphanRows.length,
    pendingZeroRows: pendingZero.length,
    rowsAtAnotherEventsEntry: heldByOtherEvent.length,
    missingEntry: missingEntry.length,
    missingRow: missingRow.length,
    wrongStreamId: wrongStreamId.length,
    unknownEntries: unknownEntries.length,
    badEntries: badEntries.length,
    errorLogs: logs.filter((l) => l.level === 'error' && /could not/.test(l.msg)).map((l) => l.msg).slice(0, 5),
  };
  console.log(`chaos report\n${JSON.stringify(report, null, 2)}`);
  // The faults happened as planned: each started while the load was running, the refused-write
  // faults really refused writes (a probe session got the expected SQLSTATE), and each kind showed
  // up in the publisher's rejections in at least one of its windows.
  expect(faultLog).toHaveLength(schedule.length);
  for (const f of faultLog) expect({ fault: f.name, loadRunning: f.issuedAtStart < N }).toEqual({ fault: f.name, loadRunning: true });
  const ofKind = (k) => faultLog.filter((f) => f.kind === kinds[k][0]);
  ofKind(3).forEach((f) => expect(f.detail.probe).toBe('42501'));
  ofKind(4).forEach((f) => expect(f.detail.probe).toBe('25006'));
  expect(ofKind(3).some((f) => f.rejectedInWindow.ERR_DATABASE > 0)).toBe(true);
  expect(ofKind(4).some((f) => f.rejectedInWindow.ERR_DATABASE > 0)).toBe(true);
  expect(ofKind(2).some((f) => f.rejectedInWindow.ERR_TIMEOUT > 0)).toBe(true);

  const examples = { unresolved: unresolved.slice(0, 3).map((o) => ({ ids: o.ids.slice(0, 3), errors: o.errors.slice(-2) })), duplicates: duplicates.slice(0, 5), orphanEntries: orphanEntries.slice(0, 5), orphanRows: orphanRows.slice(0, 5), missingEntry: missingEntry.slice(0, 5), missingRow: missingRow.slice(0, 5) };

  expect({ ...examples, counts: { unresolved: report.unresolved, duplicates: report.duplicates, duplicateRows: report.duplicateRows, orphanEntries: report.orphanEntries, orphanRows: report.orphanRows, missingEntry: report.missingEntry, missingRow: report.missingRow, wrongStreamId: report.wrongStreamId, unknownEntries: report.unknownEntries, badEntries: report.badEntries } }).toEqual({
    unresolved: [],
    duplicates: [],
    orphanEntries: [],
    orphanRows: [],
    missingEntry: [],
    missingRow: [],
    counts: { unresolved: 0, duplicates: 0, duplicateRows: 0, orphanEntries: 0, orphanRows: 0, missingEntry: 0, missingRow: 0, wrongStreamId: 0, unknownEntries: 0, badEntries: 0 },
  });
  expect(entries.length).toBe(N);
  expect(rows.length).toBe(N);
  expect({ withEntry: definiteLeft.withEntry, withRowPointingAtAnEntry: definiteLeft.withRowPointingAtAnEntry, examples: definiteLeft.examples }).toEqual({ withEntry: 0, withRowPointingAtAnEntry: 0, examples: [] });
  await p.close();
});

test('publisher processes killed with SIGKILL mid-load: reconcile() settles exactly the crash-window rows', async () => {
  // Its own database and stream, so that reconcile() sees only these processes' leftovers.
  const dbUrl = pg.url.replace(/\/[^/?]+\?/, '/hyvve_crash?');
  await ensureDatabase(dbUrl, pg.adminUrl);
  const stream = uid('crash:stream');
  const run = uid('crash');
  const rc = await rs.client();
  const db = await admin(dbUrl);

  /**
   * Runs a publishing child (16 workers, ~1000 events/s, singles and batches of up to 10) until it
   * has published 1000 events, stalls Redis so that groups sit between their row insert and their
   * entry, and kills the child with SIGKILL. `stall`:
   *  - 'sigstop': Redis is stopped; scripts the child had fully sent run when it continues, too
   *    late for the IDs reserved for them, so the window rows have entries at other IDs
   *    (reconcile repairs them);
   *  - 'client-pause': CLIENT PAUSE WRITE; Redis reads the scripts but drops them with the
   *    connection, so the window rows have none (reconcile marks them FAILED).
   */
  const crash = async (tenant, stall) => {
    const code = `
      const { EventPublisher } = require(${JSON.stringify(ROOT)});
      (async () => {
        const p = await EventPublisher.connect({ redisUrl: ${JSON.stringify(rs.url)}, databaseUrl: ${JSON.stringify(dbUrl)}, stream: ${JSON.stringify(stream)}, logLevel: 'off', timeoutMs: 30000, circuitThreshold: 0 });
        let seq = 0, done = 0;
        const t0 = Date.now();
        const worker = async () => {
          for (;;) {
            await new Promise((r) => setTimeout(r, t0 + seq - Date.now()));
            const k = Math.random() < 0.5 ? 1 : 1 + Math.floor(Math.random() * 10);
            const evs = Array.from({ length: k }, () => { const s = seq++; return { type: 'crash.item.created', data: { s }, context: { tenantId: ${JSON.stringify(tenant)}, userId: 'u', eventId: ${JSON.stringify(tenant)} + '-' + s } }; });
            if (k === 1) await p.publish(evs[0].type, evs[0].data, evs[0].context); else await p.publishBatch(evs);
            done += k;
            process.stdout.write(done + '\\n');
          }
        };
        await Promise.all(Array.from({ length: 16 }, worker));
      })().catch((e) => { console.error(e); process.exit(3); });
    `;
    const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
    cleanup.push(async () => child.kill('SIGKILL'));
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out = (out + d).slice(-200)));
    child.stderr.on('data', (d) => (err += d));
    const exited = new Promise((r) => child.once('exit', (c, sig) => r({ code: c, signal: sig })));
    const deadline = Date.now() + 20_000;
    while (Number(out.trim().split('\n').pop() || 0) < 1000) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`child did not get going: ${out} ${err}`);
      await sleep(20);
    }
    if (stall === 'sigstop') rs.pause();
    else await rc.call('CLIENT', 'PAUSE', '5000', 'WRITE');
    try {
      await sleep(300);
      child.kill('SIGKILL');
      const exit = await exited;
      expect(exit.signal).toBe('SIGKILL');
    } finally {
      if (stall === 'sigstop') rs.resume();
      else await rc.call('CLIENT', 'UNPAUSE');
    }
    await sleep(300);
  };

  await crash(`${run}-a`, 'sigstop');
  await crash(`${run}-b`, 'client-pause');

  const entriesNow = async () => {
    const m = new Map();
    for (const e of await readStreamPaged(rc, stream)) {
      const id = JSON.parse(e.raw).id;
      m.set(id, [...(m.get(id) || []), e.id]);
    }
    return m;
  };
  const rowsNow = async () => (await db.query('SELECT event_id, stream_id, status, last_error, tenant_id FROM event_metadata WHERE tenant_id LIKE $1', [`${run}-%`])).rows;
  try {
    const before = await entriesNow();
    const rowsBefore = await rowsNow();
    // Crash-window rows: PENDING rows whose stream_id does not hold their entry.
    const window = rowsBefore.filter((r) => r.status === 'PENDING' && !(before.get(r.event_id) || []).includes(r.stream_id));
    const { rows: [{ n: pendingInDb }] } = await db.query("SELECT count(*)::int AS n FROM event_metadata WHERE status = 'PENDING'");
    const withEntry = window.filter((r) => before.has(r.event_id));
    const withoutEntry = window.filter((r) => !before.has(r.event_id));
    const byTenant = (list) => ({ sigstop: list.filter((r) => r.tenant_id.endsWith('-a')).length, clientPause: list.filter((r) => r.tenant_id.endsWith('-b')).length });
    // Before reconciling: no entry without a row, no duplicate entry.
    const rowIds = new Set(rowsBefore.map((r) => r.event_id));
    expect([...before.keys()].filter((id) => !rowIds.has(id))).toEqual([]);
    expect([...before.values()].filter((v) => v.length > 1)).toEqual([]);

    const p = await EventPublisher.connect({ redisUrl: rs.url, databaseUrl: dbUrl, stream, logLevel: 'off' });
    cleanup.push(() => p.close());
    const started = Date.now();
    const result = await p.reconcile({ olderThanMs: 0 });
    const reconcileMs = Date.now() - started;
    console.log(
      `crash report\n${JSON.stringify(
        { rowsBeforeReconcile: rowsBefore.length, entries: before.size, crashWindowRows: byTenant(window), withEntry: byTenant(withEntry), withoutEntry: byTenant(withoutEntry), reconcile: result, reconcileMs },
        null,
        2,
      )}`,
    );
    // Both kinds of crash-window rows occurred ...
    expect(withEntry.length).toBeGreaterThan(0);
    expect(withoutEntry.length).toBeGreaterThan(0);
    // ... and reconcile(), looking at every PENDING row, found exactly them.
    expect(result).toEqual({ examined: pendingInDb, repaired: withEntry.length, failed: withoutEntry.length });

    const after = await entriesNow();
    const rows = await rowsNow();
    const failed = rows.filter((r) => r.status === 'FAILED');
    expect(failed.map((r) => r.event_id).sort()).toEqual(withoutEntry.map((r) => r.event_id).sort());
    failed.forEach((r) => {
      expect(r.last_error).toBe('never published');
      expect(after.has(r.event_id)).toBe(false);
    });
    // Every other row points at its own entry, and every entry has its row.
    const pending = rows.filter((r) => r.status === 'PENDING');
    expect(pending.length + failed.length).toBe(rows.length);
    expect(pending.filter((r) => !(after.get(r.event_id) || []).includes(r.stream_id)).map((r) => r.event_id)).toEqual([]);
    const rowOf = new Map(rows.map((r) => [r.event_id, r]));
    expect([...after].filter(([id, sids]) => !rowOf.has(id) || !sids.includes(rowOf.get(id).stream_id)).map(([id]) => id)).toEqual([]);
    // A second pass has nothing left to do.
    expect(await p.reconcile({ olderThanMs: 0 })).toEqual({ examined: pendingInDb - withoutEntry.length, repaired: 0, failed: 0 });
    await p.close();
  } finally {
    rc.disconnect();
    await db.end();
  }
});
