// Each strategy (src/strategy/) driving a real race on a virtual clock: which
// upstreams are asked, in what order and at which millisecond, with upstreams
// down, and on which races the explore share asks everyone. Timelines read
// `port@ms`: upstream 127.0.0.1:PORT asked ms after the race started.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { allStrategy } from '../src/strategy/all.js';
import { orderedStrategy } from '../src/strategy/ordered.js';
import { hedgedStrategy, HEDGE_MAX_MS, HEDGE_MIN_MS, HEDGE_UNMEASURED_MS } from '../src/strategy/hedged.js';
import { topKStrategy } from '../src/strategy/top-k.js';
import { fastestStrategy, EXPLORE_EVERY } from '../src/strategy/fastest.js';
import { roundRobinStrategy } from '../src/strategy/round-robin.js';
import { randomStrategy } from '../src/strategy/random.js';
import { makeStrategy, DEFAULT_EXPLORE_SHARE, type Strategy } from '../src/strategy/index.js';
import type { Tradeoffs } from '../src/tradeoff/engine.js';
import type { Upstream } from '../src/upstream/upstream.js';
import { VirtualClock, upstreams, startRace, replyTo, measured, nxdomain, SERVFAIL, type RaceRun, type RecordingPool, type Sent } from './helpers/virtual.js';

/** A clock, `n` upstreams and a way to run races and read when each upstream was asked. */
interface Run {
  run: RaceRun;
  /** This race's legs, in the order they went out. */
  legs: () => Sent[];
  /** `port@ms` for each of them. */
  asked: () => string[];
}

function setup(t: TestContext, n: number): { clock: VirtualClock; pool: RecordingPool; ups: Upstream[]; race: (s: Strategy, timeoutMs?: number) => Run } {
  const clock = new VirtualClock(t);
  const { pool, ups } = upstreams(n);
  const race = (s: Strategy, timeoutMs = 5000): Run => {
    const from = pool.legs().length;
    const t0 = clock.now;
    const run = startRace(clock, ups, s, { timeoutMs, graceMs: 50 });
    // Races here never overlap in sending: each is finished before the next starts.
    const legs = (): Sent[] => pool.legs().slice(from);
    return { run, legs, asked: () => legs().map((x) => `${x.upstream.slice(-4)}@${x.at - t0}`) };
  };
  return { clock, pool, ups, race };
}

/** Ends a race with a positive answer from its first open leg, so its timers stop. */
function finish(r: Run): void {
  const s = r.legs().find((x) => x.leg.open);
  assert.ok(s, 'an open leg to answer');
  s.leg.onDatagram(replyTo(s));
  assert.equal(r.run.outcomes.length, 1);
}

test('all: every upstream at once and nobody later; one down is skipped; all down: all asked', (t) => {
  const { clock, ups, race } = setup(t, 3);
  const r1 = race(allStrategy);
  clock.advance(3000);
  assert.deepEqual(r1.asked(), ['5301@0', '5302@0', '5303@0']);
  finish(r1);
  ups[1]!.health.markDown();
  const r2 = race(allStrategy);
  clock.advance(100);
  assert.deepEqual(r2.asked(), ['5301@0', '5303@0']);
  finish(r2);
  ups[0]!.health.markDown();
  ups[2]!.health.markDown();
  const r3 = race(allStrategy);
  assert.deepEqual(r3.asked(), ['5301@0', '5302@0', '5303@0'], 'none up: all asked anyway');
  finish(r3);
});

test('ordered: one at a time in the configured order, the next after --try-timeout; a timed-out one is marked down and skipped', (t) => {
  const { clock, pool, ups, race } = setup(t, 3);
  const s = orderedStrategy(300);
  const r1 = race(s);
  clock.advance(299);
  assert.deepEqual(r1.asked(), ['5301@0']);
  clock.advance(1);
  assert.deepEqual(r1.asked(), ['5301@0', '5302@300']);
  assert.deepEqual(ups.map((u) => u.health.up), [false, true, true], 'the primary missed its try timeout: down');
  clock.advance(300);
  assert.deepEqual(r1.asked(), ['5301@0', '5302@300', '5303@600']);
  // A leg already sent stays open and can still win; its reply brings that upstream back up.
  const b = pool.one('127.0.0.1:5302');
  b.leg.onDatagram(replyTo(b));
  assert.equal('won' in r1.run.outcomes[0]! && r1.run.outcomes[0].won, '127.0.0.1:5302');
  assert.deepEqual(ups.map((u) => u.health.up), [false, true, true]);
  // The next race skips the primary, still down (its probe has not answered).
  const r2 = race(s);
  assert.deepEqual(r2.asked(), ['5302@0']);
  finish(r2);
  clock.advance(200);
  assert.deepEqual(pool.probes(1000), ['5301@500'], 'the primary probed 200 ms after it went down; 5302 came back before its probe was due');
});

test('ordered: a losing reply asks the next at once; with every upstream down the first is asked', (t) => {
  const { clock, pool, ups, race } = setup(t, 3);
  const s = orderedStrategy(300);
  const r1 = race(s);
  clock.advance(20);
  const a = pool.one('127.0.0.1:5301');
  a.leg.onDatagram(replyTo(a, { rcode: SERVFAIL }));
  assert.deepEqual(r1.asked(), ['5301@0', '5302@20']);
  assert.equal(ups[0]!.health.up, true, 'a losing reply does not mark it down');
  clock.advance(299);
  // The loss re-arms the per-try timer: 5302 gets its whole 300 ms (it once got the 280 left of
  // 5301's try and was marked down for missing a timeout it was never given).
  assert.deepEqual(r1.asked(), ['5301@0', '5302@20']);
  assert.equal(ups[1]!.health.up, true, '5302 is not marked down before its own try timeout');
  clock.advance(1);
  assert.deepEqual(r1.asked(), ['5301@0', '5302@20', '5303@320']);
  assert.equal(ups[1]!.health.up, false, '5302 missed its own try timeout: down');
  finish(r1);
  for (const u of ups) u.health.markDown();
  const r2 = race(s);
  assert.deepEqual(r2.asked(), ['5301@0']);
  finish(r2);
});

test('hedged: best median first, each hedge after the last asked upstream\'s own p95 (clamped); never marks down', (t) => {
  const { clock, ups, race } = setup(t, 5);
  measured(ups[0]!, 0.03); // p95 30 ms
  measured(ups[1]!, 0.0005); // p95 0.5 ms: clamped up to 2
  measured(ups[2]!, 0.012); // p95 12 ms
  measured(ups[3]!, 5); // p95 5 s: clamped down to 1000
  measured(ups[4]!, 6);
  const r = race(hedgedStrategy(null), 10_000);
  clock.advance(2 + 12 + 30 + HEDGE_MAX_MS + 100);
  assert.deepEqual(r.asked(), ['5302@0', `5303@${HEDGE_MIN_MS}`, '5301@14', '5304@44', `5305@${44 + HEDGE_MAX_MS}`]);
  assert.ok(ups.every((u) => u.health.up), 'a hedge is not a failure');
});

test('hedged: unmeasured upstreams go first and are hedged after 100 ms; --hedge-delay fixes the delay; advice replaces the learned delay', (t) => {
  const { clock, ups, race } = setup(t, 3);
  measured(ups[0]!, 0.01);
  const r1 = race(hedgedStrategy(null));
  clock.advance(HEDGE_UNMEASURED_MS * 2 + 10);
  assert.deepEqual(r1.asked(), ['5302@0', `5303@${HEDGE_UNMEASURED_MS}`, `5301@${HEDGE_UNMEASURED_MS * 2}`], 'never asked: a head start, so it gets measured');
  finish(r1);
  for (const u of ups.slice(1)) measured(u, 0.02);
  const r2 = race(hedgedStrategy(7));
  clock.advance(20);
  assert.deepEqual(r2.asked(), ['5301@0', '5302@7', '5303@14']);
  finish(r2);
  const r3 = race(hedgedStrategy(null, (u) => (u === ups[0] ? 3 : -1)));
  clock.advance(100);
  assert.deepEqual(r3.asked(), ['5301@0', '5302@3', '5303@23'], 'advice after 5301, its learned 20 ms after 5302');
  finish(r3);
});

test('a strategy timer the loop clock fires early waits out the rest: no hedge before its delay', (t) => {
  const { clock, ups, race } = setup(t, 2);
  for (const u of ups) measured(u, 0.01);
  // The race starts half a millisecond into one of the loop clock's whole milliseconds...
  clock.now += 0.5;
  const r = race(hedgedStrategy(7));
  // ...so its 7 ms timer comes due on that clock when only 6.5 ms have passed.
  clock.now += 6.5;
  t.mock.timers.tick(7);
  assert.deepEqual(r.asked(), ['5301@0']);
  clock.now += 0.5;
  t.mock.timers.tick(1);
  assert.deepEqual(r.asked(), ['5301@0', '5302@7']);
  finish(r);
  // An answer in the time waited out ends the race: no hedge after it.
  clock.now += 0.5;
  const r2 = race(hedgedStrategy(7));
  clock.now += 6.5;
  t.mock.timers.tick(7);
  finish(r2);
  clock.now += 0.5;
  t.mock.timers.tick(1);
  assert.deepEqual(r2.asked(), ['5301@0']);
});

test("a race's first strategy timer is due its delay after the query came in, not after the race got going", (t) => {
  const { clock, pool, ups } = setup(t, 2);
  for (const u of ups) measured(u, 0.01);
  // The query came in half a millisecond before its race started (parsing, the cache): the 7 ms hedge is due 6.5 ms into the race.
  const came = clock.now;
  clock.now += 0.5;
  const run = startRace(clock, ups, hedgedStrategy(7), { timeoutMs: 5000, graceMs: 50, startedAt: came });
  clock.now += 6.5;
  t.mock.timers.tick(7);
  assert.deepEqual(
    pool.legs().map((x) => `${x.upstream.slice(-4)}@${x.at - came}`),
    ['5301@0', '5302@7'],
  );
  const open = pool.legs().find((x) => x.leg.open)!;
  open.leg.onDatagram(replyTo(open));
  assert.equal(run.outcomes.length, 1);
});

test('hedged: a negative answer hedges at once; a losing reply hedges at once, to a down upstream only as a last resort', (t) => {
  const { clock, pool, ups, race } = setup(t, 3);
  measured(ups[0]!, 0.01);
  measured(ups[1]!, 0.02);
  measured(ups[2]!, 0.03);
  const r1 = race(hedgedStrategy(500));
  clock.advance(4);
  const a = pool.one('127.0.0.1:5301');
  a.leg.onDatagram(replyTo(a, nxdomain));
  assert.deepEqual(r1.asked(), ['5301@0', '5302@4'], 'the hedge went out on the NXDOMAIN');
  assert.equal(r1.run.outcomes.length, 0, 'the NXDOMAIN is held for agreement');
  finish(r1);
  ups[1]!.health.markDown();
  ups[2]!.health.markDown();
  const r2 = race(hedgedStrategy(5));
  clock.advance(50);
  assert.deepEqual(r2.asked(), ['5301@0'], 'a delay hedge never goes to a down upstream');
  const a2 = pool.to('127.0.0.1:5301')[1]!;
  a2.leg.onDatagram(replyTo(a2, { rcode: SERVFAIL }));
  assert.deepEqual(r2.asked(), ['5301@0', '5302@50'], 'after a loss, a down one is better than nothing');
  finish(r2);
});

test('a loss re-arms the delay only when the lost leg was the one open: a hedge or try already owed to another open leg keeps its time', (t) => {
  const { clock, pool, ups, race } = setup(t, 4);
  [0.01, 0.02, 0.9, 0.95].forEach((s, i) => measured(ups[i]!, s));
  // Fixed hedge 100 ms: B hedged at 100; A's SERVFAIL at 150 asks C at once; D is still B's hedge, due at 200.
  const r1 = race(hedgedStrategy(100));
  clock.advance(150);
  const a = pool.to('127.0.0.1:5301').at(-1)!;
  a.leg.onDatagram(replyTo(a, { rcode: SERVFAIL }));
  clock.advance(60);
  assert.deepEqual(r1.asked(), ['5301@0', '5302@100', '5303@150', '5304@200']);
  finish(r1);
  // Learned delays: B hedged after A's 10 ms; A's SERVFAIL at 15 asks C (p95 900 ms); D is due when B's own 20 ms run out.
  const r2 = race(hedgedStrategy(null));
  clock.advance(15);
  const a2 = pool.to('127.0.0.1:5301').at(-1)!;
  a2.leg.onDatagram(replyTo(a2, { rcode: SERVFAIL }));
  clock.advance(20);
  assert.deepEqual(r2.asked(), ['5301@0', '5302@10', '5303@15', '5304@30']);
  finish(r2);
});

test('ordered: a late SERVFAIL from an upstream that already missed its try does not give the one being tried more time', (t) => {
  const { clock, pool, ups, race } = setup(t, 4);
  const r = race(orderedStrategy(300));
  clock.advance(400);
  assert.deepEqual(r.asked(), ['5301@0', '5302@300']);
  const a = pool.to('127.0.0.1:5301').at(-1)!;
  a.leg.onDatagram(replyTo(a, { rcode: SERVFAIL }));
  assert.deepEqual(r.asked(), ['5301@0', '5302@300', '5303@400'], 'a loss asks the next at once');
  clock.advance(200);
  assert.deepEqual(r.asked(), ['5301@0', '5302@300', '5303@400', '5304@600'], '5302 had its 300 ms');
  assert.equal(ups[1]!.health.up, false, '5302 missed its own try: down');
  finish(r);
});

test('top-k: the K best healthy at once, nobody on a delay, the next best after each loss; none up: the first K', (t) => {
  const { clock, pool, ups, race } = setup(t, 4);
  [0.04, 0.01, 0.03, 0.02].forEach((s, i) => measured(ups[i]!, s));
  const s = topKStrategy(2);
  assert.equal(s.name, 'top-2');
  const r1 = race(s);
  clock.advance(2000);
  assert.deepEqual(r1.asked(), ['5302@0', '5304@0']);
  const b = pool.one('127.0.0.1:5302');
  b.leg.onDatagram(replyTo(b, { rcode: 5 }));
  assert.deepEqual(r1.asked(), ['5302@0', '5304@0', '5303@2000']);
  finish(r1);
  ups[3]!.health.markDown();
  const r2 = race(s);
  assert.deepEqual(r2.asked(), ['5302@0', '5303@0'], 'a down one is skipped');
  finish(r2);
  for (const u of ups) u.health.markDown();
  const r3 = race(s);
  assert.deepEqual(r3.asked(), ['5302@0', '5304@0']);
  finish(r3);
});

test(`fastest: the lowest median alone, fail-over after the try timeout, every ${EXPLORE_EVERY}th race asks all healthy`, (t) => {
  const { clock, ups, race } = setup(t, 3);
  [0.03, 0.01, 0.02].forEach((s, i) => measured(ups[i]!, s));
  const s = fastestStrategy(200);
  for (let i = 1; i < EXPLORE_EVERY; i++) {
    const r = race(s);
    assert.deepEqual(r.asked(), ['5302@0'], `race ${i}`);
    finish(r);
  }
  const explore = race(s);
  assert.deepEqual(explore.asked(), ['5301@0', '5302@0', '5303@0'], `race ${EXPLORE_EVERY}`);
  finish(explore);
  const r = race(s);
  clock.advance(200);
  assert.deepEqual(r.asked(), ['5302@0', '5303@200']);
  assert.equal(ups[1]!.health.up, false);
  finish(r);
});

test('round-robin: each race starts one upstream further on; a down one is skipped', (t) => {
  const { ups, race } = setup(t, 3);
  const s = roundRobinStrategy(100);
  const first: string[] = [];
  for (let i = 0; i < 6; i++) {
    if (i === 3) ups[1]!.health.markDown();
    const r = race(s);
    first.push(r.asked()[0]!);
    finish(r);
  }
  assert.deepEqual(first, ['5301@0', '5302@0', '5303@0', '5301@0', '5303@0', '5303@0']);
});

test('random: a fresh shuffle per race (Fisher-Yates on Math.random), down ones skipped', (t) => {
  const { clock, ups, race } = setup(t, 3);
  const draws = [0.1, 0.9, 0.5, 0.1, 0.99, 0.99];
  t.mock.method(Math, 'random', () => draws.shift() ?? 0.5);
  const s = randomStrategy(100);
  // i=2: j=floor(0.1*3)=0 -> [C,B,A]; i=1: j=floor(0.9*2)=1 -> [C,B,A].
  const r1 = race(s);
  clock.advance(200);
  assert.deepEqual(r1.asked(), ['5303@0', '5302@100', '5301@200']);
  finish(r1);
  for (const u of ups) u.health.success(true, clock.now);
  ups[0]!.health.markDown();
  // i=2: j=1 -> [A,C,B]; i=1: j=0 -> [C,A,B]; A is down: C, then B.
  const r2 = race(s);
  clock.advance(100);
  assert.deepEqual(r2.asked(), ['5303@0', '5302@100']);
  finish(r2);
  // i=2: j=2, i=1: j=1: the configured order.
  const r3 = race(s);
  assert.deepEqual(r3.asked(), ['5302@0'], 'the first that is up');
  finish(r3);
});

const fakeTradeoffs = (t: { chosen: string | null }): Tradeoffs => ({ get chosen() {
  return t.chosen;
}, adviceMs: () => -1, explore: { races: 0 } }) as unknown as Tradeoffs;

test('--explore-share: one race in 1/share asks every healthy upstream at once; the strategy\'s own plan goes on', (t) => {
  const { clock, ups, race } = setup(t, 3);
  [0.01, 0.02, 0.03].forEach((s, i) => measured(ups[i]!, s));
  ups[2]!.health.markDown();
  const tr = fakeTradeoffs({ chosen: null });
  const s = makeStrategy('hedged', { tryTimeoutMs: 100, hedgeDelayMs: 10, exploreShare: 0.25, tradeoffs: tr });
  const firsts: string[][] = [];
  for (let i = 1; i <= 8; i++) {
    const r = race(s);
    firsts.push(r.asked());
    if (i === 4) {
      clock.advance(50);
      assert.deepEqual(r.asked(), ['5301@0', '5302@0'], 'explored: healthy ones only; the hedge has nobody left to ask');
    }
    finish(r);
  }
  assert.deepEqual(firsts.map((a) => a.length), [1, 1, 1, 2, 1, 1, 1, 2]);
  assert.equal(tr.explore.races, 2);
  const never = makeStrategy('top-k', { tryTimeoutMs: 100, hedgeDelayMs: null, raceWidth: 1, exploreShare: 0, tradeoffs: tr });
  for (let i = 0; i < 60; i++) {
    const r = race(never);
    assert.equal(r.asked().length, 1);
    finish(r);
  }
  const dflt = makeStrategy('top-k', { tryTimeoutMs: 100, hedgeDelayMs: null, raceWidth: 1, tradeoffs: tr });
  const widths: number[] = [];
  for (let i = 0; i < 100; i++) {
    const r = race(dflt);
    widths.push(r.asked().length);
    finish(r);
  }
  assert.equal(DEFAULT_EXPLORE_SHARE, 0.02);
  assert.deepEqual([widths.indexOf(2), widths.lastIndexOf(2), widths.filter((w) => w === 2).length], [49, 99, 2], 'the 50th and the 100th race');
});

test('auto: runs the option the engine chose (all when none yet), switching between races; explores only when not running all', (t) => {
  const { clock, ups, race } = setup(t, 3);
  [0.01, 0.02, 0.03].forEach((s, i) => measured(ups[i]!, s));
  const chosen: { chosen: string | null } = { chosen: null };
  const tr = fakeTradeoffs(chosen);
  const s = makeStrategy('auto', { tryTimeoutMs: 40, hedgeDelayMs: null, exploreShare: 0.5, tradeoffs: tr });
  assert.equal(s.name, 'auto');
  const run = (ms: number): string[] => {
    const r = race(s);
    clock.advance(ms);
    const a = r.asked();
    finish(r);
    return a;
  };
  assert.deepEqual(run(100), ['5301@0', '5302@0', '5303@0'], 'no choice yet: all');
  assert.deepEqual(run(100), ['5301@0', '5302@0', '5303@0'], 'all: the explore share adds nothing');
  assert.equal(tr.explore.races, 0);
  chosen.chosen = 'top-1';
  assert.deepEqual(run(100), ['5301@0'], 'top-1 (race 3)');
  assert.deepEqual(run(100), ['5301@0', '5302@0', '5303@0'], 'race 4 explores');
  assert.equal(tr.explore.races, 1);
  chosen.chosen = 'hedged@5ms';
  assert.deepEqual(run(7), ['5301@0', '5302@5'], 'hedged@5ms (race 5)');
  chosen.chosen = 'ordered';
  run(0); // race 6 explores
  assert.deepEqual(run(45), ['5301@0', '5302@40'], 'ordered with --try-timeout 40 (race 7)');
  chosen.chosen = 'top-2';
  run(0); // race 8 explores
  assert.deepEqual(run(100), ['5301@0', '5302@0'], 'top-2 (race 9)');
});

test('makeStrategy: names map to their strategies', () => {
  const o = { tryTimeoutMs: 100, hedgeDelayMs: null };
  assert.equal(makeStrategy('all', o), allStrategy);
  for (const n of ['ordered', 'hedged', 'fastest', 'round-robin', 'random', 'auto'] as const) assert.equal(makeStrategy(n, o).name, n);
  assert.equal(makeStrategy('top-k', { ...o, raceWidth: 3 }).name, 'top-3');
});
