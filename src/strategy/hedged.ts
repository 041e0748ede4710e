// hedged: ask the best-scoring upstream; if no winning answer came within a
// delay learned from that upstream's own recent latency (its p95, clamped),
// ask the next best as well, and so on. A hedge is not a failure: nobody is
// marked down for it. `--hedge-delay MS` fixes the delay instead. When the
// trade-off engine sees that the best upstream has a tail its p95 sits in
// (5 % of replies 120 ms late: p95 is 120 ms, and waiting that long buys
// nothing), it advises a shorter delay that covers the tail; `advice` gives
// it (-1: none). The explore share (explore.ts) asks every healthy upstream
// on some races, so an upstream that was slow and got better is noticed. A
// negative answer (NXDOMAIN, NODATA) fires the next hedge at once: the race
// holds it for agreement.
import { byLatency, nextUnasked, type Strategy } from './strategy.js';
import type { Upstream } from '../upstream/upstream.js';

export const HEDGE_MIN_MS = 2;
export const HEDGE_MAX_MS = 1000;
/** Before an upstream has answered anything. */
export const HEDGE_UNMEASURED_MS = 100;

/** The learned delay after asking `u`: its recent p95, clamped. */
export function learnedHedgeMs(u: Upstream): number {
  const p95 = u.stats.latency.quantile(0.95);
  if (Number.isNaN(p95)) return HEDGE_UNMEASURED_MS;
  return Math.min(HEDGE_MAX_MS, Math.max(HEDGE_MIN_MS, Math.ceil(p95 * 1000)));
}

export function hedgedStrategy(fixedDelayMs: number | null, advice: ((u: Upstream) => number) | null = null, name = 'hedged'): Strategy {
  return {
    name,
    first: (race) => {
      race.plan = byLatency(race.upstreams);
      return nextUnasked(race);
    },
    // A hedge goes only to a healthy upstream: one that is down would not
    // answer sooner. After a losing reply, a down one is still a last resort.
    // A negative answer fires the hedge at once, so that it can be checked
    // against a second upstream instead of winning unchecked.
    next: (race, why) => nextUnasked(race, why === 'lost'),
    delay: (race) => {
      if (fixedDelayMs !== null) return fixedDelayMs;
      const pending = race.pendingUpstreams();
      const last = pending[pending.length - 1];
      if (!last) return HEDGE_UNMEASURED_MS;
      const a = advice !== null ? advice(last) : -1;
      return a >= 0 ? a : learnedHedgeMs(last);
    },
  };
}
