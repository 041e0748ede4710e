// auto (--latency-target MS): runs whichever option the trade-off engine
// chose last (all, top-K, hedged, hedged@Dms, ordered); the engine picks the
// cheapest whose predicted p99 meets the target (tradeoff/auto.ts).
import type { Strategy } from './strategy.js';

export function autoStrategy(chosen: () => string | null, make: (option: string) => Strategy): Strategy {
  const made = new Map<string, Strategy>();
  let name = '';
  let cur: Strategy | null = null;
  const current = (): Strategy => {
    const c = chosen() ?? 'all';
    if (c !== name || cur === null) {
      name = c;
      cur = made.get(c) ?? make(c);
      made.set(c, cur);
    }
    return cur;
  };
  return {
    name: 'auto',
    first: (race) => current().first(race),
    next: (race, why) => current().next(race, why),
    delay: (race) => current().delay(race),
  };
}
