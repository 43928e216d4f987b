'use strict';
// prom-client adapter: serves a publisher's metrics from a prom-client Registry the caller passes
// (never the global default unless passed). Each family is one prom-client metric whose get()
// reads the publisher's snapshot (`publisher.metrics()`), so values are never copied or kept
// twice. prom-client is an optional peer: this file never requires it.

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses Prometheus text into families: name → { help, type, values }. */
function parse(text) {
  const families = new Map();
  let current = null;
  for (const line of text.split('\n')) {
    if (!line) continue;
    let m;
    if ((m = /^# HELP (\S+) (.*)$/.exec(line))) {
      current = { name: m[1], help: m[2], type: 'untyped', values: [] };
      families.set(m[1], current);
    } else if ((m = /^# TYPE (\S+) (\S+)$/.exec(line))) {
      families.get(m[1]).type = m[2];
    } else if ((m = SAMPLE.exec(line)) && current) {
      const labels = {};
      for (const [, k, v] of (m[2] || '').matchAll(LABEL)) labels[k] = v.replace(/\\(["\\])/g, '$1').replace(/\\n/g, '\n');
      current.values.push({ metricName: m[1], labels, value: m[3] === '+Inf' ? Infinity : Number(m[3]) });
    }
  }
  return families;
}

/**
 * Registers `publisher`'s metrics into `registry` (a prom-client `Registry`); resolves to a
 * function that unregisters them. Scrapes read the publisher's current values.
 */
async function registerPublisherMetrics(publisher, registry) {
  if (!registry || typeof registry.registerMetric !== 'function') {
    throw new TypeError('registerPublisherMetrics(publisher, registry): pass a prom-client Registry (the global one only if you mean it)');
  }
  // One snapshot per scrape: every family's get() in the same scrape shares it.
  let pending = null;
  const snapshot = () => {
    if (!pending) {
      pending = publisher.metrics().then(parse);
      pending.finally(() => setImmediate(() => (pending = null))).catch(() => {});
    }
    return pending;
  };
  const families = await snapshot();
  const names = [];
  for (const { name, help, type } of families.values()) {
    registry.registerMetric({
      name,
      help,
      type,
      aggregator: 'sum',
      async get() {
        const f = (await snapshot()).get(name);
        return { name, help, type, aggregator: 'sum', values: f ? f.values : [] };
      },
      reset() {},
    });
    names.push(name);
  }
  return () => names.forEach((n) => registry.removeSingleMetric(n));
}

module.exports = { registerPublisherMetrics };
