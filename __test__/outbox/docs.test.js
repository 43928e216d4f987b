'use strict';
// Every TypeScript sample in docs/outbox.md is, verbatim, in __test__/types/outbox/*.mts, which
// `npm run test:types` compiles under strict with the libraries' real typings.
const fs = require('node:fs');
const path = require('node:path');

test('the docs/outbox.md code samples are the type-checked ones', () => {
  const root = path.join(__dirname, '..', '..');
  const doc = fs.readFileSync(path.join(root, 'docs', 'outbox.md'), 'utf8');
  const dir = path.join(root, '__test__', 'types', 'outbox');
  const checked = fs.readdirSync(dir).filter((f) => f.endsWith('.mts')).map((f) => fs.readFileSync(path.join(dir, f), 'utf8')).join('\n');
  const blocks = [...doc.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
  expect(blocks.length).toBeGreaterThanOrEqual(4);
  for (const code of blocks) expect(checked).toContain(code);
});
