// The trade-off engine: owns the race window of the default upstream set,
// re-predicts every option every TICK_MS from it (off the query path), and
// serves the result to GET /tradeoffs, the metrics, `auto` and `hedged`.
import { performance } from 'node:perf_hooks';
import type { Upstream } from '../upstream/upstream.js';
import { latencyScore } from '../strategy/strategy.js';
import { ExploreStats } from '../strategy/explore.js';
import { PROBE_SLOTS, RaceWindow, WINDOW_RACES } from './window.js';
import { bestHedgeMs, plans, predict, windowCurve, windowSpan, type Curve, type PlannedLeg, type Prediction, type Scene } from './estimate.js';
import { AutoChooser } from './auto.js';
import { MIN_PROBES, calibrated, lagPoints, probeUnanswered, probesOf, type ProbeView } from './lag.js';

/** How often the predictions are recomputed (and auto may change its choice). */
export const TICK_MS = 2_000;
/** Races older than this are not used, however few came since. */
export const MAX_AGE_MS = 300_000;
/** Races the window must hold before `hedged` trusts its hedge delay advice. */
export const ADVICE_MIN_RACES = 100;

/** hedged's learned delay rule (strategy/hedged.ts), repeated for the prediction of `hedged`. */
export interface HedgeRule {
  /** ms hedged waits after asking `u` (its clamped p95, or the unmeasured default). */
  learned(u: Upstream): number;
  /** --hedge-delay: the delay after every upstream; null: learned (and the advice taken). */
  fixedMs: number | null;
}

export interface TradeoffSettings {
  timeoutMs: number;
  tryTimeoutMs: number;
  /** --latency-target (auto); null without it. */
  targetMs: number | null;
  /** The option the configured strategy runs as, when it is one ('all', 'top-2', 'hedged', ...); null else. */
  fixedOption: string | null;
  hedge: HedgeRule;
  /** Told when auto's choice changes. */
  onChoice?(from: string, to: string, why: Prediction | null): void;
}

/** GET /tradeoffs (field names are a contract). */
export interface TradeoffReport {
  window: { races: number; seconds: number };
  target_ms: number | null;
  chosen: string | null;
  options: Prediction[];
}

export class Tradeoffs {
  window: RaceWindow = new RaceWindow([]);
  rows: Prediction[] = [];
  races = 0;
  seconds = 0;
  readonly explore = new ExploreStats();
  readonly auto: AutoChooser | null;
  /** The hedge delay that covers the best upstream's tail (ms); null: none advised. */
  hedgeAdviceMs: number | null = null;
  /** The upstream the advice is for (best ranked). */
  private adviceFor: Upstream | null = null;
  private set: readonly Upstream[] = [];
  private states = '';
  private settledSince = -Infinity;
  private timer: NodeJS.Timeout | null = null;
  /** A tick's work is under way (it spans turns of the loop). */
  private refreshing = false;

  constructor(private readonly settings: TradeoffSettings) {
    this.auto = settings.targetMs !== null ? new AutoChooser(settings.targetMs) : null;
  }

  /** The default upstream set (re)configured: a new window when it differs. */
  bind(set: readonly Upstream[]): void {
    if (set === this.set) return;
    const same = set.length === this.set.length && set.every((u, i) => u === this.set[i]);
    this.set = set;
    if (same) {
      this.window.set = set;
      return;
    }
    // A new set starts an empty window: auto runs `all` until it has AUTO_MIN_RACES again.
    this.window = new RaceWindow(set, WINDOW_RACES, this.settings.timeoutMs);
    this.rows = [];
    this.states = '';
    this.hedgeAdviceMs = null;
    this.adviceFor = null;
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  /**
   * The timer's update, spread over turns of the event loop (refresh() says
   * where), so no query waits for all of it. A tick still running when the
   * next comes due (a starved loop) is let finish; the next is skipped.
   */
  private tick(): void {
    if (this.refreshing) return;
    const w = this.window;
    const work = this.refresh(performance.now());
    this.refreshing = true;
    const step = (): void => {
      if (this.timer === null || w !== this.window) {
        this.refreshing = false;
        return;
      }
      if (work.next().done === true) this.refreshing = false;
      else setImmediate(step);
    };
    step();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** The option in use: auto's choice, or what the configured strategy is. */
  get chosen(): string | null {
    return this.auto ? this.auto.chosen : this.settings.fixedOption;
  }

  /** hedged's delay after asking `u`: the advice when `u` is the best upstream, else -1 (use the learned rule). */
  adviceMs(u: Upstream): number {
    return this.hedgeAdviceMs !== null && u === this.adviceFor ? this.hedgeAdviceMs : -1;
  }

  /**
   * Recomputes everything now, in one go (tests; the timer spreads it out: tick()).
   */
  update(now: number): void {
    const work = this.refresh(now);
    while (work.next().done !== true) {
      // all of it, now
    }
  }

  /**
   * Every upstream's curve, then every option's prediction, then hedged's
   * advice (and `hedged` again if it moved), then apply():
   * yields after each curve and each prediction (each takes up to a
   * millisecond or two). Races younger than the timeout may still have legs
   * out (their slow legs would be missing): not used yet.
   */
  private *refresh(now: number): Generator<void, void, void> {
    const w = this.window;
    const from = now - MAX_AGE_MS;
    const to = now - this.settings.timeoutMs;
    const curves: Curve[] = [];
    for (let i = 0; i < w.width; i++) {
      curves.push(windowCurve(w, i, from, to));
      yield;
    }
    const got = windowSpan(w, from, to);
    const s = this.scene(now, got.races);
    const rows: Prediction[] = [];
    const probed = new Set<number>();
    if (s !== null) {
      // Each delay's probes read once per refresh: plans often share a first delay (hedged and one hedged@Dms).
      const views = new Map<number | null, ProbeView>();
      const probes = (delayMs: number | null): ProbeView => {
        let v = views.get(delayMs);
        if (v === undefined) views.set(delayMs, (v = probesOf(w, from, to, delayMs)));
        return v;
      };
      const predicted = (name: string, plan: PlannedLeg[]): Prediction => {
        const first = firstTimer(plan);
        if (first !== null) probed.add(first.ms);
        const t = first === null ? { lags: [0], orderMs: 0 } : timerLags(w, first, curves, probes);
        return predict(name, plan, curves, s.scene.timeoutMs, t.lags, t.orderMs);
      };
      for (const [name, plan] of plans(s.scene, curves)) {
        rows.push(predicted(name, plan));
        yield;
      }
      // hedged's advice comes from the hedged@Dms rows just made; when it moves, `hedged` is predicted
      // again with it, so that its row is hedged as it runs from now on.
      const advice = got.races >= ADVICE_MIN_RACES ? bestHedgeMs(rows, s.advice) : null;
      if (advice !== s.advice || s.best !== s.adviceFor) {
        const again = { ...s.scene, hedgeMs: this.hedgeDelays(s.scene.rank.length, advice, s.best) };
        const plan = plans(again, curves).find(([name]) => name === 'hedged')?.[1];
        const i = rows.findIndex((r) => r.option === 'hedged');
        if (i >= 0 && plan !== undefined) rows[i] = predicted('hedged', plan);
      }
      this.hedgeAdviceMs = advice;
      this.adviceFor = s.best;
    } else {
      this.hedgeAdviceMs = null;
      this.adviceFor = null;
    }
    // The next window's probes: the delays of the timers just predicted (a few, whole ms).
    const delays = [...probed].filter((d) => Number.isInteger(d) && d > 0 && d < 65_536).sort((a, b) => a - b);
    if (delays.length > 0) w.probeDelays = delays.slice(0, PROBE_SLOTS);
    this.apply(now, rows, got);
  }

  /**
   * The upstreams as the strategies see them now, with the advice they run
   * with (for hedged's delays); null when there is nothing to predict.
   */
  private scene(now: number, races: number): { scene: Scene; best: Upstream | null; advice: number | null; adviceFor: Upstream | null } | null {
    const set = this.set;
    const states = set.map((u) => (u.health.up ? '1' : '0')).join('');
    if (states !== this.states) {
      if (this.states !== '') this.settledSince = now;
      this.states = states;
    }
    const w = this.window;
    const n = Math.min(set.length, w.width);
    const idx = set.slice(0, n).map((_, i) => i);
    const rank = [...idx].sort((a, b) => latencyScore(set[a]!) - latencyScore(set[b]!));
    const best = set[rank.find((i) => set[i]!.health.up) ?? rank[0]!] ?? null;
    const advice = this.hedgeAdviceMs;
    const adviceFor = this.adviceFor;
    // The delays in use stay listed, so a moving candidate set does not force a change: auto's
    // hedged@Dms, and the advice while hedged runs with it.
    const inUse = [Number(/^hedged@(\d+)ms$/.exec(this.auto?.chosen ?? '')?.[1])];
    if (advice !== null && this.settings.hedge.fixedMs === null && this.chosen === 'hedged') inUse.push(advice);
    const scene: Scene = {
      up: idx.map((i) => set[i]!.health.up),
      rank,
      hedgeMs: this.hedgeDelays(n, advice, adviceFor),
      timeoutMs: this.settings.timeoutMs,
      tryTimeoutMs: this.settings.tryTimeoutMs,
      extraHedgeMs: inUse.filter((d) => !Number.isNaN(d)),
    };
    return n > 0 && races > 0 ? { scene, best, advice, adviceFor } : null;
  }

  /** hedged's delay after each of the first `n` upstreams of the set, as strategy/hedged.ts takes it with this advice. */
  private hedgeDelays(n: number, advice: number | null, adviceFor: Upstream | null): number[] {
    const { fixedMs, learned } = this.settings.hedge;
    return this.set.slice(0, n).map((u) => fixedMs ?? (advice !== null && u === adviceFor ? advice : learned(u)));
  }

  /** The new predictions are in: auto's choice. */
  private apply(now: number, rows: Prediction[], got: { races: number; oldest: number }): void {
    this.races = got.races;
    this.seconds = got.races > 0 ? Math.round((now - got.oldest) / 100) / 10 : 0;
    this.rows = rows;
    if (this.auto) {
      const from = this.auto.chosen;
      if (this.auto.update(this.rows, got.races, this.settledSince, now)) {
        this.settings.onChoice?.(from, this.auto.chosen, this.rows.find((r) => r.option === this.auto!.chosen) ?? null);
      }
    }
  }

  report(): TradeoffReport {
    return { window: { races: this.races, seconds: this.seconds }, target_ms: this.settings.targetMs, chosen: this.chosen, options: this.rows };
  }
}

/** A plan's first timer: how long after the query it is due, and the upstream it waits on; null: no timer. */
export function firstTimer(plan: readonly PlannedLeg[]): { ms: number; u: number | null } | null {
  const hop = plan.find((l) => l.hops === 1);
  if (hop === undefined) return null;
  const before = plan.filter((l) => l.at === 0 && !l.hops);
  return { ms: hop.at, u: before.length === 1 ? before[0]!.u : null };
}

/**
 * How late the plan's timers fire, as equally likely values, and the reply
 * order's shift: the probes at its first timer's delay when there are enough
 * of them, the shift read from how often the first-asked upstream was
 * unanswered when they fired (lag.ts); else every probe's lag, no shift.
 */
export function timerLags(
  w: RaceWindow,
  first: { ms: number; u: number | null },
  curves: readonly Curve[],
  probes: (delayMs: number | null) => ProbeView,
): { lags: number[]; orderMs: number } {
  const own = probes(first.ms);
  if (own.lags.length < MIN_PROBES) return { lags: lagPoints(probes(null).lags), orderMs: 0 };
  const lags = lagPoints(own.lags);
  const target = first.u === null ? null : probeUnanswered(w, own, first.u);
  const curve = first.u === null ? undefined : curves[first.u];
  return { lags, orderMs: target === null || curve === undefined || curve.legs === 0 ? 0 : calibrated(curve, first.ms, lags, target) };
}
