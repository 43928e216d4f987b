'use strict';
// Every TypeScript sample in README.md is, verbatim, in __test__/types/readme.mts or (the NestJS
// and testing ones, which need Nest's typings) __test__/types/adoption/readme.mts, which
// `npm run test:types` compiles under strict.
const fs = require('node:fs');
const path = require('node:path');

test('the README code samples are the type-checked ones', () => {
  const root = path.join(__dirname, '..', '..');
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const checked = ['readme.mts', 'adoption/readme.mts'].map((f) => fs.readFileSync(path.join(root, '__test__', 'types', f), 'utf8')).join('\n');
  const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
  expect(blocks.length).toBeGreaterThanOrEqual(1);
  for (const code of blocks) expect(checked).toContain(code);
});
