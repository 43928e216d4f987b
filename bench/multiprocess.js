'use strict';
// The "several publisher processes" scenario: 1, 2 and 4 worker processes (as several API
// replicas would) publishing to one stream and one table, 64 in flight each, sharing N events.
// They connect and warm up, then all start at one moment (a barrier), so the aggregate rate is
// total events / (last finish − common start); CPU per event sums every publisher process and
// both stores over that window.

const { fork } = require('node:child_process');
const path = require('node:path');
const { expect } = require('./ipc');
const { postgresCpuSeconds, redisCpuSeconds } = require('./stores');
const { verify } = require('./check');

/** How far ahead of sending the `go`s the common start is: time for every `go` to arrive. */
const START_AHEAD_MS = 250;

/** `n` events shared among `processes` as evenly as they go (the first ones take the remainder). */
function shares(n, processes) {
  if (!(Number.isInteger(processes) && processes >= 1)) throw new Error(`processes must be an integer >= 1, got ${processes}`);
  if (!(Number.isInteger(n) && n >= processes)) throw new Error(`${n} events cannot be shared among ${processes} processes`);
  const base = Math.floor(n / processes);
  return Array.from({ length: processes }, (_, i) => base + (i < n % processes ? 1 : 0));
}

/** `--processes 1,2,4` as a list of distinct counts in the given order. */
function parseProcesses(value) {
  const list = String(value).split(',').map((x) => x.trim());
  const counts = list.map(Number);
  if (!list.length || counts.some((c, i) => !/^\d+$/.test(list[i]) || c < 1)) {
    throw new Error(`--processes wants counts >= 1 separated by commas (1,2,4), got ${value}`);
  }
  return [...new Set(counts)];
}

/**
 * One run's figures from its workers' results (`worker.js` "done" messages, with their wall-clock
 * start and finish) and the stores' CPU seconds over the window. The window opens at the common
 * start `startAt`: a worker that starts late counts against the rate.
 */
function aggregate(parts, { startAt, redisCpuSeconds: redisCpu, pgCpuSeconds: pgCpu }) {
  const events = parts.reduce((a, p) => a + p.events, 0);
  const lastFinish = Math.max(...parts.map((p) => p.finishedAt));
  const seconds = (lastFinish - startAt) / 1000;
  const sum = (k) => (parts.every((p) => Number.isFinite(p[k])) ? parts.reduce((a, p) => a + p[k], 0) : null);
  const notReserved = sum('notReservedEntries');
  const groups = sum('groupWrites');
  return {
    processes: parts.length,
    events,
    seconds,
    eventsPerSec: events / seconds,
    // Spread of the actual starts after the common one, and of the finishes (a slow straggler).
    startLagMs: Math.max(...parts.map((p) => p.startedAt)) - startAt,
    finishSpreadMs: lastFinish - Math.min(...parts.map((p) => p.finishedAt)),
    nodeCpuUsPerEvent: sum('nodeCpuUs') / events,
    redisCpuUsPerEvent: (redisCpu * 1e6) / events,
    pgCpuUsPerEvent: (pgCpu * 1e6) / events,
    notReservedShare: notReserved === null ? null : notReserved / events,
    eventsPerGroup: groups ? events / groups : null,
    rssPeakMB: Math.max(...parts.map((p) => p.rssPeakMB)),
  };
}

/**
 * `processes` workers of `impl` publishing `scenario.n` events among them to `stream`, started
 * together; then the correctness check over the stream and the table (all processes' events).
 */
async function runProcesses(ctx, impl, scenario, processes, stream, { timeoutMs }) {
  const { stores, admin } = ctx;
  const counts = shares(scenario.n, processes);
  const children = counts.map(() => fork(path.join(__dirname, 'worker.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  try {
    // Barrier, part 1: every process connected and warmed up (on this same stream) ...
    await Promise.all(children.map((child, i) => {
      const ready = expect(child, 'ready', 5 * 60 * 1000);
      child.send({
        cmd: 'prepare', impl, scenario: { ...scenario, n: counts[i] }, stream,
        redisUrl: stores.redis.url, databaseUrl: stores.pg.url, warmup: ctx.warmup,
      });
      return ready;
    }));
    // ... then the same fresh state as a single-process run ...
    await admin.redis.del(stream);
    await admin.pg.query('TRUNCATE event_metadata');
    await admin.pg.query('CHECKPOINT').catch(() => {}); // needs superuser on a shared server
    const redis0 = await redisCpuSeconds(admin.redis);
    const pg0 = postgresCpuSeconds(stores.pg.pid);
    // ... part 2: one start for all.
    const startAt = Date.now() + START_AHEAD_MS;
    const done = children.map((child) => expect(child, 'done', timeoutMs));
    for (const child of children) child.send({ cmd: 'go', at: startAt });
    const parts = (await Promise.all(done)).map((m) => m.result);
    const redisCpu = (await redisCpuSeconds(admin.redis)) - redis0;
    const pgCpu = postgresCpuSeconds(stores.pg.pid) - pg0;
    await Promise.all(children.map((child) => {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.send({ cmd: 'close' });
      return Promise.race([exited, new Promise((r) => setTimeout(r, 30000).unref())]);
    }));
    const result = aggregate(parts, { startAt, redisCpuSeconds: redisCpu, pgCpuSeconds: pgCpu });
    result.check = await verify({ redis: admin.redis, pg: admin.pg, stream, expected: result.events });
    return result;
  } finally {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await admin.redis.del(stream).catch(() => {});
  }
}

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : '–');

/**
 * The markdown table of the scenario: one row per process count and implementation, medians of
 * the repetitions that passed the check. `results`: [{ rep, processes, impl, ok, error?, check?, ...aggregate }].
 */
function multiprocessTable(results, processCounts, impls, reps) {
  const head = ['processes', 'implementation', 'events/s median (min–max), all processes', 'events/s vs 1 process',
    'Node CPU µs/event, all processes', 'Redis CPU µs/event', 'Postgres CPU µs/event', 'CPU µs/event, all',
    'entries not at their reserved ID', 'events per group write', 'correctness'];
  const single = (impl) => median(results.filter((r) => r.processes === 1 && r.impl === impl && r.ok).map((r) => r.eventsPerSec));
  const rows = [];
  for (const p of processCounts) {
    for (const impl of impls) {
      const runs = results.filter((r) => r.processes === p && r.impl === impl);
      const good = runs.filter((r) => r.ok);
      const bad = runs.find((r) => !r.ok);
      const why = bad && `FAILED: ${(bad.error || bad.check.problems[0] || '').replace(/\|/g, '\\|')}`;
      if (!good.length) {
        rows.push([String(p), impl, ...Array(head.length - 3).fill('–'), runs.length ? why : 'not run']);
        continue;
      }
      const m = (k) => median(good.map((r) => r[k]));
      const rates = good.map((r) => r.eventsPerSec);
      const base = single(impl);
      // With `entryIds: 'server'` nothing is reserved: Redis assigns every ID.
      const share = impl === 'package-server' ? 'none reserved'
        : good.every((r) => r.notReservedShare === null) ? '–' : `${fmt(m('notReservedShare') * 100, 1)}%`;
      rows.push([
        String(p), impl,
        `${fmt(m('eventsPerSec'))} (${fmt(Math.min(...rates))}–${fmt(Math.max(...rates))})`,
        Number.isFinite(base) ? `${fmt(m('eventsPerSec') / base, 2)}×` : '–',
        fmt(m('nodeCpuUsPerEvent')), fmt(m('redisCpuUsPerEvent'), 1), fmt(m('pgCpuUsPerEvent'), 1),
        fmt(median(good.map((r) => r.nodeCpuUsPerEvent + r.redisCpuUsPerEvent + r.pgCpuUsPerEvent))),
        share, fmt(m('eventsPerGroup'), 1),
        `${good.length}/${reps} ok${bad ? `; ${why}` : ''}`,
      ]);
    }
  }
  return [
    `| ${head.join(' | ')} |`,
    `|${head.map((h, i) => (i < 2 ? '---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

module.exports = { shares, parseProcesses, aggregate, runProcesses, multiprocessTable, START_AHEAD_MS };
