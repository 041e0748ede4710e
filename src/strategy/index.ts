// The registry of strategies by name (--strategy).
import { allStrategy } from './all.js';
import { orderedStrategy } from './ordered.js';
import { hedgedStrategy } from './hedged.js';
import { fastestStrategy } from './fastest.js';
import { roundRobinStrategy } from './round-robin.js';
import { randomStrategy } from './random.js';
import { topKStrategy } from './top-k.js';
import { autoStrategy } from './auto.js';
import { exploring } from './explore.js';
import type { Strategy } from './strategy.js';
import type { Tradeoffs } from '../tradeoff/engine.js';

export const STRATEGY_NAMES = ['all', 'ordered', 'hedged', 'fastest', 'round-robin', 'random', 'top-k', 'auto'] as const;
export type StrategyName = (typeof STRATEGY_NAMES)[number];

/** Default --explore-share: one race in 50 asks every healthy upstream. */
export const DEFAULT_EXPLORE_SHARE = 0.02;

export interface StrategyOptions {
  tryTimeoutMs: number;
  /** hedged: a fixed delay instead of the learned one. */
  hedgeDelayMs: number | null;
  /** top-k: upstreams raced at once. */
  raceWidth?: number;
  /** hedged, top-k, auto: share of races that ask every healthy upstream. */
  exploreShare?: number;
  /** The trade-off engine: hedge advice, auto's choice, the explore count; null: none. */
  tradeoffs?: Tradeoffs | null;
}

/** The strategy an option of GET /tradeoffs names: all, top-K, hedged, hedged@Dms, ordered. */
export function optionStrategy(option: string, opts: StrategyOptions): Strategy {
  const advice = opts.tradeoffs ? (u: Parameters<Tradeoffs['adviceMs']>[0]) => opts.tradeoffs!.adviceMs(u) : null;
  const top = /^top-(\d+)$/.exec(option);
  if (top) return topKStrategy(Number(top[1]));
  const at = /^hedged@(\d+)ms$/.exec(option);
  if (at) return hedgedStrategy(Number(at[1]), null, option);
  if (option === 'hedged') return hedgedStrategy(opts.hedgeDelayMs, advice);
  if (option === 'ordered') return orderedStrategy(opts.tryTimeoutMs);
  return allStrategy;
}

/** The strategy `--strategy NAME` runs. */
export function makeStrategy(name: StrategyName, opts: StrategyOptions): Strategy {
  const share = opts.exploreShare ?? DEFAULT_EXPLORE_SHARE;
  const t = opts.tradeoffs ?? null;
  const stats = t?.explore ?? { races: 0 };
  switch (name) {
    case 'all':
      return allStrategy;
    case 'ordered':
      return orderedStrategy(opts.tryTimeoutMs);
    case 'hedged':
      return exploring(optionStrategy('hedged', opts), share, stats);
    case 'top-k':
      return exploring(topKStrategy(opts.raceWidth ?? 2), share, stats);
    case 'auto': {
      const chosen = (): string | null => t?.chosen ?? null;
      return exploring(
        autoStrategy(chosen, (o) => optionStrategy(o, opts)),
        share,
        stats,
        () => (chosen() ?? 'all') === 'all',
      );
    }
    case 'fastest':
      return fastestStrategy(opts.tryTimeoutMs);
    case 'round-robin':
      return roundRobinStrategy(opts.tryTimeoutMs);
    case 'random':
      return randomStrategy(opts.tryTimeoutMs);
  }
}

export type { Strategy } from './strategy.js';
