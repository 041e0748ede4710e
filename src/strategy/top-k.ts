// top-k (mosdns `concurrent`, Technitium's concurrent forwarding): race the K
// healthy upstreams with the best latency score at once. A leg that loses
// (SERVFAIL, REFUSED, an error) brings in the next best, so a losing reply is
// not final while upstreams are left; a slow one is not hedged.
import { byLatency, nextUnasked, type RaceView, type Strategy } from './strategy.js';
import type { Upstream } from '../upstream/upstream.js';

/** The first `k` healthy upstreams of the race's plan; when none is up, the first `k`. */
function best(race: RaceView, k: number): Upstream[] {
  const out: Upstream[] = [];
  for (const u of race.plan) if (u.health.up && out.length < k) out.push(u);
  return out.length > 0 ? out : race.plan.slice(0, k);
}

export function topKStrategy(k: number): Strategy {
  return {
    name: `top-${k}`,
    first: (race) => {
      race.plan = byLatency(race.upstreams);
      return best(race, k);
    },
    next: (race, why) => (why === 'lost' ? nextUnasked(race) : []),
    delay: () => -1,
  };
}
