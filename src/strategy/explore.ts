// --explore-share: a strategy that asks fewer than every upstream asks every
// healthy one on this share of races (spread evenly: one race in 1/share), so
// the trade-off window keeps measuring the upstreams it would not ask.
import { healthy, type Strategy } from './strategy.js';

/** Counts the races that explored (raced_explore_races_total): their extra legs are the cost. */
export class ExploreStats {
  races = 0;
}

/** `skip()`: the inner strategy asks everyone anyway right now (auto running `all`). */
export function exploring(inner: Strategy, share: number, stats: ExploreStats, skip: () => boolean = () => false): Strategy {
  if (share <= 0) return inner;
  const every = Math.max(1, Math.round(1 / share));
  let races = 0;
  return {
    get name() {
      return inner.name;
    },
    first: (race) => {
      const list = inner.first(race);
      if (++races % every !== 0 || skip()) return list;
      stats.races++;
      // The inner strategy's plan stays: next() and delay() work on as if it had asked alone.
      return healthy(race.upstreams);
    },
    next: (race, why) => inner.next(race, why),
    delay: (race) => inner.delay(race),
  };
}
