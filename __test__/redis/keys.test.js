'use strict';
// Issue 10: every key the append script touches hashes to the stream's cluster slot, as Redis
// itself computes it (CLUSTER KEYSLOT on a cluster-enabled redis-server), for plain names, names
// with a hash tag, an empty `{}` and braces in odd places.

const { ensureDatabase, privateRedis, publisherFactory, uid } = require('../support/stores');
const { keySlots } = require('../support/redis-topologies');
const path = require('node:path');
const fs = require('node:fs');
const os = require('node:os');

const publishers = [];
const connect = publisherFactory(publishers, 'keys');
let plain; // standalone Redis the publisher writes to
let slotter; // cluster-enabled Redis that answers CLUSTER KEYSLOT
let dir;

beforeAll(async () => {
  await ensureDatabase();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyvve-keyslot-'));
  [plain, slotter] = await Promise.all([
    privateRedis(),
    privateRedis(['--cluster-enabled', 'yes', '--cluster-config-file', path.join(dir, 'nodes.conf'), '--dir', dir]),
  ]);
});

afterAll(async () => {
  await Promise.all(publishers.map((p) => p.close().catch(() => {})));
  await Promise.all([plain, slotter].filter(Boolean).map((s) => s.stop()));
  fs.rmSync(dir, { recursive: true, force: true });
});

test.each([
  ['plain', () => uid('hyvve:events')],
  ['hash tag', () => `orders:{${uid('t')}}`],
  ['hash tag first', () => `{${uid('t')}}:orders`],
  ['empty braces', () => `{}${uid('x')}`],
  ['nested braces', () => `{{${uid('n')}}}`],
  ['closing brace only', () => `a}${uid('b')}`],
  ['opening brace only', () => `a{${uid('b')}`],
])('%s stream name: dedup keys and group tokens share the stream slot', async (_, name) => {
  const stream = name();
  // entryIds 'server': every entry's ID is assigned by Redis, so each group's result is recorded
  // under its token (with reserved IDs a token is written only when an entry missed its proposal).
  const { p } = await connect({ redisUrl: plain.url, stream, entryIds: 'server' });
  const ids = [uid('ev'), uid('ev'), uid('ev')];
  await p.publish('keys.single', { n: 1 }, { tenantId: 'ws', userId: 'u', eventId: ids[0] });
  await p.publishBatch(ids.slice(1).map((eventId, n) => ({ type: 'keys.batch', data: { n }, context: { tenantId: 'ws', userId: 'u', eventId } })));
  await p.close();
  const client = await plain.client();
  let keys;
  try {
    keys = (await client.keys('*')).filter((k) => k !== stream && k.includes(stream));
    expect(await client.xlen(stream)).toBe(3);
  } finally {
    client.disconnect();
  }
  // One dedup key per caller id and one token per group (the single and the batch).
  for (const id of ids) expect(keys.filter((k) => k.endsWith(id))).toHaveLength(1);
  expect(keys.filter((k) => !ids.some((id) => k.endsWith(id)))).toHaveLength(2);
  const [streamSlot, ...slots] = await keySlots(slotter.port, [stream, ...keys]);
  expect(slots).toEqual(keys.map(() => streamSlot));
});

test('CLUSTER KEYSLOT agrees with the slot the cargo tests assert (hyvve:events:main is slot 6088)', async () => {
  const [main] = await keySlots(slotter.port, ['hyvve:events:main']);
  expect(main).toBe(6088);
});
