// The sliding window of recent races the trade-off estimator reads: per race,
// when it started and, on the races that carry one, when a probe timer fired
// (lag.ts); per leg, its upstream's latency (from the leg's own start), how it
// ended and its bytes. Everything lives in typed arrays allocated once per
// upstream set: recording a leg is a few stores, no object per race.
//
// Memory bound: WINDOW_RACES x (17 + 6 x PROBE_SLOTS + 10 x upstreams) bytes,
// upstreams capped at WINDOW_UPSTREAMS: 778 KB for 3 upstreams, 1.8 MB at most.
//
// Races younger than the timeout may still have legs out: the engine does not
// read them. Recording every race, 8192 races at 3,000 QPS span 2.7 s, under
// the default 4 s timeout, and nothing was left to predict from. So a window
// made with a timeout keeps the timeout plus WINDOW_SPAN_S of races: a race is
// recorded with probability recordPerS / (races a second, averaged over
// RATE_AVERAGE_S), ROOM_FACTOR times that while the slot it would take is
// empty or holds a race older than timeout + WINDOW_SPAN_S (a filling window
// fills sooner). The probability follows the average, not each second's
// count, so a busy second is sampled as densely as a quiet one and the sample
// stays a sample of queries (bursts, when tails grow, weigh what they weigh).
// It is drawn at random, not every n-th race, so it cannot fall in step with
// --explore-share's every 50th race or a client's paced queries. One second
// records at most a quarter of the window; only a surge far above the average
// (or the very first second, before there is one) reaches that, and then its
// first races are what is kept.

/** Races kept; the oldest is overwritten by the next. */
export const WINDOW_RACES = 8192;
/** Seconds of races past the timeout the window keeps at any query rate. */
export const WINDOW_SPAN_S = 30;
/** The race rate the sampling probability follows is averaged over about this many seconds. */
export const RATE_AVERAGE_S = 10;
/** What the rate average keeps of itself each second. */
const DECAY = Math.exp(-1 / RATE_AVERAGE_S);
/** While the window has room (see skip()), races are recorded this many times as densely. */
export const ROOM_FACTOR = 3;
/** One second records at most capacity / this many races, so one surge cannot overwrite most of the window. */
export const SECOND_CAP_DIVISOR = 4;
/** Upstreams of one set that are recorded; legs to later ones are not. */
export const WINDOW_UPSTREAMS = 16;

/** Races a second that carry probe timers at most: their cost is bounded at any query rate. */
export const PROBES_PER_S = 128;
/** Probe timers one race carries at most (one per delay the engine predicts). */
export const PROBE_SLOTS = 8;
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
  /** 1: the leg went out after the query (a hedge, a loss's replacement, a later try); its latency runs from then. */
  readonly later: Uint8Array;
  /** Per slot: how many probe timers the race carries. */
  readonly probes: Uint8Array;
  /** Per slot x PROBE_SLOTS: each probe's delay (ms). */
  readonly probeMs: Uint16Array;
  /** Per slot x PROBE_SLOTS: when each probe fired, ms after the race started; NaN: not (yet). */
  readonly probeAt: Float32Array;
  /** The delays to probe (the engine names the strategy timers it predicts; at most PROBE_SLOTS are used). */
  probeDelays: readonly number[] = FIRST_PROBE_DELAYS;
  private nextProbeAt = -Infinity;
  private seq = 0;
  /** How long a race is kept at least (ms): the timeout plus WINDOW_SPAN_S; Infinity: every race is recorded. */
  readonly keepMs: number;
  /** Races a second the sample aims at once the window is full: capacity / keepMs. */
  readonly recordPerS: number;
  /** Races one second records at most. */
  private readonly secondCap: number;
  /** Races begun a second, averaged over RATE_AVERAGE_S; NaN before the first second ends. */
  private rate = NaN;
  /** The share of races recorded at random, from `rate`. */
  private share = 1;
  private secondEnds = -Infinity;
  /** Races begun and races recorded in the second that ends at secondEnds. */
  private begun = 0;
  private recorded = 0;

  /** `timeoutMs`: the race deadline, for the sampling (see above); null records every race. */
  constructor(set: readonly unknown[], capacity = WINDOW_RACES, timeoutMs: number | null = null) {
    this.set = set;
    this.capacity = capacity;
    this.keepMs = timeoutMs === null ? Infinity : timeoutMs + WINDOW_SPAN_S * 1000;
    this.recordPerS = (capacity * 1000) / this.keepMs;
    this.secondCap = capacity / SECOND_CAP_DIVISOR;
    this.width = Math.max(1, Math.min(WINDOW_UPSTREAMS, set.length));
    this.seqOf = new Float64Array(capacity).fill(-1);
    this.startedAt = new Float64Array(capacity);
    this.latency = new Float32Array(capacity * this.width);
    this.outcome = new Uint8Array(capacity * this.width);
    this.bytes = new Uint32Array(capacity * this.width);
    this.later = new Uint8Array(capacity * this.width);
    this.probes = new Uint8Array(capacity);
    this.probeMs = new Uint16Array(capacity * PROBE_SLOTS);
    this.probeAt = new Float32Array(capacity * PROBE_SLOTS);
  }

  /** A race on `set` starts at `now`: its handle for leg(), or -1 when it is not recorded (see the sampling above). */
  begin(now: number): number {
    if (this.keepMs !== Infinity && this.skip(now)) return -1;
    const seq = this.seq++;
    const slot = seq % this.capacity;
    this.seqOf[slot] = seq;
    this.startedAt[slot] = now;
    // A loop, not fill(): the row is a few bytes and this runs once per race.
    const o = this.outcome;
    for (let k = slot * this.width, end = k + this.width; k < end; k++) o[k] = LEG_NONE;
    this.probes[slot] = 0;
    return seq;
  }

  /** Whether the sampling leaves out the race that starts at `now`. */
  private skip(now: number): boolean {
    if (now >= this.secondEnds) {
      // Seconds on a fixed grid: every whole second without a race counts as 0 in the average.
      const first = this.secondEnds === -Infinity;
      const idle = first ? 0 : Math.floor((now - this.secondEnds) / 1000);
      if (!first) this.rate = (Number.isNaN(this.rate) ? this.begun : this.rate * DECAY + this.begun * (1 - DECAY)) * DECAY ** idle;
      this.share = this.rate > this.recordPerS ? this.recordPerS / this.rate : 1;
      this.secondEnds = first ? now + 1000 : this.secondEnds + (idle + 1) * 1000;
      this.begun = 0;
      this.recorded = 0;
    }
    this.begun++;
    if (this.recorded >= this.secondCap) return true;
    // Room without giving up any of keepMs (an empty slot, or one whose race is older than that):
    // ROOM_FACTOR times as dense, still at random, so a filling window keeps a spread of each second.
    const slot = this.seq % this.capacity;
    const room = this.seqOf[slot]! < 0 || this.startedAt[slot]! < now - this.keepMs;
    const p = room ? ROOM_FACTOR * this.share : this.share;
    if (p < 1 && Math.random() >= p) return true;
    this.recorded++;
    return false;
  }

  /**
   * The delays (ms) of the probe timers for the race `handle` that started at
   * `now`, null for none: one race per 1/PROBES_PER_S s carries one timer per
   * delay, so each delay's probes see the same races. The caller arms them
   * (lag.ts armProbes) and reports with probed().
   */
  probeFor(handle: number, now: number): readonly number[] | null {
    const n = Math.min(this.probeDelays.length, PROBE_SLOTS);
    if (now < this.nextProbeAt || n === 0) return null;
    this.nextProbeAt = now + 1000 / PROBES_PER_S;
    const slot = handle % this.capacity;
    this.probes[slot] = n;
    for (let k = 0; k < n; k++) {
      this.probeMs[slot * PROBE_SLOTS + k] = this.probeDelays[k]!;
      this.probeAt[slot * PROBE_SLOTS + k] = NaN;
    }
    return n === this.probeDelays.length ? this.probeDelays : this.probeDelays.slice(0, n);
  }

  /** Probe `k` of race `handle` fired `ms` after the race started; ignored when the slot was reused meanwhile. */
  probed(handle: number, k: number, ms: number): void {
    const slot = handle % this.capacity;
    if (this.seqOf[slot] === handle && k < this.probes[slot]!) this.probeAt[slot * PROBE_SLOTS + k] = ms;
  }

  /** Leg to upstream `i` of the set ended; ignored when the race's slot was reused meanwhile. */
  leg(handle: number, i: number, ms: number, outcome: number, bytes: number, sentLater = false): void {
    const slot = handle % this.capacity;
    if (this.seqOf[slot] !== handle || i >= this.width) return;
    const k = slot * this.width + i;
    this.latency[k] = ms;
    this.outcome[k] = outcome;
    this.bytes[k] = bytes;
    this.later[k] = sentLater ? 1 : 0;
  }

  /** Races recorded so far (tests). */
  get races(): number {
    return this.seq;
  }
}
