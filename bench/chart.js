#!/usr/bin/env node
'use strict';
// The chart of bench/RESULTS.md, drawn as a plain SVG (no browser, no dependency): events/s per
// scenario and implementation, and CPU per event per store (Node, Redis, Postgres, stacked).
// run.js calls `writeChart` after every full run; `node chart.js [RESULTS.md]` redraws it from the
// medians table of an existing RESULTS.md (or from RESULTS.json when it is there).

const fs = require('node:fs');
const path = require('node:path');

const IMPL_COLORS = { package: '#1f5fa8', 'package-server': '#7fb2e5', 'package-pgbouncer': '#3f9c96', prisma: '#c8423b', pg: '#e89a3c' };
const STORE_COLORS = { node: '#4c566a', redis: '#9b7fd1', pg: '#3c8d5a' };
const STORE_LABELS = { node: 'Node', redis: 'Redis', pg: 'Postgres' };
const FALLBACK = ['#6a51a3', '#31a354', '#636363', '#e6550d'];

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const fmt = (n) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n >= 10 ? n.toFixed(0) : n.toFixed(1));

/** A "nice" axis maximum and step for `max`. */
function niceScale(max, ticks = 5) {
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  return { step, top: Math.ceil(max / step) * step || step };
}

/**
 * The SVG for `summary`: [{ scenario, impl, eventsPerSec, nodeCpu, redisCpu, pgCpu }] (medians),
 * in scenario order then implementation order.
 */
function renderSvg(summary, { subtitle = '' } = {}) {
  const scenarios = [...new Set(summary.map((r) => r.scenario))];
  const impls = [...new Set(summary.map((r) => r.impl))];
  const color = (impl, i) => IMPL_COLORS[impl] || FALLBACK[i % FALLBACK.length];
  const get = (s, impl) => summary.find((r) => r.scenario === s && r.impl === impl);

  const W = 980;
  const left = 78;
  const right = 20;
  const plotW = W - left - right;
  const groupW = plotW / scenarios.length;
  const barW = Math.min(34, (groupW - 36) / impls.length);
  const panelH = 250;
  const out = [];
  const text = (x, y, s, attrs = '') => out.push(`<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${esc(s)}</text>`);
  const rect = (x, y, w, h, fill, title) =>
    out.push(`<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${w.toFixed(1)}" height="${Math.max(0, h).toFixed(1)}" fill="${fill}">${title ? `<title>${esc(title)}</title>` : ''}</rect>`);

  /** One panel: axes, gridlines and scenario labels; returns the y of a value. */
  function panel(top, title, axisLabel, max) {
    const { step, top: ymax } = niceScale(max);
    const y0 = top + 34 + panelH;
    const y = (v) => y0 - (v / ymax) * panelH;
    text(left, top + 16, title, 'font-size="15" font-weight="bold"');
    for (let v = 0; v <= ymax + step / 2; v += step) {
      out.push(`<line x1="${left}" x2="${W - right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e3e3e3"/>`);
      text(left - 6, y(v) + 4, fmt(v), 'font-size="11" text-anchor="end" fill="#555"');
    }
    out.push(`<line x1="${left}" x2="${W - right}" y1="${y0}" y2="${y0}" stroke="#888"/>`);
    out.push(`<text transform="translate(16 ${(y0 - panelH / 2).toFixed(1)}) rotate(-90)" font-size="12" text-anchor="middle" fill="#333">${esc(axisLabel)}</text>`);
    scenarios.forEach((s, g) => text(left + groupW * g + groupW / 2, y0 + 24, s, 'font-size="12" text-anchor="middle"'));
    return { y, y0 };
  }
  const barX = (g, k) => left + groupW * g + (groupW - barW * impls.length) / 2 + k * barW;

  // Panel 1: events/s.
  const top1 = 52;
  const rateMax = Math.max(...summary.map((r) => r.eventsPerSec || 0));
  const p1 = panel(top1, 'Throughput: events/s (median of the repetitions, higher is better)', 'events/s', rateMax * 1.08);
  scenarios.forEach((s, g) =>
    impls.forEach((impl, k) => {
      const r = get(s, impl);
      if (!r || !(r.eventsPerSec > 0)) return;
      const x = barX(g, k);
      rect(x + 2, p1.y(r.eventsPerSec), barW - 4, p1.y0 - p1.y(r.eventsPerSec), color(impl, k), `${s} · ${impl}: ${fmt(r.eventsPerSec)} events/s`);
      text(x + barW / 2, p1.y(r.eventsPerSec) - 4, fmt(r.eventsPerSec), 'font-size="9.5" text-anchor="middle" fill="#222"');
    }),
  );

  // Panel 2: CPU µs per event, stacked Node + Redis + Postgres.
  const top2 = top1 + panelH + 92;
  const total = (r) => (r.nodeCpu || 0) + (r.redisCpu || 0) + (r.pgCpu || 0);
  const cpuMax = Math.max(...summary.map(total));
  const p2 = panel(top2, 'CPU per event by process: Node + Redis + Postgres, µs (lower is better)', 'CPU µs per event', cpuMax * 1.08);
  scenarios.forEach((s, g) =>
    impls.forEach((impl, k) => {
      const r = get(s, impl);
      if (!r || !(total(r) > 0)) return;
      const x = barX(g, k);
      let acc = 0;
      for (const store of ['node', 'redis', 'pg']) {
        const v = r[`${store}Cpu`] || 0;
        rect(x + 2, p2.y(acc + v), barW - 4, p2.y(acc) - p2.y(acc + v), STORE_COLORS[store], `${s} · ${impl}: ${STORE_LABELS[store]} ${fmt(v)} µs/event`);
        acc += v;
      }
      // The implementation's colour as a cap, so each stack can be told apart.
      rect(x + 2, p2.y0 + 2, barW - 4, 5, color(impl, k));
      text(x + barW / 2, p2.y(acc) - 4, fmt(acc), 'font-size="9.5" text-anchor="middle" fill="#222"');
    }),
  );

  // Legends.
  const legendY = top2 + 34 + panelH + 50;
  let lx = left;
  text(lx, legendY, 'implementation:', 'font-size="12" fill="#333"');
  lx += 112;
  impls.forEach((impl, k) => {
    rect(lx, legendY - 10, 12, 12, color(impl, k));
    text(lx + 16, legendY, impl, 'font-size="12"');
    lx += 24 + impl.length * 7.2;
  });
  lx += 24;
  text(lx, legendY, 'CPU of:', 'font-size="12" fill="#333"');
  lx += 50;
  for (const store of ['node', 'redis', 'pg']) {
    rect(lx, legendY - 10, 12, 12, STORE_COLORS[store]);
    text(lx + 16, legendY, STORE_LABELS[store], 'font-size="12"');
    lx += 30 + STORE_LABELS[store].length * 7.2;
  }
  const H = legendY + 16;

  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${left}" y="24" font-size="17" font-weight="bold">@hyvve/event-publisher benchmark</text>`,
    subtitle ? `<text x="${left}" y="42" font-size="11.5" fill="#555">${esc(subtitle)}</text>` : '',
    ...out,
    '</svg>',
    '',
  ].join('\n');
}

/** The medians table of a RESULTS.md ("## Publishers") as a summary. */
function summaryFromMarkdown(md) {
  const section = md.split('\n## Publishers')[1];
  if (!section) throw new Error('no "## Publishers" section');
  const lines = section.split('\n').filter((l) => l.startsWith('|'));
  const header = lines[0].split('|').map((c) => c.trim());
  const col = (name) => header.indexOf(name);
  const num = (cell) => {
    const n = Number(String(cell).trim().split(' ')[0].replace(/,/g, ''));
    return Number.isFinite(n) ? n : null;
  };
  const rows = [];
  for (const line of lines.slice(2)) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells[col('scenario')] === 'scenario' || !cells[col('implementation')]) continue;
    if (cells.length !== header.length) break; // the next table
    if (cells[col('correctness')] === 'not run') continue;
    rows.push({
      scenario: cells[col('scenario')],
      impl: cells[col('implementation')],
      eventsPerSec: num(cells[col('events/s median (min–max)')]),
      nodeCpu: num(cells[col('Node CPU µs/event')]),
      redisCpu: num(cells[col('Redis CPU µs/event')]),
      pgCpu: num(cells[col('Postgres CPU µs/event')]),
    });
  }
  const generated = (/^Generated (\S+)/m.exec(md) || [])[1];
  const commit = (/\| repo commit \| (\S+) \|/.exec(md) || [])[1];
  return { rows, generated, commit };
}

/** Writes `<out>.svg` and `<out>.json` beside the results file `out` (RESULTS.md). */
function writeChart(out, { rows, generated, commit }) {
  const base = out.replace(/\.md$/, '');
  const subtitle = `${generated ? `Measured ${generated.slice(0, 10)}` : ''}${commit ? ` at ${commit}` : ''}; 2 CPUs shared by Node, Redis and Postgres; data: ${path.basename(base)}.json`;
  fs.writeFileSync(`${base}.json`, `${JSON.stringify({ generated, commit, rows }, null, 2)}\n`);
  fs.writeFileSync(`${base}.svg`, renderSvg(rows, { subtitle }));
  return `${base}.svg`;
}

module.exports = { renderSvg, summaryFromMarkdown, writeChart };

if (require.main === module) {
  const md = path.resolve(process.argv[2] || path.join(__dirname, 'RESULTS.md'));
  const json = md.replace(/\.md$/, '.json');
  const data = fs.existsSync(json) ? JSON.parse(fs.readFileSync(json, 'utf8')) : summaryFromMarkdown(fs.readFileSync(md, 'utf8'));
  console.log(`wrote ${writeChart(md, data)} (${data.rows.length} bars)`);
}
