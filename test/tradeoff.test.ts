// The trade-off estimator on synthetic legs whose quantiles are known exactly:
// no sockets, no clock. End-to-end checks are in tradeoff-e2e.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FIRST_PROBE_DELAYS, LEG_ERROR, LEG_GOOD, LEG_LOSING, LEG_TIMEOUT, PROBES_PER_S, PROBE_SLOTS, ROOM_FACTOR, RaceWindow, SECOND_CAP_DIVISOR, WINDOW_RACES, WINDOW_SPAN_S } from '../src/tradeoff/window.js';
import {
  bestHedgeMs,
  cdfAt,
  cheapestMeeting,
  curveOf,
  predict,
  plans,
  predictAll,
  windowCurves,
  windowSpan,
  type Curve,
  type Prediction,
  type Scene,
} from '../src/tradeoff/estimate.js';
import { AUTO_DWELL_MS, AUTO_MIN_RACES, AUTO_SETTLE_MS, AutoChooser } from '../src/tradeoff/auto.js';
import { CALIBRATION_MAX_MS, MIN_PROBES, armProbes, calibrated, lagPoints, probeUnanswered, probesOf } from '../src/tradeoff/lag.js';
import { Tradeoffs, firstTimer, timerLags } from '../src/tradeoff/engine.js';
import type { Upstream } from '../src/upstream/upstream.js';
import { VirtualClock } from './helpers/virtual.js';

const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i);
const good = (ms: number[], bytes = 100): Curve => curveOf(ms, ms.map(() => LEG_GOOD), ms.map(() => bytes));
const row = (rows: Prediction[], option: string): Prediction => {
  const r = rows.find((x) => x.option === option);
  assert.ok(r, `no option ${option} in ${rows.map((x) => x.option).join(', ')}`);
  return r;
};

test('one upstream answering in 1..100 ms: p50 50, p95 95, p99 99, one query', () => {
  const a = good(range(1, 100));
  const p = predict('top-1', [{ u: 0, at: 0 }], [a], 1000);
  assert.deepEqual(p, {
    option: 'top-1',
    p50_ms: 50,
    p95_ms: 95,
    p99_ms: 99,
    answered_share: 1,
    upstream_queries_per_query: 1,
    upstream_bytes_per_query: 100,
  });
});

test('racing takes the minimum: 1..100 ms against a steady 10 ms gives 10 ms at every quantile for two queries', () => {
  const curves = [good(range(1, 100)), good(Array(100).fill(10), 60)];
  const p = predict('all', [{ u: 0, at: 0 }, { u: 1, at: 0 }], curves, 1000);
  assert.equal(p.p50_ms, 10);
  assert.equal(p.p99_ms, 10);
  assert.equal(p.upstream_queries_per_query, 2);
  assert.equal(p.upstream_bytes_per_query, 160);
});

test('timeouts are censored at the deadline: half answered, p95 and p99 are the deadline', () => {
  const ms = [...range(1, 50), ...Array(50).fill(1000)];
  const c = curveOf(ms, ms.map((_, i) => (i < 50 ? LEG_GOOD : LEG_TIMEOUT)));
  const p = predict('top-1', [{ u: 0, at: 0 }], [c], 1000);
  assert.equal(p.answered_share, 0.5);
  assert.equal(p.p50_ms, 50);
  assert.equal(p.p95_ms, 1000);
  assert.equal(p.p99_ms, 1000);
});

test('Kaplan-Meier: legs cut off early (sent late by a hedge) do not count as slow', () => {
  // Good at 10, 20, 30, 40; four legs censored at 25. S: 7/8, 6/8, then 2 at risk: 3/8, 0.
  const ms = [10, 20, 30, 40, 25, 25, 25, 25];
  const c = curveOf(ms, ms.map((_, i) => (i < 4 ? LEG_GOOD : LEG_TIMEOUT)));
  assert.equal(cdfAt(c, 9), 0);
  assert.equal(cdfAt(c, 10), 1 / 8);
  assert.equal(cdfAt(c, 29), 2 / 8);
  assert.equal(cdfAt(c, 30), 5 / 8);
  assert.equal(cdfAt(c, 40), 1);
});

test('losing RCODEs and errors never win: they cap the answered share', () => {
  const ms = [...Array(50).fill(5), ...Array(40).fill(1), ...Array(10).fill(2)];
  const out = ms.map((_, i) => (i < 50 ? LEG_GOOD : i < 90 ? LEG_LOSING + 2 : LEG_ERROR));
  const p = predict('top-1', [{ u: 0, at: 0 }], [curveOf(ms, out)], 1000);
  assert.equal(p.answered_share, 0.5);
  assert.equal(p.p50_ms, 5);
  assert.equal(p.p99_ms, 1000);
});

/** A: 90 % answered at 5 ms, 10 % SERVFAIL at 1 ms; B: always 20 ms; C: always 5 ms. */
function lossyCurves(): Curve[] {
  const ms = [...Array(90).fill(5), ...Array(10).fill(1)];
  const a = curveOf(ms, ms.map((_, i) => (i < 90 ? LEG_GOOD : LEG_LOSING + 2)), ms.map(() => 100));
  return [a, good(Array(100).fill(20)), good(Array(100).fill(5))];
}

test('a loss brings in the reserve at once: top-1 over 10 % SERVFAIL costs 1.1 queries and answers every query, at 1 + 20 ms', () => {
  const curves = lossyCurves();
  assert.equal(curves[0]!.lossShare, 0.1);
  assert.deepEqual([...curves[0]!.lossMs], Array(10).fill(1));
  const p = predict('top-1', [{ u: 0, at: 0 }, { u: 1, at: Infinity }], curves, 1000);
  assert.equal(p.upstream_queries_per_query, 1.1);
  assert.equal(p.answered_share, 1);
  assert.deepEqual([p.p50_ms, p.p95_ms, p.p99_ms], [5, 21, 21]);
  // Without a reserve (all of one upstream) the loss is final: the deadline.
  const alone = predict('all', [{ u: 0, at: 0 }], curves, 1000);
  assert.deepEqual([alone.answered_share, alone.p95_ms, alone.upstream_queries_per_query], [0.9, 1000, 1]);
});

test('a loss while the only leg is out sends the next at once and re-arms the timer from there', () => {
  // hedged@10ms: A at 0, B at 10, C at 20. A loses at 1: B at 1, C at 1 + 10 = 11, which answers at 16.
  const plan = [
    { u: 0, at: 0 },
    { u: 1, at: 10, hops: 1 },
    { u: 2, at: 20, hops: 2 },
  ];
  const p = predict('hedged@10ms', plan, lossyCurves(), 1000);
  assert.deepEqual([p.p50_ms, p.p95_ms, p.p99_ms], [5, 16, 16]);
  // 90 %: A alone; 10 %: A, B and C.
  assert.equal(p.upstream_queries_per_query, 1.2);
  // Timers late by 2 ms: the loss still sends B at once; C waits 10 + 2 after it.
  const late = predict('hedged@10ms', plan, lossyCurves(), 1000, [2]);
  assert.equal(late.p99_ms, 18);
  // predictAll lists top-K's later upstreams as reserves.
  const scene: Scene = { up: [true, true, true], rank: [0, 1, 2], hedgeMs: [10, 10, 10], timeoutMs: 1000, tryTimeoutMs: 300 };
  const rows = predictAll(scene, lossyCurves());
  assert.equal(row(rows, 'top-1').upstream_queries_per_query, 1.1);
  assert.equal(row(rows, 'top-2').upstream_queries_per_query, 2.1);
  // top-2 = A and B at once; A's loss brings C in at 1 (answers at 6) before B (20).
  assert.equal(row(rows, 'top-2').p99_ms, 6);
  assert.equal(row(rows, 'all').upstream_queries_per_query, 3);
  // ordered: A's loss asks B at once; B's 20 ms is inside the 300 ms try.
  assert.deepEqual([row(rows, 'ordered').p99_ms, row(rows, 'ordered').upstream_queries_per_query], [21, 1.1]);
});

test('an upstream that always loses is always replaced; a reserve never measured is asked but not counted on, and not skipped', () => {
  const ms = Array(20).fill(3);
  const refusing = curveOf(ms, ms.map(() => LEG_LOSING + 5));
  const p = predict('top-1', [{ u: 0, at: 0 }, { u: 1, at: Infinity }], [refusing, good(Array(10).fill(7))], 1000);
  assert.deepEqual([p.p99_ms, p.upstream_queries_per_query, p.answered_share], [10, 2, 1]);
  // The loss brings in B (never measured, so never counted on to answer), not C after it.
  const plan = [
    { u: 0, at: 0 },
    { u: 1, at: Infinity },
    { u: 2, at: Infinity },
  ];
  const unmeasured = predict('top-1', plan, [lossyCurves()[0]!, curveOf([], []), good([1])], 1000);
  assert.deepEqual([unmeasured.upstream_queries_per_query, unmeasured.p95_ms, unmeasured.answered_share], [1.1, 1000, 0.9]);
});

test('a loss while another leg is out: the timer keeps its time, so each later leg goes out one slot earlier', () => {
  // hedged@100ms over A, B, C, D: A loses at 150, when B is out. The race sends C at once and D when the
  // timer fires at 200 (not 300). B and C are slow (1000), D answers in 5: the client has it at 205.
  const lose = Array(10).fill(150);
  const a = curveOf(lose, lose.map(() => LEG_LOSING + 2));
  const slow = good(Array(10).fill(1000));
  const plan = [0, 1, 2, 3].map((u) => ({ u, at: u * 100, hops: u }));
  const p = predict('hedged@100ms', plan, [a, slow, slow, good([5])], 2000);
  assert.deepEqual([p.p50_ms, p.p99_ms, p.upstream_queries_per_query], [205, 205, 4]);
});

test('two losses in one race: each brings in one more upstream', () => {
  // top-2 of A, B, C. A and B always REFUSED (at 1 and 2 ms): C comes in at 1 and answers at 6.
  const refused = (at: number): Curve => curveOf([at], [LEG_LOSING + 5]);
  const p = predict('top-2', [{ u: 0, at: 0 }, { u: 1, at: 0 }, { u: 2, at: Infinity }], [refused(1), refused(2), good([5])], 1000);
  assert.deepEqual([p.p99_ms, p.upstream_queries_per_query, p.answered_share], [6, 3, 1]);
  // A and B each lose 30 % at 1 ms: C is asked when either loses, 1 - 0.7 x 0.7 = 51 % of races.
  const ms = [...Array(70).fill(5), ...Array(30).fill(1)];
  const lossy = curveOf(ms, ms.map((_, i) => (i < 70 ? LEG_GOOD : LEG_LOSING + 2)));
  const q = predict('top-2', [{ u: 0, at: 0 }, { u: 1, at: 0 }, { u: 2, at: Infinity }], [lossy, lossy, good([20])], 1000);
  assert.equal(q.upstream_queries_per_query, 2.51);
  // Both lose in 9 %: C answers at 1 + 20.
  assert.deepEqual([q.p95_ms, q.p99_ms, q.answered_share], [21, 21, 1]);
});

test('hedged@2ms over a 50 % tail: p50 1, p99 12 (the hedge at 2 + 10), 1.5 queries per query', () => {
  const a = good([...Array(50).fill(1), ...Array(50).fill(100)]);
  const b = good(Array(100).fill(10), 50);
  const p = predict('hedged@2ms', [{ u: 0, at: 0 }, { u: 1, at: 2 }], [a, b], 1000);
  assert.equal(p.p50_ms, 1);
  assert.equal(p.p99_ms, 12);
  assert.equal(p.upstream_queries_per_query, 1.5);
  assert.equal(p.upstream_bytes_per_query, 125);
});

test('a hedge timer that fires 1 ms late: the hedge answers at 2 + 1 + 10, not 2 + 10; legs sent with the query do not move', () => {
  const a = good([...Array(50).fill(1), ...Array(50).fill(100)]);
  const b = good(Array(100).fill(10), 50);
  const plan = [
    { u: 0, at: 0 },
    { u: 1, at: 2, hops: 1 },
  ];
  const p = predict('hedged@2ms', plan, [a, b], 1000, [1]);
  assert.equal(p.p50_ms, 1);
  assert.equal(p.p99_ms, 13);
  assert.equal(p.upstream_queries_per_query, 1.5);
  const all = predict('all', [{ u: 0, at: 0 }, { u: 1, at: 0 }], [a, b], 1000, [1]);
  assert.equal(all.p99_ms, 10);
});

test('the lag is a mixture, not a mean: hedge rate and p99 over a lag of 0 or 2 ms', () => {
  // A answers in 1..10 ms, 10 % each; B in 1 ms. hedged@4ms: A has not answered by 4 ms in 60 % of races, by 6 ms in 40 %.
  const a = good(range(1, 10));
  const b = good([1]);
  const plan = [
    { u: 0, at: 0 },
    { u: 1, at: 4, hops: 1 },
  ];
  assert.equal(predict('hedged@4ms', plan, [a, b], 1000, [0]).upstream_queries_per_query, 1.6);
  const mixed = predict('hedged@4ms', plan, [a, b], 1000, [0, 2]);
  assert.equal(mixed.upstream_queries_per_query, 1.5);
  // Half the races answer by 5 (hedge at 4 + 1), the other half by 7 (hedge at 6 + 1) or sooner from A.
  assert.equal(mixed.p99_ms, 7);
  assert.equal(mixed.p50_ms, 5);
  // A lag that would send the hedge before the query clamps at the query.
  assert.equal(predict('hedged@4ms', plan, [a, b], 1000, [-10]).p99_ms, 1);
});

test('predictAll shifts timer-sent legs (hedges, ordered) by the lag, not all or top-K', () => {
  const base: Scene = { up: [true, true, true], rank: [0, 1, 2], hedgeMs: [120, 10, 100], timeoutMs: 1000, tryTimeoutMs: 300 };
  const on = predictAll(base, issueCurves());
  const late = predictAll(base, issueCurves(), [3]);
  assert.equal(row(late, 'hedged@2ms').p99_ms, row(on, 'hedged@2ms').p99_ms! + 3);
  assert.equal(row(late, 'all').p99_ms, row(on, 'all').p99_ms);
  assert.equal(row(late, 'top-2').p99_ms, row(on, 'top-2').p99_ms);
});

test('window probes: at most PROBES_PER_S races a second carry them, one per delay; a reused slot drops its probes', () => {
  const w = new RaceWindow(['a', 'b'], 8);
  assert.deepEqual(w.probeDelays, FIRST_PROBE_DELAYS);
  w.probeDelays = [4, 11];
  const gap = 1000 / PROBES_PER_S;
  const h0 = w.begin(0);
  assert.deepEqual(w.probeFor(h0, 0), [4, 11]);
  const h1 = w.begin(gap / 2);
  assert.equal(w.probeFor(h1, gap / 2), null, 'too soon after the last probed race');
  const h2 = w.begin(gap);
  assert.deepEqual(w.probeFor(h2, gap), [4, 11]);
  w.probed(h0, 0, 4.25);
  w.probed(h0, 1, 11.5);
  w.probed(h2, 0, 4.5);
  // h2's 11 ms probe has not fired: not read; a probe index the race does not carry is ignored.
  w.probed(h2, 5, 1);
  assert.deepEqual([...probesOf(w, -Infinity, Infinity, 4).lags], [0.25, 0.5]);
  assert.deepEqual([...probesOf(w, -Infinity, Infinity, 11).lags], [0.5]);
  assert.deepEqual([...probesOf(w, -Infinity, Infinity, null).lags], [0.25, 0.5, 0.5]);
  assert.deepEqual([...probesOf(w, gap, Infinity, null).lags], [0.5], 'the time range filters');
  // More delays than a race has slots for: the first PROBE_SLOTS.
  w.probeDelays = Array.from({ length: PROBE_SLOTS + 2 }, (_, i) => i + 1);
  const h3 = w.begin(2 * gap);
  assert.equal(w.probeFor(h3, 2 * gap)!.length, PROBE_SLOTS);
  // Eight more races reuse every slot, the one in h0's slot with probes of its own: h0's late report must not land there.
  w.probeDelays = [4];
  for (let i = 0; i < 8; i++) {
    const h = w.begin(1000 + i * gap);
    assert.deepEqual(w.probeFor(h, 1000 + i * gap), [4]);
  }
  w.probed(h0, 0, 4.5);
  assert.equal(probesOf(w, -Infinity, Infinity, null).lags.length, 0);
});

/**
 * 200 races, each probed at 4 ms: A answers in 1..10 ms (twenty of each); the
 * probe fires 0.5 ms late, except on the races where A answered in 5 ms: there
 * it fired at 5.5 (the reply was read first, as when both come due while raced
 * sleeps). B answers 3 ms after it was asked, as a hedge, after the query.
 */
function probedWindow(): RaceWindow {
  const w = new RaceWindow(['a', 'b'], 256);
  w.probeDelays = [4];
  assert.equal(MIN_PROBES, 200);
  for (let i = 0; i < 200; i++) {
    const h = w.begin(i * 100);
    assert.deepEqual(w.probeFor(h, i * 100), [4]);
    const a = 1 + (i % 10);
    w.leg(h, 0, a, LEG_GOOD, 100);
    w.leg(h, 1, 3, LEG_GOOD, 100, true);
    w.probed(h, 0, a === 5 ? 5.5 : 4.5);
  }
  return w;
}

test('probes: the lag at the delay, and how often the first-asked upstream had no answer when the probe fired', () => {
  const w = probedWindow();
  const view = probesOf(w, -Infinity, Infinity, 4);
  // 180 lags of 0.5 and 20 of 1.5: the quantiles at 0.1 .. 0.9.
  assert.deepEqual(lagPoints(view.lags), [0.5, 0.5, 0.5, 0.5, 1.5]);
  assert.deepEqual(lagPoints(new Float64Array()), [0]);
  // A was unanswered at the probe when it took 6..10 ms: half the races (5 ms was read before the 5.5 ms probe).
  assert.equal(probeUnanswered(w, view, 0), 0.5);
  // B's legs went out after the query: their 3 ms do not run from the race's start, so they say nothing.
  assert.equal(probeUnanswered(w, view, 1), null);
  // Too few races that asked the upstream: no figure.
  const few = probesOf(w, 0, (MIN_PROBES - 1) * 100, 4);
  assert.equal(probeUnanswered(w, few, 0), null);
});

test('calibrated: the reply-order shift that makes the hedge rate what the probes saw, within its bound; it moves the cost, not the latency', () => {
  const a = good(range(1, 10));
  // Drawn independently, the lags say A is unanswered at 4 + lag in (4 x 0.6 + 0.5) / 5 = 0.58 of races.
  const lags = [0.5, 0.5, 0.5, 0.5, 1.5];
  // The probes saw 0.5: the least shift that gets there is +0.5 (A's step at 5 ms): (4 x 0.5 + 0.4) / 5 = 0.48.
  const c = calibrated(a, 4, lags, 0.5);
  assert.ok(Math.abs(c - 0.5) < 0.01, `shift ${c}`);
  const plan = [
    { u: 0, at: 0 },
    { u: 1, at: 4, hops: 1 },
  ];
  const b = good([20]);
  const plain = predict('hedged@4ms', plan, [a, b], 1000, lags);
  const shifted = predict('hedged@4ms', plan, [a, b], 1000, lags, c);
  assert.equal(plain.upstream_queries_per_query, 1.58);
  assert.equal(shifted.upstream_queries_per_query, 1.48);
  // The hedges that go out go out when the timer fires: the latencies do not move.
  assert.deepEqual([shifted.p50_ms, shifted.p95_ms, shifted.p99_ms], [plain.p50_ms, plain.p95_ms, plain.p99_ms]);
  // A leg a loss brings in is not a timer's: no shift. top-2 of A (10 % SERVFAIL at 1 ms) and 1..10 ms,
  // reserve C: C goes out when A lost at 1 and the other had not answered by 1: 2 + 0.1 x 0.9.
  const top2 = [
    { u: 0, at: 0 },
    { u: 1, at: 0 },
    { u: 2, at: Infinity },
  ];
  const curves2 = [lossyCurves()[0]!, a, b];
  assert.equal(predict('top-2', top2, curves2, 1000).upstream_queries_per_query, 2.09);
  assert.equal(predict('top-2', top2, curves2, 1000, [0], 2).upstream_queries_per_query, 2.09);
  // Out of reach: the shift stops at its bound.
  assert.equal(calibrated(a, 4, lags, 0), CALIBRATION_MAX_MS);
  assert.equal(calibrated(a, 4, lags, 1), -CALIBRATION_MAX_MS);
});

test("the engine's timer lags: calibrated with enough probes at the plan's first delay, else every probe's lag as it is", () => {
  const w = probedWindow();
  const curves = windowCurves(w, -Infinity, Infinity).curves;
  const probes = (d: number | null): ReturnType<typeof probesOf> => probesOf(w, -Infinity, Infinity, d);
  const own = timerLags(w, { ms: 4, u: 0 }, curves, probes);
  assert.deepEqual(own.lags, [0.5, 0.5, 0.5, 0.5, 1.5]);
  assert.ok(Math.abs(own.orderMs - 0.5) < 0.01, `shift ${own.orderMs}`);
  // No first-asked upstream to calibrate on (several legs with the query): the lag as measured.
  assert.deepEqual(timerLags(w, { ms: 4, u: null }, curves, probes), { lags: [0.5, 0.5, 0.5, 0.5, 1.5], orderMs: 0 });
  // No probes at 7 ms: every probe's lag, no shift.
  assert.deepEqual(timerLags(w, { ms: 7, u: 0 }, curves, probes), { lags: [0.5, 0.5, 0.5, 0.5, 1.5], orderMs: 0 });
});

test("firstTimer: each plan's first strategy timer and the upstream it waits on", () => {
  const scene: Scene = { up: [true, true, true], rank: [1, 0, 2], hedgeMs: [120, 10, 100], timeoutMs: 1000, tryTimeoutMs: 300 };
  const all = new Map(plans(scene, issueCurves()));
  assert.equal(firstTimer(all.get('all')!), null);
  assert.equal(firstTimer(all.get('top-1')!), null);
  assert.equal(firstTimer(all.get('top-2')!), null);
  // hedged asks the best ranked (1) and waits its learned 10 ms.
  assert.deepEqual(firstTimer(all.get('hedged')!), { ms: 10, u: 1 });
  assert.deepEqual(firstTimer(all.get('hedged@10ms')!), { ms: 10, u: 1 });
  // ordered keeps the configured order: 0 first, its try-timeout.
  assert.deepEqual(firstTimer(all.get('ordered')!), { ms: 300, u: 0 });
});

test('probes come due their delay after the race started, however late in the callback they were armed', (t) => {
  const clock = new VirtualClock(t);
  const w = new RaceWindow(['a'], 8);
  const started = clock.now;
  const h = w.begin(started);
  w.probeDelays = [3, 5];
  const delays = w.probeFor(h, started)!;
  // Armed half a millisecond into the race: due 2.5 and 4.5 ms from then, not 3 and 5.
  clock.now += 0.5;
  armProbes(w, h, delays, started);
  clock.now += 2.5;
  t.mock.timers.tick(3);
  assert.deepEqual([...probesOf(w, -Infinity, Infinity, 3).lags], [0]);
  clock.now += 2;
  t.mock.timers.tick(2);
  assert.deepEqual([...probesOf(w, -Infinity, Infinity, 5).lags], [0]);
  assert.equal(w.probeAt[0], 3);
  assert.equal(w.probeAt[1], 5);
});

test('an unmeasured upstream gives no prediction rather than a made-up one', () => {
  const p = predict('all', [{ u: 0, at: 0 }, { u: 1, at: 0 }], [good([1]), curveOf([], [])], 1000);
  assert.equal(p.p99_ms, null);
  assert.equal(p.upstream_queries_per_query, null);
});

/** A: 2 ms with 5 % at 120 ms; B: 10 ms; C: dead (every leg times out at the 1000 ms deadline). */
function issueCurves(): Curve[] {
  const a = good([...Array(95).fill(2), ...Array(5).fill(120)]);
  const b = good(Array(100).fill(10));
  const cMs = Array(100).fill(1000);
  const c = curveOf(cMs, cMs.map(() => LEG_TIMEOUT), cMs.map(() => 40));
  return [a, b, c];
}

test('every option is predicted; a dead upstream that is still up costs a query and adds nothing', () => {
  const scene: Scene = { up: [true, true, true], rank: [0, 1, 2], hedgeMs: [120, 10, 100], timeoutMs: 1000, tryTimeoutMs: 300 };
  const rows = predictAll(scene, issueCurves());
  assert.deepEqual(
    rows.map((r) => r.option),
    ['all', 'top-1', 'top-2', 'hedged', 'hedged@2ms', 'hedged@120ms', 'ordered'],
  );
  assert.deepEqual([row(rows, 'all').p99_ms, row(rows, 'all').upstream_queries_per_query], [10, 3]);
  assert.deepEqual([row(rows, 'top-2').p99_ms, row(rows, 'top-2').upstream_queries_per_query], [10, 2]);
  assert.deepEqual([row(rows, 'top-1').p95_ms, row(rows, 'top-1').p99_ms], [2, 120]);
  // Learned hedging waits A's p95 (120 ms): no better than A alone. hedged@2ms covers the tail: 2 + 10.
  assert.equal(row(rows, 'hedged').p99_ms, 120);
  assert.equal(row(rows, 'hedged@2ms').p99_ms, 12);
  // B is asked at 2 ms and C (dead, but up) at 4 ms, each when A is in its tail (5 %): 1.1 queries.
  assert.equal(row(rows, 'hedged@2ms').upstream_queries_per_query, 1.1);
  assert.equal(bestHedgeMs(rows), 2);
  // ordered with a 300 ms try timeout: A's tail is answered at 120 ms by A itself.
  assert.equal(row(rows, 'ordered').p99_ms, 120);
  // auto: the cheapest meeting 15 ms is hedged@2ms (1.1), not top-2 (2) or all (3).
  assert.equal(cheapestMeeting(rows, 15)!.option, 'hedged@2ms');
  assert.equal(cheapestMeeting(rows, 200)!.option, 'top-1');
  // Nothing meets 1 ms: the lowest p99 (ties: the first listed, all).
  assert.equal(cheapestMeeting(rows, 1)!.p99_ms, 10);
});

test('hedge advice: the cheapest of the delays within 5 % of the lowest p99; the one in use stays within 10 % unless a good one is cheaper', () => {
  const p = (option: string, p99: number, q: number): Prediction => ({
    option,
    p50_ms: 4,
    p95_ms: p99,
    p99_ms: p99,
    answered_share: 1,
    upstream_queries_per_query: q,
    upstream_bytes_per_query: 100 * q,
  });
  // The issue's case as measured: hedging at 4 ms gives 16.8 ms for 1.226 queries, at 5 ms 17.5 for 1.124.
  const rows = [p('all', 12.3, 3), p('hedged@4ms', 16.8, 1.226), p('hedged@5ms', 17.5, 1.124), p('hedged@121ms', 120.9, 1.002)];
  assert.equal(bestHedgeMs(rows), 5, 'within 0.84 ms of the lowest: the cheaper');
  assert.equal(bestHedgeMs(rows, 5), 5);
  assert.equal(bestHedgeMs(rows, 4), 5, 'a good one 0.1 queries cheaper: taken');
  assert.equal(bestHedgeMs(rows, 121), 5, 'the one in use far behind: the cheapest good one');
  assert.equal(bestHedgeMs(rows, 9), 5, 'the one in use no longer predicted: chosen afresh');
  // 5 ms drifts to 18.2: out of the 5 % band (17.64), inside the 10 % one (18.48). In use, it stays; else 4.
  const drift = [p('hedged@4ms', 16.8, 1.226), p('hedged@5ms', 18.2, 1.124)];
  assert.equal(bestHedgeMs(drift, 5), 5);
  assert.equal(bestHedgeMs(drift), 4);
  assert.equal(bestHedgeMs(drift, 4), 4, '5 ms is not good enough to move back to');
  // Past 10 %: 4 ms, until 5 ms is back within 5 % (above).
  assert.equal(bestHedgeMs([p('hedged@4ms', 16.8, 1.226), p('hedged@5ms', 18.6, 1.124)], 5), 4);
  // Equal cost: the lower p99, but the one in use stays; nothing to go on: null.
  const even = [p('hedged@6ms', 10.2, 1.1), p('hedged@7ms', 10, 1.1)];
  assert.equal(bestHedgeMs(even), 7);
  assert.equal(bestHedgeMs(even, 6), 6);
  assert.equal(bestHedgeMs([p('all', 12, 3)]), null);
});

test("auto's hedge delay in use stays listed among the candidates", () => {
  const scene: Scene = { up: [true, true, true], rank: [0, 1, 2], hedgeMs: [120, 10, 100], timeoutMs: 1000, tryTimeoutMs: 300, extraHedgeMs: [7] };
  const rows = predictAll(scene, issueCurves());
  assert.deepEqual(
    rows.filter((r) => r.option.startsWith('hedged@')).map((r) => r.option),
    ['hedged@2ms', 'hedged@7ms', 'hedged@120ms'],
  );
  assert.equal(row(rows, 'hedged@7ms').p99_ms, 17);
});

test('an upstream marked down is left out of every option', () => {
  const scene: Scene = { up: [true, true, false], rank: [0, 1, 2], hedgeMs: [120, 10, 100], timeoutMs: 1000, tryTimeoutMs: 300 };
  const rows = predictAll(scene, issueCurves());
  assert.equal(row(rows, 'all').upstream_queries_per_query, 2);
  assert.ok(!rows.some((r) => r.option === 'top-2'));
});

test('window: legs land in their race, a reused slot drops the old race, the time range filters', () => {
  const w = new RaceWindow(['a', 'b'], 4);
  const h0 = w.begin(0);
  w.leg(h0, 0, 5, LEG_GOOD, 80);
  w.leg(h0, 1, 1000, LEG_TIMEOUT, 40);
  const h = [1, 2, 3, 4].map((t) => w.begin(t * 10));
  // h0's slot now holds h[3]: a late leg of h0 must not land there.
  w.leg(h0, 0, 999, LEG_GOOD, 80);
  for (const x of h) w.leg(x, 0, 7, LEG_GOOD, 80);
  const all = windowCurves(w, -Infinity, Infinity);
  assert.equal(all.races, 4);
  assert.equal(all.curves[0]!.legs, 4);
  assert.equal(cdfAt(all.curves[0]!, 7), 1);
  assert.equal(all.curves[1]!.legs, 0);
  assert.equal(windowCurves(w, 15, 35).races, 2);
  // Upstreams beyond the set's width are not recorded.
  w.leg(h[3]!, 5, 1, LEG_GOOD, 1);
  assert.equal(w.width, 2);
  assert.ok(WINDOW_RACES >= 1024);
  // Losing legs (an RCODE, an error) give the upstream's loss share and times; a timeout is no loss.
  w.leg(h[0]!, 1, 0.5, LEG_LOSING + 2, 40);
  w.leg(h[1]!, 1, 0.25, LEG_ERROR, 0);
  w.leg(h[2]!, 1, 9, LEG_GOOD, 40);
  w.leg(h[3]!, 1, 1000, LEG_TIMEOUT, 40);
  const b = windowCurves(w, -Infinity, Infinity).curves[1]!;
  assert.equal(b.lossShare, 0.5);
  assert.deepEqual([...b.lossMs], [0.25, 0.5]);
});

test('auto: all until the window is trusted, cheapest meeting the target, hysteresis both ways, all after a state change', () => {
  const rows = (hedgeP99: number): Prediction[] =>
    [
      ['all', 10, 3],
      ['top-2', 10, 2],
      ['hedged@2ms', hedgeP99, 1.1],
      ['top-1', 120, 1],
    ].map(([option, p99, q]) => ({
      option: option as string,
      p50_ms: 2,
      p95_ms: 5,
      p99_ms: p99 as number,
      answered_share: 1,
      upstream_queries_per_query: q as number,
      upstream_bytes_per_query: 100,
    }));
  const a = new AutoChooser(15);
  const never = -Infinity;
  assert.equal(a.update(rows(12), AUTO_MIN_RACES - 1, never, 0), false);
  assert.equal(a.chosen, 'all');
  assert.equal(a.update(rows(12), AUTO_MIN_RACES, never, 0), true);
  assert.equal(a.chosen, 'hedged@2ms');
  // Slightly over the target (within 10 %): kept.
  a.update(rows(16), AUTO_MIN_RACES, never, 2_000);
  assert.equal(a.chosen, 'hedged@2ms');
  // Clearly over: the cheapest that meets it, at once.
  a.update(rows(17), AUTO_MIN_RACES, never, 4_000);
  assert.equal(a.chosen, 'top-2');
  // Good again: not before the dwell time has passed since the last change.
  a.update(rows(12), AUTO_MIN_RACES, never, 4_000 + AUTO_DWELL_MS - 1);
  assert.equal(a.chosen, 'top-2');
  a.update(rows(12), AUTO_MIN_RACES, never, 4_000 + AUTO_DWELL_MS);
  assert.equal(a.chosen, 'hedged@2ms');
  // An upstream changed state: all for the settle time.
  a.update(rows(12), AUTO_MIN_RACES, 20_000, 20_000 + AUTO_SETTLE_MS - 1);
  assert.equal(a.chosen, 'all');
  a.update(rows(12), AUTO_MIN_RACES, 20_000, 20_000 + AUTO_SETTLE_MS);
  assert.equal(a.chosen, 'hedged@2ms');
});

/** Races begun `perS` a second, paced, for `seconds` from `now`; per second, the indices (within the second) recorded. */
function drive(w: RaceWindow, now: number, perS: number, seconds: number): { now: number; seconds: number[][] } {
  const out: number[][] = [];
  for (let s = 0; s < seconds; s++) {
    const got: number[] = [];
    for (let i = 0; i < perS; i++) if (w.begin(now + (1000 * i) / perS) !== -1) got.push(i);
    now += 1000;
    out.push(got);
  }
  return { now, seconds: out };
}

test('window sampling: every race while there is room; at a high rate about recordPerS a second, at random; the window then spans timeout + WINDOW_SPAN_S', () => {
  const w = new RaceWindow(['a'], WINDOW_RACES, 4000);
  assert.equal(w.recordPerS, WINDOW_RACES / (4 + WINDOW_SPAN_S));
  // 100 a second: every one.
  let d = drive(w, 0, 100, 3);
  assert.deepEqual(d.seconds.map((x) => x.length), [100, 100, 100]);
  // 12,047 a second, paced as dnsperf -Q sends: one in about 50 is recorded, the share --explore-share 0.02
  // asks every upstream on, every 50th race. A sampler taking every 50th race would take all of those or none.
  const rate = Math.round(50 * w.recordPerS);
  d = drive(w, d.now, rate, 60);
  const n = d.seconds.map((x) => x.length);
  for (const k of n) assert.ok(k <= WINDOW_RACES / SECOND_CAP_DIVISOR, `${k} recorded in a second`);
  const late = d.seconds.slice(40);
  for (const x of late) assert.ok(Math.abs(x.length - w.recordPerS) < 80, `${x.length} recorded in a second, ~${w.recordPerS.toFixed(0)} meant`);
  const fiftieth = late.flat().filter((i) => i % 50 === 0).length / late.flat().length;
  assert.ok(fiftieth > 0.01 && fiftieth < 0.03, `explored races are ${(100 * fiftieth).toFixed(2)} % of the sample, 2 % of the traffic`);
  // What the engine reads (older than the timeout, younger than MAX_AGE): over 25 s of races.
  const got = windowSpan(w, d.now - 300_000, d.now - 4000);
  assert.ok(got.races > 5000, `${got.races} races readable`);
  assert.ok(d.now - 4000 - got.oldest > 25_000, `readable span ${((d.now - 4000 - got.oldest) / 1000).toFixed(1)} s`);
});

test('window sampling after a drop: idle seconds count in the average, and a window with room takes every race again', () => {
  const w = new RaceWindow(['a'], WINDOW_RACES, 4000);
  const d = drive(w, 0, 10_000, 40);
  // 20 s without a race, then 200 a second, unevenly (every 1.5 s a burst of 300): the rate average must
  // count whole idle seconds, however the bursts fall on the clock.
  let now = d.now + 20_000;
  const per: number[] = [];
  for (let k = 0; k < 20; k++, now += 1500) {
    let got = 0;
    for (let i = 0; i < 300; i++) if (w.begin(now + i * 0.2) !== -1) got++;
    per.push(got);
  }
  // From 20 s after the drop: the average is down to a few hundred (without the idle seconds it would still
  // be near 1,400), so the share times ROOM_FACTOR is over 1, and the slots hold races older than 34 s:
  // every race is recorded (without the room rule, about 70 %).
  assert.equal(ROOM_FACTOR, 3);
  for (const got of per.slice(-6)) assert.equal(got, 300, `recorded ${per.join(', ')}`);
});

test('window sampling follows the average rate, so busy seconds weigh as many queries as they had', () => {
  const w = new RaceWindow(['a'], WINDOW_RACES, 4000);
  let now = 0;
  let busy = 0;
  let all = 0;
  // 3 s at 6,000 a second, 6 s at 2,000, twenty times: 60 % of the queries come in the busy seconds.
  for (let cycle = 0; cycle < 20; cycle++) {
    const b = drive(w, now, 6000, 3);
    const q = drive(w, b.now, 2000, 6);
    now = q.now;
    if (cycle < 5) continue; // the average settles first
    busy += b.seconds.flat().length;
    all += b.seconds.flat().length + q.seconds.flat().length;
  }
  // Sampling each second to the count of the one before gave them 48 %.
  assert.ok(busy / all > 0.55 && busy / all < 0.65, `busy seconds are ${((100 * busy) / all).toFixed(1)} % of the sample`);
});

/** An upstream as the engine reads it: up, and a recent median for the ranking. */
const fakeUpstream = (p50Ms: number): Upstream => ({ health: { up: true }, stats: { queries: 1, latency: { quantile: () => p50Ms / 1000 } } }) as unknown as Upstream;

/** A Tradeoffs running `fixedOption`, fed 400 races of the issue's shape (A 2 ms, 5 % at 120; B 10 ms; C 40 ms) over 4 s. */
function engineWith(fixedOption: string, fixedMs: number | null = null): { t: Tradeoffs; now: number } {
  const set = [fakeUpstream(2), fakeUpstream(10), fakeUpstream(40)];
  const t = new Tradeoffs({ timeoutMs: 1000, tryTimeoutMs: 300, targetMs: null, fixedOption, hedge: { learned: () => 100, fixedMs } });
  t.bind(set);
  for (let i = 0; i < 400; i++) {
    const h = t.window.begin(i * 10);
    t.window.leg(h, 0, i % 20 === 0 ? 120 : 2, LEG_GOOD, 100);
    t.window.leg(h, 1, 10, LEG_GOOD, 100);
    t.window.leg(h, 2, 40, LEG_GOOD, 100);
  }
  return { t, now: 4000 + 1000 + 1 };
}

test("engine: hedged's advice covers A's tail and the `hedged` row is predicted with it; the advice stays listed only while hedged runs", () => {
  const { t, now } = engineWith('hedged');
  t.update(now);
  assert.equal(t.hedgeAdviceMs, 2);
  // hedged as it runs now: B 2 ms after A (the advice), C after B's learned 100 ms: p99 2 + 10.
  assert.equal(t.report().options.find((o) => o.option === 'hedged')!.p99_ms, 12);
  // A delay in use that the candidates (A's p50 ... p99: 2, 120) no longer name stays predicted while hedged runs...
  t.hedgeAdviceMs = 7;
  t.update(now);
  assert.ok(t.report().options.some((o) => o.option === 'hedged@7ms'), t.report().options.map((o) => o.option).join(', '));
  // ... but not under another strategy, nor when --hedge-delay fixes hedged's delay.
  for (const [option, fixed] of [['all', null], ['hedged', 5]] as const) {
    const e = engineWith(option, fixed);
    e.t.update(e.now);
    e.t.hedgeAdviceMs = 7;
    e.t.update(e.now);
    assert.ok(!e.t.report().options.some((o) => o.option === 'hedged@7ms'), `${option} ${fixed}: ${e.t.report().options.map((o) => o.option).join(', ')}`);
  }
});
