// Predictions for every fan-out option from the race window: no I/O, no
// clock; the engine (engine.ts) feeds it and serves the result.
//
// Model: each upstream's time to a winning answer (NOERROR/NXDOMAIN) is read
// from its own legs in the window as a Kaplan-Meier curve: a timeout is
// censored where the deadline cut it off, a losing RCODE or a network error
// never wins. Upstreams are taken as independent, so an option that asks
// upstream i at offset o_i (ms after the client's query) leaves a client
// unanswered at t with probability S(t) = prod_i (1 - F_i(t - o_i)) over the
// legs already sent. Quantiles, the share answered before the deadline and
// the expected legs per query (leg i is sent when nothing won before o_i)
// follow from S. Independence lets an upstream that a strategy asked only on
// some races (hedged, top-k, the explore share) still be predicted for the
// races it was not asked on. A leg a strategy's timer sends (a hedge, the
// next try of ordered) goes out late by the timer's lag (lag.ts): each such
// leg's offset is shifted by the lag per timer wait before it, and the
// prediction is the mixture over the lag's measured values. A leg that loses
// (SERVFAIL, REFUSED, an error) brings in the next upstream of the plan at
// once, as the strategies do: a plan lists those reserve legs (top-K's
// upstreams past K, at Infinity), and each upstream's losses (how often, and
// when) come from its own losing legs. Losses of the legs sent with the
// query are mixed in with their measured chance and times (runsOf); a loss
// of a leg sent later is not.
import { LEG_GOOD, LEG_NONE, LEG_TIMEOUT, type RaceWindow } from './window.js';

/** One upstream's time to a winning answer, as a step CDF. */
export interface Curve {
  /** Distinct times (ms) of winning answers, ascending. */
  readonly times: Float64Array;
  /** P(a winning answer by times[i]). */
  readonly cdf: Float64Array;
  /** Legs observed. */
  readonly legs: number;
  /** Mean bytes (sent + received) per leg. */
  readonly meanBytes: number;
  /** P(a leg loses: a losing RCODE or an error, which brings in the next upstream). */
  readonly lossShare: number;
  /** When its losing legs ended (ms after sending), ascending. */
  readonly lossMs: Float64Array;
}

/**
 * Kaplan-Meier curve from legs: `ms[i]` with `outcome[i]` (window.ts LEG_*);
 * a LEG_TIMEOUT leg is censored at ms[i]; any other non-GOOD leg never wins.
 */
export function curveOf(ms: ArrayLike<number>, outcome: ArrayLike<number>, bytes: ArrayLike<number> | null = null): Curve {
  const n = ms.length;
  const good = new Float64Array(n);
  const cens = new Float64Array(n);
  const lost = new Float64Array(n);
  let g = 0;
  let c = 0;
  let l = 0;
  let byteSum = 0;
  for (let i = 0; i < n; i++) {
    if (bytes) byteSum += bytes[i]!;
    if (outcome[i] === LEG_GOOD) good[g++] = ms[i]!;
    else if (outcome[i] === LEG_TIMEOUT) cens[c++] = ms[i]!;
    else if (outcome[i] !== LEG_NONE) lost[l++] = ms[i]!;
  }
  return kaplanMeier(good.subarray(0, g), cens.subarray(0, c), lost.subarray(0, l), n, byteSum);
}

/**
 * The curve from answer times and censoring times (unsorted; sorted here in
 * place, natively: the window holds up to 8192 x 16 legs and this runs on the
 * event loop). `n` counts every leg, the never-winning ones included.
 */
function kaplanMeier(good: Float64Array, cens: Float64Array, lost: Float64Array, n: number, byteSum: number): Curve {
  good.sort();
  cens.sort();
  lost.sort();
  const times = new Float64Array(good.length);
  const cdf = new Float64Array(good.length);
  let out = 0;
  let atRisk = n;
  let surv = 1;
  let j = 0;
  for (let k = 0; k < good.length; ) {
    const t = good[k]!;
    // Censored strictly before t leave the risk set first; at equal times an answer counts first.
    while (j < cens.length && cens[j]! < t) {
      atRisk--;
      j++;
    }
    let d = 0;
    while (k < good.length && good[k] === t) {
      d++;
      k++;
    }
    surv *= 1 - d / atRisk;
    times[out] = t;
    cdf[out++] = 1 - surv;
    atRisk -= d;
  }
  return {
    times: times.subarray(0, out),
    cdf: cdf.subarray(0, out),
    legs: n,
    meanBytes: n > 0 ? byteSum / n : 0,
    lossShare: n > 0 ? lost.length / n : 0,
    lossMs: lost,
  };
}

/** P(a winning answer within t ms of sending). */
export function cdfAt(c: Curve, t: number): number {
  let lo = 0;
  let hi = c.times.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (c.times[mid]! <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo === 0 ? 0 : c.cdf[lo - 1]!;
}

/** The q-quantile of a curve's answer time; NaN when fewer than q of its legs win. */
export function curveQuantile(c: Curve, q: number): number {
  for (let i = 0; i < c.times.length; i++) if (c.cdf[i]! >= q - 1e-12) return c.times[i]!;
  return NaN;
}

/** How many races in the window started in [from, to) (ms, performance.now()), and the oldest start. */
export function windowSpan(w: RaceWindow, from: number, to: number): { races: number; oldest: number } {
  let races = 0;
  let oldest = Infinity;
  for (let s = 0; s < w.capacity; s++) {
    if (w.seqOf[s]! < 0) continue;
    const at = w.startedAt[s]!;
    if (at < from || at >= to) continue;
    races++;
    if (at < oldest) oldest = at;
  }
  return { races, oldest };
}

/**
 * Upstream `i`'s curve from the races that started in [from, to). One
 * upstream per call, so the engine can spread a wide set over several turns
 * of the event loop (sorting 8192 legs takes about a millisecond).
 */
export function windowCurve(w: RaceWindow, i: number, from: number, to: number): Curve {
  const good = new Float64Array(w.capacity);
  const cens = new Float64Array(w.capacity);
  const lost = new Float64Array(w.capacity);
  let ng = 0;
  let nc = 0;
  let nl = 0;
  let legs = 0;
  let bytes = 0;
  for (let s = 0, k = i; s < w.capacity; s++, k += w.width) {
    const o = w.outcome[k]!;
    if (o === LEG_NONE || w.seqOf[s]! < 0) continue;
    const at = w.startedAt[s]!;
    if (at < from || at >= to) continue;
    legs++;
    bytes += w.bytes[k]!;
    if (o === LEG_GOOD) good[ng++] = w.latency[k]!;
    else if (o === LEG_TIMEOUT) cens[nc++] = w.latency[k]!;
    else lost[nl++] = w.latency[k]!;
  }
  return kaplanMeier(good.subarray(0, ng), cens.subarray(0, nc), lost.subarray(0, nl), legs, bytes);
}

/** Every upstream's curve at once (tests, small sets). */
export function windowCurves(w: RaceWindow, from: number, to: number): { curves: Curve[]; races: number; oldest: number } {
  const curves: Curve[] = [];
  for (let i = 0; i < w.width; i++) curves.push(windowCurve(w, i, from, to));
  return { curves, ...windowSpan(w, from, to) };
}

/** One leg of an option's plan: upstream index and when it is sent (ms after the query). */
export interface PlannedLeg {
  readonly u: number;
  /** Infinity: a reserve, sent only when a leg loses (top-K's upstreams past K). */
  readonly at: number;
  /** Strategy timer waits before this leg goes out (each fires lag ms late); 0 or absent: sent with the query. */
  readonly hops?: number;
}

/** The JSON row of one option (field names are a contract: GET /tradeoffs). */
export interface Prediction {
  option: string;
  p50_ms: number | null;
  p95_ms: number | null;
  p99_ms: number | null;
  answered_share: number | null;
  upstream_queries_per_query: number | null;
  upstream_bytes_per_query: number | null;
}

/** A leg as one run of a plan sends it: `win` scales its upstream's curve (0: it lost; 1/(1 - loss share): it did not). */
interface Sent {
  readonly u: number;
  readonly at: number;
  readonly win: number;
  /** A strategy timer sends it (not the query, not a loss): whether it goes out is decided by the reply order too. */
  readonly timer: boolean;
}

/** One way a plan can run, and how likely it is. */
interface Run {
  readonly legs: readonly Sent[];
  readonly weight: number;
}

/** P(no winning answer within t ms of the query) in one run. */
function unanswered(legs: readonly Sent[], curves: readonly Curve[], t: number): number {
  let s = 1;
  for (const l of legs) if (l.at <= t && l.win > 0) s *= 1 - l.win * cdfAt(curves[l.u]!, t - l.at);
  return s;
}

/** The step of S in (lo, hi]: the exact time the bisection closed in on. */
function stepIn(legs: readonly Sent[], curves: readonly Curve[], lo: number, hi: number): number {
  let best = hi;
  for (const l of legs) {
    if (l.win === 0) continue;
    const times = curves[l.u]!.times;
    let a = 0;
    let b = times.length;
    while (a < b) {
      const m = (a + b) >> 1;
      if (times[m]! + l.at <= lo) a = m + 1;
      else b = m;
    }
    if (a < times.length && times[a]! + l.at < best) best = times[a]! + l.at;
  }
  return best;
}

const QUANTILES = [0.5, 0.95, 0.99] as const;
/** Resolution of the quantile search, ms. */
const RESOLUTION_MS = 0.01;
/** A loss's time is read as this many equally likely values (its quantiles at 0.1, 0.3, ... 0.9). */
const LOSS_POINTS = 5;

const round = (x: number, d: number): number => Math.round(x * 10 ** d) / 10 ** d;

/** The plan as it runs when every timer fires `lag` ms late (a reserve stays a reserve). */
function lagged(plan: readonly PlannedLeg[], lag: number): PlannedLeg[] {
  return plan.map((l) => (l.hops && Number.isFinite(l.at) ? { u: l.u, at: Math.max(0, l.at + l.hops * lag), hops: l.hops } : l));
}

/** `n` equally likely values of a sorted sample: its quantiles at (i + 0.5) / n. */
export function points(sorted: ArrayLike<number>, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(sorted[Math.min(sorted.length - 1, Math.floor(((i + 0.5) / n) * sorted.length))]!);
  return out;
}

/** A leg sent with the query that lost, and when. */
interface Loss {
  readonly leg: PlannedLeg;
  readonly tau: number;
}

/**
 * The legs of a (lagged) plan when `losses` happen. Each brings in the next
 * leg not yet out at once (the strategies' next(race, 'lost')). When nothing
 * else was out, race.ts re-arms the strategy timer from there, so the legs
 * after it keep their spacing from it; else the timer keeps its time, and
 * each later leg goes out when the one before it would have.
 */
function afterLosses(plan: readonly PlannedLeg[], losses: readonly Loss[], win: (l: PlannedLeg) => number): Sent[] {
  const at = plan.map((l) => l.at);
  const gone = new Set<PlannedLeg>();
  const byLoss = new Set<number>();
  for (const { leg, tau } of [...losses].sort((a, b) => a.tau - b.tau)) {
    gone.add(leg);
    const next = at.findIndex((t) => t > tau);
    if (next < 0) continue;
    const alone = !plan.some((l, i) => !gone.has(l) && at[i]! <= tau);
    const was = at.slice();
    at[next] = tau;
    byLoss.add(next);
    // A reserve brought in moves nobody: the ones after it are reserves too.
    if (!Number.isFinite(was[next]!)) continue;
    for (let i = next + 1; i < at.length && Number.isFinite(was[i]!); i++) at[i] = alone ? tau + (was[i]! - was[next]!) : was[i - 1]!;
  }
  return plan.map((l, i) => ({ u: l.u, at: at[i]!, win: gone.has(l) ? 0 : win(l), timer: (l.hops ?? 0) > 0 && !byLoss.has(i) }));
}

/**
 * The runs of one (lagged) plan and their weights: nobody sent with the query
 * loses; exactly one of them loses, at one of LOSS_POINTS values of its loss
 * times (the others, known not to lose, win with their curves scaled by
 * 1 / (1 - loss share)); or two or more lose, read as all of them losing at
 * their median loss times (exact for two).
 */
function runsOf(plan: readonly PlannedLeg[], curves: readonly Curve[], weight: number, out: Run[]): void {
  // Only a loss that brings someone in changes anything: `all` has nobody left to bring.
  const triggers = plan.some((l) => l.at > 0) ? plan.filter((l) => l.at === 0 && !l.hops && curves[l.u]!.lossShare > 0) : [];
  const share = (l: PlannedLeg): number => curves[l.u]!.lossShare;
  // P(no trigger but `except` loses).
  const othersKeep = (except: PlannedLeg | null): number => triggers.reduce((p, l) => (l === except ? p : p * (1 - share(l))), 1);
  const keep = (l: PlannedLeg): number => (triggers.includes(l) ? 1 / (1 - share(l)) : 1);
  let left = 1;
  const add = (legs: Sent[], w: number): void => {
    out.push({ legs, weight: weight * w });
    left -= w;
  };
  const noLoss = othersKeep(null);
  if (noLoss > 0) add(afterLosses(plan, [], keep), noLoss);
  for (const leg of triggers) {
    const w = share(leg) * othersKeep(leg);
    if (w === 0) continue;
    for (const tau of points(curves[leg.u]!.lossMs, LOSS_POINTS)) add(afterLosses(plan, [{ leg, tau }], keep), w / LOSS_POINTS);
  }
  if (left > 1e-9) add(afterLosses(plan, triggers.map((leg) => ({ leg, tau: points(curves[leg.u]!.lossMs, 1)[0]! })), () => 1), left);
}

/**
 * Predicts one option's latency and cost; latencies null when an upstream of
 * the plan has no measurement. `lags`: the strategy timer's lag (ms) as equally
 * likely values (lag.ts); [0]: timers fire exactly on time. `orderMs`: a
 * timer-sent leg goes out only when nothing won by its time plus this (lag.ts
 * calibrated(): a reply that ties with the timer is read first); it moves
 * the cost, not the latency (an answer that beat the timer is an answer).
 */
export function predict(option: string, plan: readonly PlannedLeg[], curves: readonly Curve[], timeoutMs: number, lags: readonly number[] = [0], orderMs = 0): Prediction {
  const row: Prediction = {
    option,
    p50_ms: null,
    p95_ms: null,
    p99_ms: null,
    answered_share: null,
    upstream_queries_per_query: null,
    upstream_bytes_per_query: null,
  };
  const planned = plan.filter((l) => l.at < timeoutMs);
  if (planned.length === 0 || planned.some((l) => (curves[l.u]?.legs ?? 0) === 0)) return row;
  // A plan with no timer-sent leg (all, top-K) is the same at every lag: one run.
  const timed = lags.length > 0 && plan.some((l) => l.hops);
  const runs: Run[] = [];
  for (const lag of timed ? lags : [0]) runsOf(lagged(plan, lag), curves, 1 / (timed ? lags.length : 1), runs);
  const unansweredAt = (t: number): number => {
    let s = 0;
    for (const r of runs) s += r.weight * unanswered(r.legs, curves, t);
    return s;
  };
  const answered = 1 - unansweredAt(timeoutMs);
  row.answered_share = round(answered, 4);
  const qs: number[] = [];
  for (const q of QUANTILES) {
    // Not reached before the deadline: the client's answer (SERVFAIL) comes at the deadline.
    if (answered < q - 1e-12) {
      qs.push(timeoutMs);
      continue;
    }
    let lo = 0;
    let hi = timeoutMs;
    while (hi - lo > RESOLUTION_MS) {
      const mid = (lo + hi) / 2;
      if (1 - unansweredAt(mid) >= q - 1e-12) hi = mid;
      else lo = mid;
    }
    let step = hi;
    for (const r of runs) step = Math.min(step, stepIn(r.legs, curves, lo, hi));
    qs.push(round(step, 2));
  }
  [row.p50_ms, row.p95_ms, row.p99_ms] = qs as [number, number, number];
  // Leg i goes out when nothing won before its offset; legs sent together share that chance.
  let queries = 0;
  let bytes = 0;
  for (const r of runs) {
    for (const l of r.legs) {
      if (l.at >= timeoutMs) continue;
      let p = r.weight;
      const decided = l.timer ? Math.max(l.at, l.at + orderMs) : l.at;
      for (const e of r.legs) if (e.at < l.at && e.win > 0) p *= 1 - e.win * cdfAt(curves[e.u]!, decided - e.at);
      queries += p;
      bytes += p * curves[l.u]!.meanBytes;
    }
  }
  row.upstream_queries_per_query = round(queries, 4);
  row.upstream_bytes_per_query = round(bytes, 1);
  return row;
}

/** What the estimator needs besides the curves: the upstreams as the strategies see them now. */
export interface Scene {
  /** Per upstream index (the set's order): up (health). */
  readonly up: readonly boolean[];
  /** Upstream indices best first, as the strategies rank them (byLatency). */
  readonly rank: readonly number[];
  /** What `hedged` waits after asking each upstream (ms), by index: learned, advised (engine.ts) or --hedge-delay. */
  readonly hedgeMs: readonly number[];
  readonly timeoutMs: number;
  readonly tryTimeoutMs: number;
  /** More hedge delays to list: those in use (auto's `hedged@Dms`, hedged's advice), so they stay predicted when the quantiles move. */
  readonly extraHedgeMs?: readonly number[];
}

/** Indices of the healthy upstreams; all when none is up (strategy.ts healthy()). */
export function healthyIndices(up: readonly boolean[]): number[] {
  const h = up.flatMap((ok, i) => (ok ? [i] : []));
  return h.length === 0 ? up.map((_, i) => i) : h;
}

/** Candidate hedge delays: the best upstream's p50, p90, p95, p99 (whole ms, at least 1), each once. */
export function hedgeCandidates(best: Curve | undefined): number[] {
  if (!best) return [];
  const out: number[] = [];
  for (const q of [0.5, 0.9, 0.95, 0.99]) {
    const t = curveQuantile(best, q);
    if (Number.isNaN(t)) continue;
    const d = Math.max(1, Math.ceil(t));
    if (!out.includes(d)) out.push(d);
  }
  return out;
}

/** Every option's plan: all, top-K (K < healthy), hedged (learned), hedged@Dms, ordered. */
export function plans(scene: Scene, curves: readonly Curve[]): [string, PlannedLeg[]][] {
  const healthy = healthyIndices(scene.up);
  const ranked = scene.rank.filter((i) => healthy.includes(i));
  const out: [string, PlannedLeg[]][] = [['all', healthy.map((u) => ({ u, at: 0 }))]];
  // top-K's upstreams past K are its reserves: a losing leg brings in the next (strategy/top-k.ts).
  for (let k = 1; k < ranked.length; k++) out.push([`top-${k}`, ranked.map((u, i) => ({ u, at: i < k ? 0 : Infinity }))]);
  const hedged: PlannedLeg[] = [];
  let at = 0;
  for (const [k, u] of ranked.entries()) {
    hedged.push({ u, at, hops: k });
    at += scene.hedgeMs[u] ?? 0;
  }
  out.push(['hedged', hedged]);
  const delays = hedgeCandidates(curves[ranked[0]!]);
  for (const d of scene.extraHedgeMs ?? []) if (!delays.includes(d)) delays.push(d);
  delays.sort((a, b) => a - b);
  for (const d of delays) out.push([`hedged@${d}ms`, ranked.map((u, k) => ({ u, at: k * d, hops: k }))]);
  out.push(['ordered', healthy.map((u, k) => ({ u, at: k * scene.tryTimeoutMs, hops: k }))]);
  return out;
}

/** Every option at one timer lag for all (tests; the engine reads each plan's own from the probes: engine.ts timerLags()). */
export function predictAll(scene: Scene, curves: readonly Curve[], lags: readonly number[] = [0]): Prediction[] {
  return plans(scene, curves).map(([name, plan]) => predict(name, plan, curves, scene.timeoutMs, lags));
}

/**
 * The hedge delay that covers the best upstream's tail. Candidates whose
 * predicted p99 is within 5 % (0.5 ms at least) of the lowest are as good,
 * and the cheapest of them is taken; the delay in use (`current`) stays while
 * it is within twice that band and no good one is cheaper by 0.01 upstream
 * queries per query. Two bands, so that two candidates a few tenths of a
 * millisecond apart at one band's edge do not trade places every refresh,
 * and hedged's cost with them (1.12 against 1.23 upstream queries per query
 * in the case). null without a measurement to go on.
 */
export function bestHedgeMs(rows: readonly Prediction[], current: number | null = null): number | null {
  const cands = rows.filter((r) => r.option.startsWith('hedged@') && Number.isFinite(r.p99_ms) && Number.isFinite(r.upstream_queries_per_query));
  if (cands.length === 0) return null;
  const low = Math.min(...cands.map((r) => r.p99_ms!));
  const within = (r: Prediction, share: number, floorMs: number): boolean => r.p99_ms! <= low + Math.max(floorMs, share * low);
  const delay = (r: Prediction): number => Number(/@(\d+)ms/.exec(r.option)![1]);
  const cheapest = cands
    .filter((r) => within(r, 0.05, 0.5))
    .reduce((a, b) => (b.upstream_queries_per_query! < a.upstream_queries_per_query! || (b.upstream_queries_per_query === a.upstream_queries_per_query && b.p99_ms! < a.p99_ms!) ? b : a));
  const inUse = cands.find((r) => delay(r) === current);
  if (inUse !== undefined && within(inUse, 0.1, 1) && cheapest.upstream_queries_per_query! > inUse.upstream_queries_per_query! - 0.01) return current;
  return delay(cheapest);
}

/**
 * auto's pick among predictions: the cheapest (fewest upstream queries per
 * query) whose p99 meets the target, ties to the lower p99; with none
 * meeting it, the lowest p99. null when nothing has a prediction.
 */
export function cheapestMeeting(rows: readonly Prediction[], targetMs: number): Prediction | null {
  const known = rows.filter((r) => r.p99_ms !== null && r.upstream_queries_per_query !== null);
  const meeting = known.filter((r) => r.p99_ms! <= targetMs);
  if (meeting.length > 0) {
    return meeting.reduce((a, b) =>
      b.upstream_queries_per_query! < a.upstream_queries_per_query! - 1e-9 ||
      (Math.abs(b.upstream_queries_per_query! - a.upstream_queries_per_query!) <= 1e-9 && b.p99_ms! < a.p99_ms!)
        ? b
        : a,
    );
  }
  return known.length === 0 ? null : known.reduce((a, b) => (b.p99_ms! < a.p99_ms! ? b : a));
}
