// `--strategy auto`'s choice among the predicted options, with hysteresis:
// pure (the engine passes the clock), so it is tested without traffic.
import { cheapestMeeting, type Prediction } from './estimate.js';

/** Races the window must hold before auto trusts it; below, `all`. */
export const AUTO_MIN_RACES = 300;
/** After an upstream goes up or down, `all` for this long: the window still shows the old state. */
export const AUTO_SETTLE_MS = 30_000;
/** A cheaper option is taken only this long after the last change... */
export const AUTO_DWELL_MS = 10_000;
/** ...if it saves at least this share of the upstream queries and its p99 is below HEAD_ROOM x target. */
const SAVING = 0.1;
const HEAD_ROOM = 0.9;
/** The option in use is kept while its p99 stays within this factor of the target. */
const SLACK = 1.1;

export class AutoChooser {
  chosen = 'all';
  private changedAt = -Infinity;
  /** `all` was forced (window too small, an upstream changed state): leaving it waits for no dwell time. */
  private forced = true;

  constructor(readonly targetMs: number) {}

  /**
   * The option to use from now: `rows` as predicted, `races` in the window,
   * `settledSince` when the upstreams' states last changed (ms, same clock as `now`).
   * Returns true when the choice changed.
   */
  update(rows: readonly Prediction[], races: number, settledSince: number, now: number): boolean {
    const next = this.pick(rows, races, settledSince, now);
    if (next === this.chosen) return false;
    this.chosen = next;
    this.changedAt = now;
    return true;
  }

  private pick(rows: readonly Prediction[], races: number, settledSince: number, now: number): string {
    if (races < AUTO_MIN_RACES || now - settledSince < AUTO_SETTLE_MS) {
      this.forced = true;
      return 'all';
    }
    const best = cheapestMeeting(rows, this.targetMs);
    if (best === null) return 'all';
    if (this.forced) {
      this.forced = false;
      const roomy = cheapestMeeting(rows, this.targetMs * HEAD_ROOM);
      return roomy !== null && roomy.p99_ms! <= this.targetMs * HEAD_ROOM ? roomy.option : best.option;
    }
    const cur = rows.find((r) => r.option === this.chosen);
    // The option in use is gone (an upstream went away) or has no prediction: take the best at once.
    if (cur === undefined || cur.p99_ms === null || cur.upstream_queries_per_query === null) return best.option;
    const target = this.targetMs;
    if (cur.p99_ms > target * SLACK) {
      // Missing the target: the best now, unless nothing meets it and the best is hardly better.
      if (best.p99_ms! <= target || best.p99_ms! < cur.p99_ms * 0.95) return best.option;
      return this.chosen;
    }
    // Meeting it: save upstream queries only by a clear margin, with head room under the target, and not too often.
    const cheaper = cheapestMeeting(rows, target * HEAD_ROOM);
    if (
      cheaper !== null &&
      now - this.changedAt >= AUTO_DWELL_MS &&
      cheaper.p99_ms! <= target * HEAD_ROOM &&
      cheaper.upstream_queries_per_query! <= cur.upstream_queries_per_query * (1 - SAVING)
    ) {
      return cheaper.option;
    }
    return this.chosen;
  }
}
