'use strict';
// Access to the real stores for assertions, plus private throwaway servers for the tests that
// stop, pause or reconfigure one. Private servers listen on free loopback ports and are stopped by PID.

const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const Redis = require('ioredis');
const { Client } = require('pg');

const ADMIN_URL = process.env.TEST_ADMIN_DATABASE_URL || 'postgres://root@127.0.0.1:5432/postgres?sslmode=disable';
const DB_NAME = 'hyvve_publisher_test';
const DATABASE_URL = process.env.TEST_DATABASE_URL || `postgres://root@127.0.0.1:5432/${DB_NAME}?sslmode=disable`;
const REDIS_URL = process.env.TEST_REDIS_URL || 'redis://127.0.0.1:6379';

const uid = (p = 't') => `${p}-${crypto.randomBytes(6).toString('hex')}`;

/** Creates the test database (once) and the event_metadata table through the package's migrate(). */
async function ensureDatabase(url = DATABASE_URL, admin = ADMIN_URL) {
  const c = new Client({ connectionString: admin });
  await c.connect();
  const dbName = new URL(url).pathname.slice(1);
  const { rowCount } = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [dbName]);
  if (!rowCount) {
    try {
      await c.query(`CREATE DATABASE "${dbName}"`);
    } catch (e) {
      if (e.code !== '42P04' && e.code !== '23505') throw e; // created concurrently
    }
  }
  await c.end();
  const { EventPublisher } = require('../..');
  await EventPublisher.migrate({ databaseUrl: url });
}

async function pgClient(url = DATABASE_URL) {
  const c = new Client({ connectionString: url });
  await c.connect();
  return c;
}

/** Every entry of a stream as { id, fields, event } where event is JSON.parse(fields[1]). */
async function readStream(redis, stream) {
  const entries = await redis.xrange(stream, '-', '+');
  return entries.map(([id, fields]) => ({ id, fields, raw: fields[1], event: JSON.parse(fields[1]) }));
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function waitFor(check, what, ms = 15_000) {
  const until = Date.now() + ms;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A private redis-server on a free loopback port. */
async function startRedis(extraArgs = [], port) {
  port = port || (await freePort());
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extraArgs], {
    stdio: 'ignore',
  });
  const url = `redis://127.0.0.1:${port}`;
  const client = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  await waitFor(async () => {
    if (client.status !== 'ready') await client.connect().catch(() => {});
    return (await client.ping()) === 'PONG';
  }, `redis on ${port}`);
  await client.quit();
  return {
    port,
    url,
    pid: child.pid,
    child,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
    pause() {
      process.kill(child.pid, 'SIGSTOP');
    },
    resume() {
      process.kill(child.pid, 'SIGCONT');
    },
    /** Starts again on the same port (a restart). */
    async restart() {
      await this.stop();
      const again = await startRedis(extraArgs, port);
      Object.assign(this, { pid: again.pid, child: again.child });
    },
  };
}

const PG_BIN = (() => {
  try {
    return execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
  } catch {
    return '/usr/lib/postgresql/15/bin';
  }
})();

/** Runs a Postgres binary as the postgres OS user when we are root (initdb refuses root). */
function pgCmd(bin, args) {
  const exe = path.join(PG_BIN, bin);
  return process.getuid && process.getuid() === 0 ? ['runuser', ['-u', 'postgres', '--', exe, ...args]] : [exe, args];
}

/** A private Postgres cluster on a free loopback port, with the test database and table. */
async function startPostgres() {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyvve-pg-'));
  fs.chmodSync(dir, 0o777);
  const data = path.join(dir, 'data');
  if (process.getuid && process.getuid() === 0) execFileSync('chown', ['postgres', dir]);
  const [c1, a1] = pgCmd('initdb', ['-D', data, '-A', 'trust', '-U', 'root', '--no-sync']);
  execFileSync(c1, a1, { stdio: 'ignore' });
  const pg = {
    port,
    dir,
    adminUrl: `postgres://root@127.0.0.1:${port}/postgres?sslmode=disable`,
    url: `postgres://root@127.0.0.1:${port}/${DB_NAME}?sslmode=disable`,
    async start() {
      const [c, a] = pgCmd('pg_ctl', ['-D', data, '-l', path.join(dir, 'log'), '-w', '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`, 'start']);
      execFileSync(c, a, { stdio: 'ignore' });
    },
    async stop(mode = 'immediate') {
      const [c, a] = pgCmd('pg_ctl', ['-D', data, '-m', mode, '-w', 'stop']);
      try {
        execFileSync(c, a, { stdio: 'ignore' });
      } catch {
        // already stopped
      }
    },
    async destroy() {
      await this.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  await pg.start();
  await ensureDatabase(pg.url, pg.adminUrl);
  return pg;
}

module.exports = {
  ADMIN_URL,
  DATABASE_URL,
  REDIS_URL,
  uid,
  ensureDatabase,
  pgClient,
  readStream,
  startRedis,
  startPostgres,
  waitFor,
  freePort,
};
