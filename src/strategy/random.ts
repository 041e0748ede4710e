// random (CoreDNS, dnsdist): a fresh random order per race.
import { sequential, type Strategy } from './strategy.js';
import type { Upstream } from '../upstream/upstream.js';

export function randomStrategy(tryTimeoutMs: number): Strategy {
  return sequential(
    'random',
    (ups) => {
      const a: Upstream[] = [...ups];
      for (let i = a.length - 1; i > 0; i--) {
        const j = Math.floor(Math.random() * (i + 1));
        [a[i], a[j]] = [a[j]!, a[i]!];
      }
      return a;
    },
    tryTimeoutMs,
  );
}
