'use strict';
// Instruction counts of the publisher's per-event work (issue 9: the cost of metrics and of
// logging), for callgrind. Publishes --events events with --in-flight publishes outstanding to the
// test database and Redis (TEST_DATABASE_URL / TEST_REDIS_URL, as the tests use), on a stream of
// its own that it deletes afterwards, and prints the event count and the process's CPU time.
//
//   # symbols kept, Metrics::* out of line (feature `profiling`) so callgrind can name them:
//   CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
//     npx napi build --platform --release --features profiling --no-js --dts binding.d.ts
//   TEST_DATABASE_URL=postgres://root@127.0.0.1:5432/<db>?sslmode=disable \
//     valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p node bench/profile.js --log off
//   callgrind_annotate --inclusive=yes /tmp/cg.<pid> | grep -E 'Metrics::|Histogram::'
//
// Options: --events N (20000), --in-flight N (64), --log off|file (off: logLevel 'off';
// file: logLevel 'info' and a logger writing one JSON line per record to a file, as bench's
// package-log-file does). Run without valgrind to get the CPU time that converts instructions
// to µs (total instructions of the callgrind run / CPU µs of a plain run).

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const Redis = require('ioredis');
const { EventPublisher } = require('..');
const { DATABASE_URL, REDIS_URL, ensureDatabase } = require('../__test__/support/stores');

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const EVENTS = Number(arg('events', 20000));
const IN_FLIGHT = Number(arg('in-flight', 64));
const LOG = arg('log', 'off');

// The bench's approval decision (~590 bytes of event JSON).
const data = (i) => ({
  approvalId: `clx${String(i % 64).padStart(4, '0')}k2m9v0000qwerty8z1`,
  type: 'content_publish',
  title: `Publish blog post #${i % 64}: Q4 product launch for EMEA`,
  decision: 'approved',
  decidedById: `user_${String(i % 7).padStart(3, '0')}_4f9c2a7e`,
  decisionNotes: 'Reviewed copy, legal disclaimer and imagery; scheduled for Tuesday 09:00 CET.',
  confidenceScore: 0.87,
  decidedAt: new Date(Date.UTC(2026, 10, 27, 6, 32, 41, 123)),
});
const context = (i) => ({ tenantId: `ws_${String(i % 8).padStart(2, '0')}_7d1f0c9b3e`, userId: 'user_001_4f9c2a7e', source: 'approvals' });

async function main() {
  await ensureDatabase();
  const stream = `profile:${process.pid}`;
  const file = path.join(os.tmpdir(), `profile-log-${process.pid}.jsonl`);
  const out = LOG === 'file' ? fs.createWriteStream(file) : null;
  const p = await EventPublisher.connect({
    databaseUrl: DATABASE_URL,
    redisUrl: REDIS_URL,
    stream,
    // Valgrind runs ~50x slower: no publish may time out.
    timeoutMs: 600_000,
    logLevel: out ? 'info' : 'off',
    logger: out ? (e) => out.write(`${JSON.stringify(e)}\n`) : undefined,
  });
  const before = process.cpuUsage();
  const t0 = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < EVENTS) {
        const i = next++;
        await p.publish('approval.item.approved', data(i), context(i));
      }
    }),
  );
  const cpu = process.cpuUsage(before);
  const wallMs = Date.now() - t0;
  const stats = p.stats();
  await p.close();
  if (out) await new Promise((r) => out.end(r));
  const lines = out ? fs.readFileSync(file, 'utf8').split('\n').length - 1 : 0;
  fs.rmSync(file, { force: true });
  const redis = new Redis(REDIS_URL);
  await redis.del(stream);
  redis.disconnect();
  console.log(
    JSON.stringify({
      events: EVENTS,
      inFlight: IN_FLIGHT,
      log: LOG,
      sent: stats.sentMessages,
      logLines: lines,
      cpuUsPerEvent: (cpu.user + cpu.system) / EVENTS,
      wallMs,
    }),
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
