// Per-upstream counters kept as plain numbers: the hot path only increments
// fields; the metrics layer reads them when Prometheus scrapes.

export const ERROR_KINDS = ['timeout', 'servfail', 'refused', 'malformed', 'mismatch', 'network', 'tcp', 'tls', 'ignored', 'rebind', 'https'] as const;
export type ErrorKind = (typeof ERROR_KINDS)[number];

/** Kinds of negative answer another upstream's positive answer overruled. */
export const OVERRULED_KINDS = ['nxdomain', 'nodata'] as const;
export type OverruledKind = (typeof OVERRULED_KINDS)[number];
/** Upper bounds (seconds) of the latency histogram buckets, Prometheus style. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** The slot of `value` in a histogram with these upper bounds (non-cumulative counts, last slot +Inf). */
export function bucketIndex(bounds: readonly number[], value: number): number {
  let i = 0;
  while (i < bounds.length && value > bounds[i]!) i++;
  return i;
}

const RING = 128;

/** A histogram for export plus a ring of recent samples for cheap p50/p95 reads. */
export class LatencyTracker {
  /** Non-cumulative counts; the last slot is +Inf. */
  readonly buckets = new Float64Array(LATENCY_BUCKETS.length + 1);
  sum = 0;
  count = 0;
  private readonly ring = new Float64Array(RING);
  private filled = 0;
  private next = 0;
  private sorted: Float64Array | null = null;

  observe(seconds: number): void {
    this.buckets[bucketIndex(LATENCY_BUCKETS, seconds)]!++;
    this.sum += seconds;
    this.count++;
    this.ring[this.next] = seconds;
    this.next = (this.next + 1) % RING;
    if (this.filled < RING) this.filled++;
    this.sorted = null;
  }

  /** Quantile of the last 128 samples in seconds, NaN when there are none. */
  quantile(q: number): number {
    if (this.filled === 0) return NaN;
    if (this.sorted === null) this.sorted = this.ring.slice(0, this.filled).sort();
    const idx = Math.min(this.filled - 1, Math.floor(q * this.filled));
    return this.sorted[idx]!;
  }
}

/** Seconds between snapshots of the recent window, and how many are kept: the window is the last minute. */
export const RECENT_STEP_S = 10;
const RECENT_STEPS = 6;

interface Snapshot {
  queries: number;
  wins: number;
  buckets: Float64Array;
}

/**
 * The last minute of an upstream, beside its totals since start: snapshots
 * of the counters taken every RECENT_STEP_S by a timer, so the hot path pays
 * nothing. The window is now minus the oldest snapshot (50 to 60 s once full).
 */
export class RecentWindow {
  private readonly ring: Snapshot[] = [];

  constructor(private readonly stats: UpstreamStats) {
    this.sample();
  }

  sample(): void {
    const s = this.stats;
    if (this.ring.length > RECENT_STEPS) this.ring.shift();
    this.ring.push({ queries: s.queries, wins: s.wins, buckets: s.latency.buckets.slice() });
  }

  /** Queries, wins and non-cumulative latency bucket counts since the oldest snapshot. */
  read(): { queries: number; wins: number; buckets: Float64Array } {
    const s = this.stats;
    const old = this.ring[0]!;
    const buckets = s.latency.buckets.slice();
    for (let i = 0; i < buckets.length; i++) buckets[i]! -= old.buckets[i]!;
    return { queries: s.queries - old.queries, wins: s.wins - old.wins, buckets };
  }
}

/** Quantile of non-cumulative LATENCY_BUCKETS counts (last slot +Inf), interpolated in its bucket; NaN when empty. */
export function bucketsQuantile(buckets: Float64Array, q: number): number {
  return histogramQuantile(LATENCY_BUCKETS, buckets, q);
}

/**
 * The q-quantile of a histogram, interpolated linearly inside its bucket (as
 * Prometheus's histogram_quantile does). `counts` are per bucket, not
 * cumulative; counts[bounds.length] is the +Inf bucket, read as its lower bound.
 * NaN when empty.
 */
export function histogramQuantile(bounds: readonly number[], counts: ArrayLike<number>, q: number): number {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i]!;
  if (total === 0) return NaN;
  const rank = q * total;
  let acc = 0;
  let lo = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i]!;
    const hi = i < bounds.length ? bounds[i]! : Infinity;
    if (acc + c >= rank && c > 0) return hi === Infinity ? lo : lo + ((hi - lo) * (rank - acc)) / c;
    acc += c;
    lo = hi;
  }
  return lo;
}

export class UpstreamStats {
  queries = 0;
  /** performance.now() of the first query sent; 0 before it. */
  firstSentAt = 0;
  bytesSent = 0;
  bytesReceived = 0;
  wins = 0;
  losses = 0;
  inflight = 0;
  /** Replies by RCODE (0..23 covers the extended ones raced meets). */
  readonly rcodes = new Float64Array(24);
  readonly errors: Record<ErrorKind, number> = {
    timeout: 0,
    servfail: 0,
    refused: 0,
    malformed: 0,
    mismatch: 0,
    network: 0,
    tcp: 0,
    tls: 0,
    ignored: 0,
    rebind: 0,
    https: 0,
  };
  /** Negative answers from this upstream that another upstream's positive answer overruled. */
  readonly overruled: Record<OverruledKind, number> = { nxdomain: 0, nodata: 0 };
  readonly latency = new LatencyTracker();
  readonly recent = new RecentWindow(this);
}
