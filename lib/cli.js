'use strict';
// The operator's CLI (bin/hyvve-event-publisher.js): publish, tail, stats, reconcile, migrate.
// Configured from the same environment as the library (REDIS_URL or REDIS_HOST/REDIS_PORT/
// REDIS_PASSWORD, DATABASE_URL), overridden by --redis-url, --database-url and --stream.
// publish/reconcile/migrate go through EventPublisher; tail and stats read the stores directly
// with ioredis and pg (optional peer dependencies, needed only by these two commands).
// Exit codes: 0 ok, 1 the operation failed, 2 the command line is wrong (nothing was attempted).

const { parseArgs } = require('node:util');

const DEFAULT_STREAM = 'hyvve:events:main';
const TABLE = 'event_metadata';

/** A command-line mistake: exit 2 with the command's usage. */
class UsageError extends Error {}

/** A failure of the operation: exit 1. `code` as the library's errors have one. */
class CliError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

const GLOBAL_OPTIONS = {
  'redis-url': { type: 'string' },
  'database-url': { type: 'string' },
  stream: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

const GLOBAL_HELP = `Global options:
  --redis-url URL      Redis (default: REDIS_URL, else REDIS_HOST/REDIS_PORT/REDIS_PASSWORD, else redis://127.0.0.1:6379)
  --database-url URL   Postgres (default: DATABASE_URL; Prisma's schema= parameter is honoured)
  --stream KEY         stream key (default ${DEFAULT_STREAM})
  --json               machine-readable output (one JSON object per line)
  -h, --help           this help
Exit codes: 0 ok, 1 failure, 2 usage error.`;

const COMMANDS = {
  publish: {
    usage: 'hyvve-event-publisher publish <type> <data-json> --tenant T --user U [--source S] [--event-id ID] [--correlation-id C]',
    about: 'Publishes one event (row, then stream entry) and prints its event id.',
    options: { tenant: { type: 'string' }, user: { type: 'string' }, source: { type: 'string' }, 'event-id': { type: 'string' }, 'correlation-id': { type: 'string' } },
    positionals: 2,
    run: publish,
  },
  tail: {
    usage: 'hyvve-event-publisher tail [--since 10m | --from <entry id>] [--count N] [--follow] [--tenant T] [--type prefix]',
    about:
      'Prints stream entries (entry ID, time, type, tenant, event id, data), each with its row\'s status and attempts.\n' +
      'Without --follow: the last --count (default 100) entries since --since (default 10m) or from --from (inclusive).\n' +
      'With --follow: then waits for new entries until interrupted.',
    options: { since: { type: 'string' }, from: { type: 'string' }, count: { type: 'string' }, follow: { type: 'boolean', short: 'f' }, tenant: { type: 'string' }, type: { type: 'string' } },
    positionals: 0,
    run: tail,
  },
  stats: {
    usage: 'hyvve-event-publisher stats',
    about: 'Reads the stores: stream length, first and last entry, consumer groups (pending, lag), rows by status created in the last hour and day.',
    options: {},
    positionals: 0,
    run: stats,
  },
  reconcile: {
    usage: 'hyvve-event-publisher reconcile [--older-than 60s] [--within 24h]',
    about: 'Runs reconcile(): settles PENDING rows created between --within and --older-than ago whose entry is missing, and prints its report.',
    options: { 'older-than': { type: 'string' }, within: { type: 'string' } },
    positionals: 0,
    run: reconcile,
  },
  migrate: {
    usage: 'hyvve-event-publisher migrate',
    about: 'Creates the event_metadata table (the platform\'s Prisma DDL) if the database has none. Never alters a table.',
    options: {},
    positionals: 0,
    run: migrate,
  },
};

function mainHelp() {
  const lines = ['Usage: hyvve-event-publisher <command> [options]', '', 'Commands:'];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(10)} ${c.about.split('\n')[0]}`);
  lines.push('', 'Run `hyvve-event-publisher <command> --help` for its options.', '', GLOBAL_HELP);
  return lines.join('\n');
}

function commandHelp(name) {
  const c = COMMANDS[name];
  return `Usage: ${c.usage}\n\n${c.about}\n\n${GLOBAL_HELP}`;
}

// ---- parsing -------------------------------------------------------------------------------------

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `90s`, `10m`, `24h`, `7d`, `500ms` → milliseconds. */
function parseDuration(flag, value) {
  const m = DURATION.exec(String(value).trim());
  if (!m) throw new UsageError(`--${flag} takes a duration such as 500ms, 90s, 10m, 24h or 7d; got '${value}'`);
  return Math.round(Number(m[1]) * UNIT_MS[m[2]]);
}

const ENTRY_ID = /^\d+(-\d+)?$/;

/** Splits argv into the command, its positionals and its options; UsageError on anything unknown. */
function parse(argv) {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') return { help: mainHelp() };
  const command = COMMANDS[name];
  if (!command) throw new UsageError(`unknown command '${name}'`, { cause: mainHelp() });
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: { ...GLOBAL_OPTIONS, ...command.options }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(err.message.replace(/\. To specify a positional argument.*$/s, ''));
  }
  const { values, positionals } = parsed;
  if (values.help) return { help: commandHelp(name) };
  if (positionals.length !== command.positionals) {
    throw new UsageError(
      command.positionals === 0
        ? `${name} takes no arguments, got '${positionals.join(' ')}'`
        : `${name} takes ${command.positionals} arguments, got ${positionals.length}`,
    );
  }
  return { name, command, values, positionals };
}

/** The store URLs as the library resolves them (flags first, then the environment). */
function storeConfig(values, env) {
  let redisUrl = values['redis-url'] || env.REDIS_URL;
  if (!redisUrl) {
    const host = env.REDIS_HOST || '127.0.0.1';
    const port = env.REDIS_PORT || '6379';
    const auth = env.REDIS_PASSWORD ? `:${encodeURIComponent(env.REDIS_PASSWORD)}@` : '';
    redisUrl = `redis://${auth}${host}:${port}/0`;
  }
  return { redisUrl, databaseUrl: values['database-url'] || env.DATABASE_URL, stream: values.stream || DEFAULT_STREAM };
}

/** Removes the password from a URL for messages. */
function redact(text, url) {
  if (!url) return text;
  try {
    const u = new URL(url);
    if (u.password) return text.split(u.password).join('***').split(decodeURIComponent(u.password)).join('***');
  } catch {
    // not a URL: nothing to redact
  }
  return text;
}

/** `host:port` of a URL, for messages (never its credentials). */
function hostOf(url) {
  try {
    return new URL(url).host;
  } catch {
    return '(unparsable URL)';
  }
}

// ---- the stores, for tail and stats -----------------------------------------------------------

function optionalPeer(name, command) {
  try {
    return require(name);
  } catch (err) {
    if (err && err.code === 'MODULE_NOT_FOUND') {
      throw new CliError('ERR_CONFIG', `${command} needs the '${name}' package next to @hyvve/event-publisher: npm install ioredis pg`);
    }
    throw err;
  }
}

async function openRedis(cfg, command) {
  const { Redis } = optionalPeer('ioredis', command);
  const redis = new Redis(cfg.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 5000, retryStrategy: () => null, enableOfflineQueue: false });
  redis.on('error', () => {}); // reported by the command that failed
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw new CliError('ERR_REDIS', redact(`cannot connect to Redis at ${hostOf(cfg.redisUrl)}: ${err.message}`, cfg.redisUrl));
  }
  return redis;
}

async function openPg(cfg, command) {
  if (!cfg.databaseUrl) throw new CliError('ERR_CONFIG', 'no database URL: pass --database-url or set DATABASE_URL');
  const { Client } = optionalPeer('pg', command);
  let schema = null;
  let connectionString = cfg.databaseUrl;
  try {
    const u = new URL(cfg.databaseUrl);
    schema = u.searchParams.get('schema');
    // Prisma's own parameters mean nothing to pg.
    for (const p of ['schema', 'pgbouncer', 'connection_limit', 'pool_timeout', 'connect_timeout', 'statement_cache_size']) u.searchParams.delete(p);
    connectionString = u.toString();
  } catch {
    throw new CliError('ERR_CONFIG', 'the database URL is not a URL');
  }
  const client = new Client({ connectionString, connectionTimeoutMillis: 5000, statement_timeout: 10_000 });
  client.on('error', () => {});
  try {
    await client.connect();
    if (schema) await client.query(`SET search_path TO "${schema.replace(/"/g, '""')}"`);
  } catch (err) {
    await client.end().catch(() => {});
    throw new CliError('ERR_DATABASE', redact(`cannot connect to Postgres at ${hostOf(cfg.databaseUrl)}: ${err.message}`, cfg.databaseUrl));
  }
  return client;
}

/** Runs `fn(redis, pg)` and closes both, whatever happens. */
async function withStores(cfg, command, fn) {
  const redis = await openRedis(cfg, command);
  let pg;
  try {
    pg = await openPg(cfg, command);
    return await fn(redis, pg);
  } finally {
    redis.disconnect();
    if (pg) await pg.end().catch(() => {});
  }
}

const entryTime = (id) => new Date(Number(id.split('-')[0])).toISOString();

/** One stream entry as tail prints it (before its row is joined). */
function entryRecord(id, fields) {
  // Readers take the first field's value positionally (COMPAT.md §1).
  let event = null;
  try {
    event = JSON.parse(fields[1]);
  } catch {
    // not an envelope: printed with nulls
  }
  const e = event && typeof event === 'object' ? event : {};
  return { entryId: id, time: entryTime(id), type: e.type ?? null, tenantId: e.tenantId ?? null, eventId: e.id ?? null, data: e.data ?? null, status: null, attempts: null };
}

async function joinRows(pg, records) {
  const ids = records.map((r) => r.eventId).filter((x) => typeof x === 'string');
  if (!ids.length) return records;
  const { rows } = await pg.query(`SELECT event_id, status::text AS status, attempts FROM ${TABLE} WHERE event_id = ANY($1::text[])`, [ids]);
  const byId = new Map(rows.map((r) => [r.event_id, r]));
  for (const r of records) {
    const row = byId.get(r.eventId);
    if (row) Object.assign(r, { status: row.status, attempts: row.attempts });
    else r.status = 'NO ROW';
  }
  return records;
}

function printEntries(records, json, out) {
  for (const r of records) {
    if (json) out(JSON.stringify(r));
    else {
      const row = r.status === null || r.status === 'NO ROW' ? (r.status || '-') : `${r.status}/${r.attempts}`;
      out(`${r.entryId}  ${r.time}  ${r.type}  tenant=${r.tenantId}  id=${r.eventId}  ${row}  ${JSON.stringify(r.data)}`);
    }
  }
}

// ---- commands ----------------------------------------------------------------------------------

async function publish({ values, positionals, cfg, out }) {
  const [type, dataJson] = positionals;
  let data;
  try {
    data = JSON.parse(dataJson);
  } catch (err) {
    throw new UsageError(`<data-json> is not JSON: ${err.message}`);
  }
  if (!values.tenant || !values.user) throw new UsageError('publish needs --tenant and --user');
  const { EventPublisher } = require('../index.js');
  const p = await EventPublisher.connect({ redisUrl: cfg.redisUrl, databaseUrl: cfg.databaseUrl, stream: cfg.stream, logLevel: 'warn' });
  try {
    const context = { tenantId: values.tenant, userId: values.user, source: values.source, eventId: values['event-id'], correlationId: values['correlation-id'] };
    const id = await p.publish(type, data, context);
    out(values.json ? JSON.stringify({ eventId: id, stream: cfg.stream }) : id);
  } finally {
    await p.close();
  }
}

async function tail({ values, cfg, out, signal }) {
  if (values.since !== undefined && values.from !== undefined) throw new UsageError('tail takes --since or --from, not both');
  if (values.from !== undefined && !ENTRY_ID.test(values.from)) throw new UsageError(`--from takes an entry ID such as 1764000000000-0; got '${values.from}'`);
  const count = values.count === undefined ? 100 : Number(values.count);
  if (!Number.isInteger(count) || count < 1) throw new UsageError(`--count takes a positive integer; got '${values.count}'`);
  const start = values.from !== undefined ? values.from : `${Date.now() - parseDuration('since', values.since === undefined ? '10m' : values.since)}-0`;
  const matches = (r) => (values.tenant === undefined || r.tenantId === values.tenant) && (values.type === undefined || (typeof r.type === 'string' && r.type.startsWith(values.type)));

  await withStores(cfg, 'tail', async (redis, pg) => {
    // The newest `count` matching entries at or after `start`, read backwards in pages.
    const found = [];
    let end = '+';
    let lastSeen = null;
    for (;;) {
      const page = await redis.xrevrange(cfg.stream, end, start, 'COUNT', 500);
      for (const [id, fields] of page) {
        lastSeen = lastSeen || id;
        const r = entryRecord(id, fields);
        if (matches(r)) found.push(r);
        if (found.length >= count) break;
      }
      if (page.length < 500 || found.length >= count) break;
      end = `(${page[page.length - 1][0]}`;
    }
    found.reverse();
    printEntries(await joinRows(pg, found), values.json, out);
    if (!values.follow) return;

    // Follow: block for new entries until interrupted (SIGINT/SIGTERM end it with exit 0).
    let after = lastSeen || (await redis.xrevrange(cfg.stream, '+', '-', 'COUNT', 1)).map(([id]) => id)[0] || '0-0';
    if (after === '0-0' && values.from === undefined) after = '$';
    // A connection of its own: XREAD BLOCK holds it.
    const reader = redis.duplicate();
    reader.on('error', () => {});
    await reader.connect().catch((err) => {
      throw new CliError('ERR_REDIS', redact(`cannot connect to Redis at ${hostOf(cfg.redisUrl)}: ${err.message}`, cfg.redisUrl));
    });
    signal.addEventListener('abort', () => reader.disconnect(), { once: true });
    try {
      while (!signal.aborted) {
        let reply;
        try {
          reply = await reader.xread('COUNT', 500, 'BLOCK', 2000, 'STREAMS', cfg.stream, after);
        } catch (err) {
          if (signal.aborted) break;
          throw new CliError('ERR_REDIS', redact(err.message, cfg.redisUrl));
        }
        if (!reply) continue;
        const entries = reply[0][1];
        after = entries[entries.length - 1][0];
        const records = entries.map(([id, fields]) => entryRecord(id, fields)).filter(matches);
        printEntries(await joinRows(pg, records), values.json, out);
      }
    } finally {
      reader.disconnect();
    }
  });
}

/** XINFO's flat [name, value, ...] replies as an object. */
function pairs(reply) {
  const o = {};
  for (let i = 0; i + 1 < reply.length; i += 2) o[reply[i]] = reply[i + 1];
  return o;
}

async function stats({ values, cfg, out }) {
  const result = await withStores(cfg, 'stats', async (redis, pg) => {
    const stream = { key: cfg.stream, exists: false, length: 0, firstEntry: null, lastEntry: null, lastGeneratedId: null, maxDeletedEntryId: null, groups: [] };
    let info = null;
    try {
      info = pairs(await redis.xinfo('STREAM', cfg.stream));
    } catch (err) {
      if (!/no such key/i.test(err.message)) throw new CliError('ERR_REDIS', redact(err.message, cfg.redisUrl));
    }
    if (info) {
      const entry = (e) => (e ? { entryId: e[0], time: entryTime(e[0]), ...entryRecord(e[0], e[1]), status: undefined, attempts: undefined } : null);
      Object.assign(stream, {
        exists: true,
        length: info.length,
        firstEntry: entry(info['first-entry']),
        lastEntry: entry(info['last-entry']),
        lastGeneratedId: info['last-generated-id'] ?? null,
        maxDeletedEntryId: info['max-deleted-entry-id'] ?? null,
      });
      for (const g of await redis.xinfo('GROUPS', cfg.stream)) {
        const o = pairs(g);
        stream.groups.push({ name: o.name, consumers: o.consumers, pending: o.pending, lastDeliveredId: o['last-delivered-id'], lag: o.lag ?? null });
      }
    }
    let rows;
    try {
      ({ rows } = await pg.query(
        `SELECT status::text AS status,
                count(*) FILTER (WHERE created_at >= (now() AT TIME ZONE 'UTC') - interval '1 hour')::int AS last_hour,
                count(*)::int AS last_day
           FROM ${TABLE}
          WHERE created_at >= (now() AT TIME ZONE 'UTC') - interval '1 day'
          GROUP BY status ORDER BY status`,
      ));
    } catch (err) {
      throw new CliError('ERR_DATABASE', redact(err.message, cfg.databaseUrl));
    }
    const statuses = ['PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'DLQ'];
    const byStatus = (k) => Object.fromEntries(statuses.map((s) => [s, (rows.find((r) => r.status === s) || {})[k] || 0]));
    // The transactional outbox (docs/outbox.md): this stream's committed, not yet appended events.
    let outbox = null;
    try {
      const { rows: o } = await pg.query(
        `SELECT count(*)::int AS pending, COALESCE((extract(epoch FROM clock_timestamp() - min(created_at)) * 1000)::int8, 0)::text AS oldest
           FROM event_outbox WHERE stream = $1`,
        [cfg.stream],
      );
      outbox = { pending: o[0].pending, oldestAgeMs: Number(o[0].oldest) };
    } catch (err) {
      if (err.code !== '42P01') throw new CliError('ERR_DATABASE', redact(err.message, cfg.databaseUrl)); // 42P01: no outbox table (no migrate() since)
    }
    return { stream, rows: { lastHour: byStatus('last_hour'), lastDay: byStatus('last_day') }, outbox };
  });
  for (const e of [result.stream.firstEntry, result.stream.lastEntry]) {
    if (e) {
      delete e.status;
      delete e.attempts;
      delete e.data;
    }
  }
  if (values.json) return out(JSON.stringify(result));
  const s = result.stream;
  const lines = [`stream ${s.key}: ${s.exists ? `${s.length} entries` : 'does not exist'}`];
  if (s.exists) {
    const show = (e) => (e ? `${e.entryId}  ${e.time}  ${e.type}  tenant=${e.tenantId}  id=${e.eventId}` : '-');
    lines.push(`  first   ${show(s.firstEntry)}`, `  last    ${show(s.lastEntry)}`, `  max deleted entry id ${s.maxDeletedEntryId ?? '-'}`);
    lines.push(`consumer groups: ${s.groups.length || 'none'}`);
    for (const g of s.groups) lines.push(`  ${g.name}  consumers=${g.consumers}  pending=${g.pending}  lag=${g.lag ?? 'unknown'}  last-delivered=${g.lastDeliveredId}`);
  }
  lines.push(`${TABLE} rows created in the last hour / day:`);
  for (const st of Object.keys(result.rows.lastDay)) lines.push(`  ${st.padEnd(10)} ${String(result.rows.lastHour[st]).padStart(8)} ${String(result.rows.lastDay[st]).padStart(8)}`);
  lines.push(result.outbox ? `outbox: ${result.outbox.pending} events committed, not yet appended; oldest ${result.outbox.oldestAgeMs} ms` : 'outbox: no event_outbox table (run migrate)');
  out(lines.join('\n'));
}

async function reconcile({ values, cfg, out }) {
  const olderThanMs = parseDuration('older-than', values['older-than'] ?? '60s');
  const withinMs = parseDuration('within', values.within ?? '24h');
  const { EventPublisher } = require('../index.js');
  const p = await EventPublisher.connect({ redisUrl: cfg.redisUrl, databaseUrl: cfg.databaseUrl, stream: cfg.stream, logLevel: 'warn' });
  try {
    const r = await p.reconcile({ olderThanMs, withinMs });
    out(values.json ? JSON.stringify({ stream: cfg.stream, olderThanMs, withinMs, ...r }) : `examined ${r.examined} PENDING rows, repaired ${r.repaired}, marked ${r.failed} FAILED`);
  } finally {
    await p.close();
  }
}

async function migrate({ values, cfg, out }) {
  const { EventPublisher } = require('../index.js');
  const created = await EventPublisher.migrate(cfg.databaseUrl ? { databaseUrl: cfg.databaseUrl } : {});
  out(values.json ? JSON.stringify({ created }) : created ? 'created the event_metadata table' : 'event_metadata already exists: left unchanged');
}

/** Runs the CLI; resolves to the exit code. */
async function main(argv, { env = process.env, out = console.log, err = console.error, signal = new AbortController().signal } = {}) {
  const wantsJson = argv.includes('--json');
  const fail = (code, message, exit) => {
    err(wantsJson ? JSON.stringify({ error: { code, message } }) : `${code}: ${message}`);
    return exit;
  };
  let parsed;
  try {
    parsed = parse(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    err(wantsJson ? JSON.stringify({ error: { code: 'ERR_USAGE', message: e.message } }) : `error: ${e.message}\n\n${e.cause || (argv[0] in COMMANDS ? commandHelp(argv[0]) : mainHelp())}`);
    return 2;
  }
  if (parsed.help) {
    out(parsed.help);
    return 0;
  }
  const cfg = storeConfig(parsed.values, env);
  try {
    await parsed.command.run({ values: parsed.values, positionals: parsed.positionals, cfg, out, signal });
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      err(wantsJson ? JSON.stringify({ error: { code: 'ERR_USAGE', message: e.message } }) : `error: ${e.message}\n\n${commandHelp(parsed.name)}`);
      return 2;
    }
    const message = redact(redact(String(e && e.message), cfg.redisUrl), cfg.databaseUrl);
    return fail((e && e.code) || 'ERR_INTERNAL', message, 1);
  }
}

module.exports = { main, parseDuration };
