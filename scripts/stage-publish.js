#!/usr/bin/env node
'use strict';
// Stages the root package for `npm pack`/`npm publish` into a folder: the files package.json
// lists, plus `optionalDependencies` on every per-platform package (npm/*) at this version, as
// `napi prepublish` adds them at release time. They are not in the repo's package.json because
// `npm ci` would then look for unpublished packages.
// Usage: node scripts/stage-publish.js <out-dir>

const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const out = path.resolve(process.argv[2] || path.join(root, '.tmp', 'stage'));
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });
for (const entry of [...pkg.files, 'README.md']) {
  const from = path.join(root, entry);
  if (fs.existsSync(from)) fs.cpSync(from, path.join(out, entry), { recursive: true });
}
const platforms = fs.readdirSync(path.join(root, 'npm')).filter((d) => fs.existsSync(path.join(root, 'npm', d, 'package.json')));
pkg.optionalDependencies = Object.fromEntries(
  platforms.map((d) => [JSON.parse(fs.readFileSync(path.join(root, 'npm', d, 'package.json'), 'utf8')).name, pkg.version]),
);
delete pkg.devDependencies;
delete pkg.scripts;
fs.writeFileSync(path.join(out, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
console.log(out);
