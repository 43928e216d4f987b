'use strict';
// bench/multiprocess.js: how the "several publisher processes" scenario shares its events, turns
// its workers' results into one run's figures, and writes its table; and run.js's options for it.
const { shares, parseProcesses, aggregate, multiprocessTable } = require('../../bench/multiprocess');
const { parseArgs } = require('../../bench/run');

test('the events are shared among the processes as evenly as they go, every one of them counted', () => {
  expect(shares(30000, 1)).toEqual([30000]);
  expect(shares(30000, 4)).toEqual([7500, 7500, 7500, 7500]);
  expect(shares(3001, 4)).toEqual([751, 750, 750, 750]);
  expect(shares(10, 3).reduce((a, b) => a + b)).toBe(10);
  expect(() => shares(3, 4)).toThrow('3 events cannot be shared among 4 processes');
  expect(() => shares(100, 0)).toThrow('processes must be an integer >= 1');
});

test('--processes takes distinct counts >= 1; --scenario multiprocess is a scenario of its own', () => {
  expect(parseProcesses('1,2,4')).toEqual([1, 2, 4]);
  expect(parseProcesses('4, 2,4')).toEqual([4, 2]);
  for (const bad of ['0', '1,,2', 'two', '1.5', '-1', '']) expect(() => parseProcesses(bad)).toThrow('--processes wants counts');
  expect(parseArgs([]).processes).toEqual([1, 2, 4]);
  const o = parseArgs(['--quick', '--scenario', 'multiprocess', '--processes', '2,8', '--no-limits']);
  expect(o).toMatchObject({ scenario: ['multiprocess'], processes: [2, 8], scale: 0.1, limits: false });
  expect(() => parseArgs(['--scenario', 'multiprocesses'])).toThrow('unknown scenario multiprocesses');
});

// Two workers' "done" results as worker.js sends them (wall-clock ms, CPU µs, the package's counters).
const part = (o) => ({ events: 1000, nodeCpuUs: 40000, notReservedEntries: 0, groupWrites: 100, rssPeakMB: 60, ...o });

test('aggregate events/s is all events over last finish − common start; CPU per event sums every process', () => {
  const startAt = 1_000_000;
  const r = aggregate([
    part({ startedAt: startAt + 1, finishedAt: startAt + 400, notReservedEntries: 100 }),
    part({ events: 1500, startedAt: startAt + 3, finishedAt: startAt + 500, nodeCpuUs: 60000, groupWrites: 150, rssPeakMB: 70 }),
  ], { startAt, redisCpuSeconds: 0.025, pgCpuSeconds: 0.1 });
  expect(r).toMatchObject({ processes: 2, events: 2500, seconds: 0.5, startLagMs: 3, finishSpreadMs: 100, rssPeakMB: 70 });
  expect(r.eventsPerSec).toBeCloseTo(5000);
  expect(r.nodeCpuUsPerEvent).toBeCloseTo(40); // (40,000 + 60,000) µs / 2,500
  expect(r.redisCpuUsPerEvent).toBeCloseTo(10);
  expect(r.pgCpuUsPerEvent).toBeCloseTo(40);
  expect(r.notReservedShare).toBeCloseTo(0.04);
  expect(r.eventsPerGroup).toBeCloseTo(10);
  // A worker that starts late counts against the rate: the window opens at the common start.
  const late = aggregate([part({ startedAt: startAt + 250, finishedAt: startAt + 1000 })], { startAt, redisCpuSeconds: 0, pgCpuSeconds: 0 });
  expect(late.eventsPerSec).toBeCloseTo(1000);
  expect(late.startLagMs).toBe(250);
  // Implementations without the package's counters.
  const refs = aggregate([part({ startedAt: startAt, finishedAt: startAt + 100, notReservedEntries: null, groupWrites: null })],
    { startAt, redisCpuSeconds: 0, pgCpuSeconds: 0 });
  expect(refs.notReservedShare).toBeNull();
  expect(refs.eventsPerGroup).toBeNull();
});

test('the table: medians of the passing repetitions per process count and implementation, failures named', () => {
  const run = (processes, impl, rep, eventsPerSec, o = {}) => ({
    rep, processes, impl, ok: true, check: { ok: true, problems: [] }, eventsPerSec,
    nodeCpuUsPerEvent: 30, redisCpuUsPerEvent: 8, pgCpuUsPerEvent: 40, notReservedShare: 0.5, eventsPerGroup: 4, ...o,
  });
  const results = [
    run(1, 'package', 1, 20000), run(1, 'package', 2, 22000), run(1, 'package', 3, 21000, { notReservedShare: 0 }),
    run(1, 'package-server', 1, 15000, { notReservedShare: 0 }),
    run(2, 'package', 1, 16000), run(2, 'package', 2, 17000),
    run(2, 'package', 3, 99999, { ok: false, check: { ok: false, problems: ['XLEN 9 != 10 published'] } }),
    { rep: 1, processes: 2, impl: 'package-server', ok: false, error: 'worker exited (1) before ready' },
  ];
  const lines = multiprocessTable(results, [1, 2, 4], ['package', 'package-server'], 3).split('\n');
  expect(lines[0]).toBe('| processes | implementation | events/s median (min–max), all processes | events/s vs 1 process '
    + '| Node CPU µs/event, all processes | Redis CPU µs/event | Postgres CPU µs/event | CPU µs/event, all '
    + '| entries not at their reserved ID | events per group write | correctness |');
  expect(lines).toHaveLength(2 + 3 * 2);
  expect(lines[2]).toBe('| 1 | package | 21,000 (20,000–22,000) | 1.00× | 30 | 8.0 | 40.0 | 78 | 50.0% | 4.0 | 3/3 ok |');
  expect(lines[3]).toBe('| 1 | package-server | 15,000 (15,000–15,000) | 1.00× | 30 | 8.0 | 40.0 | 78 | none reserved | 4.0 | 1/3 ok |');
  expect(lines[4]).toBe('| 2 | package | 16,500 (16,000–17,000) | 0.79× | 30 | 8.0 | 40.0 | 78 | 50.0% | 4.0 | 2/3 ok; FAILED: XLEN 9 != 10 published |');
  expect(lines[5]).toBe(`| 2 | package-server |${' – |'.repeat(8)} FAILED: worker exited (1) before ready |`);
  expect(lines[6]).toBe(`| 4 | package |${' – |'.repeat(8)} not run |`);
});
