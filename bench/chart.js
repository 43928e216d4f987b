#!/usr/bin/env node
'use strict';
// The chart of bench/RESULTS.md, drawn as a plain SVG (no browser, no dependency): events/s per
// scenario and implementation, and CPU per event per store (Node, Redis, Postgres, stacked).
// run.js calls `writeChart` after every full run; `node chart.js [RESULTS.md]` redraws it from the
// medians table of an existing RESULTS.md (or from RESULTS.json when it is there).

const fs = require('node:fs');
const path = require('node:path');

const IMPL_COLORS = {
  package: '#1f5fa8', 'package-baseline': '#31a354', 'package-server': '#7fb2e5', 'package-log-file': '#e6550d',
  'package-pgbouncer': '#3f9c96', prisma: '#c8423b', pg: '#e89a3c',
};
const STORE_COLORS = { node: '#4c566a', redis: '#9b7fd1', pg: '#3c8d5a' };
const STORE_LABELS = { node: 'Node', redis: 'Redis', pg: 'Postgres' };
const FALLBACK = ['#6a51a3', '#31a354', '#636363', '#e6550d'];

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
/**
 * Width in px of `s` in DejaVu Sans at `size` px (the font the SVG asks for first), from its
 * advance widths: digits 0.636 em, `,` `.` and space 0.318 em, other characters ~0.62 em. Enough
 * to lay labels out without measuring them in a browser.
 */
function textWidth(s, size) {
  let em = 0;
  for (const ch of String(s)) em += /[0-9]/.test(ch) ? 0.636 : /[,. ]/.test(ch) ? 0.318 : ch === '-' ? 0.361 : 0.62;
  return em * size;
}

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
  const LABEL = 9.5; // font size of the figures over the bars
  // Figures wider than a bar (many implementations side by side) are written upwards instead,
  // so neighbours never overlap; the axis then leaves room above the tallest bar for them.
  const upright = (values) => values.every((v) => textWidth(fmt(v), LABEL) <= barW - 0.5);
  const axisMax = (values, up) => Math.max(...values.map((v) => (up ? v * 1.08 : (v * panelH) / (panelH - 8 - textWidth(fmt(v), LABEL)))));
  const valueLabel = (cx, yTop, v, up) => (up
    ? text(cx, yTop - 4, fmt(v), `font-size="${LABEL}" text-anchor="middle" fill="#222"`)
    // Rotated -90° about its start, the baseline is vertical: shift right by ~half the digit height to centre it.
    : out.push(`<text transform="translate(${(cx + LABEL * 0.36).toFixed(1)} ${(yTop - 4).toFixed(1)}) rotate(-90)" font-size="${LABEL}" fill="#222">${esc(fmt(v))}</text>`));

  // Panel 1: events/s.
  const top1 = 52;
  const rates = summary.map((r) => r.eventsPerSec).filter((v) => v > 0);
  const up1 = upright(rates);
  const p1 = panel(top1, 'Throughput: events/s (median of the repetitions, higher is better)', 'events/s', axisMax(rates, up1));
  scenarios.forEach((s, g) =>
    impls.forEach((impl, k) => {
      const r = get(s, impl);
      if (!r || !(r.eventsPerSec > 0)) return;
      const x = barX(g, k);
      rect(x + 2, p1.y(r.eventsPerSec), barW - 4, p1.y0 - p1.y(r.eventsPerSec), color(impl, k), `${s} · ${impl}: ${fmt(r.eventsPerSec)} events/s`);
      valueLabel(x + barW / 2, p1.y(r.eventsPerSec), r.eventsPerSec, up1);
    }),
  );

  // Panel 2: CPU µs per event, stacked Node + Redis + Postgres.
  const top2 = top1 + panelH + 92;
  const total = (r) => (r.nodeCpu || 0) + (r.redisCpu || 0) + (r.pgCpu || 0);
  const totals = summary.map(total).filter((v) => v > 0);
  const up2 = upright(totals);
  const p2 = panel(top2, 'CPU per event by process: Node + Redis + Postgres, µs (lower is better)', 'CPU µs per event', axisMax(totals, up2));
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
      valueLabel(x + barW / 2, p2.y(acc), acc, up2);
    }),
  );

  // Legends, as many rows as they need: a group (its title and items) starts a new row when it
  // does not fit the rest of the current one or the group before it wrapped; its items wrap
  // indented past its title.
  const LEGEND = 12;
  let legendY = top2 + 34 + panelH + 50;
  let lx = left;
  let wrapped = false;
  const legend = (title, items) => {
    const titleW = textWidth(title, LEGEND) + 10;
    const itemW = (label) => 16 + textWidth(label, LEGEND) + 18;
    const groupW = titleW + items.reduce((a, it) => a + itemW(it.label), 0);
    if (lx > left && (wrapped || lx + groupW > W - right)) {
      legendY += 20;
      lx = left;
    }
    text(lx, legendY, title, `font-size="${LEGEND}" fill="#333"`);
    const indent = lx + titleW;
    lx = indent;
    for (const it of items) {
      if (lx > indent && lx + itemW(it.label) - 18 > W - right) {
        legendY += 20;
        lx = indent;
        wrapped = true;
      }
      rect(lx, legendY - 10, 12, 12, it.color);
      text(lx + 16, legendY, it.label, `font-size="${LEGEND}"`);
      lx += itemW(it.label);
    }
    lx += 12;
  };
  legend('implementation:', impls.map((impl, k) => ({ label: impl, color: color(impl, k) })));
  legend('CPU of:', ['node', 'redis', 'pg'].map((store) => ({ label: STORE_LABELS[store], color: STORE_COLORS[store] })));
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
  // Up to the next section (the several-processes table, the machine limits) only.
  const section = (md.split('\n## Publishers')[1] || '').split('\n## ')[0];
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

module.exports = { renderSvg, summaryFromMarkdown, writeChart, textWidth };

if (require.main === module) {
  const md = path.resolve(process.argv[2] || path.join(__dirname, 'RESULTS.md'));
  const json = md.replace(/\.md$/, '.json');
  const data = fs.existsSync(json) ? JSON.parse(fs.readFileSync(json, 'utf8')) : summaryFromMarkdown(fs.readFileSync(md, 'utf8'));
  console.log(`wrote ${writeChart(md, data)} (${data.rows.length} bars)`);
}
