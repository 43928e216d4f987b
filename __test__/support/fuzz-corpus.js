'use strict';
// The fuzz corpus: seeded, deterministic events (types, contexts, payloads) good and bad, shared by
// faults/fuzz.test.js (the real publisher against an oracle) and testing/equivalence.test.js (the
// in-memory publisher against the real one).
const { uid, prng } = require('./stores');

const MAX = 1 << 20; // the default maxPayloadBytes

function gen(seed) {
  const rand = prng(seed);
  const int = (n) => Math.floor(rand() * n);
  const pick = (xs) => xs[int(xs.length)];
  const chance = (p) => rand() < p;

  const CHARS = [
    'a', 'Z', '0', ' ', '"', '\\', '/', '\n', '\t', '\r', '\b', '\f', '\u0000', '\u0001', '\u001f', '\u007f',
    'é', 'ß', 'Ж', '中', '文', 'ﬁ', '\u2028', '\u2029', '\ufeff', '\u00a0', '\u200d',
    '😀', '👩‍💻', '🏳️‍🌈', '𝄞', '\ud83d\ude00',
    '\ud800', '\udbff', '\udc00', '\udfff', // lone surrogates (fine in data: JSON.stringify escapes them)
    '<', '>', '&', "'", '{', '}', '[', ']', ':', ',',
  ];
  const str = (max = 24) => {
    let s = '';
    const n = int(max + 1);
    for (let i = 0; i < n; i++) s += chance(0.5) ? String.fromCharCode(97 + int(26)) : pick(CHARS);
    return s;
  };
  const key = () =>
    pick([() => str(8), () => '', () => '__proto__', () => 'constructor', () => 'toString', () => String(int(20)), () => '-1', () => '01', () => 'a.b', () => '😀', () => '\ud800'])();
  const num = () => pick([0, -0, 1, -1, 0.1, 1e21, 1e-7, -1e300, Number.MAX_SAFE_INTEGER, Number.MIN_VALUE, NaN, Infinity, -Infinity, 2 ** 53 + 1, int(1000) / 7]);

  // Values that JSON.stringify accepts (possibly dropping or converting them).
  const value = (depth) => {
    const r = int(depth > 4 ? 8 : 14);
    switch (r) {
      case 0: return str();
      case 1: return num();
      case 2: return chance(0.5);
      case 3: return null;
      case 4: return undefined;
      case 5: return new Date(pick([0, 1_700_000_000_123, -1, 8.64e15, 253402300800000]));
      case 6: return pick([() => {}, Symbol('s'), new Date(NaN)]);
      case 7: return pick([new Number(5), new String('boxed'), new Boolean(false), Object('x')]);
      case 8: case 9: return object(depth + 1);
      case 10: return array(depth + 1);
      case 11: return pick([new Map([[1, 2]]), new Set([1]), new Uint8Array([1, 2, 3]), /re/g, new Error('e')]);
      case 12: {
        const out = pick([{ from: 'toJSON' }, 'str', 42, null, undefined, [1, 2]]); // chosen now: toJSON must be pure
        return { toJSON: () => out };
      }
      default: return Object.assign(Object.create(null), { nullProto: str(4) });
    }
  };
  const array = (depth) => {
    const n = int(6);
    const a = [];
    for (let i = 0; i < n; i++) if (chance(0.85)) a[i] = value(depth); // holes
    if (chance(0.2)) a[n + int(4)] = value(depth); // sparse tail
    return a;
  };
  const object = (depth) => {
    const o = {};
    const n = int(6);
    for (let i = 0; i < n; i++) o[key()] = value(depth);
    if (chance(0.1)) Object.defineProperty(o, 'hidden', { value: 1, enumerable: false });
    if (chance(0.1)) o[Symbol('sym')] = 1;
    if (chance(0.1)) Object.defineProperty(o, 'computed', { get: () => 'from getter', enumerable: true });
    return o;
  };
  const viaJsonParse = () => JSON.parse(pick(['{"__proto__":{"polluted":true},"a":1}', '{"a":{"__proto__":[1,2]},"constructor":{"prototype":{}}}', '{"__proto__":null}']));
  const nested = (depth, leaf) => {
    let o = leaf;
    for (let i = 0; i < depth; i++) o = chance(0.5) ? { n: o } : [o];
    return Array.isArray(o) ? { root: o } : o;
  };
  /** A payload whose JSON.stringify is exactly `bytes` UTF-8 bytes, with multi-byte characters. */
  const sized = (bytes) => {
    const overhead = Buffer.byteLength('{"s":""}');
    let left = bytes - overhead;
    const parts = [];
    const unit = pick(['é', '中', '😀']);
    const ub = Buffer.byteLength(unit);
    const n = Math.floor(left / ub / 2);
    parts.push(unit.repeat(n));
    left -= n * ub;
    parts.push('a'.repeat(left));
    return { s: parts.join('') };
  };
  // Payloads JSON.stringify refuses or that are not a JSON object: the publisher must reject them.
  const invalidData = () => {
    const cyclic = { a: 1 };
    cyclic.self = chance(0.5) ? cyclic : { back: cyclic };
    return pick([
      () => ({ n: 10n }),
      () => ({ deep: [{ x: 1n }] }),
      () => cyclic,
      () => ({ get boom() { throw new Error('getter boom'); } }),
      () => ({ toJSON() { throw new Error('toJSON boom'); } }),
      () => ({ nested: { toJSON() { throw new RangeError('nested toJSON boom'); } } }),
      () => ({ toJSON: () => undefined }),
      () => ({ toJSON: () => 'a string' }),
      () => ({ toJSON: () => [1, 2] }),
      () => [1, 2, 3],
      () => 'string data',
      () => 42,
      () => null,
      () => undefined,
      () => new Date(),
      () => new Proxy({}, { ownKeys() { throw new Error('proxy boom'); } }),
      () => nested(200_000, 1),
    ])();
  };

  // Context strings (no lone surrogates here: see the focused test).
  const ctxStr = () =>
    pick([
      () => uid('ws'),
      () => `ws-${str(10)}`.replace(/[\ud800-\udfff]/g, 'x'),
      () => '😀'.repeat(1 + int(70)), // 4 bytes each: over 256 bytes from 65 on
      () => 'x'.repeat(250 + int(10)),
      () => 'é'.repeat(125 + int(10)),
      () => 'a\u0000b',
      () => ' ',
      () => '\n',
      () => '',
    ])();
  const type = () =>
    (chance(0.6) ? () => pick(['fuzz.item.created', 'approval.item.approved', 'pm.workflow.execution.started']) : pick([
      () => 'fuzz.item.created',
      () => `fuzz.${'a'.repeat(1 + int(5))}_${int(9)}.x${int(9)}`,
      () => pick(['pm.task.phase_changed', 'a.b', 'a1.b_2.c3']),
      () => `a.${'b'.repeat(250 + int(10))}`,
      () => pick(['Fuzz.Item', 'fuzz', 'fuzz.', '.fuzz', 'fuzz..x', 'fuzz.1x', 'fuzz.x-y', 'fuzz.é', 'fuzz.x\u0000', 'fuzz.😀', '', ' fuzz.x', 'fuzz.x\ud800']),
      () => pick([42, null, undefined, {}, ['a.b'], true]),
    ]))();
  const context = () => {
    const c = {};
    if (chance(0.98)) c.tenantId = chance(0.92) ? uid('ws') : pick([() => ctxStr(), () => pick([42, null, {}, ['x']])])();
    if (chance(0.98)) c.userId = chance(0.92) ? `user-${int(100)}` : pick([() => ctxStr(), () => pick([7, false])])();
    if (chance(0.4)) c.source = chance(0.8) ? pick(['approvals', 'crm', '', null, undefined]) : pick([() => ctxStr(), () => 5])();
    if (chance(0.4)) c.correlationId = chance(0.8) ? pick([`corr-${int(99)}`, '', null, undefined]) : pick([() => ctxStr(), () => ({})])();
    if (chance(0.3)) {
      c.eventId = chance(0.8)
        ? `${uid('evt')}${pick(['', '-_.~', 'A9'])}`
        : pick(['', 'a/b', 'a b', `${uid('x')}`.padEnd(129, 'x'), 'é', `${uid('ok')}~`.padEnd(120, '~'), `${uid('e')}`.padEnd(128, 'e'), 42, null]);
    }
    if (chance(0.03)) return pick([null, 'ctx', 42, undefined]);
    return c;
  };
  const data = () => {
    const r = rand();
    if (r < 0.55) return object(0);
    if (r < 0.62) return viaJsonParse();
    if (r < 0.69) return invalidData();
    if (r < 0.8) return nested(pick([10, 100, 1000, 3000]), value(5));
    if (r < 0.84) return sized(MAX + pick([-1, 0, 1, 2, 3, -3]));
    if (r < 0.86) return sized(pick([1000, 65536, 500_000]));
    return { s: str(200), n: num(), when: new Date(1_700_000_000_000 + int(1e9)), u: undefined, arr: array(1), nested: object(2) };
  };
  const event = () => ({ type: type(), data: data(), context: context() });
  const testCase = (i) => {
    if (chance(0.2)) {
      const n = 1 + int(3);
      return { i, batch: true, events: Array.from({ length: n }, event) };
    }
    return { i, batch: false, events: [event()] };
  };
  return { testCase, sized };
}

module.exports = { gen, MAX };
