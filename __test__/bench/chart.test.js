'use strict';
// bench/chart.js: the chart embedded in bench/RESULTS.md is drawn from the figures of its medians
// table (saved in RESULTS.json), and the committed SVG is what chart.js draws from them.
const fs = require('node:fs');
const path = require('node:path');
const { renderSvg, summaryFromMarkdown, writeChart } = require('../../bench/chart');

const BENCH = path.join(__dirname, '..', '..', 'bench');
const md = fs.readFileSync(path.join(BENCH, 'RESULTS.md'), 'utf8');

test('RESULTS.md embeds RESULTS.svg, and RESULTS.json holds the medians of its table', () => {
  expect(md).toContain('](RESULTS.svg)');
  const fromMd = summaryFromMarkdown(md);
  const saved = JSON.parse(fs.readFileSync(path.join(BENCH, 'RESULTS.json'), 'utf8'));
  expect(saved.rows).toEqual(fromMd.rows);
  expect(fromMd.rows.length).toBeGreaterThanOrEqual(16);
  // One figure read back from the table as a user would: package, 64 in flight.
  const row = fromMd.rows.find((r) => r.scenario === '64 in flight' && r.impl === 'package');
  const line = md.split('\n').find((l) => l.startsWith('| 64 in flight | package |'));
  expect(line).toContain(`| ${row.eventsPerSec.toLocaleString('en-US')} (`);
  expect(line).toContain(`| ${row.redisCpu} | ${row.pgCpu} |`);
});

test('the committed RESULTS.svg is what chart.js draws from RESULTS.json: a bar per figure, each titled with it', () => {
  const tmp = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'chart-'));
  const saved = JSON.parse(fs.readFileSync(path.join(BENCH, 'RESULTS.json'), 'utf8'));
  writeChart(path.join(tmp, 'RESULTS.md'), saved);
  const svg = fs.readFileSync(path.join(tmp, 'RESULTS.svg'), 'utf8');
  expect(svg).toBe(fs.readFileSync(path.join(BENCH, 'RESULTS.svg'), 'utf8'));
  fs.rmSync(tmp, { recursive: true, force: true });
  const titles = [...svg.matchAll(/<title>([^<]*)<\/title>/g)].map((m) => m[1]);
  for (const r of saved.rows) {
    expect(titles).toContain(`${r.scenario} · ${r.impl}: ${Math.round(r.eventsPerSec).toLocaleString('en-US')} events/s`);
    expect(titles.filter((t) => t.startsWith(`${r.scenario} · ${r.impl}: `) && t.endsWith('µs/event'))).toHaveLength(3);
  }
});

test('renderSvg is well-formed for any figures, and a missing (failed) run draws no bar', () => {
  const svg = renderSvg([
    { scenario: 'a & b', impl: 'package', eventsPerSec: 10, nodeCpu: 1, redisCpu: 2, pgCpu: 3 },
    { scenario: 'a & b', impl: 'other', eventsPerSec: null, nodeCpu: null, redisCpu: null, pgCpu: null },
  ]);
  expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
  expect(svg).toContain('a &amp; b');
  expect(svg).not.toContain('a & b');
  expect([...svg.matchAll(/<title>a &amp; b · other/g)]).toHaveLength(0);
  expect([...svg.matchAll(/<title>a &amp; b · package/g)]).toHaveLength(4);
});

/** The boxes of the SVG's texts (font-size 9.5 figures and 12 px legend), by a rough glyph width of 0.64 em. */
function textBoxes(svg, size) {
  const boxes = [];
  const re = new RegExp(`<text (?:x="([\\d.]+)" y="([\\d.]+)"|transform="translate\\(([\\d.]+) ([\\d.]+)\\) rotate\\(-90\\)") font-size="${size}"([^>]*)>([^<]*)</text>`, 'g');
  for (const m of svg.matchAll(re)) {
    const w = m[6].length * 0.64 * size;
    const h = size * 0.75; // digit height
    if (m[1]) {
      const x = Number(m[1]);
      const y = Number(m[2]);
      const x0 = /text-anchor="middle"/.test(m[5]) ? x - w / 2 : x;
      boxes.push({ s: m[6], x0, x1: x0 + w, y0: y - h, y1: y });
    } else {
      const x = Number(m[3]);
      const y = Number(m[4]);
      boxes.push({ s: m[6], x0: x - h, x1: x, y0: y - w, y1: y });
    }
  }
  return boxes;
}

test('with 7 implementations side by side no two figures overlap, and the legend stays inside the picture', () => {
  const saved = JSON.parse(fs.readFileSync(path.join(BENCH, 'RESULTS.json'), 'utf8'));
  expect(new Set(saved.rows.map((r) => r.impl)).size).toBe(7);
  const svg = renderSvg(saved.rows);
  const width = Number(/<svg [^>]*width="(\d+)"/.exec(svg)[1]);
  const height = Number(/<svg [^>]*height="(\d+)"/.exec(svg)[1]);
  const figures = textBoxes(svg, '9.5');
  expect(figures).toHaveLength(saved.rows.filter((r) => r.eventsPerSec > 0).length * 2); // events/s and CPU total
  const overlaps = [];
  for (let i = 0; i < figures.length; i++) {
    for (let j = i + 1; j < figures.length; j++) {
      const [a, b] = [figures[i], figures[j]];
      if (a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1) overlaps.push(`${a.s} / ${b.s}`);
    }
  }
  expect(overlaps).toEqual([]);
  const legend = textBoxes(svg, '12');
  expect(legend.map((b) => b.s)).toEqual(expect.arrayContaining([...new Set(saved.rows.map((r) => r.impl)), 'Node', 'Redis', 'Postgres']));
  for (const b of [...figures, ...legend]) {
    expect(b.x0).toBeGreaterThanOrEqual(0);
    expect(b.x1).toBeLessThanOrEqual(width);
    expect(b.y1).toBeLessThanOrEqual(height);
  }
});
