'use strict';
// The documentation (README.md and docs/*.md) against the code: every TypeScript sample is, verbatim,
// in a file that `npm run test:types` compiles under strict; every relative link reaches a file of
// this repository (and a heading, for #anchors); no link or mention points at shared/docs, which
// the package's users do not have; and the pages that list options, error codes and metric names
// list all of them.
const fs = require('node:fs');
const path = require('node:path');
const ts = require('typescript');

const ROOT = path.join(__dirname, '..', '..');
const DOCS = path.join(ROOT, 'docs');
const pages = ['README.md', ...fs.readdirSync(DOCS).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];
const read = (rel) => fs.readFileSync(path.join(ROOT, rel), 'utf8');

/** The files of every project `npm run test:types` compiles (`tsc -p <dir>`), as TypeScript lists them. */
function typeCheckedFiles() {
  const script = require(path.join(ROOT, 'package.json')).scripts['test:types'];
  const projects = [...script.matchAll(/tsc -p (\S+)/g)].map((m) => m[1]);
  expect(projects.length).toBeGreaterThanOrEqual(2);
  return projects.flatMap((p) => {
    const config = ts.findConfigFile(path.join(ROOT, p), ts.sys.fileExists);
    const parsed = ts.getParsedCommandLineOfConfigFile(config, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => { throw new Error(String(d.messageText)); } });
    return parsed.fileNames;
  });
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading) {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}

function anchors(text) {
  const seen = new Map();
  const out = new Set();
  for (const m of text.replace(/```[\s\S]*?```/g, '').matchAll(/^#{1,6} (.+)$/gm)) {
    const base = slug(m[1]);
    const n = seen.get(base) || 0;
    seen.set(base, n + 1);
    out.add(n ? `${base}-${n}` : base);
  }
  return out;
}

/** Markdown links `[text](target)` outside code blocks and code spans. */
function links(text) {
  const prose = text.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '``');
  return [...prose.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]);
}

test('README.md and docs/ hold pages, and README stays short with its two commands first', () => {
  expect(pages).toEqual(expect.arrayContaining(['docs/guarantees.md', 'docs/configuration.md', 'docs/wire-contract.md']));
  const readme = read('README.md');
  expect(readme.split('\n').length).toBeLessThanOrEqual(201); // 200 lines and the final newline
  const first = /```sh\n([\s\S]*?)```/.exec(readme)[1];
  expect(first).toContain('npm run demo');
  expect(first).toContain('npm test');
  const scripts = require(path.join(ROOT, 'package.json')).scripts;
  expect(scripts.demo).toBeDefined();
  expect(scripts.test).toBeDefined();
  // README's Documentation list names every page of docs/.
  for (const page of pages.filter((p) => p !== 'README.md')) expect(links(readme)).toContain(page);
});

test('every ```ts sample of README.md and docs/ is in a file the type test compiles', () => {
  const checked = typeCheckedFiles().map((f) => fs.readFileSync(f, 'utf8'));
  let count = 0;
  for (const page of pages) {
    for (const m of read(page).matchAll(/```ts\n([\s\S]*?)```/g)) {
      count += 1;
      const found = checked.some((text) => text.includes(m[1]));
      if (!found) throw new Error(`${page}: this sample is in no file of \`npm run test:types\`:\n${m[1]}`);
    }
  }
  expect(count).toBeGreaterThanOrEqual(10);
});

test('every relative link of README.md and docs/ reaches a file of the repository, and none points at shared/', () => {
  const broken = [];
  for (const page of pages) {
    const text = read(page);
    expect([page, /shared\/docs|COMPAT\.md/.test(text)]).toEqual([page, false]);
    for (const target of links(text)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: (none point into shared/: checked above)
      const [file, anchor] = target.split('#');
      const abs = file ? path.resolve(path.dirname(path.join(ROOT, page)), decodeURIComponent(file)) : path.join(ROOT, page);
      const rel = path.relative(ROOT, abs);
      if (rel.startsWith('..') || path.isAbsolute(rel) || rel.split(path.sep)[0] === 'node_modules' || !fs.existsSync(abs)) {
        broken.push(`${page}: ${target}`);
        continue;
      }
      if (anchor && abs.endsWith('.md') && !anchors(fs.readFileSync(abs, 'utf8')).has(anchor)) broken.push(`${page}: ${target} (no such heading)`);
    }
  }
  expect(broken).toEqual([]);
});

test('docs/configuration.md names every option and environment variable, docs/guarantees.md every error code', () => {
  const dts = read('index.d.ts');
  const options = /export interface PublisherOptions \{([\s\S]*?)\n\}/.exec(dts)[1];
  const names = [...options.matchAll(/^ {2}(\w+)\?:/gm)].map((m) => m[1]);
  expect(names).toEqual(expect.arrayContaining(['redisUrl', 'databaseUrl', 'timeoutMs', 'traceContext']));
  const config = read('docs/configuration.md');
  for (const name of names) expect([name, config.includes(`\`${name}\``)]).toEqual([name, true]);
  const env = [...read('index.js').matchAll(/'((?:REDIS|DATABASE|DIRECT|EVENT_PUBLISHER)_[A-Z_]+)'/g)].map((m) => m[1]);
  expect(env.length).toBeGreaterThanOrEqual(9);
  for (const name of [...env, 'EVENT_PUBLISHER_THREADS']) expect([name, config.includes(`\`${name}\``)]).toEqual([name, true]);
  const codes = [.../export type ErrorCode =([^;]*);/.exec(dts)[1].matchAll(/'(ERR_\w+)'/g)].map((m) => m[1]);
  expect(codes.length).toBeGreaterThanOrEqual(11);
  const guarantees = read('docs/guarantees.md');
  for (const code of codes) expect([code, guarantees.includes(`| \`${code}\` |`)]).toEqual([code, true]);
});

test('docs/configuration.md has a row for every database URL parameter the publisher reads', () => {
  // The parameters are the arms of the match over the URL's query pairs in the Rust config code:
  // the least indented `"name" =>` lines between `query_pairs()` and its `other =>` arm.
  const rs = fs.readdirSync(path.join(ROOT, 'src'), { recursive: true }).filter((f) => f.endsWith('.rs'))
    .map((f) => fs.readFileSync(path.join(ROOT, 'src', f), 'utf8'));
  const source = rs.find((text) => /query_pairs\(\)[\s\S]*?other =>/.test(text) && text.includes('"connection_limit"'));
  const block = /query_pairs\(\)([\s\S]*?)other =>/.exec(source)[1];
  const arms = [...block.matchAll(/^( *)("\w+"(?: \| "\w+")*) =>/gm)];
  const indent = Math.min(...arms.map((m) => m[1].length));
  const params = arms.filter((m) => m[1].length === indent).flatMap((m) => [...m[2].matchAll(/"(\w+)"/g)].map((n) => n[1]));
  expect(params).toEqual(expect.arrayContaining(['schema', 'connection_limit', 'pgbouncer', 'sslmode', 'dbname']));
  const config = read('docs/configuration.md');
  const table = config.slice(config.indexOf('## Database URL parameters'));
  for (const param of params) expect([param, table.includes(`\`${param}\``)]).toEqual([param, true]);
});
