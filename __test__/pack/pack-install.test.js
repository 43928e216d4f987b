'use strict';
// "Installed as a new user would": plain `npm pack` of the platform package (npm/linux-x64-gnu,
// which the build fills with the binary) and of the repo root (whose prepack names the platform
// packages as optionalDependencies), plain `npm install` of both tarballs into fresh projects
// outside the repo, a NestJS service compiled with tsc (strict) and run against the real stores,
// its event read back; and `npm install <repo path>`.
// Needs the npm registry (for Nest, TypeScript, reflect-metadata, rxjs); takes a minute or two.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { Redis } = require('ioredis');
const { Pool } = require('pg');
const { EventPublisher } = require('@hyvve/event-publisher');
const h = require('../nest/helpers');

jest.setTimeout(300_000);

const ROOT = h.ROOT;
const PLATFORM_DIR = process.env.PACK_PLATFORM_DIR || path.join(ROOT, 'npm', 'linux-x64-gnu');
const PLATFORM_NAME = '@hyvve/event-publisher-linux-x64-gnu';
const NODE_FILE = 'event-publisher.linux-x64-gnu.node';
const STREAM = h.uid('hyvve:test:pack');
const TENANT = h.uid('ws-pack');
const KEEP = process.env.KEEP_PACK_TMP === '1';

// Prints the .node files the main package's require loaded (require.cache holds native addons too).
const LOADED_NODE_FILES = "require('@hyvve/event-publisher'); JSON.stringify(Object.keys(require.cache).filter((f) => f.endsWith('.node')))";
// The apps run with no Rust toolchain on PATH (only node's own directory and the system's).
const NO_RUST_PATH = [path.dirname(process.execPath), '/usr/bin', '/bin'].join(path.delimiter);

let tmp;
let rootPack;
let platformPack;
let packedManifest;
let redis;
let pool;

/** The environment for npm and apps in the temp projects: none of the repo's npm run variables. */
function cleanEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_(package|lifecycle|config_(local_prefix|global_prefix|prefix))/i.test(k) || k === 'INIT_CWD') continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

function run(cmd, args, cwd, env = cleanEnv()) {
  try {
    return execFileSync(cmd, args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 240_000 });
  } catch (err) {
    throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) failed:\n${err.stdout || ''}\n${err.stderr || ''}`);
  }
}

function npmPack(dir) {
  const [info] = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', tmp], dir));
  return { ...info, tarball: path.join(tmp, info.filename) };
}

/** A fresh project in the temp dir with both tarballs (one `npm install` command) and `deps`. */
function newProject(name, packageJson, deps) {
  const dir = path.join(tmp, name);
  fs.mkdirSync(path.join(dir, 'src'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true, ...packageJson }, null, 2));
  run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', platformPack.tarball, rootPack.tarball, ...deps], dir);
  return dir;
}

function write(dir, file, text) {
  fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
  fs.writeFileSync(path.join(dir, file), text);
}

/** Runs an app of a temp project; it prints {"id": ...} on its last line. */
function runApp(dir, args) {
  const out = run(process.execPath, args, dir, cleanEnv({ PATH: NO_RUST_PATH, REDIS_URL: h.REDIS_URL, DATABASE_URL: h.DATABASE_URL, STREAM, TENANT }));
  return JSON.parse(out.trim().split('\n').pop());
}

/** Reads the event back from the stream and event_metadata. */
async function expectEventReadBack(id, userId) {
  const entries = await redis.xrange(STREAM, '-', '+');
  const matching = entries.filter(([, fields]) => JSON.parse(fields[1]).id === id);
  expect(matching).toHaveLength(1);
  const [streamId, fields] = matching[0];
  const event = JSON.parse(fields[1]);
  expect(event).toMatchObject({ type: 'approval.item.approved', source: 'approvals', tenantId: TENANT, userId, version: '1.0' });
  expect(event.data).toEqual({ approvalId: 'appr-1', type: 'content', title: 'Hello', decision: 'approved', decidedById: userId, confidenceScore: 88 });
  const { rows } = await pool.query('SELECT stream_id, status::text AS status FROM event_metadata WHERE event_id = $1', [id]);
  expect(rows).toEqual([{ stream_id: streamId, status: 'PENDING' }]);
}

// The service a user writes: inject EventPublisherService, publish a typed payload.
const SERVICE_TS = `import { Injectable, Module } from '@nestjs/common';
import { EventPublisherModule, EventPublisherService } from '@hyvve/event-publisher/nest';
import { EventTypes, type ApprovalDecisionPayload } from '@hyvve/event-publisher';

@Injectable()
export class ApprovalsService {
  constructor(private readonly eventPublisher: EventPublisherService) {}

  approve(tenantId: string, userId: string): Promise<string> {
    const payload: ApprovalDecisionPayload = {
      approvalId: 'appr-1', type: 'content', title: 'Hello', decision: 'approved',
      decidedById: userId, decisionNotes: undefined, confidenceScore: 88,
    };
    return this.eventPublisher.publish(EventTypes.APPROVAL_APPROVED, payload, { tenantId, userId, source: 'approvals' });
  }
}

@Module({
  imports: [EventPublisherModule.forRoot({ stream: process.env.STREAM, isGlobal: true })],
  providers: [ApprovalsService],
})
export class AppModule {}
`;

const MAIN_TS = (userId) => `import { NestFactory } from '@nestjs/core';
import { AppModule, ApprovalsService } from './app.module${userId === 'user-esm12' ? '.js' : ''}';

async function main(): Promise<void> {
  const app = await NestFactory.createApplicationContext(AppModule, { logger: ['error', 'warn'] });
  const id = await app.get(ApprovalsService).approve(process.env.TENANT!, '${userId}');
  await app.close();
  console.log(JSON.stringify({ id }));
}
void main();
`;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hyvve-pack-'));
  const platformJson = path.join(PLATFORM_DIR, 'package.json');
  if (!fs.existsSync(platformJson)) throw new Error(`${platformJson} is missing: the platform package folder is not set up`);
  expect(JSON.parse(fs.readFileSync(platformJson, 'utf8')).name).toBe(PLATFORM_NAME);
  // The build (scripts/artifacts.js) put the binary into the platform package folder.
  const built = path.join(ROOT, NODE_FILE);
  expect(fs.existsSync(path.join(PLATFORM_DIR, NODE_FILE))).toBe(true);
  if (fs.existsSync(built)) expect(fs.statSync(path.join(PLATFORM_DIR, NODE_FILE)).size).toBe(fs.statSync(built).size);
  platformPack = npmPack(PLATFORM_DIR);
  const manifestBefore = fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8');
  rootPack = npmPack(ROOT);
  // postpack put the repo's package.json back (npm ci keeps working).
  expect(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).toBe(manifestBefore);
  run('tar', ['xzf', rootPack.tarball, '-C', tmp, 'package/package.json'], tmp);
  packedManifest = JSON.parse(fs.readFileSync(path.join(tmp, 'package', 'package.json'), 'utf8'));

  redis = new Redis(h.REDIS_URL);
  pool = new Pool({ connectionString: h.DATABASE_URL, max: 1 });
  await EventPublisher.migrate({ databaseUrl: h.DATABASE_URL });
});

afterAll(async () => {
  if (pool) {
    await pool.query('DELETE FROM event_metadata WHERE tenant_id = $1', [TENANT]);
    await pool.end();
  }
  if (redis) {
    await redis.del(STREAM);
    redis.disconnect();
  }
  if (tmp && !KEEP) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('the tarballs', () => {
  test('the root tarball holds only what a user needs, and no binary', () => {
    const files = rootPack.files.map((f) => f.path).sort();
    const allowed = [
      /^package\.json$/,
      /^README\.md$/,
      /^LICENSE(\.md)?$/,
      /^index\.(js|mjs|d\.ts)$/,
      /^binding\.js$/,
      /^lib\/[\w-]+\.(js|d\.ts)$/,
      /^migrations\/[\w-]+\.sql$/,
      /^nest\/(index\.js|index\.mjs|index\.d\.ts|create\.js)$/,
      /^bin\/hyvve-event-publisher\.js$/,
      /^testing\/index\.(js|mjs|d\.ts)$/,
      /^outbox\/index\.(js|mjs|d\.ts)$/,
    ];
    expect(files.filter((f) => !allowed.some((re) => re.test(f)))).toEqual([]);
    for (const needed of ['package.json', 'index.js', 'index.mjs', 'index.d.ts', 'binding.js', 'nest/index.js', 'nest/index.mjs', 'nest/index.d.ts', 'nest/create.js']) {
      expect(files).toContain(needed);
    }
    expect(rootPack.size).toBeLessThan(64 * 1024);
    expect(rootPack.unpackedSize).toBeLessThan(256 * 1024);
  });

  test('the packed root package names the built platform packages as optional dependencies of its own version', () => {
    const pkg = packedManifest;
    expect(pkg.optionalDependencies && pkg.optionalDependencies[PLATFORM_NAME]).toBe(pkg.version);
    // Only packages whose binary was built and checked here are named (scripts/pack-manifest.js):
    // never the macOS and Windows ones, which only the release workflow builds.
    for (const name of Object.keys(pkg.optionalDependencies)) {
      const platform = name.replace('@hyvve/event-publisher-', '');
      expect(platform).toMatch(/^linux-(x64|arm64)-(gnu|musl)$/);
      expect(fs.existsSync(path.join(ROOT, 'npm', platform, `event-publisher.${platform}.node`))).toBe(true);
    }
    const repoPkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    expect(repoPkg.optionalDependencies).toBeUndefined();
  });

  test('the platform tarball holds the native binary', () => {
    expect(platformPack.name).toBe(PLATFORM_NAME);
    expect(platformPack.version).toBe(rootPack.version);
    const files = platformPack.files.map((f) => f.path);
    expect(files).toContain(NODE_FILE);
    expect(files.filter((f) => f.endsWith('.node'))).toEqual([NODE_FILE]);
  });
});

describe('a CommonJS NestJS 11 app, TypeScript 5', () => {
  let dir;
  beforeAll(() => {
    dir = newProject('cjs-app', {}, ['@nestjs/common@11', '@nestjs/core@11', 'reflect-metadata', 'rxjs', 'typescript@5', '@types/node@20']);
  });

  test('one `npm install a.tgz b.tgz` satisfies the optional platform dependency from the tarball', () => {
    const lock = JSON.parse(fs.readFileSync(path.join(dir, 'package-lock.json'), 'utf8'));
    const platform = lock.packages[`node_modules/${PLATFORM_NAME}`];
    expect(platform).toBeDefined();
    expect(platform.resolved).toMatch(/^file:/);
    const nested = Object.keys(lock.packages).filter((k) => k.endsWith(`node_modules/${PLATFORM_NAME}`) && k !== `node_modules/${PLATFORM_NAME}`);
    expect(nested).toEqual([]);
    const resolved = run(process.execPath, ['-p', `require.resolve('${PLATFORM_NAME}')`], dir).trim();
    expect(resolved).toBe(fs.realpathSync(path.join(dir, 'node_modules', PLATFORM_NAME, NODE_FILE)));
    run('npm', ['ls', '--all', '--loglevel=error'], dir); // exits non-zero on a missing or invalid dependency
  });

  test('the binary is loaded from the platform package, and nothing else provides one', () => {
    expect(fs.readdirSync(path.join(dir, 'node_modules', '@hyvve', 'event-publisher')).filter((f) => f.endsWith('.node'))).toEqual([]);
    const loaded = JSON.parse(run(process.execPath, ['-p', LOADED_NODE_FILES], dir, cleanEnv({ PATH: NO_RUST_PATH })));
    expect(loaded).toEqual([fs.realpathSync(path.join(dir, 'node_modules', PLATFORM_NAME, NODE_FILE))]);
  });

  test('a service injecting EventPublisherService compiles with tsc --strict (classic and nodenext resolution) and publishes', async () => {
    write(dir, 'src/app.module.ts', SERVICE_TS);
    write(dir, 'src/main.ts', `import 'reflect-metadata';\n${MAIN_TS('user-cjs')}`);
    const compilerOptions = {
      strict: true, target: 'es2022', experimentalDecorators: true, emitDecoratorMetadata: true,
      skipLibCheck: false, types: ['node'], outDir: 'dist', rootDir: 'src',
    };
    // As `nest new` scaffolds older apps (node10 resolution, no "exports") ...
    write(dir, 'tsconfig.json', JSON.stringify({ compilerOptions: { ...compilerOptions, module: 'commonjs' }, include: ['src'] }));
    // ... and newer ones (package.json "exports").
    write(dir, 'tsconfig.nodenext.json', JSON.stringify({ compilerOptions: { ...compilerOptions, module: 'nodenext', moduleResolution: 'nodenext', outDir: 'dist-nodenext' }, include: ['src'] }));
    run(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.nodenext.json'], dir);
    run(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], dir);

    const { id } = runApp(dir, ['dist/main.js']);
    expect(id).toMatch(h.CUID2);
    await expectEventReadBack(id, 'user-cjs');
  });

  test('an .mjs script imports @hyvve/event-publisher and @hyvve/event-publisher/nest', async () => {
    write(
      dir,
      'check.mjs',
      `import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { EventPublisher, EventPublisherError, EventTypes } from '@hyvve/event-publisher';
import { EventPublisherModule, EventPublisherService } from '@hyvve/event-publisher/nest';

if (typeof EventPublisher.connect !== 'function' || typeof EventPublisherError !== 'function') throw new Error('bad main entry');
class AppModule {}
Module({ imports: [EventPublisherModule.forRoot({ stream: process.env.STREAM })] })(AppModule);
const app = await NestFactory.createApplicationContext(AppModule, { logger: ['error', 'warn'] });
const id = await app.get(EventPublisherService).publish(EventTypes.APPROVAL_APPROVED, {
  approvalId: 'appr-1', type: 'content', title: 'Hello', decision: 'approved', decidedById: 'user-mjs', confidenceScore: 88,
}, { tenantId: process.env.TENANT, userId: 'user-mjs', source: 'approvals' });
await app.close();
console.log(JSON.stringify({ id }));
`,
    );
    const { id } = runApp(dir, ['check.mjs']);
    await expectEventReadBack(id, 'user-mjs');
  });
});

describe('an ES module NestJS 12 app, TypeScript 7', () => {
  let dir;
  beforeAll(() => {
    dir = newProject('esm-app', { type: 'module' }, ['@nestjs/common@12', '@nestjs/core@12', 'reflect-metadata', 'rxjs', 'typescript@7', '@types/node@20']);
    write(dir, 'src/app.module.ts', SERVICE_TS);
    write(dir, 'src/main.ts', `import 'reflect-metadata';\n${MAIN_TS('user-esm12')}`);
    write(
      dir,
      'tsconfig.json',
      JSON.stringify({
        compilerOptions: {
          strict: true, target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', experimentalDecorators: true,
          emitDecoratorMetadata: true, skipLibCheck: false, types: ['node'], outDir: 'dist', rootDir: 'src',
        },
        include: ['src'],
      }),
    );
    run(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], dir);
  });

  test('compiles with tsc 7 --strict and publishes', async () => {
    const { id } = runApp(dir, ['dist/main.js']);
    await expectEventReadBack(id, 'user-esm12');
  });

  // Node 20 before 20.19 cannot require() an ES module; newer Node can be made to behave the same.
  const flag = '--no-experimental-require-module';
  (process.allowedNodeEnvironmentFlags.has(flag) ? test : test.skip)(`works where require(esm) is unavailable (${flag})`, async () => {
    const { id } = runApp(dir, [flag, 'dist/main.js']);
    await expectEventReadBack(id, 'user-esm12');
  });
});

describe('npm install <path to the repo>', () => {
  test('a file: dependency on the repository loads and publishes', async () => {
    const dir = path.join(tmp, 'file-dep');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'file-dep', version: '1.0.0', private: true }));
    run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ROOT], dir);
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
    expect(pkg.dependencies['@hyvve/event-publisher']).toMatch(/^file:/);
    write(
      dir,
      'app.js',
      `const { EventPublisher } = require('@hyvve/event-publisher');
(async () => {
  const p = await EventPublisher.connect({ stream: process.env.STREAM });
  const id = await p.publish('approval.item.approved', {
    approvalId: 'appr-1', type: 'content', title: 'Hello', decision: 'approved', decidedById: 'user-file', confidenceScore: 88,
  }, { tenantId: process.env.TENANT, userId: 'user-file', source: 'approvals' });
  await p.close();
  console.log(JSON.stringify({ id }));
})();
`,
    );
    const { id } = runApp(dir, ['app.js']);
    await expectEventReadBack(id, 'user-file');
  });
});
