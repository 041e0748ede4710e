// The registry of strategies by name (--strategy).
import { allStrategy } from './all.js';
import { orderedStrategy } from './ordered.js';
import { hedgedStrategy } from './hedged.js';
import { fastestStrategy } from './fastest.js';
import { roundRobinStrategy } from './round-robin.js';
import { randomStrategy } from './random.js';
import type { Strategy } from './strategy.js';

export const STRATEGY_NAMES = ['all', 'ordered', 'hedged', 'fastest', 'round-robin', 'random'] as const;
export type StrategyName = (typeof STRATEGY_NAMES)[number];

export interface StrategyOptions {
  tryTimeoutMs: number;
  /** hedged: a fixed delay instead of the learned one. */
  hedgeDelayMs: number | null;
}

export function makeStrategy(name: StrategyName, opts: StrategyOptions): Strategy {
  switch (name) {
    case 'all':
      return allStrategy;
    case 'ordered':
      return orderedStrategy(opts.tryTimeoutMs);
    case 'hedged':
      return hedgedStrategy(opts.hedgeDelayMs);
    case 'fastest':
      return fastestStrategy(opts.tryTimeoutMs);
    case 'round-robin':
      return roundRobinStrategy(opts.tryTimeoutMs);
    case 'random':
      return randomStrategy(opts.tryTimeoutMs);
  }
}

export type { Strategy } from './strategy.js';
