#!/usr/bin/env node
'use strict';
// Benchmark of @hyvve/event-publisher against reference publishers and the machine's limits.
//
//   node run.js                 full run: 4 scenarios x implementations x 3 reps, + limits,
//                               + 1/2/4 publisher processes on one stream (package, package-server)
//   node run.js --quick         same at 1/10 of the counts (harness check, figures are rough)
//   node run.js --soak          1,000,000 events at 64 in flight with the package, RSS every 100k
// Options: --reps N, --scale F, --impl package,package-server,package-log-file,prisma,pg,
//          --scenario sequential,inflight64,...,multiprocess, --processes 1,2,4 (multiprocess),
//          --no-limits, --events N (soak), --out FILE
//          (default RESULTS.md beside this file; the chart goes beside it as RESULTS.svg, drawn
//          by chart.js from the medians saved in RESULTS.json).
// Env: BENCH_SHARED_STORES=1 uses the shared Redis/Postgres instead of private ones;
//      BENCH_TMPDIR puts the private stores' files elsewhere than the OS temp dir.

const { fork, spawnSync, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Client } = require('pg');
const Redis = require('ioredis');
const { startStores, postgresCpuSeconds, redisCpuSeconds, commandLine } = require('./stores');
const { verify } = require('./check');
const { expect } = require('./ipc');
const { runProcesses, multiprocessTable, parseProcesses, START_AHEAD_MS } = require('./multiprocess');
const { measureLimits, EVENT, PGBENCH_SCRIPT, UNNEST_SQL } = require('./limits');
const { summaryFromMarkdown, writeChart } = require('./chart');

const SCENARIOS = {
  sequential: { label: 'sequential publish', mode: 'publish', concurrency: 1, n: 3000 },
  inflight64: { label: '64 in flight', mode: 'publish', concurrency: 64, n: 30000 },
  batch100: { label: 'publishBatch 100', mode: 'batch', batch: 100, n: 30000 },
  batch1000: { label: 'publishBatch 1,000', mode: 'batch', batch: 1000, n: 30000 },
  // Several publisher processes on one stream, sharing n events (multiprocess.js): its own table.
  multiprocess: {
    label: 'several publisher processes', mode: 'publish', concurrency: 64, n: 30000,
    processes: [1, 2, 4], impls: ['package', 'package-server'],
  },
};
const IMPLS = {
  package: '@hyvve/event-publisher (default: entry IDs reserved, one statement per group)',
  'package-server': "@hyvve/event-publisher with `entryIds: 'server'` (XADD *, then a second statement sets stream_id)",
  'package-log-file': '@hyvve/event-publisher with `logLevel: \'info\'` and a logger writing JSON lines to a file',
  prisma: 'ioredis + Prisma 7 (platform reference)',
  pg: 'ioredis + pg (lean JS reference)',
  'package-baseline': 'an earlier build of @hyvve/event-publisher, from the checkout named by `BENCH_BASELINE_DIR` (opt-in via --impl)',
  'package-pgbouncer': '@hyvve/event-publisher through PgBouncer (transaction pooling, its default settings: default_pool_size 20) in front of the same Postgres',
};
// Implementations measured in some scenarios only (the others show "not run").
const ONLY_IN = { 'package-pgbouncer': ['sequential', 'inflight64'] };
const RUN_TIMEOUT_MS = 15 * 60 * 1000; // a run that takes longer is failed, so the bench ends
const SOAK_TIMEOUT_MS = 90 * 60 * 1000;
const OUT_DEFAULT = path.join(__dirname, 'RESULTS.md');
const SOAK_BEGIN = '<!-- soak:begin -->';
const SOAK_END = '<!-- soak:end -->';

function parseArgs(argv) {
  const o = {
    quick: false, soak: false, limits: true, reps: 3, scale: 1, impl: null, scenario: null, events: 1e6, out: OUT_DEFAULT,
    processes: SCENARIOS.multiprocess.processes,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--soak') o.soak = true;
    else if (a === '--no-limits') o.limits = false;
    else if (a === '--reps') o.reps = Number(val());
    else if (a === '--scale') o.scale = Number(val());
    else if (a === '--impl') o.impl = val().split(',');
    else if (a === '--scenario') o.scenario = val().split(',');
    else if (a === '--events') o.events = Number(val());
    else if (a === '--processes') o.processes = parseProcesses(val());
    else if (a === '--out') o.out = path.resolve(val());
    else throw new Error(`unknown option ${a} (see the top of run.js)`);
  }
  if (o.quick && o.scale === 1) o.scale = 0.1;
  if (!(o.reps >= 1)) throw new Error('--reps must be >= 1');
  for (const k of o.impl || []) if (!IMPLS[k]) throw new Error(`unknown implementation ${k}`);
  for (const k of o.scenario || []) if (!SCENARIOS[k]) throw new Error(`unknown scenario ${k}`);
  return o;
}

/** Whether `require('..')` gives the package; the reason when it does not. */
function packageLoadError() {
  const r = spawnSync(process.execPath, ['-e',
    "const m = require('..'); if (typeof (m.EventPublisher && m.EventPublisher.connect) !== 'function') "
    + "throw new Error('it has no EventPublisher.connect');"], { cwd: __dirname, encoding: 'utf8' });
  if (r.status === 0) return null;
  const msg = (r.stderr || '').split('\n').find((l) => /Error/.test(l)) || `exit ${r.status}`;
  return msg.trim();
}

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * One measured run in its own worker process. The worker connects and warms up; then the
 * stream is deleted, the table truncated and a CHECKPOINT taken so every run starts from the
 * same state; the stores' CPU counters are read around the measured window only.
 */
async function runOne(ctx, impl, scenario, stream, { timeoutMs = RUN_TIMEOUT_MS, onSample } = {}) {
  const { stores, admin } = ctx;
  const child = fork(path.join(__dirname, 'worker.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    let msg = expect(child, 'ready', 5 * 60 * 1000);
    child.send({
      cmd: 'prepare', impl, scenario, stream, redisUrl: stores.redis.url,
      databaseUrl: impl === 'package-pgbouncer' ? ctx.pgbouncer.url(stores.pg.database, '') : stores.pg.url,
      warmup: ctx.warmup,
    });
    await msg;
    await admin.redis.del(stream);
    await admin.pg.query('TRUNCATE event_metadata');
    await admin.pg.query('CHECKPOINT').catch(() => {}); // needs superuser on a shared server
    const redis0 = await redisCpuSeconds(admin.redis);
    const pg0 = postgresCpuSeconds(stores.pg.pid);
    msg = expect(child, 'done', timeoutMs, onSample);
    child.send({ cmd: 'go' });
    const { result } = await msg;
    const redisCpu = (await redisCpuSeconds(admin.redis)) - redis0;
    const pgCpu = postgresCpuSeconds(stores.pg.pid) - pg0;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.send({ cmd: 'close' });
    await Promise.race([exited, new Promise((r) => setTimeout(r, 30000).unref())]);
    result.redisCpuUsPerEvent = (redisCpu * 1e6) / result.events;
    result.pgCpuUsPerEvent = (pgCpu * 1e6) / result.events;
    result.check = await verify({ redis: admin.redis, pg: admin.pg, stream, expected: result.events });
    return result;
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await admin.redis.del(stream).catch(() => {});
  }
}

function machineFacts(stores, settings) {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const memKb = Number(/MemTotal:\s+(\d+)/.exec(fs.readFileSync('/proc/meminfo', 'utf8'))[1]);
  const version = (name) => {
    try {
      return JSON.parse(fs.readFileSync(path.join(__dirname, 'node_modules', name, 'package.json'), 'utf8')).version;
    } catch {
      return '?';
    }
  };
  let commit = 'no commit yet';
  try {
    commit = execFileSync('git', ['-C', __dirname, 'rev-parse', '--short', 'HEAD'], { stdio: 'pipe' }).toString().trim();
    if (execFileSync('git', ['-C', __dirname, 'status', '--porcelain'], { stdio: 'pipe' }).toString().trim()) commit += ' (dirty)';
  } catch { /* no commit yet */ }
  return [
    ['CPUs (nproc)', execFileSync('nproc').toString().trim()],
    ['CPU model', (/model name\s*:\s*(.+)/.exec(cpuinfo) || [, '?'])[1]],
    ['memory', `${(memKb / 2 ** 20).toFixed(1)} GiB`],
    ['kernel', `${os.type()} ${os.release()}`],
    ['Node', process.version],
    ['Redis', `${stores.redis.version} (${stores.shared ? 'shared' : 'private'}, no RDB/AOF)`],
    ['PostgreSQL', `${stores.pg.version} (${stores.shared ? 'shared' : 'private'}; ${settings})`],
    ['store files', stores.shared ? 'shared servers' : path.dirname(stores.dir)],
    ['JS references', ['ioredis', 'pg', 'prisma', '@prisma/client', '@prisma/adapter-pg', '@paralleldrive/cuid2']
      .map((n) => `${n} ${version(n)}`).join(', ')],
    ['repo commit', commit],
    // Other work on these 2 CPUs (a cargo build, say) skews every figure: note it.
    ['load average at start', os.loadavg().map((x) => x.toFixed(2)).join(', ')],
  ];
}

const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : '–');
const vsPrisma = (x, prisma) => (Number.isFinite(prisma) ? `${fmt(x / prisma, 2)}×` : '–');
const mdTable = (head, rows) => [
  `| ${head.join(' | ')} |`,
  `|${head.map((h, i) => (i < 2 ? '---' : '---:')).join('|')}|`,
  ...rows.map((r) => `| ${r.join(' | ')} |`),
].join('\n');

function resultsTable(results, scenarios, impls, reps) {
  const rows = [];
  for (const s of scenarios) {
    const prisma = results.filter((r) => r.scenario === s && r.impl === 'prisma' && r.ok);
    const prismaRate = median(prisma.map((r) => r.eventsPerSec));
    const prismaCpu = median(prisma.map((r) => r.nodeCpuUsPerEvent));
    for (const impl of impls) {
      const runs = results.filter((r) => r.scenario === s && r.impl === impl);
      const good = runs.filter((r) => r.ok);
      const m = (k) => median(good.map((r) => r[k]));
      const rates = good.map((r) => r.eventsPerSec);
      const bad = runs.find((r) => !r.ok);
      const why = bad && `FAILED: ${(bad.error || bad.check.problems[0] || '').replace(/\|/g, '\\|')}`;
      const checks = `${good.length}/${reps} ok${bad ? `; ${why}` : ''}`;
      if (!good.length) {
        rows.push([SCENARIOS[s].label, impl, ...Array(9).fill('–'), runs.length ? why : 'not run']);
        continue;
      }
      rows.push([
        SCENARIOS[s].label, impl,
        `${fmt(m('eventsPerSec'))} (${fmt(Math.min(...rates))}–${fmt(Math.max(...rates))})`,
        vsPrisma(m('eventsPerSec'), prismaRate),
        fmt(m('p50ms'), 2), fmt(m('p99ms'), 2),
        fmt(m('nodeCpuUsPerEvent')),
        vsPrisma(m('nodeCpuUsPerEvent'), prismaCpu),
        fmt(m('redisCpuUsPerEvent'), 1), fmt(m('pgCpuUsPerEvent'), 1),
        `${fmt(m('rssStartMB'))} / ${fmt(m('rssPeakMB'))}`,
        checks,
      ]);
    }
  }
  return mdTable(['scenario', 'implementation', 'events/s median (min–max)', 'events/s vs Prisma', 'p50 ms/call',
    'p99 ms/call', 'Node CPU µs/event', 'Node CPU vs Prisma', 'Redis CPU µs/event', 'Postgres CPU µs/event',
    'RSS MB start / peak', 'correctness'], rows);
}

function limitsTable(limitRuns) {
  if (!limitRuns.length) return '(not measured: --no-limits)';
  const rows = limitRuns[0].map((first, i) => {
    const all = limitRuns.map((rep) => rep[i]);
    const m = (k) => median(all.map((x) => x[k]));
    const lat = first.p50ms != null ? `p50 ${fmt(m('p50ms'), 3)}, p99 ${fmt(m('p99ms'), 3)}` : `avg ${fmt(m('avgms'), 3)}`;
    const cpu = first.redisCpuUs != null ? `Redis ${fmt(m('redisCpuUs'), 1)}` : `Postgres ${fmt(m('pgCpuUs'), 1)}`;
    return [first.name, fmt(m('perSec')), lat, cpu];
  });
  return mdTable(['what', 'per second (median)', 'latency ms', 'store CPU µs per event/row'], rows);
}

function replaceSoakSection(out, soakMd) {
  const old = fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '# Benchmark results\n\n(no full run yet: `node run.js`)\n';
  const i = old.indexOf(SOAK_BEGIN);
  const j = old.indexOf(SOAK_END);
  const head = i >= 0 ? old.slice(0, i) : `${old.trimEnd()}\n\n`;
  const tail = j >= 0 ? old.slice(j + SOAK_END.length) : '\n';
  return `${head}${SOAK_BEGIN}\n${soakMd.trim()}\n${SOAK_END}${tail}`;
}

async function pgSettings(admin) {
  const { rows } = await admin.pg.query(
    "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'shared_buffers', 'max_connections') ORDER BY name",
  );
  return rows.map((r) => `${r.name}=${r.name === 'shared_buffers' ? `${(r.setting * 8) / 1024} MB` : r.setting}`).join(', ');
}

/** The commands this run used, with its temp dir and ports as placeholders (they change every run). */
function commandsRun(stores, limitRuns) {
  const placeholders = (line) => (stores.shared ? line : line.split(stores.dir).join('$DIR')
    .replace(` -p ${stores.redis.port} `, ' -p $RPORT ').replace(`--port ${stores.redis.port} `, '--port $RPORT ')
    .replace(` -p ${stores.pg.port} `, ' -p $PGPORT '));
  const asUser = process.getuid() === 0 ? 'setpriv --reuid=postgres --regid=postgres --init-groups -- ' : '';
  const start = stores.shared
    ? ['# BENCH_SHARED_STORES=1: the shared servers on 127.0.0.1:6379 and :5432, database `bench`']
    : ['# the private stores ($DIR a fresh temp dir, $RPORT/$PGPORT free loopback ports; stopped by PID at the end)',
      ...stores.redis.commands.map(([c, a]) => commandLine(c, a)),
      ...stores.pg.commands.map(([c, a]) => asUser + commandLine(c, a)),
      '# then CREATE DATABASE bench, and ../migrations/0001_event_metadata.sql in it'];
  const limits = limitRuns.length ? ['', '# the machine limits', ...new Set(limitRuns[0].map((l) => l.command))] : [];
  return [...start, ...limits].map(placeholders).join('\n');
}

async function benchmark(opts, ctx) {
  const asked = opts.scenario || Object.keys(SCENARIOS);
  // The single-process scenarios (the medians table and the chart); multiprocess has its own table.
  const scenarios = asked.filter((s) => !SCENARIOS[s].processes);
  const multi = asked.includes('multiprocess');
  const pkgError = packageLoadError();
  // `package-log-file` (logging cost) runs only when named: --impl package,package-log-file.
  let impls = opts.impl || Object.keys(IMPLS).filter((k) => k !== 'package-log-file' && k !== 'package-baseline');
  if (pkgError && impls.some((i) => i.startsWith('package'))) {
    console.log(`\n*** Skipping @hyvve/event-publisher: require('..') failed: ${pkgError}`);
    console.log('*** Build it at the repo root (npm run build) to include it.\n');
    impls = impls.filter((i) => !i.startsWith('package'));
  }
  if (impls.includes('package-pgbouncer') && scenarios.length) {
    const { startPgBouncer, pgbouncerMissing, version } = require('../__test__/support/pgbouncer');
    const missing = pgbouncerMissing();
    if (missing) {
      console.log(`\n*** Skipping package-pgbouncer: ${missing}\n`);
      impls = impls.filter((i) => i !== 'package-pgbouncer');
    } else {
      ctx.pgbouncer = await startPgBouncer({ serverPort: ctx.stores.pg.port, mode: 'transaction', poolSize: 20, user: ctx.stores.pg.user });
      ctx.pgbouncerVersion = version();
      console.log(`${ctx.pgbouncerVersion} on port ${ctx.pgbouncer.port}, transaction pooling`);
    }
  }
  const runTag = Date.now().toString(36);
  const results = [];
  const limitRuns = [];
  const sized = (s) => ({ ...SCENARIOS[s], n: Math.max(SCENARIOS[s].batch || 1, Math.round(SCENARIOS[s].n * opts.scale)) });
  const t0 = Date.now();

  const mpImpls = impls.filter((i) => SCENARIOS.multiprocess.impls.includes(i));
  const mpResults = [];

  for (let rep = 1; rep <= opts.reps; rep++) {
    if (opts.limits) {
      console.log(`rep ${rep}: machine limits…`);
      limitRuns.push(await measureLimits(ctx.stores, ctx.admin, opts.scale));
    }
    for (const s of scenarios) {
      // Interleaved, and the order rotates each rep so no implementation always goes first.
      const order = impls.map((_, k) => impls[(k + rep - 1) % impls.length]);
      for (const impl of order) {
        if (ONLY_IN[impl] && !ONLY_IN[impl].includes(s)) continue;
        const stream = `bench:${runTag}:${s}:${impl}:${rep}`;
        const row = { rep, scenario: s, impl };
        try {
          Object.assign(row, await runOne(ctx, impl, sized(s), stream));
          row.ok = row.check.ok;
        } catch (e) {
          row.ok = false;
          row.error = e.message.split('\n')[0];
        }
        results.push(row);
        console.log(`rep ${rep} ${s.padEnd(11)} ${impl.padEnd(14)} `
          + (row.error ? `ERROR ${row.error}` : `${fmt(row.eventsPerSec).padStart(7)} ev/s  p50 ${fmt(row.p50ms, 2)} ms  `
            + `p99 ${fmt(row.p99ms, 2)} ms  node ${fmt(row.nodeCpuUsPerEvent)} µs/ev  `
            + `rss ${fmt(row.rssPeakMB)} MB  ${row.check.ok ? 'check ok' : `CHECK FAILED: ${row.check.problems.join('; ')}`}`));
      }
    }
    if (multi) mpResults.push(...await multiprocessRep(ctx, opts, rep, runTag, mpImpls));
  }

  const table = resultsTable(results, scenarios, impls, opts.reps);
  const limits = limitsTable(limitRuns);
  const counts = scenarios.map((s) => `${SCENARIOS[s].label}: ${fmt(sized(s).n)} events`).join('; ');
  const perRep = mdTable(['scenario', 'implementation', ...Array.from({ length: opts.reps }, (_, i) => `rep ${i + 1} events/s`)],
    scenarios.flatMap((s) => impls.map((impl) => [SCENARIOS[s].label, impl,
      ...Array.from({ length: opts.reps }, (_, i) => {
        const r = results.find((x) => x.scenario === s && x.impl === impl && x.rep === i + 1);
        if (!r) return ONLY_IN[impl] && !ONLY_IN[impl].includes(s) ? 'not run' : 'failed';
        return r.ok ? fmt(r.eventsPerSec) : 'failed';
      })])));
  const publishers = scenarios.length ? `Medians of ${opts.reps} repetitions, run interleaved (each scenario runs every implementation in turn, the order rotating
each repetition), each in a fresh Node process after a warm-up, on a fresh stream and a truncated table, after a
CHECKPOINT. Counts: ${counts}. Every run ends with the correctness check (stream length and row count equal the events
published; every entry's row has its stream_id, type, source, tenant and correlation id); a failed run is left out of
the medians and shown as failed.

![Events/s per scenario and implementation; CPU per event of Node, Redis and Postgres](${path.basename(opts.out).replace(/\.md$/, '')}.svg)

${pkgError ? `**@hyvve/event-publisher was not measured**: \`require('..')\` failed (${pkgError}). Build it with \`npm run build\` at the repo root and run again.\n\n` : ''}${table}

- Latency is per call: one \`publish\`, or one \`publishBatch\` of 100/1,000 events.
- CPU per event: the Node process (\`process.cpuUsage\`, all its threads), Redis (\`INFO cpu\` user+sys), Postgres (utime+stime
  of the postmaster, its reaped children and its live children, \`/proc/<pid>/stat\`), over the measured window only.
  Node, Redis and Postgres share the same ${ctx.facts[0][1]} CPUs.
- RSS of the Node process in MB: after connect and warm-up / highest seen during the run (sampled every 50 ms).
- Implementations: ${Object.entries(IMPLS).filter(([k]) => impls.includes(k)).map(([k, v]) => `\`${k}\` = ${v}`).join('; ')}.
  The references are in \`refs/\`: they build the event like the platform (cuid2 v3 \`createId()\` for the id and the
  correlation id), XADD with \`MAXLEN ~ 2592000\`, then write the row; batches pipeline the XADDs (not atomic).

### Events/s of each repetition

${perRep}` : '(no single-process scenario in this run)';
  const mpTable = multi && multiprocessTable(mpResults, opts.processes, mpImpls, opts.reps);
  const mpSection = multi && multiprocessSection(opts, mpResults, mpTable, mpImpls, pkgError);
  const md = `# Benchmark results

Generated ${new Date().toISOString()} by \`node run.js${process.argv.slice(2).map((a) => ` ${a}`).join('')}\` `
    + `in ${fmt((Date.now() - t0) / 60000, 1)} min.${opts.scale !== 1 ? ` **Scaled run (×${opts.scale}): rough figures.**` : ''}

## Machine

${mdTable(['', ''], ctx.facts)}

## Publishers

${publishers}

${multi ? `${mpSection}\n\n` : ''}## Machine limits

Measured ${limitRuns.length ? `in each repetition (medians of ${limitRuns.length})` : ''} against the same stores with the stores'
own tools: what a publisher could reach if it cost nothing itself.

${limits}

## Commands

\`\`\`sh
# at the repo root (the package must be built first: npm run build)
npm run bench                          # = cd bench && npm ci && node run.js
cd bench && node run.js --quick        # 1/10 of the counts, to check the harness
cd bench && node run.js --scenario multiprocess   # only the several-processes table
cd bench && node run.js --soak         # 1,000,000 events at 64 in flight, RSS every 100k

${commandsRun(ctx.stores, limitRuns)}
\`\`\`

The <592-byte event JSON> of redis-benchmark:

\`\`\`json
${EVENT}
\`\`\`

insert-one.sql (pgbench):

\`\`\`sql
${PGBENCH_SCRIPT.trim()}
\`\`\`

The unnest insert (1,000 rows of text arrays per statement, each its own commit):

\`\`\`sql
${UNNEST_SQL}
\`\`\`
`;
  // The chart (and its data) beside the results file, read back from the medians table itself, so
  // the chart shows exactly the table's (rounded) figures; implementations not run are left out.
  if (scenarios.length) writeChart(opts.out, summaryFromMarkdown(md));
  // Keep the soak section of an earlier --soak run.
  const old = fs.existsSync(opts.out) ? fs.readFileSync(opts.out, 'utf8') : '';
  const i = old.indexOf(SOAK_BEGIN);
  fs.writeFileSync(opts.out, i >= 0 ? `${md}\n${old.slice(i)}` : md);
  console.log(`\n${scenarios.length ? `${table}\n\n` : ''}${multi ? `${mpTable}\n\n` : ''}Machine limits:\n${limits}\n\nWrote ${opts.out}`);
  return results.every((r) => r.ok) && mpResults.every((r) => r.ok);
}

/**
 * One repetition of the multiprocess scenario: each process count, each implementation in turn
 * (the order rotating each repetition, as in the other scenarios).
 */
async function multiprocessRep(ctx, opts, rep, runTag, impls) {
  const s = SCENARIOS.multiprocess;
  const n = Math.max(Math.max(...opts.processes), Math.round(s.n * opts.scale));
  const rows = [];
  for (const processes of opts.processes) {
    const order = impls.map((_, k) => impls[(k + rep - 1) % impls.length]);
    for (const impl of order) {
      const stream = `bench:${runTag}:multiprocess-${processes}:${impl}:${rep}`;
      const row = { rep, processes, impl };
      try {
        Object.assign(row, await runProcesses(ctx, impl, { ...s, n }, processes, stream, { timeoutMs: RUN_TIMEOUT_MS }));
        row.ok = row.check.ok;
      } catch (e) {
        row.ok = false;
        row.error = e.message.split('\n')[0];
      }
      rows.push(row);
      console.log(`rep ${rep} ${`${processes} process${processes > 1 ? 'es' : ''}`.padEnd(11)} ${impl.padEnd(14)} `
        + (row.error ? `ERROR ${row.error}` : `${fmt(row.eventsPerSec).padStart(7)} ev/s (all)  `
          + `node ${fmt(row.nodeCpuUsPerEvent)} redis ${fmt(row.redisCpuUsPerEvent, 1)} pg ${fmt(row.pgCpuUsPerEvent, 1)} µs/ev  `
          + `start lag ${fmt(row.startLagMs)} ms  ${row.check.ok ? 'check ok' : `CHECK FAILED: ${row.check.problems.join('; ')}`}`));
    }
  }
  return rows;
}

/** The "Several publisher processes" section of RESULTS.md. */
function multiprocessSection(opts, mpResults, mpTable, impls, pkgError) {
  const s = SCENARIOS.multiprocess;
  const n = Math.max(Math.max(...opts.processes), Math.round(s.n * opts.scale));
  const lags = mpResults.filter((r) => r.ok).map((r) => r.startLagMs);
  const perRep = mdTable(['processes', 'implementation', ...Array.from({ length: opts.reps }, (_, i) => `rep ${i + 1} events/s`)],
    opts.processes.flatMap((p) => impls.map((impl) => [String(p), impl,
      ...Array.from({ length: opts.reps }, (_, i) => {
        const r = mpResults.find((x) => x.processes === p && x.impl === impl && x.rep === i + 1);
        return r && r.ok ? fmt(r.eventsPerSec) : 'failed';
      })])));
  return `## Several publisher processes

${opts.processes.join(', ')} publisher processes on one stream and one table, as several API replicas of the platform
would be, sharing ${fmt(n)} events (each process its share at ${s.concurrency} in flight); medians of ${opts.reps}
repetitions, interleaved (each process count runs every implementation in turn, the order rotating each repetition).
Every process connects and warms up; then the stream is deleted, the table truncated and a CHECKPOINT taken, and all
start at one moment (a barrier: once all are ready, the harness names a start ${START_AHEAD_MS} ms ahead), so
events/s = all events / (last finish − common start). CPU per event: the Node CPU of all the publisher processes,
Redis and Postgres over that window, divided by all events. The correctness check runs after each run over all the
processes' events.

${impls.length ? mpTable : `(not run: ${pkgError ? `\`require('..')\` failed (${pkgError})` : 'neither package nor package-server among --impl'})`}

- Entries not at their reserved ID: the package's \`stats().notReservedEntries\` summed over the processes, as a share of
  all events (each such row got a second statement); events per group write: events / \`stats().groupEvents.count\`.
- ${lags.length ? `The latest start of any process came ${fmt(Math.max(...lags))} ms after the common one.` : 'No run passed.'}

### Events/s of each repetition (several processes)

${perRep}`;
}

/** 1,000,000 events at 64 in flight; RSS must level off and stay < 100 MB above the start. */
async function soak(opts, ctx) {
  const impl = (opts.impl || ['package'])[0];
  if (impl === 'package') {
    const err = packageLoadError();
    if (err) {
      console.log(`Cannot soak @hyvve/event-publisher: require('..') failed: ${err}. Build it first (npm run build).`);
      return false;
    }
  }
  const n = opts.events;
  const every = Math.max(1, Math.round(n / 10));
  const scenario = { label: 'soak', mode: 'publish', concurrency: 64, n, sampleEvery: every };
  console.log(`soak: ${fmt(n)} events at 64 in flight with ${impl}; RSS every ${fmt(every)} events`);
  const t0 = Date.now();
  const samples = []; // kept here too, so a soak that fails midway still reports its curve
  let result = null;
  let error = null;
  try {
    result = await runOne(ctx, impl, scenario, `bench:soak:${Date.now().toString(36)}`, {
      timeoutMs: SOAK_TIMEOUT_MS,
      onSample: (s) => {
        samples.push(s);
        console.log(`  ${fmt(s.events).padStart(9)} events  ${fmt(s.seconds, 1).padStart(7)} s  RSS ${fmt(s.rssMB, 1)} MB`);
      },
    });
  } catch (e) {
    error = e.message.split('\n')[0];
  }
  const rssStart = samples[0]?.rssMB ?? NaN;
  const peak = result ? result.rssPeakMB : Math.max(...samples.map((s) => s.rssMB));
  const above = peak - rssStart;
  const underCap = above < 100;
  // Levelled off: the median growth per sample over the second half is at most 1 MB per 100k
  // events (10 bytes/event). A median, so one allocator step (an arena, a grown buffer) does not
  // count as a trend, while steady growth, a leak, does.
  const diffs = samples.filter((s) => s.events >= n / 2).map((s, i, a) => (i ? s.rssMB - a[i - 1].rssMB : null)).slice(1);
  const trend = (median(diffs) * 100000) / every;
  const leveled = diffs.length > 0 && trend <= 1;
  const ok = !error && leveled && underCap && result.check.ok;
  const md = `## Soak

\`node run.js${process.argv.slice(2).map((a) => ` ${a}`).join('')}\` on ${new Date().toISOString()} with \`${impl}\`
(${IMPLS[impl]}): ${fmt(n)} events at 64 in flight, ${fmt((Date.now() - t0) / 1000)} s in all${result ? `
(${fmt(result.eventsPerSec)} events/s over the measured window, p50 ${fmt(result.p50ms, 2)} ms, p99 ${fmt(result.p99ms, 2)} ms,
Node CPU ${fmt(result.nodeCpuUsPerEvent)} µs/event)` : ''}. Load average at the start: ${ctx.facts.find(([k]) => k.startsWith('load'))[1]}.

${mdTable(['events', 'seconds', 'RSS MB'], samples.map((s) => [s.events ? fmt(s.events) : '0 (after warm-up)', fmt(s.seconds, 1), fmt(s.rssMB, 1)]))}

${error ? `- **The soak stopped with an error**: ${error}\n` : ''}- Peak RSS ${Number.isFinite(above) ? `${fmt(peak, 1)} MB${result ? ' (sampled every 50 ms)' : ' (of the samples above)'}: ${fmt(above, 1)} MB above the start: ${underCap ? 'under' : '**over**'} the 100 MB limit` : 'not known (no sample)'}.
- Median RSS growth per 100k events over the second half: ${fmt(trend, 1)} MB: ${leveled ? 'levelled off (≤ 1 MB)' : (diffs.length ? '**still growing** (> 1 MB)' : '**not known** (the run did not reach its second half)')}.
- Correctness: ${!result ? 'not checked (the run did not finish)' : result.check.ok ? `XLEN = rows = matching rows = ${fmt(n)}` : `**FAILED**: ${result.check.problems.join('; ')}`}.
- Verdict: **${ok ? 'PASS' : 'FAIL'}**.
`;
  fs.writeFileSync(opts.out, replaceSoakSection(opts.out, md));
  console.log(`\n${md}\nWrote ${opts.out}`);
  return ok;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const stores = await startStores();
  // Ctrl-C or a kill still stops the private servers (they are ours, found by PID).
  let stopping = null;
  const stop = () => (stopping ??= stores.stop());
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => {
      console.error(`\n${sig}: stopping the private stores…`);
      stop().finally(() => process.exit(130));
    });
  }
  const admin = { redis: new Redis(stores.redis.url), pg: new Client({ connectionString: stores.pg.url }) };
  let ok = false;
  try {
    await admin.pg.connect();
    const ctx = { stores, admin, warmup: 200 };
    ctx.facts = machineFacts(stores, await pgSettings(admin));
    console.log(ctx.facts.map(([k, v]) => `${k}: ${v}`).join('\n'));
    try {
      ok = opts.soak ? await soak(opts, ctx) : await benchmark(opts, ctx);
    } finally {
      if (ctx.pgbouncer) await ctx.pgbouncer.destroy();
    }
  } finally {
    admin.redis.disconnect();
    await admin.pg.end().catch(() => {});
    await stop();
  }
  process.exitCode = ok ? 0 : 1;
}

module.exports = { parseArgs, SCENARIOS };

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exitCode = 1;
  });
}
