'use strict';
// Another Redis client, in its own process: PINGs the server on argv[2] back to back (1 ms
// apart) until its stdin closes, then prints {"worstMs":…,"count":…} (the longest a PING waited).
const Redis = require('ioredis');

const c = new Redis(process.argv[2], { maxRetriesPerRequest: 0, retryStrategy: () => null });
c.on('error', () => {});
let stop = false;
let worst = 0;
let count = 0;
process.stdin.on('end', () => {
  stop = true;
});
process.stdin.resume();
(async () => {
  await c.ping();
  process.stdout.write('ready\n');
  while (!stop) {
    const t = process.hrtime.bigint();
    if (!(await c.ping().catch(() => null))) break; // the server went away
    worst = Math.max(worst, Number(process.hrtime.bigint() - t) / 1e6);
    count++;
    await new Promise((r) => setTimeout(r, 1));
  }
  process.stdout.write(`${JSON.stringify({ worstMs: worst, count })}\n`);
  c.disconnect();
})();
