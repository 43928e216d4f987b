// docs/configuration.md's sample, verbatim between the markers (checked by
// __test__/core/readme.test.js), compiled under strict.
// Sample begin
import { EventPublisher } from '@hyvve/event-publisher';

const configured = await EventPublisher.connect({
  redisUrl: 'rediss://:secret@redis.internal:6380', // else REDIS_URL, else REDIS_HOST/REDIS_PORT/REDIS_PASSWORD
  databaseUrl: 'postgresql://app:secret@pgbouncer.internal:6432/hyvve?schema=public&pgbouncer=true&connection_limit=20',
  directUrl: 'postgresql://app:secret@postgres.internal:5432/hyvve?schema=public', // migrate() and reconcile()
  source: 'approvals',
  timeoutMs: 3000,
  retention: { maxAgeMs: 7 * 24 * 3600 * 1000 },
  logLevel: 'warn',
});
// Sample end
export { configured };
