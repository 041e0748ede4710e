// How late a strategy's timer really fires. hedged@Dms does not send its
// hedge D ms after the query: Node's timers run on libuv's millisecond loop
// clock, and the loop may be busy when one is due, so the hedge goes out at
// D + lag, where lag is anything from 0 (race.ts waits out a timer the
// truncated loop clock fired early) to several ms (a busy or CPU-starved
// process). For a hedge of a few ms over an upstream answering in a few ms,
// half a millisecond moves the hedge rate by tens of points, so the
// estimator needs the lag's distribution on this machine, under this load.
// An `all` run never arms a hedge timer, so a probe samples it: one race in
// PROBE_EVERY arms a PROBE_MS timer from the same place (the query's I/O
// callback, as the race starts) and notes how late it fired. Cost: one timer
// per PROBE_EVERY races; memory: SAMPLES doubles.
import { notBefore } from '../timer.js';
import { points } from './estimate.js';

export const PROBE_EVERY = 32;
export const PROBE_MS = 2;
/** Samples kept (a ring). */
export const SAMPLES = 256;
/** The lag is read as this many equally likely values (its quantiles at 0.1, 0.3, ... 0.9). */
export const POINTS = 5;

export class TimerLag {
  private readonly ring = new Float64Array(SAMPLES);
  private n = 0;
  private races = 0;

  /** Called as a race starts: arms a probe on one race in PROBE_EVERY. */
  maybeProbe(): void {
    if (++this.races % PROBE_EVERY !== 0) return;
    // Armed as race.ts arms a strategy timer (timer.ts), or it would not measure that timer's lag.
    notBefore(PROBE_MS, (late) => this.note(late), (t) => t.unref());
  }

  /** One observed lag, ms (tests feed these directly). */
  note(ms: number): void {
    this.ring[this.n++ % SAMPLES] = ms;
  }

  get samples(): number {
    return Math.min(this.n, SAMPLES);
  }

  /**
   * The lag as POINTS equally likely values, rounded to 0.01 ms; [0] before any
   * sample (the plan as configured). A mixture, not a mean: the hedge rate is
   * not linear in the lag.
   */
  points(): number[] {
    const k = this.samples;
    if (k === 0) return [0];
    return points(this.ring.slice(0, k).sort(), POINTS).map((x) => Math.round(x * 100) / 100);
  }
}
