// When a strategy's timer really fires, and whether a reply beats it.
//
// hedged@Dms does not send its hedge D ms after the query: Node's timers run
// on libuv's millisecond loop clock, and the loop may be asleep or busy when
// one is due, so the hedge goes out at D + lag. The lag depends on D itself
// (measured here: a median of 0.16 ms at 2 ms, 0.44 at 4 ms, 0.68 at 11 ms),
// so it is measured at the delays the estimator predicts.
//
// And a reply and a timer due at about the same time are not independent: a
// reply that arrives while raced sleeps towards the timer is read first (libuv
// polls I/O before it runs timers on the next turn), and a leg's recorded
// latency includes the wake-up that reading it took. Drawing the upstream's
// latency and the timer's lag independently over-predicts hedges whose delay
// falls inside the upstream's own spread (`hedged@11ms` over an 8-12 ms
// upstream hedged 0.22 per query where its own legs and lag, drawn
// independently, said 0.29; a probe due with the hedge in the same races said
// 0.17 where the run hedged 0.16). So probes are armed inside real races,
// due when their hedge would be, and the estimator reads both from them: the
// lag's spread, and how often the first-asked upstream had no winning answer
// when the probe fired; a timer's leg is then sent when nothing won by its
// time plus a shift that makes the model hedge that often (calibrated()),
// while the hedges that do go out still go out at D + lag.
//
// Cost: one timer per delay (at most PROBE_SLOTS) on at most PROBES_PER_S
// races a second (window.ts).
import { notBefore } from '../timer.js';
import { cdfAt, points, type Curve } from './estimate.js';
import { LEG_GOOD, LEG_NONE, PROBE_SLOTS, type RaceWindow } from './window.js';

/** The lag is read as this many equally likely values (its quantiles at 0.1, 0.3, ... 0.9). */
export const POINTS = 5;
/**
 * Probes at one delay needed before its own lag and reply order are used: a
 * share near 0.4 read from 200 races is within about 0.035 (one standard
 * error). Probed races are read once the timeout has passed; at 128 probed
 * races a second a delay has 200 of them about 2 s later (later below 128
 * QPS, or when the window's sample is thinner than that: window.ts); until
 * then its plans get every probe's lag, unshifted.
 */
export const MIN_PROBES = 200;
/** The most the reply order may move a timer's decision, ms: it is a wake-up's worth, not a second timer. */
export const CALIBRATION_MAX_MS = 2;

/** Arms race `handle`'s probes: each due its delay after the race started at `started` (as race.ts arms its first timer). */
export function armProbes(w: RaceWindow, handle: number, delays: readonly number[], started: number): void {
  for (let k = 0; k < delays.length; k++) {
    const ms = delays[k]!;
    notBefore(ms, (late) => w.probed(handle, k, ms + late), (t) => t.unref(), started + ms);
  }
}

/** What the probes of races started in [from, to) at one delay saw. */
export interface ProbeView {
  /** Lags (ms), ascending. */
  readonly lags: Float64Array;
  /** Where those probes are (slot x PROBE_SLOTS + k), for probeUnanswered. */
  readonly at: Int32Array;
}

/** The probes at `delayMs` (null: every delay) of races started in [from, to). */
export function probesOf(w: RaceWindow, from: number, to: number, delayMs: number | null): ProbeView {
  const lags: number[] = [];
  const at: number[] = [];
  for (let s = 0; s < w.capacity; s++) {
    const n = w.probes[s]!;
    if (n === 0 || w.seqOf[s]! < 0) continue;
    const started = w.startedAt[s]!;
    if (started < from || started >= to) continue;
    for (let i = s * PROBE_SLOTS, end = i + n; i < end; i++) {
      const d = w.probeMs[i]!;
      const fired = w.probeAt[i]!;
      if ((delayMs !== null && d !== delayMs) || Number.isNaN(fired)) continue;
      lags.push(fired - d);
      at.push(i);
    }
  }
  return { lags: Float64Array.from(lags).sort(), at: Int32Array.from(at) };
}

/** The lag as POINTS equally likely values, rounded to 0.01 ms; [0] without probes (timers on time). */
export function lagPoints(lags: Float64Array): number[] {
  if (lags.length === 0) return [0];
  return points(lags, POINTS).map((x) => Math.round(x * 100) / 100);
}

/**
 * Of the probed races that asked upstream `u` with the query, the share in
 * which `u` had no winning answer when the probe fired: how often a timer of
 * that delay finds it unanswered. (A leg sent later, as a hedge, has its
 * latency from then, not from the race's start the probe counts from.) null
 * when fewer than MIN_PROBES such races.
 */
export function probeUnanswered(w: RaceWindow, view: ProbeView, u: number): number | null {
  let n = 0;
  let open = 0;
  for (let i = 0; i < view.at.length; i++) {
    const p = view.at[i]!;
    const k = Math.floor(p / PROBE_SLOTS) * w.width + u;
    const o = w.outcome[k]!;
    if (o === LEG_NONE || w.later[k] === 1) continue;
    n++;
    if (o !== LEG_GOOD || w.latency[k]! > w.probeAt[p]!) open++;
  }
  return n >= MIN_PROBES ? open / n : null;
}

/**
 * The reply-order shift c (ms, |c| <= CALIBRATION_MAX_MS): a timer `delayMs`
 * after asking an upstream with `curve`, firing at each of `lags`, finds it
 * unanswered at D + lag + c with probability `target`, as the probes saw.
 * Positive: replies that tie with the timer win, so fewer hedges go out than
 * the lag alone says. It moves only whether a timer's leg goes out, not when
 * (estimate.ts predict(): the hedges that do go out go out at D + lag).
 */
export function calibrated(curve: Curve, delayMs: number, lags: readonly number[], target: number): number {
  const open = (c: number): number => lags.reduce((s, l) => s + 1 - cdfAt(curve, Math.max(delayMs, delayMs + l + c)), 0) / lags.length;
  let lo = -CALIBRATION_MAX_MS;
  let hi = CALIBRATION_MAX_MS;
  // open() falls as c grows: more unanswered than the probes saw means the timer effectively comes later.
  if (open(lo) <= target) return lo;
  if (open(hi) >= target) return hi;
  while (hi - lo > 0.005) {
    const mid = (lo + hi) / 2;
    if (open(mid) > target) lo = mid;
    else hi = mid;
  }
  return Math.round(hi * 1000) / 1000;
}
