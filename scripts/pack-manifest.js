#!/usr/bin/env node
'use strict';
// `prepack`/`postpack` of the root package. While `npm pack` or `npm publish` packs, package.json
// names every platform package (npm/*) as an optional dependency at this version, as
// `napi prepublish` does at release time; `postpack` puts the file back as it was. The repo's own
// package.json does not list them because `npm ci` would look for unpublished packages.
// Usage: node scripts/pack-manifest.js prepack|postpack

const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const file = path.join(root, 'package.json');
const saved = path.join(root, '.tmp', 'package.json.prepack');

function platformPackages(version) {
  const npmDir = path.join(root, 'npm');
  const names = fs
    .readdirSync(npmDir)
    .filter((d) => fs.existsSync(path.join(npmDir, d, 'package.json')))
    .map((d) => JSON.parse(fs.readFileSync(path.join(npmDir, d, 'package.json'), 'utf8')).name)
    .sort();
  return Object.fromEntries(names.map((n) => [n, version]));
}

const step = process.argv[2];
if (step === 'prepack') {
  const text = fs.readFileSync(file, 'utf8');
  // A pack interrupted before postpack leaves the saved copy: keep the original, not the edit.
  if (!fs.existsSync(saved)) {
    fs.mkdirSync(path.dirname(saved), { recursive: true });
    fs.writeFileSync(saved, text);
  }
  const pkg = JSON.parse(text);
  pkg.optionalDependencies = { ...platformPackages(pkg.version), ...pkg.optionalDependencies };
  fs.writeFileSync(file, `${JSON.stringify(pkg, null, 2)}\n`);
} else if (step === 'postpack') {
  if (fs.existsSync(saved)) {
    fs.writeFileSync(file, fs.readFileSync(saved));
    fs.rmSync(saved);
  }
} else {
  console.error('usage: node scripts/pack-manifest.js prepack|postpack');
  process.exit(2);
}
