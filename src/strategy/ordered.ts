// Ordered primary (--strict-order): ask the first healthy upstream; after a
// short per-try timeout or a losing reply, ask the next in order. An upstream
// that misses its per-try timeout is marked down at once, so a dead primary
// costs one short timeout in all, not one per query; its legs already sent
// stay open and may still win.
import { nextUnasked, type Strategy } from './strategy.js';

export function orderedStrategy(tryTimeoutMs: number): Strategy {
  return {
    name: 'ordered',
    first: (race) => nextUnasked(race),
    next: (race, why) => {
      if (why === 'delay') for (const u of race.pendingUpstreams()) u.health.markDown();
      return nextUnasked(race);
    },
    delay: () => tryTimeoutMs,
  };
}
