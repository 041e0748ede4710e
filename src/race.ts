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
//
// The hot path allocates little here: the race is its legs' owner (no
// closure per leg), outcomes arrive as arguments (no object per reply), and
// the deadline is a link in the pipeline's shared list (no timer per race).
import { performance } from 'node:perf_hooks';
import { Rcode } from './wire/constants.js';
import type { Scan } from './wire/message.js';
import type { Leg, LegOwner, Upstream } from './upstream/upstream.js';
import type { RaceView, Strategy } from './strategy/strategy.js';
import type { Deadlines, Timed } from './deadlines.js';
import { LatencyTracker } from './upstream/stats.js';

/** Who hears how a race ended: exactly one call per race. */
export interface RaceOwner {
  raceWon(reply: Buffer, scan: Scan, winner: Upstream): void;
  raceLost(rcode: number, reason: 'lost' | 'timeout'): void;
}

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

const MIXED = -1;
const NONE = -2;

export function isWinningRcode(rcode: number): boolean {
  return rcode === Rcode.NOERROR || rcode === Rcode.NXDOMAIN;
}

export class Race implements RaceView, LegOwner, Timed {
  /** One slot per upstream: a race asks each at most once (an array grown from empty reserves 16). */
  private readonly legs: Leg[];
  private nLegs = 0;
  private openLegs = 0;
  private settled = false;
  private winner: Upstream | null = null;
  /** performance.now() of the win; 0 once the margin to the next valid reply is taken. */
  private wonAt = 0;
  private losing = NONE;
  private delayTimer: NodeJS.Timeout | null = null;
  plan: readonly Upstream[];
  dlPrev: Timed | null = null;
  dlNext: Timed | null = null;
  dlAt = NaN;

  constructor(
    private readonly query: Buffer,
    private readonly qEnd: number,
    readonly upstreams: readonly Upstream[],
    private readonly strategy: Strategy,
    private readonly stats: RaceStats,
    private readonly deadlines: Deadlines,
    private readonly wantTtls: boolean,
    private readonly owner: RaceOwner,
  ) {
    this.plan = upstreams;
    this.legs = new Array<Leg>(upstreams.length);
  }

  /** `now`: performance.now() when the client's query came in; the deadline runs from there. */
  start(timeoutMs: number, now: number): void {
    this.stats.races++;
    this.deadlines.add(this, now + timeoutMs);
    this.launch(this.strategy.first(this), now);
    if (this.openLegs === 0) return this.lose();
    this.scheduleDelay();
  }

  asked(u: Upstream): boolean {
    for (let i = 0; i < this.nLegs; i++) if (this.legs[i]!.upstream === u) return true;
    return false;
  }

  pendingUpstreams(): Upstream[] {
    const out: Upstream[] = [];
    for (let i = 0; i < this.nLegs; i++) if (this.legs[i]!.open) out.push(this.legs[i]!.upstream);
    return out;
  }

  private launch(list: readonly Upstream[], now: number): void {
    for (let i = 0; i < list.length; i++) {
      const u = list[i]!;
      if (this.asked(u)) continue;
      this.openLegs++;
      this.stats.legs++;
      this.legs[this.nLegs++] = u.ask(this.query, this.qEnd, this.wantTtls, this, now);
    }
  }

  private scheduleDelay(): void {
    if (this.settled) return;
    const ms = this.strategy.delay(this);
    if (ms < 0) return;
    this.delayTimer = setTimeout(() => {
      this.delayTimer = null;
      if (this.settled) return;
      const before = this.nLegs;
      this.launch(this.strategy.next(this, 'delay'), performance.now());
      if (this.nLegs > before) this.scheduleDelay();
    }, ms);
  }

  /** Once settled, a later reply only needs to be checked and counted, not kept. */
  get decided(): boolean {
    return this.settled;
  }

  legAnswered(leg: Leg, reply: Buffer, scan: Scan, at: number): void {
    this.openLegs--;
    if (this.settled) {
      if (this.wonAt > 0) {
        this.stats.margin.observe((at - this.wonAt) / 1000);
        this.wonAt = 0;
      }
      return this.maybeCleanup();
    }
    if (isWinningRcode(scan.rcode)) return this.win(leg.upstream, reply, scan, at);
    this.lost(scan.rcode);
  }

  legFailed(): void {
    this.openLegs--;
    if (this.settled) return this.maybeCleanup();
    this.lost(Rcode.SERVFAIL);
  }

  private lost(rcode: number): void {
    this.losing = this.losing === NONE || this.losing === rcode ? rcode : MIXED;
    this.launch(this.strategy.next(this, 'lost'), performance.now());
    if (this.openLegs === 0) this.lose();
  }

  private win(u: Upstream, reply: Buffer, scan: Scan, at: number): void {
    this.settled = true;
    this.winner = u;
    this.wonAt = at;
    u.stats.wins++;
    this.clearDelay();
    this.owner.raceWon(reply, scan, u);
    this.maybeCleanup();
  }

  private lose(): void {
    this.settled = true;
    this.stats.failed++;
    this.clearDelay();
    this.owner.raceLost(this.losing >= 0 ? this.losing : Rcode.SERVFAIL, 'lost');
    this.maybeCleanup();
  }

  /** The deadline passed (Timed): SERVFAIL if nothing won; open legs end as timeouts. */
  expire(): void {
    if (!this.settled) {
      this.settled = true;
      this.stats.timedOut++;
      this.clearDelay();
      this.owner.raceLost(Rcode.SERVFAIL, 'timeout');
    }
    for (let i = 0; i < this.nLegs; i++) {
      const leg = this.legs[i]!;
      if (!leg.open) continue;
      this.openLegs--;
      leg.abandon(true);
    }
    this.maybeCleanup();
  }

  private clearDelay(): void {
    if (this.delayTimer) clearTimeout(this.delayTimer);
    this.delayTimer = null;
  }

  private maybeCleanup(): void {
    if (this.openLegs > 0) return;
    this.deadlines.remove(this);
    const n = this.nLegs;
    for (let i = 0; i < n; i++) if (this.legs[i]!.upstream !== this.winner) this.legs[i]!.upstream.stats.losses++;
    this.stats.wasted += n - (this.winner ? 1 : 0);
    let b = 0;
    while (b < FANOUT_BUCKETS.length && n > FANOUT_BUCKETS[b]!) b++;
    this.stats.fanout[b]!++;
  }
}
