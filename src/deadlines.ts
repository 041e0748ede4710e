// Many deadlines, one timer. Every race of a pipeline gets the same timeout,
// so deadlines arrive in the order races start: an intrusive list sorted by
// time (insertion scans from the tail, O(1) in that order) replaces a Node
// Timeout object, its async-hooks bookkeeping and a timer-list insert and
// removal per race. The timer is armed for the earliest deadline and left
// alone when that entry goes away early; when it fires it expires what is
// due and re-arms for the new head, so a steady load costs one timer per
// timeout period, not one per race.
import { performance } from 'node:perf_hooks';

/** An entry: the list's links live in the object itself (no allocation per add). */
export interface Timed {
  dlPrev: Timed | null;
  dlNext: Timed | null;
  /** performance.now() milliseconds; NaN when not in a list. */
  dlAt: number;
  expire(): void;
}

/** Timers fire on libuv's millisecond clock: anything due within this is expired now, not re-armed for. */
const SLACK_MS = 1;

export class Deadlines {
  private head: Timed | null = null;
  private tail: Timed | null = null;
  private timer: NodeJS.Timeout | null = null;
  private armedAt = Infinity;

  /** Calls `t.expire()` at `at` (performance.now() ms) unless removed first. */
  add(t: Timed, at: number): void {
    t.dlAt = at;
    let after = this.tail;
    while (after !== null && after.dlAt > at) after = after.dlPrev;
    t.dlPrev = after;
    t.dlNext = after === null ? this.head : after.dlNext;
    if (t.dlNext === null) this.tail = t;
    else t.dlNext.dlPrev = t;
    if (after === null) this.head = t;
    else after.dlNext = t;
    if (at < this.armedAt) this.arm(at);
  }

  remove(t: Timed): void {
    if (Number.isNaN(t.dlAt)) return;
    if (t.dlPrev === null) this.head = t.dlNext;
    else t.dlPrev.dlNext = t.dlNext;
    if (t.dlNext === null) this.tail = t.dlPrev;
    else t.dlNext.dlPrev = t.dlPrev;
    t.dlPrev = t.dlNext = null;
    t.dlAt = NaN;
  }

  /** Expires every entry now and stops the timer (shutdown). */
  expireAll(): void {
    for (let t = this.head; t !== null; t = this.head) {
      this.remove(t);
      t.expire();
    }
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.armedAt = Infinity;
  }

  private arm(at: number): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.armedAt = at;
    this.timer = setTimeout(() => this.fire(), Math.max(0, at - performance.now()));
  }

  private fire(): void {
    this.timer = null;
    this.armedAt = Infinity;
    const now = performance.now() + SLACK_MS;
    let t = this.head;
    while (t !== null && t.dlAt <= now) {
      this.remove(t);
      t.expire();
      t = this.head;
    }
    if (t !== null) this.arm(t.dlAt);
  }
}
