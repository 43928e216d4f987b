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

// ---------------------------------------------------------------------------------------------
// Helpers for the fault tests (__test__/faults). Appended; the exports above are unchanged.
//
// Note: startRedis()'s stop() waits for an 'exit' event that never comes when the server was
// already killed by a signal (child.exitCode stays null, signalCode is set), and after restart()
// its stop()/pause()/resume() still act on the first child. privateRedis() below tracks the
// current child, so it can be stopped, paused and restarted any number of times.

const privateChildren = new Set();
process.once('exit', () => {
  for (const c of privateChildren) {
    try {
      process.kill(c.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

const childGone = (c) => c.exitCode !== null || c.signalCode !== null;

/**
 * A private redis-server on a free loopback port that can be stopped, restarted on the same port,
 * paused (SIGSTOP) and resumed any number of times. `tls: { cert, key, ca }` serves TLS only
 * (`--port 0 --tls-port P`); `url` is then `rediss://127.0.0.1:P`.
 */
async function privateRedis(extraArgs = [], { port, tls } = {}) {
  port = port || (await freePort());
  const listen = tls
    ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', tls.cert, '--tls-key-file', tls.key, '--tls-ca-cert-file', tls.ca, '--tls-auth-clients', 'no']
    : ['--port', String(port)];
  const args = [...listen, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extraArgs];
  const password = (() => {
    const i = extraArgs.indexOf('--requirepass');
    return i >= 0 ? extraArgs[i + 1] : undefined;
  })();
  const clientOptions = () => ({
    port,
    host: '127.0.0.1',
    password,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    ...(tls ? { tls: { ca: fs.readFileSync(tls.ca), servername: 'localhost' } } : {}),
  });
  const srv = {
    port,
    url: `${tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`,
    child: null,
    get pid() {
      return this.child && this.child.pid;
    },
    async start() {
      const child = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => {
        stderr += d;
      });
      privateChildren.add(child);
      child.once('exit', () => privateChildren.delete(child));
      this.child = child;
      const client = new Redis(clientOptions());
      client.on('error', () => {});
      try {
        await waitFor(async () => {
          if (childGone(child)) throw Object.assign(new Error(`redis-server exited: ${stderr}`), { fatal: true });
          if (client.status !== 'ready') await client.connect().catch(() => {});
          return (await client.ping()) === 'PONG';
        }, `redis on ${port}`);
      } finally {
        client.disconnect();
      }
    },
    /** SIGKILL (also works on a paused server); resolves once it has exited. */
    async stop() {
      const child = this.child;
      if (!child || childGone(child)) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
    pause() {
      process.kill(this.child.pid, 'SIGSTOP');
    },
    resume() {
      process.kill(this.child.pid, 'SIGCONT');
    },
    /** Stops and starts again on the same port. */
    async restart() {
      await this.stop();
      // The port is free as soon as the process is gone (SO_REUSEADDR); retry briefly anyway.
      for (let i = 0; ; i++) {
        try {
          await this.start();
          return;
        } catch (e) {
          if (i >= 20) throw e;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
    /** An ioredis client for assertions (connected). */
    async client() {
      const c = new Redis({ ...clientOptions(), retryStrategy: undefined, maxRetriesPerRequest: 3, lazyConnect: false });
      c.on('error', () => {});
      await c.ping();
      return c;
    },
  };
  await srv.start();
  return srv;
}

/**
 * Runs `node [nodeArgs] -e code [args]` with a hard time limit. Resolves to
 * { code, signal, stdout, stderr, timedOut, ms }; never rejects.
 */
function runNode(code, { env = {}, timeoutMs = 20_000, cwd = path.join(__dirname, '..', '..'), args = [], nodeArgs = [] } = {}) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, [...nodeArgs, '-e', code, ...args], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    privateChildren.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      privateChildren.delete(child);
      resolve({ code, signal, stdout, stderr, timedOut, ms: Date.now() - started, pid: child.pid });
    });
  });
}

/** A self-signed CA and a server certificate for 127.0.0.1/localhost (also for client auth: a TLS
 * Cluster node presents it on the bus), made with openssl in `dir`. */
function makeTlsFiles(dir) {
  const f = (n) => path.join(dir, n);
  const ssl = (...a) => execFileSync('openssl', a, { stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=hyvve-test-ca', '-keyout', f('ca.key'), '-out', f('ca.pem'));
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', f('server.key'), '-out', f('server.csr'));
  fs.writeFileSync(f('ext.cnf'), 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n');
  ssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f('ext.cnf'), '-out', f('server.pem'));
  return { ca: f('ca.pem'), cert: f('server.pem'), key: f('server.key') };
}

/** Whether this redis-server was built with TLS (it then complains about the missing key, not the option). */
function redisHasTls() {
  try {
    const out = require('node:child_process').spawnSync('redis-server', ['--port', '0', '--tls-port', '1', '--tls-cert-file', '/nonexistent'], { encoding: 'utf8', timeout: 5000 });
    const text = `${out.stdout}${out.stderr}`;
    return !/Bad directive|not supported|unknown option|wrong number/i.test(text) && /tls/i.test(text);
  } catch {
    return false;
  }
}

/** Reads a whole stream in pages (bounded memory per call). */
async function readStreamPaged(redis, stream, page = 2000) {
  const out = [];
  let from = '-';
  for (;;) {
    const entries = await redis.xrange(stream, from, '+', 'COUNT', page);
    for (const [id, fields] of entries) out.push({ id, fields, raw: fields[1] });
    if (entries.length < page) return out;
    from = `(${entries[entries.length - 1][0]}`;
  }
}

module.exports.privateRedis = privateRedis;
module.exports.runNode = runNode;
module.exports.makeTlsFiles = makeTlsFiles;
module.exports.redisHasTls = redisHasTls;
module.exports.readStreamPaged = readStreamPaged;

/**
 * A TCP proxy on a free loopback port in front of `targetPort`, for faults a server cannot make by
 * itself. `loseReplyTo(match)`: the next client chunk that contains `match` is forwarded, but the
 * server's reply to it is swallowed; once that reply has arrived (so the server did execute the
 * command), the proxy drops every connection and stops listening, so that reconnects are refused,
 * until `reopen()` (or, with `keepListening`, takes reconnects at once). Works for any protocol (Redis RESP, Postgres without TLS).
 */
async function tcpProxy(targetPort) {
  const port = await freePort();
  const pairs = new Set();
  let trap = null;
  let server = null;
  const dropAll = () => {
    for (const p of pairs) {
      p.client.destroy();
      p.upstream.destroy();
    }
    pairs.clear();
  };
  const listen = () =>
    new Promise((resolve, reject) => {
      server = net.createServer((client) => {
        const upstream = net.connect(targetPort, '127.0.0.1');
        const pair = { client, upstream, swallow: null };
        pairs.add(pair);
        const end = () => {
          client.destroy();
          upstream.destroy();
          pairs.delete(pair);
        };
        for (const s of [client, upstream]) {
          s.on('error', end);
          s.on('close', end);
        }
        client.on('data', (d) => {
          if (trap && !pair.swallow && trap.match.every((m) => d.includes(m)) && ++trap.seen === trap.nth) {
            pair.swallow = trap;
            trap = null;
          }
          upstream.write(d);
        });
        upstream.on('data', (d) => {
          if (!pair.swallow) {
            client.write(d);
            return;
          }
          const t = pair.swallow;
          pair.swallow = { done: true };
          if (t.done) return;
          // The server answered: it executed the command. Lose the answer and (unless `keepListening`)
          // refuse from now on.
          if (!t.keepListening) server.close();
          dropAll();
          t.resolve(d.toString('latin1'));
        });
      });
      server.on('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
  await listen();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    /**
     * `match`: a string, or strings that must all be in the same chunk; `nth`: which matching
     * chunk (1 = the next one); `keepListening`: the connections are dropped but new ones are
     * taken. Resolves with the swallowed reply once the server answered.
     */
    loseReplyTo(match, { nth = 1, keepListening = false } = {}) {
      return new Promise((resolve) => {
        trap = { match: [].concat(match).map((m) => Buffer.from(m)), nth, seen: 0, resolve, keepListening };
      });
    },
    async reopen() {
      if (!server.listening) await listen();
    },
    async close() {
      trap = null;
      dropAll();
      if (server.listening) await new Promise((r) => server.close(r));
    },
  };
}

module.exports.tcpProxy = tcpProxy;

/**
 * The connect() of a test file: a publisher on the shared stores, on a fresh stream named with
 * `streamPrefix`, its log records collected in `logs`; it is added to `publishers` for afterAll.
 */
function publisherFactory(publishers, streamPrefix) {
  const { EventPublisher } = require('../..');
  return async function connect(extra = {}) {
    const stream = extra.stream || uid(streamPrefix);
    const logs = [];
    const p = await EventPublisher.connect({
      databaseUrl: DATABASE_URL,
      redisUrl: REDIS_URL,
      stream,
      logger: (e) => logs.push(e),
      ...extra,
    });
    publishers.push(p);
    return { p, stream, logs };
  };
}

/** mulberry32: a small seeded PRNG, so that a failing run can be replayed from its seed. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

module.exports.publisherFactory = publisherFactory;
module.exports.prng = prng;
