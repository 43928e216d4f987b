'use strict';
// One implementation, one scenario, in a fresh Node process: its CPU time and RSS are then its
// own (not Prisma's heap plus the addon's threads plus the harness's bookkeeping).
// Protocol with run.js over IPC: prepare -> (connect, warm up) ready -> go [at] -> done|sample* -> close.

const path = require('node:path');

const IMPLEMENTATIONS = {
  package: () => require(path.join(__dirname, '..')).EventPublisher,
  'package-server': () => {
    const { EventPublisher } = require(path.join(__dirname, '..'));
    return { connect: (o) => EventPublisher.connect({ ...o, entryIds: 'server' }) };
  },
  // Logging cost (issue 9): `info` records to a file through the `logger` callback, one JSON
  // line per event, as an application would write them.
  'package-log-file': () => {
    const { EventPublisher } = require(path.join(__dirname, '..'));
    const file = path.join(require('node:os').tmpdir(), `bench-log-${process.pid}.jsonl`);
    const out = require('node:fs').createWriteStream(file);
    process.once('exit', () => require('node:fs').rmSync(file, { force: true }));
    return {
      connect: (o) => EventPublisher.connect({ ...o, logLevel: 'info', logger: (e) => out.write(`${JSON.stringify(e)}\n`) }),
    };
  },
  // Another checkout's build (an earlier commit), to show a change's cost side by side in one run.
  'package-baseline': () => {
    if (!process.env.BENCH_BASELINE_DIR) throw new Error('package-baseline needs BENCH_BASELINE_DIR');
    return require(path.resolve(process.env.BENCH_BASELINE_DIR)).EventPublisher;
  },
  // The same package; run.js gives it a databaseUrl through PgBouncer.
  'package-pgbouncer': () => require(path.join(__dirname, '..')).EventPublisher,
  prisma: () => require('./refs/prisma-publisher').EventPublisher,
  pg: () => require('./refs/pg-publisher').EventPublisher,
};

// An approval decision as the approvals service publishes it (COMPAT.md §4), with a raw Date
// as platform code passes; the event JSON comes to ~590 bytes like the platform's.
const DATA = Array.from({ length: 64 }, (_, i) => ({
  approvalId: `clx${String(i).padStart(4, '0')}k2m9v0000qwerty8z1`,
  type: 'content_publish',
  title: `Publish blog post #${i}: Q4 product launch for EMEA`,
  decision: 'approved',
  decidedById: `user_${String(i % 7).padStart(3, '0')}_4f9c2a7e`,
  decisionNotes: 'Reviewed copy, legal disclaimer and imagery; scheduled for Tuesday 09:00 CET.',
  confidenceScore: 0.87,
  decidedAt: new Date(Date.UTC(2026, 10, 27, 6, 32, 41, 123)),
}));
const CONTEXTS = Array.from({ length: 8 }, (_, i) => ({
  tenantId: `ws_${String(i).padStart(2, '0')}_7d1f0c9b3e`,
  userId: `user_${String(i).padStart(3, '0')}_4f9c2a7e`,
  source: 'approvals',
}));
const TYPE = 'approval.item.approved';
const eventAt = (i) => ({ type: TYPE, data: DATA[i % DATA.length], context: CONTEXTS[i % CONTEXTS.length] });

/**
 * Latency histogram in µs with constant memory (so a 1M-event soak measures the publisher's
 * RSS, not ours): exact below 1,024 µs, then 64 sub-buckets per power of two (~1.6%).
 */
class Histogram {
  constructor() {
    this.counts = new Float64Array(1024 + 32 * 64);
    this.n = 0;
  }

  record(us) {
    const v = Math.min(Math.max(0, Math.round(us)), 2 ** 31 - 1);
    let i = v;
    if (v >= 1024) {
      const e = 31 - Math.clz32(v);
      i = 1024 + (e - 10) * 64 + ((v >>> (e - 6)) & 63);
    }
    this.counts[i]++;
    this.n++;
  }

  /** Value (ms) below which a fraction p of the calls fall, at the middle of its bucket. */
  percentile(p) {
    const target = Math.max(1, Math.ceil(p * this.n));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i];
      if (seen >= target) {
        if (i < 1024) return i / 1000;
        const k = i - 1024;
        const e = 10 + Math.floor(k / 64);
        return ((64 + (k % 64) + 0.5) * 2 ** (e - 6)) / 1000;
      }
    }
    return NaN;
  }
}

const nowUs = () => Number(process.hrtime.bigint()) / 1000;

async function timed(hist, fn) {
  const t0 = nowUs();
  await fn();
  hist.record(nowUs() - t0);
}

/** Runs `total` single publishes, `concurrency` at a time; onEvent sees the running count. */
async function runPublishes(pub, total, concurrency, hist, onEvent) {
  let next = 0;
  let done = 0;
  const lane = async () => {
    while (next < total) {
      const ev = eventAt(next++);
      await timed(hist, () => pub.publish(ev.type, ev.data, ev.context));
      done++;
      if (onEvent) onEvent(done);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
}

async function runBatches(pub, total, size, hist) {
  // One array reused for every call: the callers' cost of building it is not what is measured.
  const batch = Array.from({ length: size }, (_, i) => eventAt(i));
  for (let sent = 0; sent < total; sent += size) {
    const calls = total - sent >= size ? batch : batch.slice(0, total - sent);
    await timed(hist, () => pub.publishBatch(calls));
  }
}

/** The package's `stats()`, or null for an implementation without it. */
const publisherStats = (pub) => (typeof pub.stats === 'function' ? pub.stats() : null);

const rssMB = () => process.memoryUsage.rss() / 2 ** 20;
const once = (type) => new Promise((resolve) => {
  const on = (m) => {
    if (m.cmd === type) {
      process.off('message', on);
      resolve(m);
    }
  };
  process.on('message', on);
});

async function main() {
  const job = await once('prepare');
  let Impl;
  try {
    Impl = IMPLEMENTATIONS[job.impl]();
  } catch (e) {
    process.send({ cmd: 'error', error: `cannot load ${job.impl}: ${e.message}` });
    return;
  }
  const pub = await Impl.connect({ redisUrl: job.redisUrl, databaseUrl: job.databaseUrl, stream: job.stream, logLevel: 'off' });

  // Warm-up: JIT, connection pools, prepared statements; run.js then empties stream and table.
  const warm = new Histogram();
  await runPublishes(pub, job.warmup, 1, warm);
  await runPublishes(pub, job.warmup, 16, warm);
  await runBatches(pub, 200, 100, warm);
  process.send({ cmd: 'ready' });
  const go = await once('go');
  // Several processes start together: run.js names one moment (wall clock, the same in every
  // process) a little ahead, so each `go` has arrived before it.
  if (go.at) await new Promise((r) => setTimeout(r, go.at - Date.now()));
  const stats0 = publisherStats(pub);

  const hist = new Histogram();
  const samples = [];
  const rssStart = rssMB();
  let rssPeak = rssStart;
  const timer = setInterval(() => { rssPeak = Math.max(rssPeak, rssMB()); }, 50);
  const cpu0 = process.cpuUsage();
  const startedAt = Date.now();
  const t0 = nowUs();
  const s = job.scenario;
  if (s.sampleEvery) process.send({ cmd: 'sample', sample: { events: 0, rssMB: rssStart, seconds: 0 } });
  if (s.mode === 'batch') {
    await runBatches(pub, s.n, s.batch, hist);
  } else {
    // The soak reports RSS every `sampleEvery` events (and so does not wait for the end).
    const onEvent = s.sampleEvery && ((done) => {
      if (done % s.sampleEvery) return;
      const rss = rssMB();
      rssPeak = Math.max(rssPeak, rss);
      const sample = { events: done, rssMB: rss, seconds: (nowUs() - t0) / 1e6 };
      samples.push(sample);
      process.send({ cmd: 'sample', sample });
    });
    await runPublishes(pub, s.n, s.concurrency, hist, onEvent);
  }
  const seconds = (nowUs() - t0) / 1e6;
  const finishedAt = Date.now();
  const cpu = process.cpuUsage(cpu0);
  const stats1 = publisherStats(pub);
  clearInterval(timer);
  rssPeak = Math.max(rssPeak, rssMB());
  process.send({
    cmd: 'done',
    result: {
      events: s.n,
      calls: hist.n,
      seconds,
      eventsPerSec: s.n / seconds,
      p50ms: hist.percentile(0.5),
      p99ms: hist.percentile(0.99),
      nodeCpuUsPerEvent: (cpu.user + cpu.system) / s.n,
      nodeCpuUs: cpu.user + cpu.system,
      startedAt,
      finishedAt,
      // The package's own counters over the measured window (null for the references).
      notReservedEntries: stats1 && stats1.notReservedEntries - stats0.notReservedEntries,
      groupWrites: stats1 && stats1.groupEvents.count - stats0.groupEvents.count,
      rssStartMB: rssStart,
      rssPeakMB: rssPeak,
      rssEndMB: rssMB(),
      samples,
    },
  });
  await once('close');
  await pub.close();
}

main().then(
  () => process.disconnect(),
  (e) => {
    process.send({ cmd: 'error', error: e && (e.stack || e.message || String(e)) });
    process.disconnect();
  },
);
