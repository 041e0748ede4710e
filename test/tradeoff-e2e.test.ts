// The trade-off engine end to end: stand-ins of fixed latency and a fixed
// tail (A answers in 5 ms, every 20th name 400 ms late; B in 20 ms; C in
// 100 ms; the stand-ins share the test's process, so add its event-loop delay), real UDP queries, GET /tradeoffs over HTTP, `raced status
// --tradeoffs` as a user runs it, and `auto` meeting its target.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Stub } from './helpers/stub.js';
import { startRaced, udpQuery, sleep, type Running } from './helpers/client.js';
import { parseEndpoint } from '../src/net/address.js';
import { parseMetrics } from '../src/status.js';
import { freeTcpPort } from './helpers/process.js';
import type { TradeoffReport } from '../src/tradeoff/engine.js';
import { dnsperf } from '../bench/lib/procs.js';

const CLI = fileURLToPath(new URL('../src/main.js', import.meta.url));
const FIELDS = ['option', 'p50_ms', 'p95_ms', 'p99_ms', 'answered_share', 'upstream_queries_per_query', 'upstream_bytes_per_query'];

/** Every 20th name (t0, t20, ...) is in A's tail. */
const index = (name: string): number => Number(/(\d+)/.exec(name)?.[1] ?? 1);

async function standIns(): Promise<Stub[]> {
  return Promise.all([
    Stub.start({ address: '192.0.2.1', delayFor: (n) => (index(n) % 20 === 0 ? 400 : 5) }),
    Stub.start({ address: '192.0.2.2', delayMs: 20 }),
    Stub.start({ address: '192.0.2.3', delayMs: 100 }),
  ]);
}

/** `n` distinct queries, `width` at a time; the client latency of each (ms). */
async function load(r: Running, from: number, n: number, width = 6): Promise<number[]> {
  const lat: number[] = [];
  let next = from;
  const worker = async (): Promise<void> => {
    while (next < from + n) {
      const name = `t${next++}.example`;
      const t0 = performance.now();
      await udpQuery(r.port, name);
      lat.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
  return lat;
}

const p99 = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.ceil(0.99 * xs.length) - 1]!;

async function tradeoffs(mport: number): Promise<TradeoffReport> {
  const res = await fetch(`http://127.0.0.1:${mport}/tradeoffs`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  return (await res.json()) as TradeoffReport;
}

test('tradeoffs: every option predicted from `all` traffic, over HTTP, in the metrics and in raced status', async () => {
  const ups = await standIns();
  const mport = await freeTcpPort();
  const r = await startRaced(
    ups.map((u) => u.label),
    { timeoutMs: 1000, metricsListen: parseEndpoint(`127.0.0.1:${mport}`, 9153) },
  );
  await r.raced.startMetrics('test');
  try {
    const empty = await tradeoffs(mport);
    assert.deepEqual(empty, { window: { races: 0, seconds: 0 }, target_ms: null, chosen: 'all', options: [] });
    await load(r, 0, 400);
    // Races younger than the timeout may have legs out: they count once it has passed.
    await sleep(1100);
    r.raced.tradeoffs.update(performance.now());
    const rep = await tradeoffs(mport);
    assert.equal(rep.window.races, 400);
    assert.ok(rep.window.seconds > 0);
    assert.equal(rep.chosen, 'all');
    const names = rep.options.map((o) => o.option);
    for (const want of ['all', 'top-1', 'top-2', 'hedged', 'ordered']) assert.ok(names.includes(want), `${want} in ${names.join(', ')}`);
    assert.ok(names.some((n) => /^hedged@\d+ms$/.test(n)), names.join(', '));
    for (const o of rep.options) assert.deepEqual(Object.keys(o), FIELDS);
    const get = (n: string) => rep.options.find((o) => o.option === n)!;
    if (process.env.SHOW) console.log(JSON.stringify(rep, null, 1));
    // all: three queries each; A's tail is covered by B (20 ms; more when the shared machine is busy).
    assert.equal(get('all').upstream_queries_per_query, 3);
    assert.ok(get('all').p99_ms! >= 19 && get('all').p99_ms! < 200, `all p99 ${get('all').p99_ms}`);
    assert.equal(get('all').answered_share, 1);
    // top-1 is A alone: its p99 is the 400 ms tail, its p50 the 5 ms body.
    assert.equal(get('top-1').upstream_queries_per_query, 1);
    assert.ok(get('top-1').p99_ms! >= 400, `top-1 p99 ${get('top-1').p99_ms}`);
    assert.ok(get('top-1').p50_ms! < 20, `top-1 p50 ${get('top-1').p50_ms}`);
    // The best hedge covers A's tail: p99 far below A's for well under all's three queries.
    const hedges = rep.options.filter((o) => o.option.startsWith('hedged@'));
    const best = hedges.reduce((a, b) => (b.p99_ms! < a.p99_ms! ? b : a));
    assert.ok(best.p99_ms! < get('top-1').p99_ms! / 2 && best.upstream_queries_per_query! < 2, JSON.stringify(best));
    assert.ok(get('all').upstream_bytes_per_query! > get('top-1').upstream_bytes_per_query!);

    const metrics = parseMetrics(await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text());
    const g = metrics.find((s) => s.name === 'raced_tradeoff_latency_seconds' && s.labels.option === 'top-1' && s.labels.quantile === '0.99');
    assert.equal(g?.value, get('top-1').p99_ms! / 1000);
    const q = metrics.find((s) => s.name === 'raced_tradeoff_upstream_queries_per_query' && s.labels.option === 'all');
    assert.equal(q?.value, 3);

    const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'status', '--tradeoffs', '--metrics-url', `http://127.0.0.1:${mport}/metrics`]);
    assert.match(stdout, /predicted from 400 races/);
    assert.match(stdout, /^\*\s+all\s+/m, stdout);
    assert.match(stdout, /^\s+top-1\s+/m, stdout);
  } finally {
    await r.close();
    for (const u of ups) await u.close();
  }
});

test('auto: meets a 100 ms p99 target at a fraction of all\'s upstream queries, and says so', async () => {
  const ups = await standIns();
  const mport = await freeTcpPort();
  const r = await startRaced(
    ups.map((u) => u.label),
    { strategy: 'auto', latencyTargetMs: 100, timeoutMs: 1000, metricsListen: parseEndpoint(`127.0.0.1:${mport}`, 9153) },
  );
  await r.raced.startMetrics('test');
  try {
    // Too few races to trust: all.
    await load(r, 0, 100);
    await sleep(1100);
    r.raced.tradeoffs.update(performance.now());
    assert.equal((await tradeoffs(mport)).chosen, 'all');
    await load(r, 100, 300);
    await sleep(1100);
    r.raced.tradeoffs.update(performance.now());
    const rep = await tradeoffs(mport);
    assert.equal(rep.target_ms, 100);
    const chosen = rep.options.find((o) => o.option === rep.chosen);
    assert.ok(chosen && chosen.option !== 'all', `chosen ${rep.chosen} from ${JSON.stringify(rep)}`);
    assert.ok(chosen.p99_ms! <= 100 && chosen.upstream_queries_per_query! < 2, JSON.stringify(chosen));
    assert.ok(r.logs.some((l) => l.includes(`auto: now ${rep.chosen} (was all)`)), r.logs.filter((l) => l.includes('auto')).join('\n'));
    const metrics = parseMetrics(await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text());
    const choice = metrics.filter((s) => s.name === 'raced_auto_choice');
    assert.deepEqual(choice.filter((s) => s.value === 1).map((s) => s.labels.option), [rep.chosen]);
    assert.ok(choice.some((s) => s.labels.option === 'all' && s.value === 0));

    // Measured under auto: the target met, far fewer upstream queries than all's three.
    const before = ups.reduce((a, u) => a + u.received.length, 0);
    const lat = await load(r, 400, 300);
    await sleep(200);
    const sent = ups.reduce((a, u) => a + u.received.length, 0) - before;
    assert.ok(sent / 300 < 2, `upstream queries per query under auto: ${sent / 300}`);
    // The target is a p99; on this shared machine a stall of the test's own event loop (stand-ins,
    // raced and client share it) can add a slow answer or two, so up to 2 % over it are let through.
    const over = lat.filter((x) => x > 100).length;
    assert.ok(over <= 6, `${over} of 300 answers over 100 ms under ${rep.chosen}; measured p99 ${p99(lat).toFixed(1)} ms`);
  } finally {
    await r.close();
    for (const u of ups) await u.close();
  }
});

test('hedged: where the best upstream\'s p95 is its tail, the advised delay covers it', async () => {
  // A: 5 ms, every 10th name 400 ms late, so its p95 (the learned delay) is the tail itself.
  const ups = await Promise.all([
    Stub.start({ address: '192.0.2.1', delayFor: (n) => (index(n) % 10 === 0 ? 400 : 5) }),
    Stub.start({ address: '192.0.2.2', delayMs: 20 }),
    Stub.start({ address: '192.0.2.3', delayMs: 100 }),
  ]);
  const r = await startRaced(
    ups.map((u) => u.label),
    { strategy: 'hedged', timeoutMs: 1000 },
  );
  try {
    await load(r, 0, 300);
    await sleep(1100);
    r.raced.tradeoffs.update(performance.now());
    const advice = r.raced.tradeoffs.hedgeAdviceMs;
    assert.ok(advice !== null && advice < 100, `advice ${advice}`);
    const hedged = r.raced.tradeoffs.report().options.find((o) => o.option === 'hedged')!;
    assert.ok(hedged.p99_ms! < 200, `hedged predicted with the advice: ${JSON.stringify(hedged)}`);
    const before = ups.reduce((a, u) => a + u.received.length, 0);
    const advised: (number | null)[] = [];
    const lat: number[] = [];
    for (let i = 0; i < 3; i++) {
      lat.push(...(await load(r, 300 + 100 * i, 100)));
      // Past the timeout: this round's races are read by the next refresh.
      await sleep(1100);
      r.raced.tradeoffs.update(performance.now());
      advised.push(r.raced.tradeoffs.hedgeAdviceMs);
    }
    // Every refresh advises a delay that covers the tail (which one of the near-equal candidates
    // may move on a loaded machine: the bands that keep it put are unit-tested in tradeoff.test.ts).
    assert.ok(advised.every((a) => a !== null && a < 100), `advised ${advised.join(', ')}`);
    // A's tail (30 of 300 names) is answered by B after the hedge, not at 400 ms.
    const over = lat.filter((x) => x > 200).length;
    assert.ok(over <= 3, `${over} of 300 answers over 200 ms; p99 ${p99(lat).toFixed(1)} ms`);
    // Well under all's 3 (about 1.1 here; up to about 1.5 when a loaded machine spreads A's 5 ms answers past the delay).
    const sent = ups.reduce((a, u) => a + u.received.length, 0) - before;
    assert.ok(sent / 300 < 2, `upstream queries per query ${sent / 300}`);
  } finally {
    await r.close();
    for (const u of ups) await u.close();
  }
});

const hasDnsperf = spawnSync('sh', ['-c', 'command -v dnsperf']).status === 0;

test('tradeoffs at 3,000 QPS: the window records a sample of races, so there are predictions though 8192 races would span less than the 4 s timeout', { skip: !hasDnsperf && 'dnsperf not installed', timeout: 60_000 }, async (t) => {
  const up = await Stub.start({ address: '192.0.2.1' });
  const r = await startRaced([up.label], { timeoutMs: 4000, logLevel: 'warn' });
  const dir = mkdtempSync(join(tmpdir(), 'raced-tradeoff-rate-'));
  try {
    const queries = join(dir, 'queries');
    writeFileSync(queries, Array.from({ length: 1000 }, (_, i) => `t${i}.example A\n`).join(''));
    const run = await dnsperf(r.port, queries, 6, { rate: 3000, outstanding: 200 });
    // The premise: more than WINDOW_RACES races within one timeout (8192 in 4 s is 2,048 a second).
    if (run.qps < 2100) {
      t.skip(`dnsperf reached only ${run.qps} QPS on this machine: ${run.command}`);
      return;
    }
    r.raced.tradeoffs.update(performance.now());
    const rep = r.raced.tradeoffs.report();
    // The first second keeps at most a quarter of the window, the next ones about 3 x 241 a second
    // while it fills (8192 / 34 s, three times as dense while there is room): those older than the
    // timeout are read.
    assert.ok(rep.window.races >= 300 && rep.window.races < 0.25 * run.sent, `${rep.window.races} races read of ${run.sent}`);
    assert.ok(rep.options.some((o) => o.option === 'all' && o.upstream_queries_per_query === 1 && o.answered_share! >= 0.999), JSON.stringify(rep.options));
  } finally {
    await r.close();
    await up.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
