// Ordered primary (--strict-order): the configured order, every time.
import { sequential, type Strategy } from './strategy.js';

export function orderedStrategy(tryTimeoutMs: number): Strategy {
  return sequential('ordered', (ups) => ups, tryTimeoutMs);
}
