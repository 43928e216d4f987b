'use strict';
// The publishing process of budget.test.js (a child, so its RSS is its own). Over IPC:
// <- { options, n, kib, stream }   connect, warm up, GC, -> { type: 'ready' }
// <- 'fire'                         n publishes of a kib KiB payload at once, -> { type: 'fired', stats }
//                                   then, when all settled and after a GC, -> { type: 'settled', ... }
// <- 'close'                        close and exit.
const { EventPublisher } = require('../..');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const next = () => new Promise((r) => process.once('message', r));

(async () => {
  const { options, n, kib, stream } = await next();
  const p = await EventPublisher.connect({ ...options, stream, logLevel: 'off' });
  for (let i = 0; i < 10; i++) await p.publish('overload.warmup', { i }, { tenantId: 'warm', userId: 'u' });
  const payload = { blob: 'x'.repeat(kib * 1024 - 12) };
  global.gc();
  await sleep(200);
  process.send({ type: 'ready' });
  await next();
  const resolved = [];
  const codes = {};
  const unknown = [];
  const definite = [];
  const all = [];
  for (let i = 0; i < n; i++) {
    const eventId = `${stream}-${i}`;
    all.push(p.publish('overload.stall', payload, { tenantId: stream, userId: 'u', eventId }).then(
      (id) => resolved.push(id),
      (e) => {
        codes[e.code] = (codes[e.code] || 0) + 1;
        (e.outcomeUnknown ? unknown : definite).push(eventId);
      },
    ));
  }
  process.send({ type: 'fired', stats: p.stats() });
  await Promise.all(all);
  await sleep(300);
  global.gc();
  await sleep(500);
  global.gc();
  const health = await p.health();
  process.send({ type: 'settled', resolved, codes, unknown, definite, stats: p.stats(), health, metrics: await p.metrics() });
  await next();
  await p.close();
  process.exit(0);
})().catch((e) => {
  process.send({ type: 'error', message: String(e && e.stack) });
  process.exit(1);
});
