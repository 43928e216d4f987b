'use strict';
// A business process for the outbox crash tests, run as a child and killed by them. Env:
// MODE 'commit-then-die': COUNT transactions (a ledger row and 1-3 staged events each, every
//   fifth rolled back), printing each committed one as a JSON line, then SIGKILLs itself before
//   any dispatch. 'dispatch': one committed transaction, its line printed, then dispatch() (the
//   test makes the acknowledgement block and kills this process after the append).
// REDIS_URL, DATABASE_URL, STREAM, DEDUP_WINDOW_MS.

const { Pool } = require('pg');
const { EventPublisher } = require('../..');
const { fromPg } = require('../../outbox');

async function main() {
  const publisher = await EventPublisher.connect({
    redisUrl: process.env.REDIS_URL,
    databaseUrl: process.env.DATABASE_URL,
    stream: process.env.STREAM,
    relay: false,
    dedupWindowMs: Number(process.env.DEDUP_WINDOW_MS || 600000),
  });
  const pool = new Pool({ connectionString: process.env.DATABASE_URL, max: 2 });
  const tx = async (i, rollback) => {
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      const ledgerId = `${process.env.STREAM}-${process.pid}-${i}`;
      await c.query('INSERT INTO outbox_ledger (id, note) VALUES ($1, $2)', [ledgerId, 'child']);
      const n = 1 + (i % 3);
      const staged = publisher.stageBatch(
        Array.from({ length: n }, (_, k) => ({ type: 'pm.task.phase_changed', data: { taskId: ledgerId, k }, context: { tenantId: 't', userId: 'u' } })),
      );
      await fromPg(c).execute(staged.statement);
      await c.query(rollback ? 'ROLLBACK' : 'COMMIT');
      return { ledgerId, eventIds: staged.eventIds, committed: !rollback };
    } finally {
      c.release();
    }
  };
  if (process.env.MODE === 'commit-then-die') {
    const count = Number(process.env.COUNT || 50);
    for (let i = 0; i < count; i++) {
      process.stdout.write(`${JSON.stringify(await tx(i, i % 5 === 4))}\n`);
    }
    process.stdout.write('done\n', () => process.kill(process.pid, 'SIGKILL'));
    return;
  }
  const t = await tx(0, false);
  process.stdout.write(`${JSON.stringify(t)}\n`);
  // The test takes its lock first, then says go.
  await new Promise((r) => process.stdin.once('data', r));
  await publisher.dispatch({ eventIds: t.eventIds });
  process.stdout.write('dispatched\n');
}

main().catch((e) => {
  process.stderr.write(`${e && e.stack}\n`);
  process.exit(1);
});
