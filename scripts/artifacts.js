#!/usr/bin/env node
'use strict';
// After `napi build --platform`: copies each built `event-publisher.<platform>.node` into its
// platform package folder (npm/<platform>/), the napi-rs `artifacts` convention, so that
// `npm pack`/`npm publish` there ship the binary. (`napi artifacts` itself insists on every
// configured target, and a local build makes only this machine's.) The copy in the root stays:
// binding.js loads it first when running from the repository.

const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const { binaryName } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).napi;
const prefix = `${binaryName}.`;
for (const file of fs.readdirSync(root)) {
  if (!file.startsWith(prefix) || !file.endsWith('.node')) continue;
  const platform = file.slice(prefix.length, -'.node'.length);
  const dir = path.join(root, 'npm', platform);
  if (!fs.existsSync(path.join(dir, 'package.json'))) continue;
  fs.copyFileSync(path.join(root, file), path.join(dir, file));
  console.log(`${file} -> npm/${platform}/`);
}
