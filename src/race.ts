// One race: the strategy says which upstreams to ask and when; this file
// alone says what wins.
//
// The race rule:
// - a reply counts only if it is valid for its leg (wire/match.ts);
// - NOERROR (with or without answers) and NXDOMAIN win, the first one ends the race;
// - SERVFAIL, REFUSED, NOTIMP, FORMERR and the rest lose while any leg is
//   still pending or the strategy still has upstreams to ask;
// - once every leg has lost: the upstreams' common losing RCODE if they all
//   gave the same one, else SERVFAIL; at the deadline: SERVFAIL.
// Legs still open after a win are kept until they answer or the deadline
// passes, so that their latency and loss are recorded, then released.
import { performance } from 'node:perf_hooks';
import { Rcode } from './wire/constants.js';
import type { Scan } from './wire/message.js';
import type { Leg, LegOutcome, Upstream } from './upstream/upstream.js';
import type { RaceView, Strategy } from './strategy/strategy.js';
import { LatencyTracker } from './upstream/stats.js';

export type RaceResult =
  | { won: true; reply: Buffer; scan: Scan; winner: Upstream }
  | { won: false; rcode: number; reason: 'lost' | 'timeout' };

/** Upper bounds of the fan-out histogram (legs per race). */
export const FANOUT_BUCKETS = [1, 2, 3, 4, 6, 8, 16];

/** Race-level counters, plain numbers for the metrics layer. */
export class RaceStats {
  /** Races by number of legs sent, non-cumulative per FANOUT_BUCKETS, last slot +Inf. */
  readonly fanout = new Float64Array(FANOUT_BUCKETS.length + 1);
  races = 0;
  /** Upstream legs sent, summed over races (fan-out = legs / races). */
  legs = 0;
  /** Legs that did not produce the answer. */
  wasted = 0;
  failed = 0;
  timedOut = 0;
  /** Seconds between the winner and the next valid reply. */
  readonly margin = new LatencyTracker();
}

interface Entry {
  leg: Leg;
  upstream: Upstream;
  open: boolean;
}

const MIXED = -1;
const NONE = -2;

export function isWinningRcode(rcode: number): boolean {
  return rcode === Rcode.NOERROR || rcode === Rcode.NXDOMAIN;
}

export class Race implements RaceView {
  private readonly entries: Entry[] = [];
  private openLegs = 0;
  private settled = false;
  private winner: Upstream | null = null;
  private wonAt = 0;
  private marginTaken = false;
  private losing = NONE;
  private deadline: NodeJS.Timeout | null = null;
  private delayTimer: NodeJS.Timeout | null = null;
  plan: readonly Upstream[];

  constructor(
    private readonly query: Buffer,
    private readonly qEnd: number,
    readonly upstreams: readonly Upstream[],
    private readonly strategy: Strategy,
    private readonly stats: RaceStats,
    private readonly wantTtls: boolean,
    private readonly done: (r: RaceResult) => void,
  ) {
    this.plan = upstreams;
  }

  start(timeoutMs: number): void {
    this.stats.races++;
    this.deadline = setTimeout(() => this.onDeadline(), timeoutMs);
    this.launch(this.strategy.first(this));
    if (this.openLegs === 0) return this.lose();
    this.scheduleDelay();
  }

  asked(u: Upstream): boolean {
    for (const e of this.entries) if (e.upstream === u) return true;
    return false;
  }

  pendingUpstreams(): Upstream[] {
    const out: Upstream[] = [];
    for (const e of this.entries) if (e.open) out.push(e.upstream);
    return out;
  }

  private launch(list: readonly Upstream[]): void {
    for (const u of list) {
      if (this.asked(u)) continue;
      const entry = { upstream: u, open: true } as Entry;
      this.entries.push(entry);
      this.openLegs++;
      this.stats.legs++;
      entry.leg = u.ask(this.query, this.qEnd, this.wantTtls, (o) => this.onOutcome(entry, o));
    }
  }

  private scheduleDelay(): void {
    if (this.settled) return;
    const ms = this.strategy.delay(this);
    if (ms < 0) return;
    this.delayTimer = setTimeout(() => {
      this.delayTimer = null;
      if (this.settled) return;
      const before = this.entries.length;
      this.launch(this.strategy.next(this, 'delay'));
      if (this.entries.length > before) this.scheduleDelay();
    }, ms);
  }

  private onOutcome(entry: Entry, o: LegOutcome): void {
    entry.open = false;
    this.openLegs--;
    if (this.settled) {
      if (o.ok && this.winner !== null && !this.marginTaken) {
        this.marginTaken = true;
        this.stats.margin.observe((performance.now() - this.wonAt) / 1000);
      }
      return this.maybeCleanup();
    }
    if (o.ok && isWinningRcode(o.rcode)) return this.win(entry.upstream, o.reply, o.scan);
    const rcode = o.ok ? o.rcode : Rcode.SERVFAIL;
    this.losing = this.losing === NONE || this.losing === rcode ? rcode : MIXED;
    this.launch(this.strategy.next(this, 'lost'));
    if (this.openLegs === 0) this.lose();
  }

  private win(u: Upstream, reply: Buffer, scan: Scan): void {
    this.settled = true;
    this.winner = u;
    this.wonAt = performance.now();
    u.stats.wins++;
    this.clearDelay();
    this.done({ won: true, reply, scan, winner: u });
    this.maybeCleanup();
  }

  private lose(): void {
    this.settled = true;
    this.stats.failed++;
    this.clearDelay();
    const rcode = this.losing >= 0 ? this.losing : Rcode.SERVFAIL;
    this.done({ won: false, rcode, reason: 'lost' });
    this.maybeCleanup();
  }

  private onDeadline(): void {
    this.deadline = null;
    if (!this.settled) {
      this.settled = true;
      this.stats.timedOut++;
      this.clearDelay();
      this.done({ won: false, rcode: Rcode.SERVFAIL, reason: 'timeout' });
    }
    for (const e of this.entries) {
      if (!e.open) continue;
      e.open = false;
      this.openLegs--;
      e.leg.abandon(true);
    }
    this.maybeCleanup();
  }

  private clearDelay(): void {
    if (this.delayTimer) clearTimeout(this.delayTimer);
    this.delayTimer = null;
  }

  private maybeCleanup(): void {
    if (this.openLegs > 0) return;
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = null;
    for (const e of this.entries) if (e.upstream !== this.winner) e.upstream.stats.losses++;
    const n = this.entries.length;
    this.stats.wasted += n - (this.winner ? 1 : 0);
    let b = 0;
    while (b < FANOUT_BUCKETS.length && n > FANOUT_BUCKETS[b]!) b++;
    this.stats.fanout[b]!++;
  }

  /** Ends the race now (shutdown): open legs are released, the client gets SERVFAIL. */
  abort(): void {
    if (this.deadline) clearTimeout(this.deadline);
    this.onDeadline();
  }
}
