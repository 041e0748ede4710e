// hedged: ask the best-scoring upstream; if no winning answer came within a
// delay learned from that upstream's own recent latency (its p95, clamped),
// ask the next best as well, and so on. A hedge is not a failure: nobody is
// marked down for it. `--hedge-delay MS` fixes the delay instead. One race
// in EXPLORE_EVERY asks every healthy upstream at once, so an upstream that
// was slow and got better is noticed. A negative answer (NXDOMAIN, NODATA)
// fires the next hedge at once: the race holds it for agreement.
import { byLatency, healthy, nextUnasked, type Strategy } from './strategy.js';

export const EXPLORE_EVERY = 50;

export const HEDGE_MIN_MS = 2;
export const HEDGE_MAX_MS = 1000;
/** Before an upstream has answered anything. */
export const HEDGE_UNMEASURED_MS = 100;

export function hedgedStrategy(fixedDelayMs: number | null): Strategy {
  let races = 0;
  return {
    name: 'hedged',
    first: (race) => {
      race.plan = byLatency(race.upstreams);
      if (++races % EXPLORE_EVERY === 0) return healthy(race.upstreams);
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
      const p95 = last ? last.stats.latency.quantile(0.95) : NaN;
      if (Number.isNaN(p95)) return HEDGE_UNMEASURED_MS;
      return Math.min(HEDGE_MAX_MS, Math.max(HEDGE_MIN_MS, Math.ceil(p95 * 1000)));
    },
  };
}
