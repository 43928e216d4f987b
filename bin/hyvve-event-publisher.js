#!/usr/bin/env node
'use strict';
// `npx hyvve-event-publisher <publish|tail|stats|reconcile|migrate> [options]`: the operator's
// CLI (lib/cli.js). `--help` lists the commands; exit codes 0 ok, 1 failure, 2 usage error.

const { main } = require('../lib/cli.js');

const controller = new AbortController();
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => controller.abort());

main(process.argv.slice(2), { signal: controller.signal }).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(`ERR_INTERNAL: ${err && err.stack ? err.stack : err}`);
    process.exitCode = 1;
  },
);
