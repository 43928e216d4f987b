#!/usr/bin/env node
'use strict';
// `prepack`/`postpack` of the root package. While `npm pack` or `npm publish` packs, package.json
// names platform packages (npm/*) as optional dependencies at this version, as `napi prepublish`
// does at release time; `postpack` puts the file back as it was. The repo's own package.json does
// not list them because `npm ci` would look for unpublished packages.
// Only packages whose binary was built and checked are named: a name without a binary behind it
// would install an empty package and fail at require. Linux binaries are checked here
// (scripts/platforms/check-binary.js); macOS and Windows ones exist only in the release workflow,
// which builds and tests them on their own runners. With HYVVE_RELEASE=1 (the release workflow)
// all eight must be there, or the pack fails.
// Usage: node scripts/pack-manifest.js prepack|postpack|check-release

const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const file = path.join(root, 'package.json');
const saved = path.join(root, '.tmp', 'package.json.prepack');

/** Every platform package folder: { dir, name, binary, problems } (problems: [] when it may be named). */
function platformPackages() {
  const { checkBinary } = require('./platforms/check-binary.js');
  const npmDir = path.join(root, 'npm');
  return fs
    .readdirSync(npmDir)
    .filter((d) => fs.existsSync(path.join(npmDir, d, 'package.json')))
    .sort()
    .map((d) => {
      const pkg = JSON.parse(fs.readFileSync(path.join(npmDir, d, 'package.json'), 'utf8'));
      const binary = path.join(npmDir, d, pkg.main);
      let problems;
      if (!fs.existsSync(binary)) problems = ['no binary built'];
      else if (d.startsWith('linux-')) problems = checkBinary(binary, d);
      else problems = process.env.HYVVE_RELEASE === '1' ? [] : ['built elsewhere: only the release workflow names it'];
      return { dir: d, name: pkg.name, problems };
    });
}

function checkRelease(pkgs) {
  const bad = pkgs.filter((p) => p.problems.length);
  if (bad.length) {
    for (const p of bad) console.error(`${p.name}: ${p.problems.join('; ')}`);
    console.error('a release needs all eight platform binaries, built and checked');
    process.exit(1);
  }
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
  const pkgs = platformPackages();
  if (process.env.HYVVE_RELEASE === '1') checkRelease(pkgs);
  const named = pkgs.filter((p) => !p.problems.length);
  for (const p of pkgs.filter((x) => x.problems.length)) console.error(`prepack: not naming ${p.name} (${p.problems.join('; ')})`);
  pkg.optionalDependencies = { ...Object.fromEntries(named.map((p) => [p.name, pkg.version])), ...pkg.optionalDependencies };
  fs.writeFileSync(file, `${JSON.stringify(pkg, null, 2)}\n`);
} else if (step === 'postpack') {
  if (fs.existsSync(saved)) {
    fs.writeFileSync(file, fs.readFileSync(saved));
    fs.rmSync(saved);
  }
} else if (step === 'check-release') {
  process.env.HYVVE_RELEASE = '1';
  checkRelease(platformPackages());
  console.log('all eight platform binaries are there');
} else {
  console.error('usage: node scripts/pack-manifest.js prepack|postpack|check-release');
  process.exit(2);
}
