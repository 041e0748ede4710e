// fastest: stick to the upstream with the lowest recent median latency; fail
// over at once after the try timeout; one race in EXPLORE_EVERY asks every
// healthy upstream, so the others' latencies stay measured.
import { byLatency, healthy, sequential, type Strategy } from './strategy.js';

export const EXPLORE_EVERY = 20;

export function fastestStrategy(tryTimeoutMs: number): Strategy {
  const seq = sequential('fastest', byLatency, tryTimeoutMs);
  let races = 0;
  return {
    ...seq,
    first: (race) => {
      if (++races % EXPLORE_EVERY === 0) {
        race.plan = byLatency(race.upstreams);
        return [...healthy(race.upstreams)];
      }
      return seq.first(race);
    },
  };
}
