'use strict';
// The end-of-run correctness check: a publisher that is fast because it drops rows or entries
// must fail here, not win the table.

const PAGE = 5000;

/**
 * Checks that the stream holds exactly `expected` entries, the table exactly `expected` rows,
 * and that every entry has its row: the row whose event_id is the JSON `id` of the entry's
 * first field value has that entry's stream_id and the entry's type/source/tenant/correlation.
 * With both counts equal to `expected` and event_id unique, this also covers every row.
 */
async function verify({ redis, pg, stream, expected }) {
  const xlen = await redis.xlen(stream);
  const rows = Number((await pg.query('SELECT count(*) AS n FROM event_metadata')).rows[0].n);
  let matched = 0;
  const problems = [];
  const problem = (msg) => { if (problems.length < 5) problems.push(msg); };

  for (let start = '-'; ;) {
    const entries = await redis.xrange(stream, start, '+', 'COUNT', PAGE);
    if (!entries.length) break;
    const byEventId = new Map();
    for (const [streamId, fields] of entries) {
      // Readers take the first field's value positionally (COMPAT.md §1).
      if (fields[0] !== 'event') problem(`${streamId}: first field is ${fields[0]}`);
      let event;
      try {
        event = JSON.parse(fields[1]);
      } catch {
        problem(`${streamId}: value is not JSON`);
        continue;
      }
      if (byEventId.has(event.id)) problem(`event id ${event.id} in two entries`);
      byEventId.set(event.id, { streamId, event });
    }
    const { rows: found } = await pg.query(
      `SELECT event_id, stream_id, type, source, tenant_id, correlation_id, status::text AS status, attempts
         FROM event_metadata WHERE event_id = ANY($1)`,
      [[...byEventId.keys()]],
    );
    for (const r of found) {
      const { streamId, event } = byEventId.get(r.event_id);
      const want = [streamId, event.type, event.source, event.tenantId, event.correlationId, 'PENDING', 0];
      const got = [r.stream_id, r.type, r.source, r.tenant_id, r.correlation_id, r.status, r.attempts];
      if (want.every((v, i) => v === got[i])) matched++;
      else problem(`row of ${r.event_id}: ${JSON.stringify(got)} != entry ${JSON.stringify(want)}`);
    }
    if (found.length < byEventId.size) problem(`${byEventId.size - found.length} entries without a row`);
    start = `(${entries[entries.length - 1][0]}`; // exclusive: after the last id seen
  }

  if (xlen !== expected) problem(`XLEN ${xlen} != ${expected} published`);
  if (rows !== expected) problem(`${rows} rows != ${expected} published`);
  if (matched !== expected) problem(`${matched} of ${expected} entries have their matching row`);
  return { ok: problems.length === 0, xlen, rows, matched, problems };
}

module.exports = { verify };
