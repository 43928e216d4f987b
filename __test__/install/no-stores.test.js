'use strict';
// What a platform's binary must do with no Redis and no Postgres: the release workflow runs this
// file on every target's own runner (macOS, Windows, Linux x64/arm64, glibc and musl) right after
// loading the binary it built. It checks the loader chose this runtime's file, then drives the
// native code that needs no stores: the /testing publisher (envelopes built by the binary's
// prepareEvents), its argument checks, and connect's refusal of closed ports and bad options.
const path = require('node:path');
const { EventPublisher } = require('../..');
const { createTestPublisher } = require('../../testing');
const { runtimeFacts, targetOf } = require('../../lib/native-loader.js');

const CUID2 = /^[a-z][a-z0-9]{23}$/;
const ctx = { tenantId: 'ws-1', userId: 'user-1' };

test("the loader loaded this runtime's binary, and only it", () => {
  const target = targetOf(runtimeFacts());
  expect(target).not.toBeNull();
  const loaded = Object.keys(require.cache).filter((f) => f.endsWith('.node')).map((f) => path.basename(f));
  expect(loaded).toEqual([`event-publisher.${target}.node`]);
});

test('the /testing publisher builds envelopes with the binary', async () => {
  const p = createTestPublisher({ source: 'no-stores' });
  const id = await p.publish('approval.item.approved', { approvalId: 'a-1' }, ctx);
  expect(id).toMatch(CUID2);
  const ids = await p.publishBatch([1, 2].map((n) => ({ type: 'approval.item.approved', data: { n }, context: ctx })));
  expect(ids).toHaveLength(2);
  const events = p.published().map((e) => e.event);
  expect(events.map((e) => e.id)).toEqual([id, ...ids]);
  expect(events[0]).toMatchObject({ type: 'approval.item.approved', source: 'no-stores', tenantId: 'ws-1', userId: 'user-1', version: '1.0', data: { approvalId: 'a-1' } });
  expect(events[0].correlationId).toMatch(CUID2);
  await p.close();
});

test('bad input is refused with its code', async () => {
  const p = createTestPublisher();
  await expect(p.publish('approval.item.approved', { a: 1 }, { tenantId: '', userId: 'u' })).rejects.toMatchObject({ code: 'ERR_INVALID_EVENT' });
  const small = createTestPublisher({ maxPayloadBytes: 64 });
  await expect(small.publish('x.y.z', { s: 'x'.repeat(100) }, ctx)).rejects.toMatchObject({ code: 'ERR_PAYLOAD_TOO_LARGE' });
});

test('connect: an unknown option is ERR_CONFIG; closed ports are refused with a store error', async () => {
  await expect(EventPublisher.connect({ nope: 1 })).rejects.toMatchObject({ code: 'ERR_CONFIG' });
  const err = await EventPublisher.connect({
    redisUrl: 'redis://127.0.0.1:1', databaseUrl: 'postgres://u@127.0.0.1:1/db', timeoutMs: 2000, logLevel: 'off',
  }).catch((e) => e);
  expect(['ERR_REDIS', 'ERR_DATABASE', 'ERR_TIMEOUT']).toContain(err.code);
});
