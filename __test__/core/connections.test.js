'use strict';
// Postgres connections: one publish at a time runs on one connection, not in turn on every
// connection of the pool (sqlx hands idle connections out first-in first-out; each server
// process woken cold in turn cost Postgres CPU per publish).

const { EventPublisher } = require('../..');
const { DATABASE_URL, REDIS_URL, uid, ensureDatabase, pgClient } = require('../support/stores');

let pg;
beforeAll(async () => {
  await ensureDatabase();
  pg = await pgClient();
});
afterAll(async () => {
  if (pg) await pg.end();
});

/** The publisher's server processes (by application_name) that ran a statement since `since`. */
const backends = async (app, since) =>
  (await pg.query('SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND state_change >= $2', [app, since])).rows;

test('sequential publishes after a burst run on one connection of the pool', async () => {
  const app = uid('warm');
  const sep = DATABASE_URL.includes('?') ? '&' : '?';
  const p = await EventPublisher.connect({ databaseUrl: `${DATABASE_URL}${sep}application_name=${app}`, redisUrl: REDIS_URL, stream: uid('test:conn'), logLevel: 'off' });
  try {
    const ctx = { tenantId: uid('ws'), userId: 'u' };
    const start = (await pg.query('SELECT now() AS t')).rows[0].t;
    // A burst opens several connections (the precondition: there is a choice of connection).
    await Promise.all(Array.from({ length: 300 }, (_, i) => p.publish('approval.item.requested', { i }, ctx)));
    expect((await backends(app, start)).length).toBeGreaterThan(1);
    await new Promise((r) => setTimeout(r, 20));
    const since = (await pg.query('SELECT now() AS t')).rows[0].t;
    for (let i = 0; i < 30; i++) await p.publish('approval.item.requested', { i }, ctx);
    expect(await backends(app, since)).toHaveLength(1);
  } finally {
    await p.close();
  }
});
