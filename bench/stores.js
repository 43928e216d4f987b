'use strict';
// Private Redis and Postgres for the benchmark: started on free loopback ports under a temp
// dir and stopped by PID, so a run never disturbs the machine's shared servers (and their
// data never disturbs the figures). BENCH_SHARED_STORES=1 falls back to the shared servers
// (127.0.0.1:6379 and :5432, database `bench`, created if missing).

const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { Client } = require('pg');
const Redis = require('ioredis');

const HOST = '127.0.0.1'; // loopback only, always
const MIGRATION = path.join(__dirname, '..', 'migrations', '0001_event_metadata.sql');
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
const PG_BIN = execFileSync('pg_config', ['--bindir']).toString().trim();

/** A shell-quoted command line, for RESULTS.md. */
const quoteArg = (a) => (/^[\w./:=@-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
const commandLine = (cmd, args) => [cmd, ...args].map(quoteArg).join(' ');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, HOST, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitGone(pid, ms) {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) if (!alive(pid)) return true;
  return !alive(pid);
}

// initdb and postgres refuse to run as root: drop to the `postgres` user with setpriv, which
// execs in place (unlike su/runuser), so the PID we spawn is the postmaster itself.
function asPgUser(cmd, args) {
  if (process.getuid() !== 0) return [cmd, args];
  return ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', '--', cmd, ...args]];
}

async function startRedis(dir) {
  const port = await freePort();
  // Like the shared one: no RDB snapshots, no AOF (a snapshot fork mid-run would skew figures).
  const args = ['--bind', HOST, '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir,
    '--logfile', path.join(dir, 'redis.log')];
  const child = spawn('redis-server', args, { stdio: 'ignore' });
  const redis = new Redis({ host: HOST, port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => {}); // refused connects while it boots are expected; the loop retries
  for (let i = 0; ; i++) {
    try {
      await redis.connect();
      await redis.ping();
      break;
    } catch (e) {
      if (i > 100 || child.exitCode !== null) {
        child.kill('SIGKILL');
        throw new Error(`redis-server did not start on ${port}: ${e.message}`);
      }
      await sleep(50);
      redis.disconnect();
    }
  }
  const info = await redis.info('server');
  redis.disconnect();
  return {
    port,
    pid: child.pid,
    url: `redis://${HOST}:${port}`,
    version: /redis_version:(\S+)/.exec(info)[1],
    commands: [['redis-server', args]],
    async stop() {
      if (!alive(child.pid)) return;
      child.kill('SIGTERM');
      if (!(await waitGone(child.pid, 10000))) child.kill('SIGKILL');
    },
  };
}

async function startPostgres(dir) {
  const port = await freePort();
  const data = path.join(dir, 'pgdata');
  const sock = path.join(dir, 'pgsock');
  fs.mkdirSync(sock);
  if (process.getuid() === 0) execFileSync('chown', ['-R', 'postgres:postgres', dir]);
  // Cluster defaults (fsync, synchronous_commit, full_page_writes on; 128 MB shared_buffers),
  // as on the shared server. --no-sync only skips syncing initdb's own files.
  const initdb = [path.join(PG_BIN, 'initdb'), ['-D', data, '-U', 'bench', '-A', 'trust', '-E', 'UTF8', '--no-sync']];
  const postgres = [path.join(PG_BIN, 'postgres'), ['-D', data, '-c', `listen_addresses=${HOST}`, '-p', String(port), '-k', sock]];
  const [icmd, iargs] = asPgUser(...initdb);
  execFileSync(icmd, iargs, { stdio: 'pipe' });
  const [cmd, args] = asPgUser(...postgres);
  const log = fs.openSync(path.join(dir, 'postgres.log'), 'a');
  const child = spawn(cmd, args, { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  const admin = `postgresql://bench@${HOST}:${port}/postgres`;
  for (let i = 0; ; i++) {
    const c = new Client({ connectionString: admin });
    try {
      await c.connect();
      await c.query('CREATE DATABASE bench');
      await c.end();
      break;
    } catch (e) {
      await c.end().catch(() => {});
      if (i > 200 || child.exitCode !== null) {
        child.kill('SIGQUIT');
        throw new Error(`postgres did not start on ${port} (see ${dir}/postgres.log): ${e.message}`);
      }
      await sleep(100);
    }
  }
  const url = `postgresql://bench@${HOST}:${port}/bench`;
  return {
    port,
    pid: child.pid,
    url,
    user: 'bench',
    database: 'bench',
    version: await serverVersion(url),
    commands: [initdb, postgres],
    async stop() {
      if (!alive(child.pid)) return;
      child.kill('SIGINT'); // fast shutdown
      if (!(await waitGone(child.pid, 30000))) child.kill('SIGQUIT');
    },
  };
}

async function serverVersion(url) {
  const c = new Client({ connectionString: url });
  await c.connect();
  const { rows } = await c.query('SHOW server_version');
  await c.end();
  return rows[0].server_version;
}

async function sharedStores() {
  const redisUrl = `redis://${HOST}:6379`;
  const redis = new Redis(redisUrl);
  const rpid = Number(/process_id:(\d+)/.exec(await redis.info('server'))[1]);
  const rver = /redis_version:(\S+)/.exec(await redis.info('server'))[1];
  redis.disconnect();
  const user = process.env.PGUSER || os.userInfo().username;
  const admin = new Client({ connectionString: `postgresql://${user}@${HOST}:5432/postgres` });
  await admin.connect();
  const { rowCount } = await admin.query("SELECT 1 FROM pg_database WHERE datname = 'bench'");
  if (!rowCount) await admin.query('CREATE DATABASE bench');
  const dataDir = (await admin.query('SHOW data_directory')).rows[0].data_directory;
  await admin.end();
  const url = `postgresql://${user}@${HOST}:5432/bench`;
  const pgPid = Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  return {
    shared: true,
    dir: null,
    redis: { port: 6379, pid: rpid, url: redisUrl, version: rver, stop: async () => {}, commands: [] },
    pg: { port: 5432, pid: pgPid, url, user, database: 'bench', version: await serverVersion(url), commands: [], stop: async () => {} },
  };
}

/** Starts both stores (or attaches to the shared ones) and creates event_metadata. */
async function startStores() {
  let stores;
  if (process.env.BENCH_SHARED_STORES === '1') {
    stores = await sharedStores();
  } else {
    const dir = fs.mkdtempSync(path.join(process.env.BENCH_TMPDIR || os.tmpdir(), 'hyvve-bench-'));
    stores = { shared: false, dir };
    // Registered before starting, so a failure halfway still stops what did start.
    const stopAll = async () => {
      await Promise.all([stores.redis?.stop(), stores.pg?.stop()]);
      fs.rmSync(dir, { recursive: true, force: true });
    };
    stores.stop = stopAll;
    try {
      stores.redis = await startRedis(dir);
      stores.pg = await startPostgres(dir);
    } catch (e) {
      await stopAll();
      throw e;
    }
  }
  stores.stop ??= async () => {};
  await createTable(stores.pg.url);
  return stores;
}

async function createTable(url) {
  const c = new Client({ connectionString: url });
  await c.connect();
  const { rowCount } = await c.query("SELECT 1 FROM pg_class WHERE relname = 'event_metadata'");
  if (!rowCount) await c.query(fs.readFileSync(MIGRATION, 'utf8'));
  await c.end();
}

/** CPU seconds used so far by a process and its reaped children (a postmaster reaps its backends). */
function procCpu(pid, withChildren) {
  // Fields after the parenthesised command name; utime is field 14 of stat, i.e. index 11 here.
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  let ticks = Number(f[11]) + Number(f[12]);
  if (withChildren) ticks += Number(f[13]) + Number(f[14]);
  return { ticks, ppid: Number(f[1]) };
}

/**
 * CPU seconds of the whole Postgres cluster: the postmaster (with the backends it has reaped)
 * plus every live child. A backend that exits mid-run moves from the second sum to the first,
 * so deltas stay right.
 */
function postgresCpuSeconds(postmasterPid) {
  let ticks = procCpu(postmasterPid, true).ticks;
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === postmasterPid) continue;
    try {
      const p = procCpu(Number(name), false);
      if (p.ppid === postmasterPid) ticks += p.ticks;
    } catch {
      // exited while we looked
    }
  }
  return ticks / CLK_TCK;
}

/** Redis's own account of its CPU (all its threads), in seconds. */
async function redisCpuSeconds(redis) {
  const info = await redis.info('cpu');
  return Number(/used_cpu_user:([\d.]+)/.exec(info)[1]) + Number(/used_cpu_sys:([\d.]+)/.exec(info)[1]);
}

module.exports = { startStores, postgresCpuSeconds, redisCpuSeconds, commandLine, PG_BIN, CLK_TCK, HOST };
