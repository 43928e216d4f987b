'use strict';
// Issue 11, item 3: Prisma's TLS parameters as Prisma means them, against a private Postgres
// with TLS on (a server certificate for 127.0.0.1 signed by a CA this test makes):
// `sslcert` is the CA file to trust; `sslaccept=strict` checks the certificate against it;
// a wrong CA fails ERR_DATABASE naming TLS; `sslaccept=accept_invalid_certs` (Prisma's default)
// connects without checking. Plus the timeouts' bounds and application_name.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { Client } = require('pg');
const { EventPublisher } = require('../..');
const { REDIS_URL, uid, startPostgres, makeTlsFiles } = require('../support/stores');

let pg;
let good; // the server's CA
let wrong; // another CA
let identity; // certuser's PKCS#12 file
const dirs = [];
const publishers = [];

beforeAll(async () => {
  pg = await startPostgres();
  const mk = () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'hyvve-pgtls-'));
    dirs.push(d);
    return makeTlsFiles(d);
  };
  good = mk();
  wrong = mk();
  // Postgres wants its key readable by its own user only.
  const key = path.join(pg.dir, 'server.key');
  const cert = path.join(pg.dir, 'server.pem');
  fs.copyFileSync(good.key, key);
  fs.copyFileSync(good.cert, cert);
  fs.chmodSync(key, 0o600);
  if (process.getuid && process.getuid() === 0) execFileSync('chown', ['postgres', key, cert]);
  const c = new Client({ connectionString: pg.adminUrl });
  await c.connect();
  await c.query(`ALTER SYSTEM SET ssl_cert_file = '${cert}'`);
  await c.query(`ALTER SYSTEM SET ssl_key_file = '${key}'`);
  // Client certificates signed by the same CA are trusted; certuser must present one.
  const caCopy = path.join(pg.dir, 'ca.pem');
  fs.copyFileSync(good.ca, caCopy);
  if (process.getuid && process.getuid() === 0) execFileSync('chown', ['postgres', caCopy]);
  await c.query(`ALTER SYSTEM SET ssl_ca_file = '${caCopy}'`);
  const hba = path.join(pg.dir, 'data', 'pg_hba.conf');
  fs.writeFileSync(hba, `hostssl all certuser 127.0.0.1/32 cert\n${fs.readFileSync(hba, 'utf8')}`);
  await c.query('CREATE ROLE certuser LOGIN');
  const t = new Client({ connectionString: pg.url });
  await t.connect();
  await t.query('GRANT SELECT, INSERT, UPDATE, DELETE ON event_metadata TO certuser');
  await t.end();
  // certuser's identity as Prisma wants it: a PKCS#12 file with a password.
  const ssl = (...a) => execFileSync('openssl', a, { stdio: 'pipe' });
  const f = (n) => path.join(dirs[0], n);
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=certuser', '-keyout', f('client.key'), '-out', f('client.csr'));
  fs.writeFileSync(f('client.cnf'), 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n');
  ssl('x509', '-req', '-in', f('client.csr'), '-CA', good.ca, '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f('client.cnf'), '-out', f('client.pem'));
  ssl('pkcs12', '-export', '-inkey', f('client.key'), '-in', f('client.pem'), '-certfile', good.ca, '-passout', 'pass:p12-s3cret', '-out', f('client.p12'));
  identity = f('client.p12');
  await c.query('ALTER SYSTEM SET ssl = on');
  await c.query('SELECT pg_reload_conf()');
  await c.end();
});

afterAll(async () => {
  await Promise.all(publishers.map((p) => p.close().catch(() => {})));
  if (pg) await pg.destroy();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const url = (query) => `postgres://root@127.0.0.1:${pg.port}/hyvve_publisher_test?${query}`;

async function connect(query, extra = {}) {
  const p = await EventPublisher.connect({ redisUrl: REDIS_URL, databaseUrl: url(query), stream: uid('pgtls'), timeoutMs: 3000, logLevel: 'warn', ...extra });
  publishers.push(p);
  return p;
}

/** Whether a connection with this application_name is open and encrypted. */
async function encrypted(appName) {
  const c = new Client({ connectionString: pg.adminUrl });
  await c.connect();
  try {
    const { rows } = await c.query('SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1', [appName]);
    return rows.length > 0 && rows.every((r) => r.ssl);
  } finally {
    await c.end();
  }
}

test('sslcert is the CA to trust: sslaccept=strict connects with the right CA, over TLS', async () => {
  const app = uid('strict');
  const p = await connect(`sslmode=require&sslcert=${encodeURIComponent(good.ca)}&sslaccept=strict&application_name=${app}`);
  await p.publish('tls.probe', {}, { tenantId: 't', userId: 'u' });
  expect(await encrypted(app)).toBe(true);
});

test('a wrong CA with sslaccept=strict fails ERR_DATABASE naming TLS', async () => {
  const err = await connect(`sslmode=require&sslcert=${encodeURIComponent(wrong.ca)}&sslaccept=strict`).catch((e) => e);
  expect(err.code).toBe('ERR_DATABASE');
  expect(err.message).toMatch(/TLS/);
});

test('sslaccept=accept_invalid_certs (and Prisma\'s default) connect without checking', async () => {
  for (const q of [`sslmode=require&sslcert=${encodeURIComponent(wrong.ca)}&sslaccept=accept_invalid_certs`, 'sslmode=require']) {
    const app = uid('accept');
    const p = await connect(`${q}&application_name=${app}`);
    await p.publish('tls.probe', {}, { tenantId: 't', userId: 'u' });
    expect(await encrypted(app)).toBe(true);
  }
});

test('sslidentity + sslpassword: a PKCS#12 client identity authenticates (cert auth)', async () => {
  const base = `sslmode=require&sslcert=${encodeURIComponent(good.ca)}&sslaccept=strict`;
  const certUrl = (q) => `postgres://certuser@127.0.0.1:${pg.port}/hyvve_publisher_test?${q}`;
  const p = await EventPublisher.connect({
    redisUrl: REDIS_URL,
    databaseUrl: certUrl(`${base}&sslidentity=${encodeURIComponent(identity)}&sslpassword=p12-s3cret`),
    stream: uid('pgtls'),
    logLevel: 'warn',
  });
  publishers.push(p);
  const id = await p.publish('tls.identity', {}, { tenantId: 't', userId: 'u' });
  const c = new Client({ connectionString: pg.url });
  await c.connect();
  expect((await c.query('SELECT count(*)::int AS n FROM event_metadata WHERE event_id = $1', [id])).rows[0].n).toBe(1);
  await c.end();
  // Without the identity the server refuses; with a wrong password the file cannot be opened.
  const refused = await EventPublisher.connect({ redisUrl: REDIS_URL, databaseUrl: certUrl(base), logLevel: 'off' }).catch((e) => e);
  expect(refused.code).toBe('ERR_DATABASE');
  expect(refused.message).toMatch(/certificate/);
  const wrongPw = await EventPublisher.connect({
    redisUrl: REDIS_URL,
    databaseUrl: certUrl(`${base}&sslidentity=${encodeURIComponent(identity)}&sslpassword=not-it`),
  }).catch((e) => e);
  expect(wrongPw.code).toBe('ERR_CONFIG');
  expect(wrongPw.message).toMatch(/sslidentity/);
  expect(wrongPw.message).not.toMatch(/not-it/);
});

test('connect_timeout bounds connect() against a server that never answers', async () => {
  // A listening socket that accepts and says nothing.
  const net = require('node:net');
  const sockets = [];
  const server = net.createServer((s) => sockets.push(s));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  const t = Date.now();
  const err = await EventPublisher.connect({
    redisUrl: REDIS_URL,
    databaseUrl: `postgres://root@127.0.0.1:${port}/x?sslmode=disable&connect_timeout=1`,
    timeoutMs: 5000,
  }).catch((e) => e);
  const ms = Date.now() - t;
  for (const s of sockets) s.destroy();
  server.close();
  expect(err.code).toBe('ERR_TIMEOUT');
  expect(ms).toBeLessThan(2500);
});
