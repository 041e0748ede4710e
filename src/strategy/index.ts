// The registry of strategies by name (--strategy).
import { allStrategy } from './all.js';
import { orderedStrategy } from './ordered.js';
import type { Strategy } from './strategy.js';

export const STRATEGY_NAMES = ['all', 'ordered'] as const;
export type StrategyName = (typeof STRATEGY_NAMES)[number];

export interface StrategyOptions {
  tryTimeoutMs: number;
}

export function makeStrategy(name: StrategyName, opts: StrategyOptions): Strategy {
  switch (name) {
    case 'all':
      return allStrategy;
    case 'ordered':
      return orderedStrategy(opts.tryTimeoutMs);
  }
}

export type { Strategy } from './strategy.js';
