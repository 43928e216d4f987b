#!/usr/bin/env node
'use strict';
// `npx hyvve-event-publisher migrate [--database-url URL]`: creates the event_metadata table
// (the platform's Prisma DDL) in a database that does not have it yet. Never alters a table.

const { EventPublisher } = require('..');

async function main(argv) {
  const [command, ...rest] = argv;
  if (command !== 'migrate') {
    console.error('usage: hyvve-event-publisher migrate [--database-url URL]   (default: DATABASE_URL)');
    return 2;
  }
  const i = rest.indexOf('--database-url');
  const databaseUrl = i >= 0 ? rest[i + 1] : undefined;
  const created = await EventPublisher.migrate(databaseUrl ? { databaseUrl } : {});
  console.log(created ? 'created the event_metadata table' : 'event_metadata already exists: left unchanged');
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`${err.code || 'ERROR'}: ${err.message}`);
    process.exit(1);
  },
);
