// Up/down state of one upstream, and whether its replies are any use.
//
// Down: strategies skip it (unless every upstream is down: then all are
// asked anyway). A down upstream is probed (`. NS`) on a short fixed interval
// with jitter, so one that comes back is used again within about a second,
// not after a backoff that grew while it was away. An upstream that flaps
// (down again soon after coming back) is probed less often, up to a few seconds.
//
// Failing: it answers, but for a while only with SERVFAIL or REFUSED. It is
// not down (it may be right: the names asked may be broken), but it is not
// healthy either: `raced status`, the metrics and /healthz say so.
import { performance } from 'node:perf_hooks';

/** Consecutive failures (timeouts, network errors) that mark an upstream down. */
export const FAILS_TO_DOWN = 3;
/** First probe after an upstream goes down. */
const FIRST_PROBE_MS = 200;
/** Then every PROBE_MS (±20%), doubled per recent flap up to MAX_PROBE_MS. */
export const PROBE_MS = 1000;
const MAX_PROBE_MS = 4000;
/** Down again within this long of coming back counts as a flap. */
const FLAP_WINDOW_MS = 10_000;
/** Failing: at least this many SERVFAIL/REFUSED replies and no valid one for FAILING_AFTER_MS. */
export const FAILING_REPLIES = 3;
export const FAILING_AFTER_MS = 5_000;

export class Health {
  up = true;
  private fails = 0;
  private flaps = 0;
  private upAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** performance.now() of the last valid (NOERROR/NXDOMAIN) reply; -Infinity: none yet. */
  lastGood = -Infinity;
  /** SERVFAIL/REFUSED replies since then, and when the first of them came. */
  private bad = 0;
  private badSince = 0;
  /** Failing, as last told to `onFailing`. */
  private toldFailing = false;

  /**
   * `probe` asks the upstream something cheap and calls back with whether a
   * valid reply came back in time.
   */
  constructor(
    private readonly probe: (done: (alive: boolean) => void) => void,
    private readonly onChange: (up: boolean) => void,
    private readonly onFailing: (failing: boolean) => void = () => {},
  ) {}

  /** A reply came; `good`: NOERROR or NXDOMAIN. `at`: performance.now(). */
  success(good = true, at = 0): void {
    this.fails = 0;
    if (good) {
      this.lastGood = at;
      this.bad = 0;
      if (this.toldFailing) this.onFailing((this.toldFailing = false));
    } else {
      if (this.bad++ === 0) this.badSince = at;
      if (!this.toldFailing && this.failing(at)) this.onFailing((this.toldFailing = true));
    }
    if (!this.up) this.setUp();
  }

  failure(): void {
    if (++this.fails >= FAILS_TO_DOWN) this.markDown();
  }

  /** Answering, but only SERVFAIL/REFUSED for FAILING_AFTER_MS or more. */
  failing(now = performance.now()): boolean {
    return this.bad >= FAILING_REPLIES && now - this.badSince >= FAILING_AFTER_MS && now - this.lastGood >= FAILING_AFTER_MS;
  }

  /** 'up', 'failing' or 'down', for status and the log. */
  state(now = performance.now()): 'up' | 'failing' | 'down' {
    return !this.up ? 'down' : this.failing(now) ? 'failing' : 'up';
  }

  /** Down at once (ordered mode: one per-try timeout is enough; a stream upstream that cannot connect). */
  markDown(): void {
    if (!this.up || this.stopped) return;
    this.up = false;
    this.flaps = performance.now() - this.upAt < FLAP_WINDOW_MS ? this.flaps + 1 : 0;
    this.onChange(false);
    this.schedule(FIRST_PROBE_MS);
  }

  private setUp(): void {
    this.up = true;
    this.fails = 0;
    this.upAt = performance.now();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.onChange(true);
  }

  /**
   * The next probe goes out on time whether or not the last one has ended: a
   * server that comes back answers the new one at once, while the old one
   * may still be waiting out its timeout (a black-holed server).
   */
  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.stopped || this.up) return;
      this.probe((alive) => {
        if (alive && !this.stopped && !this.up) this.setUp();
      });
      const base = Math.min(PROBE_MS * 2 ** this.flaps, MAX_PROBE_MS);
      this.schedule(base * (0.8 + 0.4 * Math.random()));
    }, ms);
    this.timer.unref();
  }

  /** No more probes and no more state changes (the upstream is gone, or raced is stopping). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
