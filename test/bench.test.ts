// The bench harness's own logic: percentiles, dnsperf parsing, byte
// accounting at the fault proxy, report and SVG writing; and the quick run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, percentile } from '../bench/lib/stats.js';
import { parseDnsperf } from '../bench/lib/procs.js';
import { FaultProxy } from '../bench/lib/fault-proxy.js';
import { renderMarkdown, seedTable, tradeoffSvg, type Row } from '../bench/lib/report.js';
import { logTicks, scatter, ticks } from '../bench/lib/svg.js';
import { medianRow, parseArgs } from '../bench/run.js';
import { Stub } from './helpers/stub.js';
import { udpQuery, makeQuery } from './helpers/client.js';

test('percentiles are nearest-rank; median of an even count takes the lower middle', () => {
  const xs = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(xs, 50), 50);
  assert.equal(percentile(xs, 99), 99);
  assert.equal(percentile(xs, 100), 100);
  assert.equal(percentile([5], 99), 5);
  assert.ok(Number.isNaN(percentile([], 50)));
  assert.equal(median([3, 1, 2]), 2);
});

test('dnsperf output: totals and the -v per-query latencies', () => {
  const out = [
    '> NOERROR h1.bench.test A 0.000120',
    '> NOERROR h2.bench.test A 0.000250',
    '  Queries sent:         2',
    '  Queries completed:    2 (100.00%)',
    '  Queries lost:         0 (0.00%)',
    '  Queries per second:   1999.5',
    '  Average Latency (s):  0.000185 (min 0.000120, max 0.000250)',
  ].join('\n');
  const r = parseDnsperf(out);
  assert.equal(r.sent, 2);
  assert.equal(r.completed, 2);
  assert.equal(r.lost, 0);
  assert.equal(r.qps, 1999.5);
  assert.ok(Math.abs(r.avgLatencyMs - 0.185) < 1e-9);
  assert.deepEqual(r.latencies, [0.12, 0.25]);
  assert.deepEqual(parseDnsperf('> NXDOMAIN h5.bench.test A 0.000100\n> NOERROR h6.bench.test A 0.000100\n').rcodes, { NXDOMAIN: 1, NOERROR: 1 });
});

test('the fault proxy answers NXDOMAIN for every nth name h<i> (the wrong-nxdomain scenario)', async () => {
  const up = await Stub.start({ address: '192.0.2.1' });
  const proxy = await FaultProxy.start(up.port);
  try {
    proxy.faults = { delayMs: 0, jitterMs: 0, dead: false, servfailRate: 0, nxdomainEvery: 5 };
    assert.equal((await udpQuery(proxy.port, 'h10.bench.test')).packet.rcode, 'NXDOMAIN');
    assert.equal((await udpQuery(proxy.port, 'h11.bench.test')).packet.rcode, 'NOERROR');
    assert.equal((await udpQuery(proxy.port, 'other.bench.test')).packet.rcode, 'NOERROR');
    assert.equal(up.count(), 2, 'the NXDOMAIN never reached the upstream');
  } finally {
    await proxy.close();
    await up.close();
  }
});

test('the fault proxy counts queries and bytes at the upstream, and injects faults', async () => {
  const up = await Stub.start({ address: '192.0.2.1' });
  const proxy = await FaultProxy.start(up.port);
  try {
    const q = makeQuery('count.example', { type: 'AAAA' });
    const { raw } = await udpQuery(proxy.port, 'count.example', { type: 'AAAA' });
    assert.equal(proxy.queries, 1);
    assert.equal(proxy.bytesIn, q.length);
    assert.equal(proxy.bytesOut, raw.length);
    proxy.faults = { delayMs: 0, jitterMs: 0, dead: false, servfailRate: 1 };
    assert.equal((await udpQuery(proxy.port, 'sf.example')).packet.rcode, 'SERVFAIL');
    proxy.faults = { delayMs: 0, jitterMs: 0, dead: true, servfailRate: 0 };
    await assert.rejects(udpQuery(proxy.port, 'dead.example', {}, 300));
    assert.equal(proxy.queries, 3);
    proxy.faults = { delayMs: 120, jitterMs: 0, dead: false, servfailRate: 0 };
    const t0 = Date.now();
    await udpQuery(proxy.port, 'slow.example');
    assert.ok(Date.now() - t0 >= 110);
    // The flaky scenario's silent share: every query dropped (counted), none answered.
    proxy.faults = { delayMs: 0, jitterMs: 0, dead: false, servfailRate: 0, dropShare: 1 };
    await assert.rejects(udpQuery(proxy.port, 'dropped.example', {}, 300));
    assert.equal(proxy.queries, 5);
  } finally {
    await proxy.close();
    await up.close();
  }
});

test('log axis for the frontier plots: 1-2-5 ticks covering the points, the lowest point on or above the bottom tick', () => {
  assert.deepEqual(logTicks(3, 2000), [2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000]);
  assert.deepEqual(logTicks(8, 130), [5, 10, 20, 50, 100, 200]);
  const svg = scatter(
    [
      { x: 1, y: 4, label: 'a', series: 's' },
      { x: 3, y: 2000, label: 'b', series: 's' },
    ],
    { title: 't', xLabel: 'x', yLabel: 'y', logY: true },
  );
  const ys = [...svg.matchAll(/<circle cx="[\d.]+" cy="([\d.]+)" r="5" fill="[^"]+" fill-opacity/g)].map((m) => Number(m[1]));
  assert.equal(ys.length, 2);
  // 4 ms sits between the 2 tick (bottom) and the top (2000): above the x axis, below the top margin.
  assert.ok(ys[0]! < 560 - 55 && ys[0]! > ys[1]!, String(ys));
});

const row = (over: Partial<Row>): Row => ({
  server: 'raced',
  mode: 'all',
  cache: false,
  scenario: 'healthy',
  qps: 1000,
  p50ms: 0.1,
  p95ms: 0.2,
  p99ms: 0.3,
  answered: 1,
  upstreamQueriesPerQuery: 2,
  upstreamBytesPerQuery: 200,
  upstreamTxPerQuery: 80,
  upstreamRxPerQuery: 120,
  cpuUsPerQuery: 30,
  rssMB: 70,
  wrongPer1000: 0,
  ...over,
});

test('report: the seed table scales bytes to 100k queries; medians over runs; SVG is well formed', () => {
  const rows = [row({}), row({ server: 'dnsmasq', mode: 'all-servers', upstreamTxPerQuery: 66 })];
  const t = seedTable(rows);
  assert.match(t, /\| raced \| --all-servers --cache-size 0 \| 7\.6 MiB \| 11\.4 MiB \| 2\.00 \|/);
  assert.match(t, /\| dnsmasq \| --all-servers --cache-size=0 \| 6\.3 MiB \|/);
  const md = renderMarkdown({ date: 'd', machine: { cores: 2 }, settings: { runs: 1 }, commands: ['dnsperf -x'], rows });
  assert.match(md, /\| raced all \| 0 \| healthy \| 1000 \| 0\.100 \|/);
  assert.match(md, /tradeoff\.svg/);
  const m = medianRow([row({ p99ms: 1 }), row({ p99ms: 9 }), row({ p99ms: 2, qps: NaN })]);
  assert.equal(m.p99ms, 2);
  assert.equal(m.qps, 1000);
  const svg = tradeoffSvg(rows);
  assert.ok(svg.startsWith('<svg') && svg.trim().endsWith('</svg>'));
  assert.equal((svg.match(/<circle /g) ?? []).length, 2 + 1, 'two points and one legend entry for one scenario');
  assert.deepEqual(ticks(9), [0, 2, 4, 6, 8, 10]);
  assert.ok(!scatter([{ x: 1, y: 1, label: '<&>', series: 's' }], { title: 't', xLabel: 'x', yLabel: 'y' }).includes('<&>'));
});

test('bench arguments: --quick shrinks the matrix; bad options are refused', () => {
  const q = parseArgs(['--quick']);
  assert.ok(q !== 'help');
  assert.equal(q.runs, 1);
  assert.deepEqual(q.scenarios, ['healthy', 'dead']);
  assert.equal(parseArgs(['--help']), 'help');
  assert.throws(() => parseArgs(['--scenarios', 'bogus']), /unknown scenario/);
  assert.throws(() => parseArgs(['--runs', '-1']), /positive/);
});

const tools = ['dnsperf', 'dnsmasq', 'nsd', 'taskset'].every((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status === 0);
test('a bench stopped by a signal stops the servers it started', { skip: !tools && 'needs dnsperf, dnsmasq, nsd', timeout: 60_000 }, async () => {
  const out = mkdtempSync(join(tmpdir(), 'raced-stopped-'));
  const script = fileURLToPath(new URL('../bench/tradeoffs.js', import.meta.url));
  const bench = spawn(process.execPath, [script, '--seconds', '5', '--rounds', '1', '--scenario', 'healthy', '--out', out], { stdio: 'ignore' });
  const gone = new Promise<number | null>((resolve) => bench.once('exit', (code) => resolve(code)));
  let kids: number[] = [];
  try {
    // Its three nsd upstreams (and then raced) are its children.
    for (let i = 0; i < 150 && kids.length < 4; i++) {
      await new Promise((r) => setTimeout(r, 100));
      kids = (spawnSync('pgrep', ['-P', String(bench.pid)], { encoding: 'utf8' }).stdout.match(/\d+/g) ?? []).map(Number);
    }
    assert.ok(kids.length >= 4, `children of the bench: ${kids.join(', ')}`);
    bench.kill('SIGTERM');
    assert.equal(await gone, 143);
    const alive = (pid: number): boolean => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 50 && kids.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(kids.filter(alive), [], 'every child stopped with it');
    kids = [];
  } finally {
    if (bench.exitCode === null) bench.kill('SIGKILL');
    // Should this fail, what the bench left is stopped here (its children, by PID).
    for (const pid of kids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(out, { recursive: true, force: true });
  }
});

test('npm run bench -- --quick: writes the report, the plots, and nothing into the work tree', { skip: !tools && 'needs dnsperf, dnsmasq, nsd', timeout: 240_000 }, async () => {
  const out = mkdtempSync(join(tmpdir(), 'raced-quick-'));
  const script = fileURLToPath(new URL('../bench/run.js', import.meta.url));
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const before = spawnSync('git', ['status', '--porcelain'], { cwd: root, encoding: 'utf8' }).stdout;
  const t0 = Date.now();
  await promisify(execFile)(process.execPath, [script, '--quick', '--out', out], { cwd: root, timeout: 230_000 });
  assert.ok(Date.now() - t0 < 120_000, `quick run took ${Date.now() - t0} ms`);
  for (const f of ['report.json', 'report.md', 'tradeoff.svg', 'qps.svg']) assert.ok(existsSync(join(out, f)), f);
  const rep = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { rows: Row[] };
  const get = (server: string, mode: string, scenario: string, cache = false): Row =>
    rep.rows.find((r) => r.server === server && r.mode === mode && r.scenario === scenario && r.cache === cache)!;
  assert.ok(get('raced', 'all', 'healthy').upstreamQueriesPerQuery > 1.9, 'all-servers asks both upstreams');
  assert.ok(get('raced', 'all', 'healthy', true).upstreamQueriesPerQuery < 0.1, 'the cache answers');
  assert.ok(get('raced', 'all', 'dead').answered > 0.99, 'a dead upstream costs raced nothing');
  assert.ok(get('dnsmasq', 'all-servers', 'healthy').qps > 0);
  const after = spawnSync('git', ['status', '--porcelain'], { cwd: root, encoding: 'utf8' }).stdout;
  assert.equal(after, before, 'the work tree is unchanged');
});
