'use strict';
// Every TypeScript sample of docs/MIGRATING.md is, verbatim, part of a file under
// examples/migrating/, which `npm run test:nest` type-checks (tsc -p examples/migrating).
const fs = require('node:fs');
const path = require('node:path');
const { ROOT } = require('./helpers');

function filesUnder(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

test('each ```ts block of MIGRATING.md is in a type-checked file, the one its text names', () => {
  const doc = fs.readFileSync(path.join(ROOT, 'docs', 'MIGRATING.md'), 'utf8');
  const blocks = [...doc.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => ({ code: m[1], before: doc.slice(0, m.index) }));
  expect(blocks.length).toBeGreaterThanOrEqual(5);
  const sources = filesUnder(path.join(ROOT, 'examples', 'migrating'))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => ({ rel: path.relative(ROOT, f), text: fs.readFileSync(f, 'utf8') }));
  for (const { code, before } of blocks) {
    const named = [...before.matchAll(/`(examples\/migrating\/[^`]+\.ts)`/g)].pop();
    expect(named).toBeDefined();
    const file = sources.find((s) => s.rel === named[1]);
    expect(file && file.rel).toBe(named[1]);
    expect(file.text).toContain(code);
  }
});
