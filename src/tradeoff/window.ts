// The sliding window of recent races the trade-off estimator reads: per race,
// when it started and, on the races that carry one, when a probe timer fired
// (lag.ts); per leg, its upstream's latency (from the leg's own start), how it
// ended and its bytes. Everything lives in typed arrays allocated once per
// upstream set: recording a leg is a few stores, no object per race.
//
// Memory bound: WINDOW_RACES x (22 + 9 x upstreams) bytes, upstreams capped at
// WINDOW_UPSTREAMS: 270 KB for 3 upstreams, 1.4 MB at most.

/** Races kept; the oldest is overwritten by the next. */
export const WINDOW_RACES = 8192;
/** Upstreams of one set that are recorded; legs to later ones are not. */
export const WINDOW_UPSTREAMS = 16;

/** Races a second that carry a probe timer at most: its cost is bounded at any query rate. */
export const PROBES_PER_S = 256;
/** Delays probed before the engine has named any (hedged's shortest). */
export const FIRST_PROBE_DELAYS: readonly number[] = [2];

/** How a leg ended (one byte per leg). */
export const LEG_NONE = 0;
/** NOERROR or NXDOMAIN: an answer that can win. */
export const LEG_GOOD = 1;
/** No reply by the deadline: its latency is censored there. */
export const LEG_TIMEOUT = 2;
/** Network, TCP or TLS error: never answers. */
export const LEG_ERROR = 3;
/** A losing RCODE r is stored as LEG_LOSING + r (r < 24). */
export const LEG_LOSING = 8;

export class RaceWindow {
  /** Which upstream list's races are kept (identity); races on another list (per-domain routes) are not. */
  set: readonly unknown[];
  readonly width: number;
  readonly capacity: number;
  /** Sequence number of the race held in each slot; -1: empty. */
  readonly seqOf: Float64Array;
  /** performance.now() (ms) when each race started. */
  readonly startedAt: Float64Array;
  /** Per slot x upstream: latency in ms from the leg's start (for a timeout, when it was cut off). */
  readonly latency: Float32Array;
  readonly outcome: Uint8Array;
  /** Bytes sent plus bytes received for the leg. */
  readonly bytes: Uint32Array;
  /** Per slot: the delay (ms) of the race's probe timer; 0: none. */
  readonly probeMs: Uint16Array;
  /** Per slot: when the probe fired, ms after the race started; NaN: not (yet). */
  readonly probeAt: Float32Array;
  /** The delays to probe, taken in turn (the engine names the strategy timers it predicts). */
  probeDelays: readonly number[] = FIRST_PROBE_DELAYS;
  private nextProbeAt = -Infinity;
  private probeTurn = 0;
  private seq = 0;
  /** Races that asked every healthy upstream though the strategy would not have (--explore-share). */
  explored = 0;

  constructor(set: readonly unknown[], capacity = WINDOW_RACES) {
    this.set = set;
    this.capacity = capacity;
    this.width = Math.max(1, Math.min(WINDOW_UPSTREAMS, set.length));
    this.seqOf = new Float64Array(capacity).fill(-1);
    this.startedAt = new Float64Array(capacity);
    this.latency = new Float32Array(capacity * this.width);
    this.outcome = new Uint8Array(capacity * this.width);
    this.bytes = new Uint32Array(capacity * this.width);
    this.probeMs = new Uint16Array(capacity);
    this.probeAt = new Float32Array(capacity);
  }

  /** A race on `set` starts at `now`: its handle for leg(). */
  begin(now: number): number {
    const seq = this.seq++;
    const slot = seq % this.capacity;
    this.seqOf[slot] = seq;
    this.startedAt[slot] = now;
    // A loop, not fill(): the row is a few bytes and this runs once per race.
    const o = this.outcome;
    for (let k = slot * this.width, end = k + this.width; k < end; k++) o[k] = LEG_NONE;
    this.probeMs[slot] = 0;
    return seq;
  }

  /**
   * The delay (ms) of a probe timer for the race `handle` that started at
   * `now`, 0 for none: one race per 1/PROBES_PER_S s, the delays in turn. The
   * caller arms it (lag.ts armProbe) and reports with probed().
   */
  probeFor(handle: number, now: number): number {
    if (now < this.nextProbeAt || this.probeDelays.length === 0) return 0;
    this.nextProbeAt = now + 1000 / PROBES_PER_S;
    const ms = this.probeDelays[this.probeTurn++ % this.probeDelays.length]!;
    const slot = handle % this.capacity;
    this.probeMs[slot] = ms;
    this.probeAt[slot] = NaN;
    return ms;
  }

  /** The probe of race `handle` fired `ms` after the race started; ignored when the slot was reused meanwhile. */
  probed(handle: number, ms: number): void {
    const slot = handle % this.capacity;
    if (this.seqOf[slot] === handle) this.probeAt[slot] = ms;
  }

  /** Leg to upstream `i` of the set ended; ignored when the race's slot was reused meanwhile. */
  leg(handle: number, i: number, ms: number, outcome: number, bytes: number): void {
    const slot = handle % this.capacity;
    if (this.seqOf[slot] !== handle || i >= this.width) return;
    const k = slot * this.width + i;
    this.latency[k] = ms;
    this.outcome[k] = outcome;
    this.bytes[k] = bytes;
  }

  /** Races begun so far (for tests and the explore count's denominator). */
  get races(): number {
    return this.seq;
  }
}
