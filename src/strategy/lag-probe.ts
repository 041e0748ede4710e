// Lets the trade-off engine sample how late strategy timers fire (tradeoff/lag.ts)
// from where a hedge timer is armed: a race's start, on the query's I/O callback.
import type { Strategy } from './strategy.js';

export interface LagProbe {
  /** Called as each race starts; arms a probe timer on a sampled few. */
  maybeProbe(): void;
}

export function lagProbed(inner: Strategy, probe: LagProbe): Strategy {
  return {
    get name() {
      return inner.name;
    },
    first: (race) => {
      probe.maybeProbe();
      return inner.first(race);
    },
    next: (race, why) => inner.next(race, why),
    delay: (race) => inner.delay(race),
  };
}
