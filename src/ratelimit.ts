// --rate-limit: a token bucket per client prefix (IPv4 /32 and IPv6 /64 by
// default). Bounded under a spoofed-source flood: at most RATE_LIMIT_PREFIXES
// buckets, least recently seen forgotten first (a forgotten prefix starts
// again with a full bucket, so forgetting errs towards answering).
import { LRUMap } from 'mnemonist';
import { performance } from 'node:perf_hooks';
import { cidrContains, ipBytes, type Cidr } from './net/address.js';

export const RATE_LIMIT_ACTIONS = ['refuse', 'drop', 'truncate'] as const;
export type RateLimitAction = (typeof RATE_LIMIT_ACTIONS)[number];

/** Prefixes tracked at once: about 11 MB at most (65,536 IPv4 or IPv6 prefixes measured on Node 20 with --expose-gc). */
export const RATE_LIMIT_PREFIXES = 65536;

export interface RateLimitOptions {
  /** Queries per second per prefix; the bucket holds one second's worth. */
  qps: number;
  v4Prefix: number;
  v6Prefix: number;
  action: RateLimitAction;
  exempt: readonly Cidr[];
}

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  /** Queries over the limit, by the action taken. */
  readonly limited: Record<RateLimitAction, number> = { refuse: 0, drop: 0, truncate: 0 };
  private readonly buckets: LRUMap<string, Bucket>;

  constructor(
    readonly opts: RateLimitOptions,
    private readonly now: () => number = () => performance.now(),
    capacity = RATE_LIMIT_PREFIXES,
  ) {
    this.buckets = new LRUMap(capacity);
  }

  get tracked(): number {
    return this.buckets.size;
  }

  /** True when a query from `address` may go on; false: take `opts.action` (already counted). */
  admit(address: string): boolean {
    const key = this.keyOf(address);
    if (key === null || (this.opts.exempt.length > 0 && this.exempt(address))) return true;
    let b = this.buckets.get(key);
    const t = this.now();
    if (b === undefined) {
      b = { tokens: this.opts.qps, at: t };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(this.opts.qps, b.tokens + ((t - b.at) * this.opts.qps) / 1000);
    b.at = t;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return true;
    }
    this.limited[this.opts.action]++;
    return false;
  }

  private exempt(address: string): boolean {
    for (const c of this.opts.exempt) if (cidrContains(c, address)) return true;
    return false;
  }

  /** The prefix an address counts under, as text; null for an address that is not one. */
  private keyOf(address: string): string | null {
    const ip = ipBytes(address);
    if (ip === null) return null;
    const bits = ip.family === 4 ? this.opts.v4Prefix : this.opts.v6Prefix;
    if (ip.family === 4 && bits === 32) return address;
    // The masked bytes as a short latin1 string: a few bytes of key per prefix.
    let key = ip.family === 4 ? '4' : '6';
    let left = bits;
    for (let i = 0; left > 0; i++, left -= 8) {
      const mask = left >= 8 ? 0xff : (0xff << (8 - left)) & 0xff;
      key += String.fromCharCode(ip.bytes[i]! & mask);
    }
    return key;
  }
}
