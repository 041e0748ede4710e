// What a strategy decides: which upstreams a race asks, and when. What wins
// is not its business: that rule lives in race.ts alone.
import type { Upstream } from '../upstream/upstream.js';

/** What a strategy may see of a race in progress. */
export interface RaceView {
  /** The upstreams this query may go to, in configured order. */
  readonly upstreams: readonly Upstream[];
  /** The order this race tries upstreams in, set by the strategy's first(). */
  plan: readonly Upstream[];
  asked(u: Upstream): boolean;
  /** Upstreams asked whose legs have not ended yet. */
  pendingUpstreams(): Upstream[];
}

export interface Strategy {
  readonly name: string;
  /** Upstreams to ask when the race starts: at least one. */
  first(race: RaceView): readonly Upstream[];
  /**
   * More upstreams to ask after a leg lost (`lost`), after `delay()` passed
   * with no winner, or when the first negative answer came in (`negative`:
   * one more leg lets it be checked; none means it wins unless other legs are out).
   */
  next(race: RaceView, why: 'lost' | 'delay' | 'negative'): readonly Upstream[];
  /** Milliseconds to wait for a winner before `next(race, 'delay')`; -1 for never. */
  delay(race: RaceView): number;
}

/** Upstreams that are up; all of them when none is, so a query is never refused for health alone. */
export function healthy(upstreams: readonly Upstream[]): readonly Upstream[] {
  let up = 0;
  for (const u of upstreams) if (u.health.up) up++;
  if (up === upstreams.length || up === 0) return upstreams;
  return upstreams.filter((u) => u.health.up);
}

/**
 * The first healthy upstream of the plan not asked yet; else, as a last
 * resort when `orDown`, the first not asked at all.
 */
export function nextUnasked(race: RaceView, orDown = true): Upstream[] {
  let fallback: Upstream | null = null;
  for (const u of race.plan) {
    if (race.asked(u)) continue;
    if (u.health.up) return [u];
    fallback ??= u;
  }
  return fallback && orDown ? [fallback] : [];
}

/**
 * One upstream at a time in an order the strategy picks per race, the next
 * one after `tryTimeoutMs` or a losing reply. An upstream that misses its try
 * timeout is marked down (probed back in the background), so a dead one costs
 * one short timeout in all, not one per query. This is CoreDNS's `policy`
 * idea: only the order differs between ordered, round-robin, random, fastest.
 */
export function sequential(name: string, order: (ups: readonly Upstream[]) => readonly Upstream[], tryTimeoutMs: number): Strategy {
  return {
    name,
    first: (race) => {
      race.plan = order(race.upstreams);
      return nextUnasked(race);
    },
    // A negative answer from the one upstream asked stands: a strict order means its word is final.
    next: (race, why) => {
      if (why === 'negative') return [];
      if (why === 'delay') for (const u of race.pendingUpstreams()) u.health.markDown();
      return nextUnasked(race);
    },
    delay: () => tryTimeoutMs,
  };
}

/**
 * Latency score for ordering: the recent median. An upstream never asked
 * goes first, so it gets measured; one asked that has never answered goes
 * last (dead from the start: it would otherwise keep its unmeasured head start).
 */
export function latencyScore(u: Upstream): number {
  const p50 = u.stats.latency.quantile(0.5);
  if (!Number.isNaN(p50)) return p50;
  return u.stats.queries > 0 ? Infinity : 0;
}

export function byLatency(ups: readonly Upstream[]): Upstream[] {
  return [...ups].sort((a, b) => latencyScore(a) - latencyScore(b));
}
