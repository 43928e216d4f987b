'use strict';
// A private PgBouncer (Debian's package, /usr/sbin/pgbouncer) on a free loopback port in front of
// a Postgres, with PgBouncer's default settings except what a test must set: where to listen,
// where the server is, auth_type = trust with a userlist, the pool mode and size, and an admin
// user for the console. No ignore_startup_parameters. It refuses to run as root, so as root it
// runs as the `postgres` OS user. Stopped by PID.

const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Client } = require('pg');
const { freePort, waitFor } = require('./stores');

const BIN = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer'].find((f) => fs.existsSync(f));

/** Why PgBouncer tests cannot run here, or null. */
function pgbouncerMissing() {
  return BIN ? null : 'pgbouncer is not installed (.ci/run installs Debian\'s package)';
}

function version() {
  return execFileSync(BIN, ['--version'], { encoding: 'utf8' }).split('\n')[0].trim();
}

const children = new Set();
process.once('exit', () => {
  for (const c of children) {
    try {
      process.kill(c.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

/** The uid/gid to run as: the postgres user when we are root. */
function runAs() {
  if (!process.getuid || process.getuid() !== 0) return {};
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

/**
 * Starts PgBouncer in `mode` ('transaction' | 'session') in front of the Postgres at
 * `serverPort` with `poolSize` server connections per database/user pair.
 */
async function startPgBouncer({ serverPort = 5432, mode = 'transaction', poolSize = 2, user = 'root' } = {}) {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyvve-pgb-'));
  fs.chmodSync(dir, 0o777);
  const ini = path.join(dir, 'pgbouncer.ini');
  fs.writeFileSync(path.join(dir, 'userlist.txt'), `"${user}" ""\n`);
  fs.writeFileSync(
    ini,
    [
      '[databases]',
      `* = host=127.0.0.1 port=${serverPort}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      `unix_socket_dir = ${dir}`,
      'auth_type = trust',
      `auth_file = ${path.join(dir, 'userlist.txt')}`,
      `admin_users = ${user}`,
      `pool_mode = ${mode}`,
      `default_pool_size = ${poolSize}`,
      `logfile = ${path.join(dir, 'pgbouncer.log')}`,
      '',
    ].join('\n'),
  );
  for (const f of fs.readdirSync(dir)) fs.chmodSync(path.join(dir, f), 0o644);
  const bouncer = {
    port,
    dir,
    mode,
    child: null,
    /** A URL through this PgBouncer to `database`, with `query` appended. */
    url(database, query = 'sslmode=disable') {
      return `postgres://${user}@127.0.0.1:${port}/${database}${query ? `?${query}` : ''}`;
    },
    async start() {
      const child = spawn(BIN, [ini], { stdio: 'ignore', ...runAs() });
      children.add(child);
      child.once('exit', () => children.delete(child));
      this.child = child;
      await waitFor(async () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`pgbouncer exited: ${this.log()}`);
        const c = await this.admin();
        await c.end();
        return true;
      }, `pgbouncer on ${port}`);
    },
    /** Stops it with `signal` (SIGINT: PgBouncer's safe shutdown) and waits for the exit. */
    async stop(signal = 'SIGINT') {
      const c = this.child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise((r) => c.once('exit', r));
      c.kill(signal);
      const timer = setTimeout(() => c.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
    async restart(signal = 'SIGINT') {
      await this.stop(signal);
      await this.start();
    },
    /** A client of the admin console (database `pgbouncer`). */
    async admin() {
      const c = new Client({ connectionString: `postgres://${user}@127.0.0.1:${port}/pgbouncer?sslmode=disable` });
      c.on('error', () => {});
      await c.connect();
      return c;
    },
    /** Runs one admin console command (PAUSE, RESUME, RECONNECT, SHOW POOLS, ...). */
    async command(sql) {
      const c = await this.admin();
      try {
        return (await c.query(sql)).rows;
      } finally {
        await c.end().catch(() => {});
      }
    },
    log() {
      try {
        return fs.readFileSync(path.join(dir, 'pgbouncer.log'), 'utf8');
      } catch {
        return '';
      }
    },
    async destroy() {
      await this.stop('SIGTERM');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  await bouncer.start();
  return bouncer;
}

module.exports = { startPgBouncer, pgbouncerMissing, version };
