// round-robin (CoreDNS, dnsdist): each race starts one upstream further on.
import { sequential, type Strategy } from './strategy.js';

export function roundRobinStrategy(tryTimeoutMs: number): Strategy {
  let turn = 0;
  return sequential(
    'round-robin',
    (ups) => {
      const i = turn++ % ups.length;
      return [...ups.slice(i), ...ups.slice(0, i)];
    },
    tryTimeoutMs,
  );
}
