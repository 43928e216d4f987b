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
